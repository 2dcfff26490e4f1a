//! The Python helper module (`python/backprop_helper.py`) and the scikit-learn example:
//! their own unittest suite, run with the system `python3` so `cargo test` covers them too.

use std::process::Command;

#[test]
fn python_helper_unittests_pass() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "python/tests", "-v"])
        .current_dir(root)
        // Keep the tests' own view of the environment: no inherited backprop run around them.
        .env_remove("BACKPROP_RUN_DIR")
        .env_remove("BACKPROP_RESUME_FROM")
        .env_remove("BACKPROP_TIMEBOX_FILE")
        .env_remove("BACKPROP_MAX_RUN_SECONDS")
        .env_remove("BACKPROP_STOP_SIGNAL")
        .output()
        .expect("python3 must be on PATH to run the helper's tests");
    // unittest writes its report to stderr; show both so a failure explains itself.
    let report = format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "python unittests failed ({}):\n{report}",
        out.status
    );
    // Print the report on success too (visible with --nocapture), so SKIPPED lines are seen.
    println!("{report}");
}
