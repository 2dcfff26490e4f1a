//! The Slurm executor against a real single-node cluster (`.ci/slurm-up.sh` starts one; CI
//! always does, and under CI a missing cluster fails these tests). The tests take turns:
//! the cluster has two CPUs and one GPU, and one test stops its controller.

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static CLUSTER: Mutex<()> = Mutex::new(());

/// The cluster for one test: taken in turn, and every job the test submitted cancelled at
/// its end, passed or failed, so the next test finds the node free.
struct Turn<'a> {
    _turn: MutexGuard<'static, ()>,
    env: &'a Env,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let jobs: Vec<String> = self
            .env
            .records()
            .values()
            .filter_map(|r| r["slurm"]["jobId"].as_str())
            .map(|j| j.split('_').next().unwrap_or(j).to_string())
            .collect();
        if !jobs.is_empty() {
            let _ = Command::new("scancel").args(&jobs).status();
        }
    }
}

/// The cluster's turn for `env`, or None (a printed skip) when no cluster answers outside CI.
fn turn(env: &Env) -> Option<Turn<'_>> {
    let ready = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !prerequisite(ready, "a Slurm cluster", "run `bash .ci/slurm-up.sh`") {
        return None;
    }
    let turn = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    Some(Turn { _turn: turn, env })
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

fn job_of(rec: &Value) -> String {
    rec["slurm"]["jobId"]
        .as_str()
        .expect("the Slurm job id is stored")
        .to_string()
}

/// Slurm's accounting state of a job (COMPLETED, CANCELLED by 0, ...).
fn accounted_state(job: &str) -> String {
    let mut state = String::new();
    wait_for(Duration::from_secs(30), || {
        let out = Command::new("sacct")
            .args(["-X", "-n", "-P", "-o", "State", "-j", job])
            .output()
            .unwrap();
        state = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .to_string();
        !state.is_empty() && !["RUNNING", "PENDING", "REQUEUED"].contains(&state.as_str())
    });
    state
}

/// A long sleeper holding the cluster's one GPU (or waiting for it); its run id.
fn submit_gpu_sleeper(env: &Env) -> String {
    submitted_id(&env.run(&[
        "run",
        "--executor",
        "slurm",
        "--gpus",
        "1",
        &script("sleeper.py"),
    ]))
}

fn write_config(env: &Env, config: Value) -> String {
    let path = env.work.path().join("slurm.config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path.display().to_string()
}

#[test]
fn a_run_on_slurm_is_timeboxed_and_resumes_as_a_new_job() {
    let env = Env::new();
    let Some(_turn) = turn(&env) else { return };
    let id = submitted_id(&env.run(&["run", "--executor", "slurm", &example(), "-m", "0.1"]));
    let first_job = job_of(&env.record(&id));
    let rec = wait_record(&env, &id, 120, final_status);
    assert_eq!(rec["status"], "timeboxed", "{rec}");
    assert_eq!(rec["attempts"].as_array().unwrap().len(), 1);
    assert!(rec["lastStep"].as_u64().unwrap() > 0);
    let checkpoint = rec["lastCheckpoint"]
        .as_str()
        .expect("a checkpoint")
        .to_string();
    assert!(
        env.run_dir(&id)
            .join(format!("slurm-{first_job}.out"))
            .exists()
    );
    // A run backprop ended on purpose is a job that completed, for Slurm's accounting.
    assert_eq!(accounted_state(&first_job), "COMPLETED");

    let out = env.run(&["resume", &id, "-m", "0.1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rec = wait_record(&env, &id, 120, |r| {
        r["attempts"].as_array().is_some_and(|a| a.len() == 2) && final_status(r)
    });
    assert_eq!(rec["status"], "timeboxed", "{rec}");
    assert_ne!(job_of(&rec), first_job, "a new job for the new attempt");
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
fn a_sweep_on_slurm_is_one_throttled_job_array_with_the_local_summary() {
    let env = Env::new();
    let Some(_turn) = turn(&env) else { return };
    let sweep = env.work.path().join("sweep.json");
    std::fs::write(
        &sweep,
        json!({"script": script("progress.py"), "args": ["--steps", "{steps}", "--delay", "0.05"],
               "grid": {"steps": [40, 41, 42, 43]}, "maxParallel": 2})
        .to_string(),
    )
    .unwrap();
    // Without --no-wait, queue follows the batch to its end and prints the summary.
    let queue = env
        .cmd()
        .args(["queue", sweep.to_str().unwrap(), "--executor", "slurm"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut most = 0;
    let ended = wait_for(Duration::from_secs(240), || {
        let array = env
            .records()
            .values()
            .find_map(|r| r["slurm"]["jobId"].as_str().map(str::to_string));
        let running = array.map_or(0, |job| {
            let array = job.split('_').next().unwrap_or(&job).to_string();
            Command::new("squeue")
                .args(["-h", "-r", "-t", "RUNNING", "-o", "%i", "-j", &array])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
                .unwrap_or(0)
        });
        most = most.max(running);
        let records = env.records();
        records.len() == 4 && records.values().all(final_status)
    });
    let out = queue.wait_with_output().unwrap();
    assert!(ended, "{:?}", env.records());
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(most <= 2, "{most} array tasks ran at once");
    let summary = stdout_of(&out);
    assert!(summary.contains("ATTEMPTS"), "{summary}");
    assert_eq!(summary.matches("completed").count(), 4, "{summary}");
    let records = env.records();
    let array = job_of(records.values().next().unwrap());
    let array = array.split('_').next().unwrap();
    for rec in records.values() {
        assert_eq!(rec["status"], "completed", "{rec}");
        assert!(job_of(rec).starts_with(&format!("{array}_")));
    }
}

#[test]
fn a_run_on_slurm_sees_exactly_the_gpus_slurm_gave_it() {
    // Two (fake) GPUs on the node as backprop's probe sees them; Slurm manages one.
    let gpus = fake_gpu::GpuEnv::new(json!({"mode": "ok", "gpus": [
        fake_gpu::gpu(40_000, json!(40)),
        fake_gpu::gpu(40_000, json!(40)),
    ]}));
    let env = &gpus.env;
    let Some(_turn) = turn(env) else { return };
    let submit = |args: &[&str]| {
        let out = gpus
            .cmd()
            .args(["run", "--executor", "slurm"])
            .args(args)
            .arg(script("env_dump.py"))
            .output()
            .unwrap();
        submitted_id(&out)
    };
    let with_gpu = submit(&["--gpus", "1"]);
    let without = submit(&["--gpus", "0"]);
    for id in [&with_gpu, &without] {
        let rec = wait_record(env, id, 180, final_status);
        assert_eq!(rec["status"], "completed", "{rec}");
    }
    let seen = |id: &str| {
        let dump: Value = serde_json::from_slice(
            &std::fs::read(env.run_dir(id).join("env-attempt1.json")).unwrap(),
        )
        .unwrap();
        dump["env"]["CUDA_VISIBLE_DEVICES"].clone()
    };
    // The GPU Slurm allocated (its index 0), never the probe's other one.
    assert_eq!(seen(&with_gpu), "0");
    // No GPU allocated: none visible, though the probe sees two free ones.
    assert_eq!(seen(&without), "-1");
}

#[test]
fn the_allocation_is_the_admission_and_the_submitted_config_travels() {
    let env = Env::new();
    let Some(_turn) = turn(&env) else { return };
    // A local run holds the home's only slot.
    let mut local = env
        .cmd()
        .args(["-q", "run", "-p", "1", &script("sleeper.py"), "--gpus", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(30), || env
        .records()
        .values()
        .any(|r| r["status"] == "running")));
    // Gates no machine passes, given only by --config: on the node they do not apply, and
    // neither does the home's queue.
    let config = write_config(
        &env,
        json!({"maxCpuLoad": 0.0001, "minFreeRamGB": 100000, "maxParallel": 1}),
    );
    let out = env
        .cmd()
        .env_remove("BACKPROP_MAX_CPU_LOAD")
        .env_remove("BACKPROP_MIN_FREE_RAM_GB")
        .args([
            "--config",
            &config,
            "run",
            "--executor",
            "slurm",
            "--gpus",
            "0",
        ])
        .arg(script("env_dump.py"))
        .output()
        .unwrap();
    let id = submitted_id(&out);
    let rec = wait_record(&env, &id, 120, final_status);
    assert_eq!(rec["status"], "completed", "{rec}");
    let _ = env.run(&["stop", "--all"]);
    let _ = local.wait();
}

#[test]
fn refused_submissions_leave_nothing_behind() {
    let env = Env::new();
    let Some(_turn) = turn(&env) else { return };
    let nothing_left = |env: &Env| {
        assert!(env.records().is_empty(), "{:?}", env.records());
        for dir in ["batches", "runs"] {
            let left: Vec<_> = std::fs::read_dir(env.home_path().join(dir))
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            assert!(left.is_empty(), "left in {dir}: {left:?}");
        }
    };
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
    nothing_left(&env);
    // A time limit over the partition's: refused before sbatch, with both numbers.
    let config = write_config(&env, json!({"slurm": {"partition": "short"}}));
    let out = env.run(&[
        "--config",
        &config,
        "run",
        "--executor",
        "slurm",
        "-m",
        "10",
        &script("env_dump.py"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("--time=16") && err.contains("at most 5"),
        "{err}"
    );
    nothing_left(&env);
    // The same for a whole batch: no job script, no run directories.
    let sweep = env.work.path().join("sweep.json");
    std::fs::write(
        &sweep,
        json!({"script": script("env_dump.py"), "grid": {"x": [1, 2]}, "maxRunMinutes": 10})
            .to_string(),
    )
    .unwrap();
    let out = env.run(&[
        "--config",
        &config,
        "queue",
        sweep.to_str().unwrap(),
        "--executor",
        "slurm",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    nothing_left(&env);
    // No sbatch at all.
    let out = env
        .cmd()
        .env("PATH", "/nonexistent")
        .args(["run", "--executor", "slurm", &script("env_dump.py")])
        .args(["--interpreter", "/usr/bin/python3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("sbatch not found"),
        "{}",
        stderr_of(&out)
    );
    nothing_left(&env);
}

#[test]
fn list_shows_why_a_job_waits_and_where_one_runs_and_cancels_get_slurms_reason() {
    let env = Env::new();
    let Some(_turn) = turn(&env) else { return };
    // The cluster's only GPU is held by the first run, so the second waits in Slurm's queue.
    let holder = submit_gpu_sleeper(&env);
    wait_record(&env, &holder, 120, |r| r["status"] == "running");
    let waiter = submit_gpu_sleeper(&env);
    let shown = wait_for(Duration::from_secs(60), || {
        let list = stdout_of(&env.run(&["list"]));
        list.contains("RUNNING on ") && list.contains("PENDING (")
    });
    assert!(shown, "{}", stdout_of(&env.run(&["list"])));
    let status = stdout_of(&env.run(&["status", &waiter]));
    assert!(status.contains("PENDING ("), "{status}");

    // Cancelled outside backprop while pending: Slurm's reason, by whom.
    let job = job_of(&env.record(&waiter));
    assert!(
        Command::new("scancel")
            .arg(&job)
            .status()
            .unwrap()
            .success()
    );
    let rec = wait_record(&env, &waiter, 60, final_status);
    assert_eq!(rec["status"], "stopped", "{rec}");
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("slurm: cancelled by"),
        "{rec}"
    );

    // Cancelled while running: the same, on the attempt too.
    let job = job_of(&env.record(&holder));
    assert!(
        Command::new("scancel")
            .arg(&job)
            .status()
            .unwrap()
            .success()
    );
    let rec = wait_record(&env, &holder, 60, |r| {
        final_status(r) && r["reason"].as_str().is_some_and(|s| s.contains("by"))
    });
    assert_eq!(rec["status"], "stopped", "{rec}");
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("slurm: cancelled by"),
        "{rec}"
    );
    assert_eq!(rec["attempts"][0]["reason"], rec["reason"], "{rec}");
}

#[test]
fn stop_from_a_login_node_cancels_pending_tasks_and_stops_the_running_one() {
    let env = Env::new();
    let Some(_turn) = turn(&env) else { return };
    let sweep = env.work.path().join("sweep.json");
    std::fs::write(
        &sweep,
        json!({"script": script("sleeper.py"), "args": ["--seconds", "{s}"],
               "grid": {"s": [300, 301, 302, 303]}, "maxParallel": 1})
        .to_string(),
    )
    .unwrap();
    let out = env.run(&[
        "--json",
        "queue",
        sweep.to_str().unwrap(),
        "--executor",
        "slurm",
        "--no-wait",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let submitted: Value = serde_json::from_slice(&out.stdout).unwrap();
    let batch = submitted["batchId"].as_str().unwrap().to_string();
    let array = submitted["slurmJobId"].as_str().unwrap().to_string();
    assert!(wait_for(Duration::from_secs(120), || {
        let _ = env.run(&["list"]);
        env.records().values().any(|r| r["status"] == "running")
    }));
    let running = env
        .records()
        .into_iter()
        .find(|(_, r)| r["status"] == "running")
        .map(|(id, _)| id)
        .unwrap();
    // Another host name, as on a login node: no pid of the run is visible or signalled here.
    let out = Command::new("unshare")
        .args([
            "--uts",
            "--fork",
            "sh",
            "-c",
            "hostname bp-login && exec \"$@\"",
            "sh",
        ])
        .arg(env!("CARGO_BIN_EXE_backprop"))
        .args(["stop", &batch])
        .env("BACKPROP_HOME", env.home_path())
        .current_dir(env.work.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    for id in env.records().keys() {
        let rec = wait_record(&env, id, 90, final_status);
        assert_eq!(rec["status"], "stopped", "{rec}");
    }
    // Nothing of the array is left to start later.
    assert!(wait_for(Duration::from_secs(30), || {
        let out = Command::new("squeue")
            .args(["-h", "-r", "-o", "%i", "-j", &array])
            .output()
            .unwrap();
        out.stdout.is_empty()
    }));
    let stopped = env.record(&running);
    assert_eq!(stopped["reason"], "user", "{stopped}");
    assert_eq!(stopped["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(accounted_state(&job_of(&stopped)), "COMPLETED");
}

#[test]
fn a_job_requeued_by_an_admin_resumes_from_its_checkpoint() {
    let env = Env::new();
    let Some(_turn) = turn(&env) else { return };
    let id = submitted_id(&env.run(&["run", "--executor", "slurm", &example(), "-m", "5"]));
    let rec = wait_record(&env, &id, 120, |r| {
        r["status"] == "running" && r["lastCheckpoint"].is_string()
    });
    let job = job_of(&rec);
    let requeued = Command::new("scontrol")
        .args(["requeue", &job])
        .status()
        .unwrap();
    assert!(requeued.success());
    let rec = wait_record(&env, &id, 120, |r| {
        r["attempts"].as_array().is_some_and(|a| a.len() == 2) || r["status"] == "queued"
    });
    if rec["status"] == "queued" {
        // Seen between the two starts: waiting for the job to start again, not ended.
        assert!(
            rec["reason"].as_str().unwrap().contains("requeued"),
            "{rec}"
        );
    }
    let rec = wait_record(&env, &id, 120, |r| {
        r["attempts"].as_array().is_some_and(|a| a.len() == 2) && r["status"] == "running"
    });
    assert_eq!(job_of(&rec), job, "the same job, started again");
    assert!(rec["attempts"][1]["resumedFrom"].is_string(), "{rec}");
    assert_eq!(rec["attempts"][0]["reason"], "slurm: requeued", "{rec}");
    let out = env.run(&["stop", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rec = wait_record(&env, &id, 60, final_status);
    assert_eq!(rec["status"], "stopped", "{rec}");
}

#[test]
fn the_early_warning_stops_with_a_checkpoint_and_the_requeued_job_resumes() {
    let env = Env::new();
    let Some(_turn) = turn(&env) else { return };
    // A one-minute job warned 50 s before its end; one requeue allowed. All given by
    // --config at submission: the node never reads a config file.
    let config = write_config(
        &env,
        json!({"slurm": {"extraArgs": ["--time=1"], "signalBefore": "50s", "maxRequeues": 1}}),
    );
    let out = env.run(&[
        "--config",
        &config,
        "run",
        "--executor",
        "slurm",
        &example(),
        "-m",
        "10",
        "--",
        "--steps",
        "1000000",
    ]);
    let id = submitted_id(&out);
    let started = Instant::now();
    let rec = wait_record(&env, &id, 240, |r| {
        final_status(r) && r["attempts"].as_array().is_some_and(|a| a.len() == 2)
    });
    let attempts = rec["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["reason"], "slurm: timeout", "{rec}");
    assert!(attempts[1]["resumedFrom"].is_string(), "{rec}");
    // Out of requeues, the second warning ends the run; never Slurm's kill at the limit.
    assert_eq!(rec["reason"], "slurm: timeout", "{rec}");
    assert_eq!(rec["status"], "stopped", "{rec}");
    assert!(
        started.elapsed() < Duration::from_secs(200),
        "each job ended at its warning"
    );
    let losses = losses_by_attempt(&env.run_dir(&id).join("metrics.jsonl"));
    assert_eq!(losses.len(), 2);
    assert!(losses[1].last().unwrap() < losses[0].first().unwrap());
}

#[test]
fn a_controller_that_does_not_answer_gives_stale_states_quickly() {
    let env = Env::new();
    let Some(_turn) = turn(&env) else { return };
    let id = submitted_id(&env.run(&["run", "--executor", "slurm", &script("sleeper.py")]));
    wait_record(&env, &id, 120, |r| r["status"] == "running");
    let controller = Frozen::controller();
    let began = Instant::now();
    let out = env.run(&["list"]);
    let took = began.elapsed();
    drop(controller);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("stale"), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains("(stale)"), "{}", stdout_of(&out));
    // One bounded squeue (5 s), not a client retrying for its own timeout.
    assert!(took < Duration::from_secs(20), "list took {took:?}");
    let out = env.run(&["stop", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    wait_record(&env, &id, 60, final_status);
}

/// slurmctld stopped (SIGSTOP) until dropped: it accepts connections and never answers.
struct Frozen(String);

impl Frozen {
    fn controller() -> Frozen {
        let pid = std::fs::read_to_string("/tmp/backprop-slurm/run/slurmctld.pid")
            .expect("slurmctld's pid file (.ci/slurm-up.sh writes it)")
            .trim()
            .to_string();
        assert!(
            Command::new("kill")
                .args(["-STOP", &pid])
                .status()
                .unwrap()
                .success()
        );
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0]).status();
    }
}

#[test]
fn with_several_tasks_the_graceful_stop_reaches_every_task() {
    let env = Env::new();
    let Some(_turn) = turn(&env) else { return };
    let id = submitted_id(&env.run(&[
        "run",
        "--executor",
        "slurm",
        "--ntasks-per-node",
        "2",
        &script("tasks.py"),
    ]));
    let run_dir = env.run_dir(&id);
    let both =
        |what: &str, dir: &Path| (0..2).all(|rank| dir.join(format!("{what}-{rank}")).exists());
    assert!(
        wait_for(Duration::from_secs(120), || both("started", &run_dir)),
        "{}",
        env.record(&id)
    );
    let out = env.run(&["stop", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rec = wait_record(&env, &id, 90, final_status);
    assert_eq!(rec["status"], "stopped", "{rec}");
    assert!(
        both("stopped", &run_dir),
        "not every task got the stop signal: {rec}"
    );
    // Each task ended on the signal (exit 0), none was killed.
    assert_eq!(rec["attempts"][0]["exitCode"], 0, "{rec}");
}

#[test]
fn a_store_lost_under_a_slurm_run_takes_it_back_from_its_run_directory() {
    let env = Env::new();
    let Some(_turn) = turn(&env) else { return };
    let running = submit_gpu_sleeper(&env);
    wait_record(&env, &running, 120, |r| r["status"] == "running");
    // The cluster's only GPU is taken: this one waits in Slurm's queue.
    let pending = submit_gpu_sleeper(&env);
    // The database and its export both gone: the run directories are all that is left.
    for name in [
        "backprop.db",
        "backprop.db-wal",
        "backprop.db-shm",
        "experiments.json",
    ] {
        let _ = std::fs::remove_file(env.home_path().join(name));
    }
    std::fs::write(
        env.home_path().join("backprop.db"),
        b"not a database any more",
    )
    .unwrap();
    let out = env.run(&["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("took back 2"),
        "{}",
        stderr_of(&out)
    );
    wait_record(&env, &running, 30, |r| r["status"] == "running");
    let rec = wait_record(&env, &pending, 30, |r| r["status"] == "queued");
    assert!(!job_of(&rec).is_empty(), "the job id came back too: {rec}");
    // Both are still under control: stopped and cancelled through the new store.
    let out = env.run(&["stop", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    for id in [&running, &pending] {
        let rec = wait_record(&env, id, 60, final_status);
        assert_eq!(rec["status"], "stopped", "{rec}");
    }
}
