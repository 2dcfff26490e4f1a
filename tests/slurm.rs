//! The Slurm executor against a real single-node cluster (`.ci/slurm-up.sh` starts one; CI
//! always does). Without Slurm these tests say so and pass without checking anything.

mod common;
use common::*;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

fn slurm_ready() -> bool {
    let ready = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !ready {
        eprintln!(
            "SKIPPED: no Slurm cluster answers here (run `bash .ci/slurm-up.sh`; CI always does)"
        );
    }
    ready
}

/// Waits until the run's record satisfies `done`; panics with the record after `secs`.
fn wait_record(env: &Env, id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let ok = wait_for(Duration::from_secs(secs), || {
        // `list` also brings Slurm states up to date.
        let _ = env.run(&["list"]);
        env.records().get(id).is_some_and(&done)
    });
    let rec = env.records().get(id).cloned().unwrap_or(Value::Null);
    assert!(ok, "run {id} did not get there in {secs}s: {rec}");
    rec
}

fn final_status(rec: &Value) -> bool {
    !["queued", "running", "paused"].contains(&rec["status"].as_str().unwrap_or(""))
}

fn submitted_id(out: &std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(out));
    stdout_of(out).trim().to_string()
}

#[test]
fn a_run_on_slurm_is_timeboxed_and_resumes_as_a_new_job() {
    if !slurm_ready() {
        return;
    }
    let env = Env::new();
    let id = submitted_id(&env.run(&["run", "--executor", "slurm", &example(), "-m", "0.1"]));
    let rec = env.record(&id);
    let first_job = rec["slurm"]["jobId"]
        .as_str()
        .expect("the Slurm job id is stored")
        .to_string();
    let rec = wait_record(&env, &id, 120, final_status);
    assert_eq!(rec["status"], "timeboxed", "{rec}");
    assert_eq!(rec["attempts"].as_array().unwrap().len(), 1);
    assert!(rec["lastStep"].as_u64().unwrap() > 0);
    let checkpoint = rec["lastCheckpoint"]
        .as_str()
        .expect("a checkpoint")
        .to_string();
    assert!(
        std::path::Path::new(&env.run_dir(&id))
            .join(format!("slurm-{first_job}.out"))
            .exists()
    );

    let out = env.run(&["resume", &id, "-m", "0.1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rec = wait_record(&env, &id, 120, |r| {
        r["attempts"].as_array().is_some_and(|a| a.len() == 2) && final_status(r)
    });
    assert_eq!(rec["status"], "timeboxed", "{rec}");
    assert_ne!(
        rec["slurm"]["jobId"].as_str().unwrap(),
        first_job,
        "a new job for the new attempt"
    );
    assert_eq!(rec["attempts"][1]["resumedFrom"], checkpoint.as_str());
    let losses = losses_by_attempt(&env.run_dir(&id).join("metrics.jsonl"));
    assert!(
        losses[1].last().unwrap() < losses[0].last().unwrap(),
        "the loss keeps falling"
    );
    let list = env.run(&["list"]);
    assert!(stdout_of(&list).contains("SLURM"), "{}", stdout_of(&list));
}

#[test]
fn a_sweep_on_slurm_is_one_throttled_job_array() {
    if !slurm_ready() {
        return;
    }
    let env = Env::new();
    let sweep = env.work.path().join("sweep.json");
    std::fs::write(
        &sweep,
        json!({"script": script("progress.py"), "args": ["--steps", "{steps}", "--delay", "0.05"],
               "grid": {"steps": [40, 41, 42, 43]}, "maxParallel": 2})
        .to_string(),
    )
    .unwrap();
    let out = env.run(&[
        "--json",
        "queue",
        sweep.to_str().unwrap(),
        "--executor",
        "slurm",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let submitted: Value = serde_json::from_slice(&out.stdout).unwrap();
    let job = submitted["slurmJobId"].as_str().unwrap().to_string();
    let mut most = 0;
    let all_done = wait_for(Duration::from_secs(180), || {
        let running = Command::new("squeue")
            .args(["-h", "-r", "-t", "RUNNING", "-o", "%i", "-j", &job])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
            .unwrap_or(0);
        most = most.max(running);
        let records = env.records();
        records.len() == 4 && records.values().all(|r| r["status"] == "completed")
    });
    assert!(all_done, "{:?}", env.records());
    assert!(most <= 2, "{most} array tasks ran at once");
    for rec in env.records().values() {
        assert!(
            rec["slurm"]["jobId"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{job}_"))
        );
    }
}

#[test]
fn a_gpu_run_on_slurm_sees_the_gpu_slurm_gave_it() {
    if !slurm_ready() {
        return;
    }
    let env = Env::new();
    let id = submitted_id(&env.run(&[
        "run",
        "--executor",
        "slurm",
        "--gpus",
        "1",
        &script("env_dump.py"),
    ]));
    let rec = wait_record(&env, &id, 180, final_status);
    assert_eq!(rec["status"], "completed", "{rec}");
    let dump: Value =
        serde_json::from_slice(&std::fs::read(env.run_dir(&id).join("env-attempt1.json")).unwrap())
            .unwrap();
    // The single-node cluster's one (fake) GPU: Slurm sets CUDA_VISIBLE_DEVICES=0.
    assert_eq!(dump["env"]["CUDA_VISIBLE_DEVICES"], "0", "{dump}");
}

#[test]
fn refused_submissions_leave_nothing_recorded() {
    if !slurm_ready() {
        return;
    }
    let env = Env::new();
    // More GPUs than the cluster has: sbatch refuses.
    let out = env.run(&[
        "run",
        "--executor",
        "slurm",
        "--gpus",
        "2",
        &script("env_dump.py"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("sbatch refused"),
        "{}",
        stderr_of(&out)
    );
    assert!(env.records().is_empty(), "{:?}", env.records());
    // No sbatch at all.
    let out = env
        .cmd()
        .env("PATH", "/nonexistent")
        .args([
            "run",
            "--executor",
            "slurm",
            &script("env_dump.py"),
            "--interpreter",
            "/usr/bin/python3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("sbatch not found"),
        "{}",
        stderr_of(&out)
    );
    assert!(env.records().is_empty());
}

#[test]
fn a_job_cancelled_before_it_started_is_marked_and_stop_works_on_slurm() {
    if !slurm_ready() {
        return;
    }
    let env = Env::new();
    // The cluster's only GPU is held by the first run, so the second waits in Slurm's queue.
    let holder = submitted_id(&env.run(&[
        "run",
        "--executor",
        "slurm",
        "--gpus",
        "1",
        &script("sleeper.py"),
    ]));
    wait_record(&env, &holder, 120, |r| r["status"] == "running");
    let waiter = submitted_id(&env.run(&[
        "run",
        "--executor",
        "slurm",
        "--gpus",
        "1",
        &script("sleeper.py"),
    ]));
    let job = env.record(&waiter)["slurm"]["jobId"]
        .as_str()
        .unwrap()
        .to_string();
    let cancelled = Command::new("scancel").arg(&job).status().unwrap();
    assert!(cancelled.success());
    let rec = wait_record(&env, &waiter, 60, final_status);
    assert_eq!(rec["status"], "stopped", "{rec}");
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("cancelled before it started"),
        "{rec}"
    );

    let out = env.run(&["stop", &holder]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rec = wait_record(&env, &holder, 60, final_status);
    assert_eq!(rec["status"], "stopped", "{rec}");
}
