//! The Python helper module (`python/backprop_helper.py`) and the scikit-learn example:
//! their own unittest suite, run with the system `python3` so `cargo test` covers them too.

mod common;
use common::*;
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

#[test]
fn every_run_can_import_the_helper_unless_turned_off() {
    let env = Env::new();
    let out = env
        .cmd()
        .args(["run", &script("uses_helper.py"), "--run-id", "with"])
        .env("PYTHONPATH", "/inherited/site")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rec = env.record("with");
    assert_eq!(rec["status"], "completed");
    assert_eq!(rec["lastStep"], 1);
    let helper_dir = env.home_path().join("python");
    let pythonpath = std::fs::read_to_string(env.run_dir("with").join("pythonpath.txt")).unwrap();
    assert_eq!(
        pythonpath,
        format!("{}:/inherited/site", helper_dir.display())
    );
    let installed = std::fs::read_to_string(helper_dir.join("backprop_helper.py")).unwrap();
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/backprop_helper.py"),
    )
    .unwrap();
    assert_eq!(installed, shipped);

    let out = env
        .cmd()
        .args(["run", &script("uses_helper.py"), "--run-id", "without"])
        .env("BACKPROP_PYTHON_HELPER", "false")
        .env_remove("PYTHONPATH")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("No module named 'backprop_helper'"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(env.record("without")["status"], "failed");
    assert_eq!(
        env.record("without")["spec"]["options"]["pythonHelper"],
        false
    );
}
