//! Scripts written for the original backprop tool: without `--legacy-args` they fail at once
//! and backprop says why in one line; with it they get exactly the original arguments.

mod common;
use common::*;
use serde_json::{Value, json};

const HINT: &str = "looks written for the original backprop tool";

#[test]
fn a_script_for_the_original_tool_gets_one_hint_then_runs_with_legacy_args() {
    let env = Env::new();
    let legacy = script("legacy_args.py");

    let out = env.run(&[
        "run", &legacy, "-m", "30s", "--run-id", "plain", "--", "--lr", "0.3",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("the following arguments are required: --run-id, --max-minutes"),
        "{stderr}"
    );
    assert!(stderr.contains("plain failed (exit 2)"), "{stderr}");
    let hints: Vec<&str> = stderr.lines().filter(|l| l.contains(HINT)).collect();
    assert_eq!(hints.len(), 1, "{stderr}");
    assert!(
        hints[0].contains("--legacy-args") && hints[0].contains("\"scriptArgs\": \"legacy\""),
        "{}",
        hints[0]
    );
    let events = &env.record("plain")["attempts"][0]["events"];
    assert_eq!(events[0]["kind"], "legacy_args_hint", "{events}");

    let out = env.run(&[
        "run",
        &legacy,
        "-m",
        "30s",
        "--legacy-args",
        "--run-id",
        "legacy",
        "--",
        "--lr",
        "0.3",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains(HINT));
    let argv: Value = serde_json::from_str(
        &std::fs::read_to_string(env.run_dir("legacy").join("argv.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        argv,
        json!(["--run-id", "legacy", "--max-minutes", "0.5", "--lr", "0.3"])
    );
    let rec = env.record("legacy");
    assert_eq!(rec["status"], "completed");
    assert_eq!(rec["spec"]["options"]["legacyArgs"], true);
}

#[test]
fn the_config_key_does_what_the_flag_does() {
    let env = Env::new();
    let out = env
        .cmd()
        .args(["run", &script("legacy_args.py"), "--run-id", "viaenv"])
        .env("BACKPROP_SCRIPT_ARGS", "legacy")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(env.record("viaenv")["status"], "completed");
}
