//! Fault injection: crashes at random moments, concurrency, hostile scripts, malformed
//! files and a damaged store. Every case checks that nothing recorded is lost and that
//! experiments.json still parses. docs/RELIABILITY.md lists the cases and their results.

mod common;
use common::*;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A small deterministic generator, so a failing crash schedule can be replayed.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn no_temp_files(env: &Env) {
    let leftovers: Vec<_> = std::fs::read_dir(env.home_path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn kill_9_at_random_moments_of_30_runs_leaves_consistent_records_and_no_processes() {
    let env = Env::new();
    let mut rng = Lcg(2026);
    for round in 0..5 {
        // Six at once, each killed after a random delay: spawn, progress, checkpoint, exit.
        let runs: Vec<_> = (0..6)
            .map(|i| {
                let id = format!("k{round}-{i}");
                let child = env
                    .cmd()
                    .args([
                        "run",
                        &script("lifecycle.py"),
                        "-q",
                        "-p",
                        "10",
                        "--run-id",
                        &id,
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                (id, child, Duration::from_millis(rng.below(1600)))
            })
            .collect();
        let start = Instant::now();
        for (_, mut child, delay) in runs {
            if let Some(left) = delay.checked_sub(start.elapsed()) {
                std::thread::sleep(left);
            }
            let _ = child.kill();
            child.wait().unwrap();
        }
    }
    let list = env.run(&["list", "--json"]);
    assert_eq!(list.status.code(), Some(0), "{}", stderr_of(&list));
    let records = env.records();
    for (id, rec) in &records {
        let status = rec["status"].as_str().unwrap();
        assert!(["lost", "completed"].contains(&status), "{id}: {status}");
        // Every checkpoint recorded is a real file: nothing half-recorded.
        for ckpt in rec["checkpoints"].as_array().unwrap() {
            assert!(
                std::path::Path::new(ckpt.as_str().unwrap()).exists(),
                "{id}: {ckpt}"
            );
        }
        let pids = std::fs::read_to_string(env.run_dir(id).join("pids")).unwrap_or_default();
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            assert!(
                wait_for(Duration::from_secs(3), || !alive(pid)),
                "{id}: process {pid} survived"
            );
        }
    }
    // Runs killed before their record was created leave no record at all; the rest are here.
    assert!(
        records.len() <= 30 && records.len() >= 10,
        "{} records",
        records.len()
    );
    no_temp_files(&env);
}

#[test]
fn twenty_concurrent_runs_with_max_parallel_three_lose_no_update() {
    let env = std::sync::Arc::new(Env::new());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let most = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sampler = {
        let (env, stop, most) = (env.clone(), stop.clone(), most.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let running = env
                    .records()
                    .values()
                    .filter(|r| r["status"] == "running")
                    .count();
                most.fetch_max(running, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let children: Vec<_> = (0..20)
        .map(|i| {
            env.cmd()
                .args([
                    "run",
                    &script("progress.py"),
                    "-q",
                    "-p",
                    "3",
                    "--run-id",
                    &format!("c{i:02}"),
                ])
                .args(["--", "--steps", "30", "--delay", "0.01"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    expect_all_succeed(children);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    assert!(most.load(std::sync::atomic::Ordering::Relaxed) <= 3);
    let records = env.records();
    assert_eq!(records.len(), 20);
    for rec in records.values() {
        assert_eq!(rec["status"], "completed", "{rec}");
        assert_eq!(rec["lastStep"], 29, "{rec}");
        assert_eq!(rec["checkpoints"].as_array().unwrap().len(), 3, "{rec}");
        assert_eq!(rec["attempts"].as_array().unwrap().len(), 1, "{rec}");
    }
    no_temp_files(&env);
}

#[test]
fn hostile_scripts_are_handled() {
    let env = Env::new();
    // Ignores every catchable signal: SIGKILL after the grace period.
    let started = Instant::now();
    let out = env.run(&[
        "run",
        &script("ignore_all.py"),
        "-q",
        "-m",
        "2s",
        "--grace",
        "1s",
        "--run-id",
        "deaf",
    ]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr_of(&out));
    assert!(started.elapsed() < Duration::from_secs(10));
    let pid: u32 = std::fs::read_to_string(env.run_dir("deaf").join("pid"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(!alive(pid));

    // A double-forked daemon that left the process group dies with the run.
    let out = env.run(&["run", &script("double_fork.py"), "-q", "--run-id", "daemon"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let pid: u32 = std::fs::read_to_string(env.run_dir("daemon").join("daemon.pid"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(2), || !alive(pid)),
        "daemon {pid} survived"
    );

    // 10 MB without a newline: passed through and logged, memory bounded, the next line parsed.
    let out = env.run(&["run", &script("no_newline.py"), "-q", "--run-id", "long"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.len() >= 10 << 20);
    assert_eq!(env.record("long")["lastStep"], 7);

    // Binary garbage passes through untouched.
    let out = env.run(&["run", &script("garbage.py"), "-q", "--run-id", "garbage"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        std::fs::metadata(env.run_dir("garbage").join("stdout.log"))
            .unwrap()
            .len(),
        (1 << 20) + 26
    );
    assert_eq!(env.record("garbage")["lastStep"], 3);

    // 100k progress lines as fast as possible: all kept in metrics.jsonl, the last one recorded.
    let out = env.run(&["run", &script("flood.py"), "-q", "--run-id", "flood"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(env.record("flood")["lastStep"], 99_999);
    let metrics = std::fs::read_to_string(env.run_dir("flood").join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 100_000);

    // Exits before printing anything.
    let out = env.run(&["run", &script("silent_exit.py"), "-q", "--run-id", "silent"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(env.record("silent")["status"], "completed");
    assert_eq!(env.record("silent")["lastStep"], Value::Null);

    // Closes stdout early and goes on working.
    let out = env.run(&[
        "run",
        &script("close_stdout.py"),
        "-q",
        "--run-id",
        "closed",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("still working 4"));
    assert_eq!(env.record("closed")["status"], "completed");

    // Announces a checkpoint that does not exist: resume falls back to the real one.
    let out = env.run(&[
        "run",
        &script("phantom_checkpoint.py"),
        "-q",
        "--run-id",
        "phantom",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let out = env.run(&["resume", "phantom", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("no longer exists"),
        "{}",
        stderr_of(&out)
    );
    let resumed = std::fs::read_to_string(env.run_dir("phantom").join("resumed-from.txt")).unwrap();
    assert!(resumed.ends_with("real.ckpt"), "{resumed}");
    no_temp_files(&env);
}

#[test]
fn twenty_malformed_config_and_sweep_files_each_get_a_precise_error() {
    let env = Env::new();
    let prog = script("exit_code.py");
    let configs: Vec<(Value, &[&str])> = vec![
        (
            json!({"maxRunMinuts": 5}),
            &["maxRunMinuts", "maxRunMinutes"],
        ),
        (json!({"maxRunMinutes": -1}), &["maxRunMinutes", "-1"]),
        (json!({"maxRunMinutes": 0}), &["maxRunMinutes"]),
        (json!({"maxRunMinutes": "soon"}), &["maxRunMinutes", "soon"]),
        (json!({"maxParallel": 0}), &["maxParallel"]),
        (json!({"maxParallel": "many"}), &["maxParallel", "many"]),
        (
            json!({"gpu": {"maxTempC": "hot"}}),
            &["gpu.maxTempC", "hot"],
        ),
        (
            json!({"gpu": {"resumeTempC": 90, "maxTempC": 80}}),
            &["gpu.resumeTempC"],
        ),
        (json!({"gpu": {"probe": "cuda"}}), &["gpu.probe", "cuda"]),
        (
            json!({"gpuMemoryLimit": "180%"}),
            &["gpuMemoryLimit", "180%"],
        ),
        (json!({"stopSignal": "SIGNOPE"}), &["stopSignal", "SIGNOPE"]),
        (json!({"gracePeriod": "-3s"}), &["gracePeriod"]),
        (
            json!({"executor": "kubernetes"}),
            &["executor", "kubernetes"],
        ),
        (json!([1, 2]), &["backprop.config.json"]),
    ];
    for (config, needles) in &configs {
        std::fs::write(
            env.work.path().join("backprop.config.json"),
            config.to_string(),
        )
        .unwrap();
        let out = env.run(&["run", &prog, "--", "0"]);
        let first = stderr_of(&out).lines().next().unwrap_or("").to_string();
        assert_eq!(out.status.code(), Some(2), "{config}: {first}");
        for needle in *needles {
            assert!(
                first.contains(needle),
                "{config}: {needle:?} not in {first:?}"
            );
        }
    }
    std::fs::write(
        env.work.path().join("backprop.config.json"),
        "{\"maxParallel\": 2,",
    )
    .unwrap();
    let out = env.run(&["run", &prog]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("line"), "{}", stderr_of(&out));
    std::fs::remove_file(env.work.path().join("backprop.config.json")).unwrap();

    let sweeps: Vec<(Value, &[&str])> = vec![
        (
            json!({"script": prog, "grid": {"lr": []}}),
            &["grid.lr", "empty"],
        ),
        (
            json!({"script": prog, "grid": {"lr": [1]}, "random": {"n": 2, "params": {}}}),
            &["grid", "random"],
        ),
        (json!({"script": prog, "args": ["{lr}"]}), &["{lr}"]),
        (
            json!({"script": prog, "args": ["{lr"], "grid": {"lr": [1]}}),
            &["args[0]"],
        ),
        (
            json!({"script": prog, "args": ["x{args}"], "grid": {"lr": [1]}}),
            &["{args}"],
        ),
        (
            json!({"script": prog, "grid": {"a": (0..101).collect::<Vec<_>>(), "b": (0..101).collect::<Vec<_>>()}}),
            &["10201", "10000"],
        ),
        (
            json!({"script": prog, "maxTotalMinutes": -5}),
            &["maxTotalMinutes"],
        ),
        (
            json!({"script": prog, "runs": [{"name": "a", "maxRunMinuts": 1}]}),
            &["runs[0]", "maxRunMinuts"],
        ),
        (json!({"scrpt": prog}), &["scrpt"]),
        (json!({"runs": [{"name": "a"}]}), &["script"]),
        (
            json!({"script": prog, "random": {"n": 0, "params": {"lr": {"uniform": [0, 1]}}}}),
            &["random.n"],
        ),
        (
            json!({"script": prog, "random": {"n": 2, "params": {"lr": {"logUniform": [0, 1]}}}}),
            &["logUniform"],
        ),
        (
            json!({"script": prog, "runs": [{"name": "a"}, {"name": "a"}]}),
            &["a"],
        ),
    ];
    let path = env.work.path().join("sweep.json");
    for (sweep, needles) in &sweeps {
        std::fs::write(&path, sweep.to_string()).unwrap();
        let out = env.run(&["queue", path.to_str().unwrap(), "--dry-run"]);
        let first = stderr_of(&out).lines().next().unwrap_or("").to_string();
        assert_eq!(out.status.code(), Some(2), "{sweep}: {first}");
        assert!(first.contains("sweep.json"), "{first}");
        for needle in *needles {
            assert!(
                first.contains(needle),
                "{sweep}: {needle:?} not in {first:?}"
            );
        }
    }
    assert!(configs.len() + sweeps.len() >= 20);
    assert!(env.records().is_empty(), "nothing was recorded");
}

/// A store with one finished run, and its exact bytes.
fn store_with_a_run(env: &Env) -> Vec<u8> {
    let out = env.run(&[
        "run",
        &script("exit_code.py"),
        "-q",
        "--run-id",
        "keep",
        "--",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    std::fs::read(env.home_path().join("backprop.db")).unwrap()
}

fn moved_aside(env: &Env) -> Vec<Vec<u8>> {
    std::fs::read_dir(env.home_path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.to_string_lossy();
            name.contains(".damaged-") && !name.ends_with("-wal") && !name.ends_with("-shm")
        })
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

#[test]
fn a_damaged_store_is_moved_aside_byte_for_byte_and_refilled_from_the_export() {
    let db_path = |env: &Env| env.home_path().join("backprop.db");
    for damage in ["garbage", "truncated", "zeroed header", "emptied"] {
        let env = Env::new();
        store_with_a_run(&env);
        let good = std::fs::read(db_path(&env)).unwrap();
        let bytes: Vec<u8> = match damage {
            "garbage" => b"\x00\x01\x02binary, not a database".to_vec(),
            "truncated" => good[..100].to_vec(),
            "zeroed header" => {
                let mut b = good.clone();
                b[..16].fill(0);
                b
            }
            _ => Vec::new(),
        };
        std::fs::write(db_path(&env), &bytes).unwrap();
        let out = env.run(&["list"]);
        assert_eq!(out.status.code(), Some(0), "{damage}: {}", stderr_of(&out));
        if bytes.is_empty() {
            assert!(
                moved_aside(&env).is_empty(),
                "{damage}: an empty file is an empty store"
            );
        } else {
            assert!(
                stderr_of(&out).contains("moved it aside unchanged"),
                "{damage}: {}",
                stderr_of(&out)
            );
            assert_eq!(moved_aside(&env), vec![bytes.clone()], "{damage}");
        }
        // The run recorded before comes back from the export of the store.
        assert!(
            stdout_of(&out).contains("keep"),
            "{damage}: {}",
            stdout_of(&out)
        );
        let out = env.run(&["run", &script("exit_code.py"), "-q", "--", "0"]);
        assert_eq!(out.status.code(), Some(0), "{damage}: {}", stderr_of(&out));
        assert_eq!(env.records().len(), 2, "{damage}");
    }
}

#[test]
fn path_traversal_in_a_run_id_is_refused_everywhere() {
    let env = Env::new();
    let before = store_with_a_run(&env);
    for id in ["../x", "..", "a/b", "/etc", ".hidden", "x\ny"] {
        for args in [
            vec!["status", id],
            vec!["logs", id],
            vec!["resume", id],
            vec!["stop", id],
        ] {
            let out = env.run(&args);
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            assert!(stderr_of(&out).contains("invalid run id"), "{args:?}");
        }
        let out = env.run(&["run", &script("exit_code.py"), "--run-id", id]);
        assert_eq!(out.status.code(), Some(2));
    }
    assert_eq!(
        std::fs::read(env.home_path().join("backprop.db")).unwrap(),
        before
    );
}

#[test]
fn a_read_only_or_full_home_fails_cleanly_and_keeps_the_store() {
    let env = Env::new();
    let Some(fs) = Tmpfs::mount(&env.home_path(), "1m") else {
        return;
    };
    let before = store_with_a_run(&env);

    // Read-only: reading works, writing is a clear error, nothing changes.
    fs.remount("ro");
    let out = env.run(&["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains("keep"));
    let out = env.run(&["run", &script("exit_code.py"), "--", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("cannot write to the backprop home"),
        "{}",
        stderr_of(&out)
    );
    fs.remount("rw");
    let kept = env.records();

    // Full: fill the disk, then try to record a new run.
    let filler = env.home_path().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 2 << 20]);
    let out = env.run(&["run", &script("exit_code.py"), "--", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("No space left") || stderr_of(&out).contains("disk is full"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(env.records(), kept, "the store is untouched");
    let _ = before;
    let _ = std::fs::remove_file(&filler);
    no_temp_files(&env);
    let out = env.run(&["run", &script("exit_code.py"), "-q", "--", "0"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "usable again once there is space: {}",
        stderr_of(&out)
    );
}
