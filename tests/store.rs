//! The store under damage, a full disk and a lock holder that stops, with live runs.

mod common;
use common::*;
use serde_json::Value;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn background(env: &Env, args: &[&str]) -> Child {
    env.cmd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn status_of(env: &Env, id: &str) -> String {
    env.records()
        .get(id)
        .and_then(|r| r["status"].as_str().map(String::from))
        .unwrap_or_default()
}

fn db(env: &Env) -> std::path::PathBuf {
    env.home_path().join("backprop.db")
}

#[test]
fn live_runs_survive_a_store_damaged_replaced_or_removed_under_them() {
    // Not here: emptying the database file in place while processes have it open. SQLite's
    // shared-memory file outlives it, and a process can even die of SIGBUS; that run is then
    // `lost` and resumable, but nothing in backprop can promise more (docs/RELIABILITY.md).
    for damage in [
        "export truncated",
        "overwritten",
        "replaced by garbage",
        "removed",
    ] {
        let env = Env::new();
        let progress = script("progress.py");
        let runs: Vec<Child> = ["a", "b"]
            .iter()
            .map(|id| {
                background(
                    &env,
                    &[
                        "run", &progress, "-q", "--gpus", "0", "-p", "3", "--run-id", id, "--",
                        "--steps", "40", "--delay", "0.1",
                    ],
                )
            })
            .collect();
        let sweep = env.work.path().join("sweep.json");
        std::fs::write(
            &sweep,
            serde_json::json!({"script": progress, "args": ["--steps", "15", "--delay", "0.1"],
                               "grid": {"x": [1, 2, 3]}, "maxParallel": 3, "gpusPerRun": 0})
            .to_string(),
        )
        .unwrap();
        let queue = background(&env, &["queue", sweep.to_str().unwrap(), "-q"]);
        assert!(wait_for(Duration::from_secs(30), || {
            status_of(&env, "a") == "running" && status_of(&env, "b") == "running"
        }));
        match damage {
            "export truncated" => std::fs::write(env.experiments_path(), b"").unwrap(),
            "overwritten" => std::fs::write(db(&env), b"this is no longer a database").unwrap(),
            "replaced by garbage" => {
                let garbage = env.home_path().join("garbage");
                std::fs::write(&garbage, b"this is no longer a database").unwrap();
                std::fs::rename(&garbage, db(&env)).unwrap();
            }
            _ => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", db(&env).display()));
                }
            }
        }
        let mut said = String::new();
        for child in runs.into_iter().chain([queue]) {
            let out = child.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{damage}: {}", stderr_of(&out));
            said.push_str(&stderr_of(&out));
        }
        // A file replaced or removed is noticed at once; one changed in place may be healed
        // by SQLite's journal, and then there is nothing to put back.
        if damage == "replaced by garbage" || damage == "removed" {
            assert!(
                said.contains("put back the records"),
                "{damage}: the supervisors say they put their runs back: {said}"
            );
        }

        let records = env.records();
        for id in ["a", "b"] {
            assert_eq!(
                records[id]["status"], "completed",
                "{damage}: {said}\n{}",
                records[id]
            );
            assert_eq!(records[id]["lastStep"], 39, "{damage}");
        }
        let batch: Vec<&Value> = records
            .values()
            .filter(|r| r["batchId"].is_string())
            .collect();
        assert_eq!(
            batch.len(),
            3,
            "{damage}: the queue's runs are all recorded"
        );
        assert!(
            batch.iter().all(|r| r["status"] == "completed"),
            "{damage}: {said}\n{batch:?}"
        );
        let out = env.run(&["status", "a"]);
        assert_eq!(out.status.code(), Some(0), "{damage}: {}", stderr_of(&out));
        // The export is whole again and holds every run.
        let exported = env.exported();
        assert!(exported.len() >= 5, "{damage}: {:?}", exported.keys());
        assert_eq!(exported["a"]["status"], "completed", "{damage}");
    }
}

#[test]
fn a_full_disk_when_a_run_ends_loses_no_outcome_and_no_line() {
    let env = Env::new();
    let Some(_fs) = Tmpfs::mount(&env.home_path(), "16m") else {
        return;
    };
    // A script that writes no files of its own (the disk is full for it too).
    let mut run = env
        .cmd()
        .args([
            "run", "--gpus", "0", "--run-id", "full", "--", "python3", "-c",
        ])
        .arg(
            "import json, time\n\
             for step in range(40):\n\
             \x20   print(json.dumps({'step': step, 'loss': 1 / (1 + step)}), flush=True)\n\
             \x20   time.sleep(0.1)\n",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(20), || status_of(
        &env, "full"
    ) == "running"));
    // Fill the disk while the run is still going: its end cannot be written.
    let filler = env.home_path().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    while std::io::Write::write_all(&mut file, &block).is_ok() {}
    drop(file);
    // The script ends (about 4 s); backprop keeps trying to record it.
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        run.try_wait().unwrap().is_none(),
        "backprop must not exit before the outcome is written"
    );
    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    let out = run.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(15));
    let said = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("retrying every second"), "{said}");
    assert!(
        said.contains("completed") && said.contains("at step 39"),
        "{said}"
    );
    let rec = env.record("full");
    assert_eq!(rec["status"], "completed", "{rec}");
    assert_eq!(rec["lastStep"], 39);
    for name in ["metrics.jsonl", "stdout.log"] {
        let text = std::fs::read_to_string(env.run_dir("full").join(name)).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{name} ends with a whole line"
        );
    }
    let metrics = std::fs::read_to_string(env.run_dir("full").join("metrics.jsonl")).unwrap();
    for line in metrics.lines() {
        // Python's NaN is not JSON: only look at whether each line is whole.
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "a torn line: {line:?}"
        );
    }
}

#[test]
fn a_waiting_process_names_the_holder_of_the_store_even_a_stopped_one() {
    let env = Env::new();
    let out = env.run(&["run", "--gpus", "0", "-q", "--", "true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    // Another program holds the write lock and names itself as backprop's writers do.
    let holder_file = env.home_path().join("store.holder");
    let mut holder = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import os, sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN IMMEDIATE')\n\
             open(sys.argv[2], 'w').write('%d\\nbackprop queue sweep.json\\n' % os.getpid())\n\
             print('held', flush=True)\n\
             time.sleep(4)\n\
             c.execute('ROLLBACK')\n",
        )
        .arg(db(&env))
        .arg(&holder_file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let pid = nix::unistd::Pid::from_raw(holder.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let status = env.run(&["status"]);
    assert!(
        stdout_of(&status).contains(&format!("locked by pid {}", holder.id()))
            && stdout_of(&status).contains("stopped"),
        "{}",
        stdout_of(&status)
    );
    let mut waiter = background(&env, &["run", "--gpus", "0", "-q", "--", "true"]);
    std::thread::sleep(Duration::from_millis(1500));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert!(waiter.wait().unwrap().success());
    let mut said = String::new();
    std::io::Read::read_to_string(waiter.stderr.as_mut().unwrap(), &mut said).unwrap();
    assert!(
        said.contains(&format!(
            "it is held by pid {} (backprop queue sweep.json), which is stopped",
            holder.id()
        )),
        "{said}"
    );
    holder.wait().unwrap();
}
