//! Concurrency, crashes and bad input: nothing recorded is ever lost.

mod common;
use common::*;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn ten_concurrent_runs_on_one_home_all_complete_and_are_recorded() {
    let env = Env::new();
    let children: Vec<_> = (0..10)
        .map(|i| {
            env.cmd()
                .args([
                    "run",
                    &script("progress.py"),
                    "-q",
                    "--name",
                    &format!("r{i}"),
                    "-p",
                    "10",
                ])
                .args(["--", "--steps", "30", "--delay", "0.02"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    expect_all_succeed(children);
    let records = env.records();
    assert_eq!(records.len(), 10);
    for rec in records.values() {
        assert_eq!(rec["status"], "completed", "{rec}");
        assert_eq!(rec["lastStep"], 29, "{rec}");
        assert_eq!(rec["checkpoints"].as_array().unwrap().len(), 3, "{rec}");
        assert_eq!(rec["attempts"].as_array().unwrap().len(), 1);
    }
}

#[test]
fn kill_9_of_backprop_kills_the_script_and_the_next_command_marks_it_lost() {
    let env = Env::new();
    let mut backprop = env
        .cmd()
        .args(["run", &script("sleeper.py"), "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid_file = || {
        let records = env.records();
        let id = records.keys().next()?.clone();
        std::fs::read_to_string(env.run_dir(&id).join("pid"))
            .ok()?
            .trim()
            .parse::<u32>()
            .ok()
    };
    assert!(
        wait_for(Duration::from_secs(20), || pid_file().is_some()),
        "script never started"
    );
    let script_pid = pid_file().unwrap();
    assert!(alive(script_pid));
    backprop.kill().unwrap(); // SIGKILL
    backprop.wait().unwrap();
    assert!(
        wait_for(Duration::from_secs(2), || !alive(script_pid)),
        "script survived backprop"
    );

    let list = env.run(&["list"]);
    assert_eq!(list.status.code(), Some(0));
    assert!(stdout_of(&list).contains("lost"), "{}", stdout_of(&list));
    let rec = env.only_record();
    assert_eq!(rec["status"], "lost");
    assert_eq!(rec["attempts"][0]["status"], "lost");
}

/// `backprop run sleeper.py` in the background, returned once its record says running.
fn start_sleeper_run(env: &Env) -> std::process::Child {
    let backprop = env
        .cmd()
        .args(["run", &script("sleeper.py"), "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let running = || env.records().values().any(|r| r["status"] == "running");
    assert!(
        wait_for(Duration::from_secs(20), running),
        "the run never started"
    );
    backprop
}

#[test]
fn stop_from_another_terminal_stops_gracefully() {
    let env = Env::new();
    let backprop = start_sleeper_run(&env);
    let id = env.records().keys().next().unwrap().clone();
    let stop = env.run(&["stop", &id]);
    assert_eq!(stop.status.code(), Some(0), "{}", stderr_of(&stop));
    let out = backprop.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr_of(&out));
    let rec = env.record(&id);
    assert_eq!(rec["status"], "stopped");
    assert_eq!(rec["attempts"][0]["reason"], "user");
}

#[test]
fn sigint_to_backprop_stops_the_run() {
    let env = Env::new();
    let backprop = start_sleeper_run(&env);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(backprop.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = backprop.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr_of(&out));
    assert_eq!(env.only_record()["status"], "stopped");
}

/// A store with one finished run, to check that bad input never loses it.
fn env_with_a_finished_run() -> (Env, String, Vec<u8>) {
    let env = Env::new();
    let out = env.run(&["run", &script("exit_code.py"), "-q", "--", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let id = env.only_record()["id"].as_str().unwrap().to_string();
    let bytes = std::fs::read(env.experiments_path()).unwrap();
    (env, id, bytes)
}

fn assert_one_line_error(out: &std::process::Output, code: i32, needles: &[&str]) {
    let err = stderr_of(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    let first = err.lines().next().unwrap_or("");
    for needle in needles {
        assert!(first.contains(needle), "{needle:?} not in {first:?}");
    }
}

#[test]
fn bad_config_is_a_clear_error_and_loses_nothing() {
    let (env, _id, before) = env_with_a_finished_run();
    let prog = script("exit_code.py");
    std::fs::write(
        env.work.path().join("backprop.config.json"),
        r#"{"maxRunMinuts": 5}"#,
    )
    .unwrap();
    let out = env.run(&["run", &prog]);
    assert_one_line_error(
        &out,
        2,
        &["maxRunMinuts", "backprop.config.json", "maxRunMinutes"],
    );

    std::fs::write(
        env.work.path().join("backprop.config.json"),
        r#"{"gpu": {"maxTempC": "hot"}}"#,
    )
    .unwrap();
    let out = env.run(&["run", &prog]);
    assert_one_line_error(&out, 2, &["gpu.maxTempC", "hot", "backprop.config.json"]);
    std::fs::remove_file(env.work.path().join("backprop.config.json")).unwrap();

    let out = env.run(&["--config", "nope.json", "run", &prog]);
    assert_one_line_error(&out, 2, &["nope.json"]);

    let out = env
        .cmd()
        .env("BACKPROP_MAX_PARALLEL", "many")
        .args(["run", &prog])
        .output()
        .unwrap();
    assert_one_line_error(&out, 2, &["maxParallel", "many", "BACKPROP_MAX_PARALLEL"]);

    assert_eq!(std::fs::read(env.experiments_path()).unwrap(), before);
}

#[test]
fn bad_run_ids_missing_scripts_and_interpreters_leave_no_record() {
    let (env, id, before) = env_with_a_finished_run();
    for args in [
        vec!["resume", "../x"],
        vec!["status", "../x"],
        vec!["logs", "../x"],
        vec!["stop", "../x"],
    ] {
        let out = env.run(&args);
        assert_one_line_error(&out, 2, &["invalid run id"]);
    }
    let out = env.run(&["run", &script("exit_code.py"), "--run-id", "../x"]);
    assert_one_line_error(&out, 2, &["invalid run id"]);
    let out = env.run(&["run", &script("exit_code.py"), "--run-id", &id]);
    assert_one_line_error(&out, 2, &["already taken"]);

    let out = env.run(&["run", "no-such-script.py"]);
    assert_one_line_error(&out, 127, &["no-such-script.py", "not found"]);
    let out = env.run(&[
        "run",
        &script("exit_code.py"),
        "--interpreter",
        "python-does-not-exist",
    ]);
    assert_one_line_error(&out, 127, &["python-does-not-exist"]);
    let out = env.run(&["run", "--", "no-such-command-xyz", "arg"]);
    assert_one_line_error(&out, 127, &["no-such-command-xyz"]);

    assert_eq!(std::fs::read(env.experiments_path()).unwrap(), before);
}

#[test]
fn a_corrupt_store_is_moved_aside_and_the_run_goes_on() {
    let env = Env::new();
    std::fs::create_dir_all(env.home_path()).unwrap();
    let garbage = b"{\"half\": {\"id\": \"half\", \"sta";
    std::fs::write(env.experiments_path(), garbage).unwrap();
    let out = env.run(&["run", &script("exit_code.py"), "-q", "--", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("corrupt") && err.contains("moved it aside"),
        "{err}"
    );
    let aside: Vec<_> = std::fs::read_dir(env.home_path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(std::fs::read(&aside[0]).unwrap(), garbage);
    assert_eq!(env.only_record()["status"], "completed");
}

#[test]
fn an_unwritable_home_is_a_clear_error() {
    let env = Env::new();
    let blocker = env.home.path().join("file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let out = env
        .cmd()
        .env("BACKPROP_HOME", blocker.join("home"))
        .args(["run", &script("exit_code.py"), "--", "0"])
        .output()
        .unwrap();
    assert_one_line_error(
        &out,
        2,
        &["cannot write to the backprop home", "BACKPROP_HOME"],
    );
}
