//! `backprop run` / `resume` end to end: timebox, resume from checkpoint, exit codes,
//! stubborn scripts, the stdout protocol.

mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn timeboxed_example_resumes_from_its_checkpoint_and_the_loss_keeps_falling() {
    let env = Env::new();
    let out = env.run(&["run", &example(), "-m", "0.1", "--name", "demo"]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr_of(&out));
    let rec = env.only_record();
    let id = rec["id"].as_str().unwrap().to_string();
    assert_eq!(rec["status"], "timeboxed");
    assert_eq!(rec["name"], "demo");
    let checkpoint = rec["lastCheckpoint"]
        .as_str()
        .expect("a checkpoint")
        .to_string();
    assert!(std::path::Path::new(&checkpoint).exists());
    assert!(rec["lastStep"].as_u64().unwrap() > 0);

    let out = env.run(&["resume", &id, "-m", "0.1"]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr_of(&out));
    let rec = env.record(&id);
    let attempts = rec["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["status"], "timeboxed");
    assert_eq!(attempts[1]["status"], "timeboxed");
    assert_eq!(attempts[1]["resumedFrom"], checkpoint.as_str());
    let stdout_log = std::fs::read_to_string(env.run_dir(&id).join("stdout.log")).unwrap();
    assert!(
        stdout_log.contains(&format!("resumed from {checkpoint}")),
        "{stdout_log}"
    );

    let losses = losses_by_attempt(&env.run_dir(&id).join("metrics.jsonl"));
    assert_eq!(losses.len(), 2);
    let (first, second) = (&losses[0], &losses[1]);
    assert!(
        second.first().unwrap() <= first.last().unwrap(),
        "attempt 2 starts where 1 stopped"
    );
    assert!(
        second.last().unwrap() < first.last().unwrap(),
        "loss keeps falling"
    );
}

#[test]
fn resuming_passes_the_checkpoint_in_argv_and_env() {
    let env = Env::new();
    let checkpoint = env.work.path().join("start.ckpt");
    std::fs::write(&checkpoint, "weights").unwrap();
    let out = env.run(&[
        "run",
        &script("env_dump.py"),
        "-r",
        checkpoint.to_str().unwrap(),
        "--env",
        "EXTRA=1",
        "--",
        "--lr",
        "0.1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rec = env.only_record();
    let id = rec["id"].as_str().unwrap();
    let dump: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.run_dir(id).join("env-attempt1.json")).unwrap())
            .unwrap();
    let path = checkpoint.display().to_string();
    assert_eq!(
        dump["argv"],
        serde_json::json!(["--lr", "0.1", "--resume-from", path])
    );
    let vars = &dump["env"];
    assert_eq!(vars["BACKPROP_RESUME_FROM"], path.as_str());
    assert_eq!(vars["BACKPROP_RUN_ID"], id);
    assert_eq!(vars["BACKPROP_ATTEMPT"], "1");
    assert_eq!(vars["BACKPROP_MAX_RUN_SECONDS"], "600");
    assert_eq!(
        vars["BACKPROP_RUN_DIR"],
        env.run_dir(id).display().to_string().as_str()
    );
    assert_eq!(vars["PYTHONUNBUFFERED"], "1");
    assert_eq!(vars["CUDA_DEVICE_ORDER"], "PCI_BUS_ID");
    assert_eq!(vars["BACKPROP_FRAMEWORK"], "none");
}

#[test]
fn a_stubborn_script_and_its_grandchild_are_killed_after_the_grace_period() {
    let env = Env::new();
    let started = Instant::now();
    let out = env.run(&["run", &script("stubborn.py"), "-m", "0.05", "--grace", "2s"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(124), "{}", stderr_of(&out));
    let rec = env.only_record();
    assert_eq!(rec["status"], "timeboxed");
    let pids: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.run_dir(rec["id"].as_str().unwrap()).join("pids.json")).unwrap(),
    )
    .unwrap();
    for key in ["child", "grandchild"] {
        let pid = pids[key].as_u64().unwrap() as u32;
        assert!(
            wait_for(Duration::from_secs(1), || !alive(pid)),
            "{key} {pid} still alive"
        );
    }
    // Timebox 3 s + grace 2 s, plus start-up: both gone within grace + 2 s of the timebox.
    assert!(took < Duration::from_secs(3 + 2 + 2 + 3), "took {took:?}");
}

#[test]
fn a_failing_script_passes_its_exit_code_through() {
    let env = Env::new();
    let out = env.run(&["run", &script("exit_code.py"), "--", "3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    let rec = env.only_record();
    assert_eq!(rec["status"], "failed");
    assert_eq!(rec["attempts"][0]["exitCode"], 3);

    let env = Env::new();
    let out = env.run(&["run", &script("segfault.py")]);
    assert_eq!(out.status.code(), Some(139), "{}", stderr_of(&out));
    let rec = env.only_record();
    assert_eq!(rec["status"], "failed");
    assert_eq!(rec["attempts"][0]["signal"], 11);
}

#[test]
fn progress_checkpoints_and_odd_output_are_handled() {
    let env = Env::new();
    let out = env.run(&[
        "run",
        &script("progress.py"),
        "--",
        "--steps",
        "30",
        "--delay",
        "0.01",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rec = env.only_record();
    assert_eq!(rec["status"], "completed");
    assert_eq!(rec["lastStep"], 29);
    assert!(rec["lastLoss"].as_f64().unwrap() > 0.0);
    assert_eq!(rec["checkpoints"].as_array().unwrap().len(), 3);
    assert_eq!(rec["attempts"][0]["reason"], "exit");

    let env = Env::new();
    let out = env.run(&["run", &script("noisy_output.py")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rec = env.only_record();
    let id = rec["id"].as_str().unwrap();
    assert_eq!(rec["status"], "completed");
    // The 1.5 MiB JSON line claiming step 999999 is output, not progress.
    assert_eq!(rec["lastStep"], 1);
    // Everything the script wrote is in the log byte for byte, non-protocol lines on stdout.
    let log = std::fs::read(env.run_dir(id).join("stdout.log")).unwrap();
    assert!(log.len() > 2 << 20);
    assert!(out.stdout.windows(7).any(|w| w == b"[1,2,3]"));
    assert!(out.stdout.len() > 2 << 20);
}

#[test]
fn logs_print_what_the_script_wrote() {
    let env = Env::new();
    let out = env.run(&[
        "run",
        &script("progress.py"),
        "--",
        "--steps",
        "5",
        "--delay",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let id = env.only_record()["id"].as_str().unwrap().to_string();
    let logs = env.run(&["logs", &id]);
    assert_eq!(logs.status.code(), Some(0));
    assert_eq!(
        logs.stdout,
        std::fs::read(env.run_dir(&id).join("stdout.log")).unwrap()
    );
    let followed = env.run(&["logs", &id, "-f"]);
    assert_eq!(followed.stdout, logs.stdout);
}

#[test]
fn a_crash_after_a_checkpoint_restarts_from_it_and_completes() {
    let env = Env::new();
    let out = env.run(&[
        "run",
        &script("checkpoint_then_crash.py"),
        "--max-restarts",
        "2",
        "--run-id",
        "crashy",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rec = env.record("crashy");
    assert_eq!(rec["status"], "completed");
    let attempts = rec["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["status"], "failed");
    assert_eq!(attempts[0]["exitCode"], 1);
    assert_eq!(attempts[1]["status"], "completed");
    assert_eq!(attempts[1]["resumedFrom"], rec["checkpoints"][0]);
    assert!(
        stderr_of(&out).contains("restart 1 of 2"),
        "{}",
        stderr_of(&out)
    );
}
