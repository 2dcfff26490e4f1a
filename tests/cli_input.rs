//! What users type and what they are told: durations out of range, flags that change the
//! start limits, unknown BACKPROP_* variables, sweep paths, and the messages of `queue`,
//! `config`, `resume`, `logs` and `plot`.

mod common;
use common::*;
use serde_json::json;

fn refused(env: &Env, args: &[&str]) -> String {
    refused_with(2, env, args)
}

fn refused_with(code: i32, env: &Env, args: &[&str]) -> String {
    let out = env.run(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: {}",
        stderr_of(&out)
    );
    stderr_of(&out)
}

#[test]
fn timeboxes_and_checkpoint_intervals_must_be_positive_and_at_most_a_year() {
    let env = Env::new();
    let prog = script("exit_code.py");
    let err = refused(&env, &["run", &prog, "-m", "-5"]);
    assert!(
        err.contains("invalid --max-run-minutes \"-5\": must be a positive duration"),
        "{err}"
    );
    let err = refused(&env, &["run", &prog, "-m", "1e9"]);
    assert!(
        err.contains("invalid --max-run-minutes \"1e9\": at most 1 year (525600 minutes)"),
        "{err}"
    );
    let err = refused(&env, &["run", &prog, "-c", "-1"]);
    assert!(
        err.contains("invalid --checkpoint-every-minutes \"-1\": must be a positive duration"),
        "{err}"
    );
    let err = refused(&env, &["resume", "anything", "-m", "-5"]);
    assert!(err.contains("invalid --max-run-minutes \"-5\""), "{err}");
    let err = refused(&env, &["queue", "none.json", "-m", "0"]);
    assert!(err.contains("must be a positive duration"), "{err}");

    std::fs::write(
        env.work.path().join("backprop.config.json"),
        json!({"maxRunMinutes": 1e9}).to_string(),
    )
    .unwrap();
    let err = refused(&env, &["run", &prog]);
    assert!(
        err.contains("maxRunMinutes") && err.contains("at most 1 year (525600 minutes)"),
        "{err}"
    );
    assert!(env.records().is_empty(), "nothing was recorded");
}

#[test]
fn the_start_limits_name_their_key_and_flag() {
    let env = Env::new();
    let out = env.run(&[
        "run",
        &script("exit_code.py"),
        "--no-wait",
        "--gpus",
        "0",
        "--min-free-ram",
        "1000000",
    ]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("is below minFreeRamGB 1000000 (--min-free-ram)"),
        "{}",
        stderr_of(&out)
    );
    let out = env.run(&["--json", "config", "--max-cpu-load", "3.5"]);
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        config["keys"]["maxCpuLoad"],
        json!({"value": 3.5, "source": "flag --max-cpu-load"})
    );
}

#[test]
fn an_unknown_backprop_variable_is_refused_by_every_command() {
    let env = Env::new();
    for args in [
        vec!["list"],
        vec!["status"],
        vec!["status", "some-run"],
        vec!["logs", "some-run"],
        vec!["plot", "some-run"],
        vec!["stop", "--all"],
        vec!["config"],
        vec!["completions", "bash"],
    ] {
        let out = env
            .cmd()
            .args(&args)
            .env("BACKPROP_MAX_PARALEL", "2")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr_of(&out).contains(
                "unknown environment variable BACKPROP_MAX_PARALEL: not a config key (did you mean BACKPROP_MAX_PARALLEL?)"
            ),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
}

#[test]
fn config_shows_a_timebox_as_it_was_written() {
    let env = Env::new();
    let out = env
        .cmd()
        .arg("config")
        .env("BACKPROP_MAX_RUN_MINUTES", "20s")
        .output()
        .unwrap();
    let text = stdout_of(&out);
    let row = text
        .lines()
        .find(|l| l.starts_with("maxRunMinutes"))
        .unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        [
            "maxRunMinutes",
            "20s",
            "environment",
            "variable",
            "BACKPROP_MAX_RUN_MINUTES"
        ]
    );
    let text = stdout_of(&env.run(&["config", "-m", "0.5"]));
    assert!(text.contains("maxRunMinutes           0.5"), "{text}");
}

#[test]
fn queue_without_a_file_or_config_says_there_is_none() {
    let env = Env::new();
    let err = refused(&env, &["queue"]);
    assert!(
        err.contains("no sweep file given and there is no backprop.config.json here"),
        "{err}"
    );
    assert!(err.contains("backprop queue <sweep.json>"), "{err}");
}

#[test]
fn a_sweeps_relative_paths_are_taken_from_its_own_directory() {
    let env = Env::new();
    let dir = env.work.path().join("sweeps");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(script("env_dump.py"), dir.join("train.py")).unwrap();
    std::fs::write(
        dir.join("sweep.json"),
        json!({"script": "train.py", "cwd": "data", "grid": {"lr": [0.1]}}).to_string(),
    )
    .unwrap();
    let out = env.run(&["--json", "queue", "sweeps/sweep.json", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        plan[0]["program"],
        dir.join("train.py").display().to_string()
    );
    assert_eq!(plan[0]["cwd"], dir.join("data").display().to_string());

    std::fs::write(
        dir.join("missing.json"),
        json!({"script": "nope.py", "grid": {"lr": [0.1]}}).to_string(),
    )
    .unwrap();
    let err = refused_with(127, &env, &["queue", "sweeps/missing.json", "--dry-run"]);
    assert!(
        err.contains("script nope.py not found")
            && err.contains(&format!(
                "relative paths in a batch file are taken from its directory, {}",
                dir.display()
            )),
        "{err}"
    );
    let help = stdout_of(&env.run(&["queue", "--help"]));
    assert!(help.contains("taken from the sweep file's own"), "{help}");
}

#[test]
fn logs_mark_where_each_attempt_begins_and_a_completed_run_resumes_only_with_force() {
    let env = Env::new();
    let out = env.run(&[
        "run",
        &script("checkpoint_then_crash.py"),
        "--run-id",
        "twice",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("twice failed (exit 1) after"),
        "{}",
        stderr_of(&out)
    );
    let out = env.run(&["resume", "twice", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));

    let rec = env.record("twice");
    let checkpoint = rec["attempts"][1]["resumedFrom"]
        .as_str()
        .unwrap()
        .to_string();
    let offset = rec["attempts"][1]["stdoutOffset"].as_u64().unwrap();
    assert!(offset > 0, "{rec}");
    let logs = stdout_of(&env.run(&["logs", "twice"]));
    let marker = format!("── attempt 2 (resumed from {checkpoint}) ──\n");
    let (first, second) = logs.split_once(&marker).expect("a marker between attempts");
    assert_eq!(first.len() as u64, offset);
    assert!(
        first.contains("\"step\": 5") && !first.contains("resumed from"),
        "{first}"
    );
    assert!(second.starts_with("resumed from"), "{second}");
    let stderr_logs = stdout_of(&env.run(&["logs", "twice", "--stderr"]));
    assert!(
        stderr_logs.starts_with("crashing on purpose\n── attempt 2 (resumed from"),
        "{stderr_logs}"
    );

    // Completed: resuming it again asks for --force, which starts a new attempt.
    let err = refused(&env, &["resume", "twice"]);
    assert!(
        err.contains("run twice already completed") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(env.record("twice")["attempts"].as_array().unwrap().len(), 2);
    let out = env.run(&["resume", "twice", "--force", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rec = env.record("twice");
    assert_eq!(rec["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(rec["status"], "completed");
    let logs = stdout_of(&env.run(&["logs", "twice"]));
    assert_eq!(logs.matches("── attempt ").count(), 2, "{logs}");
    assert!(logs.contains("── attempt 3 (resumed from"), "{logs}");
}

#[test]
fn plot_draws_a_log_scale_and_names_the_metrics_a_run_has() {
    let env = Env::new();
    let out = env.run(&[
        "run",
        &script("progress.py"),
        "-q",
        "--run-id",
        "p",
        "--",
        "--steps",
        "30",
        "--delay",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let out = env.run(&["plot", "p", "--log-y"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).starts_with("loss by step (log scale)\n"),
        "{}",
        stdout_of(&out)
    );
    let image = env.work.path().join("loss.svg");
    let out = env.run(&["plot", "p", "--log-y", "--out", "loss.svg"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        std::fs::read_to_string(image)
            .unwrap()
            .contains("loss by step (log scale)")
    );
    let err = refused(&env, &["plot", "p", "--metric", "nosuch"]);
    assert!(
        err.contains("no run reported a metric \"nosuch\"; the runs have: loss, lr, total_steps"),
        "{err}"
    );
}

#[test]
fn logs_follow_a_restart_and_mark_it() {
    let env = Env::new();
    let mut run = env
        .cmd()
        .args([
            "run",
            &script("checkpoint_then_crash.py"),
            "-q",
            "--run-id",
            "restarted",
            "--max-restarts",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(std::time::Duration::from_secs(60), || {
        env.records().contains_key("restarted")
    }));
    // Follows until the run ends (after its restart), or reads it whole if it already has.
    let followed = env.run(&["logs", "restarted", "-f"]);
    assert_eq!(run.wait().unwrap().code(), Some(0));
    let text = stdout_of(&followed);
    let (_, second) = text
        .split_once("── attempt 2 (resumed from ")
        .unwrap_or_else(|| panic!("no marker: {text}"));
    assert!(second.contains("\nresumed from"), "{text}");
    assert_eq!(env.record("restarted")["status"], "completed");
}
