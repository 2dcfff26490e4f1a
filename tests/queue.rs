//! `backprop queue`: sweeps, the summary, rounds, and a killed batch.

mod common;
use common::*;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;

fn write_sweep(env: &Env, sweep: Value) -> String {
    let path = env.work.path().join("sweep.json");
    std::fs::write(&path, sweep.to_string()).unwrap();
    path.display().to_string()
}

#[test]
fn a_two_by_three_grid_runs_six_runs_with_their_args_and_params() {
    let env = Env::new();
    let sweep = write_sweep(
        &env,
        json!({"script": script("env_dump.py"), "args": ["--lr", "{lr}", "--bs", "{bs}"],
               "grid": {"lr": [0.1, 0.01], "bs": [16, 32, 64]}, "name": "lr{lr}-bs{bs}", "maxParallel": 2}),
    );
    let dry = env.run(&["queue", &sweep, "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", stderr_of(&dry));
    assert_eq!(
        stdout_of(&dry).matches("env_dump.py --lr").count(),
        6,
        "{}",
        stdout_of(&dry)
    );
    assert!(env.records().is_empty(), "a dry run records nothing");

    let out = env.run(&["queue", &sweep]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let summary = stdout_of(&out);
    assert!(
        summary.contains("NAME") && summary.contains("LOSS"),
        "{summary}"
    );
    let records = env.records();
    assert_eq!(records.len(), 6);
    let mut seen = Vec::new();
    for rec in records.values() {
        assert_eq!(rec["status"], "completed");
        let (lr, bs) = (rec["params"]["lr"].clone(), rec["params"]["bs"].clone());
        assert_eq!(rec["name"], format!("lr{lr}-bs{bs}"));
        let id = rec["id"].as_str().unwrap();
        let dump: Value = serde_json::from_slice(
            &std::fs::read(env.run_dir(id).join("env-attempt1.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            dump["argv"],
            json!(["--lr", lr.to_string(), "--bs", bs.to_string()])
        );
        assert!(rec["batchId"].is_string());
        seen.push(format!("{lr}/{bs}"));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "0.01/16", "0.01/32", "0.01/64", "0.1/16", "0.1/32", "0.1/64"
        ]
    );

    let out = env.run(&["--json", "queue", &sweep, "--dry-run"]);
    let plan: Value = serde_json::from_slice(&out.stdout).expect("dry-run --json parses");
    assert_eq!(plan.as_array().unwrap().len(), 6);
}

#[test]
fn rounds_interleave_runs_until_each_completes_and_the_loss_continues() {
    let env = Env::new();
    let sweep = write_sweep(
        &env,
        json!({"script": script("chunks.py"), "maxParallel": 1, "maxRunMinutes": "1500ms", "untilDone": true,
               "runs": [{"name": "A"}, {"name": "B"}, {"name": "C"}]}),
    );
    let out = env.run(&["--json", "queue", &sweep]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("summary --json parses");
    assert_eq!(summary["runs"].as_array().unwrap().len(), 3);
    let mut starts = Vec::new();
    for rec in env.records().values() {
        assert_eq!(rec["status"], "completed", "{rec}");
        let attempts = rec["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 3, "{rec}");
        assert_eq!(attempts[0]["status"], "timeboxed");
        assert_eq!(attempts[2]["status"], "completed");
        assert_eq!(rec["lastStep"], 15, "the steps continue across attempts");
        for a in attempts {
            starts.push((
                a["startTime"].as_u64().unwrap(),
                rec["name"].as_str().unwrap().to_string(),
            ));
        }
        let losses = losses_by_attempt(
            &env.run_dir(rec["id"].as_str().unwrap())
                .join("metrics.jsonl"),
        );
        assert!(
            losses[1][0] < *losses[0].last().unwrap() && losses[2][0] < *losses[1].last().unwrap()
        );
    }
    starts.sort();
    let order: String = starts.into_iter().map(|(_, name)| name).collect();
    assert_eq!(order, "ABCABCABC");
}

#[test]
fn kill_9_of_a_queue_marks_its_runs_lost_and_frees_the_slots() {
    let env = Env::new();
    let sweep = write_sweep(
        &env,
        json!({"script": script("sleeper.py"), "maxParallel": 1, "runs": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}),
    );
    let mut queue = env
        .cmd()
        .args(["queue", &sweep, "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = || {
        env.records()
            .values()
            .filter(|r| r["status"] == "running")
            .count()
    };
    assert!(wait_for(Duration::from_secs(20), || running() == 1));
    queue.kill().unwrap();
    queue.wait().unwrap();
    let list = env.run(&["list"]);
    assert_eq!(
        stdout_of(&list).matches("lost").count(),
        3,
        "{}",
        stdout_of(&list)
    );
    let out = env.run(&[
        "run",
        &script("exit_code.py"),
        "-q",
        "-p",
        "1",
        "--no-wait",
        "--",
        "0",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the slot is free: {}",
        stderr_of(&out)
    );
}

#[test]
fn stop_a_batch_stops_its_active_runs_and_removes_the_waiting_ones() {
    let env = Env::new();
    let sweep = write_sweep(
        &env,
        json!({"script": script("sleeper.py"), "maxParallel": 1, "runs": [{"name": "a"}, {"name": "b"}]}),
    );
    let queue = env
        .cmd()
        .args(["queue", &sweep, "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(20), || env
        .records()
        .values()
        .any(|r| r["status"] == "running")));
    let batch = env.records().values().next().unwrap()["batchId"]
        .as_str()
        .unwrap()
        .to_string();
    let stop = env.run(&["stop", &batch]);
    assert_eq!(stop.status.code(), Some(0), "{}", stderr_of(&stop));
    let out = queue.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr_of(&out));
    for rec in env.records().values() {
        assert_eq!(rec["status"], "stopped", "{rec}");
    }
}
