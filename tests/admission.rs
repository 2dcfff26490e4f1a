//! Admission across processes: `maxParallel` holds for every backprop of a home, first come
//! first served, and a dead supervisor never keeps a slot.

mod common;
use common::*;
use serde_json::Value;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

fn active_count(env: &Env) -> usize {
    // A half-written file is impossible (atomic rename), so a read either works or the file
    // does not exist yet.
    env.records()
        .values()
        .filter(|r| r["status"] == "running" || r["status"] == "paused")
        .count()
}

#[test]
fn twelve_processes_with_max_parallel_two_never_run_more_than_two_and_start_first_come_first_served()
 {
    let env = Arc::new(Env::new());
    let done = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (env, done, most) = (env.clone(), done.clone(), most.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                most.fetch_max(active_count(&env), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let children: Vec<_> = (0..12)
        .map(|i| {
            let child = env
                .cmd()
                .args([
                    "run",
                    &script("progress.py"),
                    "-q",
                    "-p",
                    "2",
                    "--run-id",
                    &format!("r{i:02}"),
                ])
                .args(["--", "--steps", "20", "--delay", "0.05"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // Stagger slightly so that arrival order is well defined.
            std::thread::sleep(Duration::from_millis(30));
            child
        })
        .collect();
    expect_all_succeed(children);
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert!(
        most.load(Ordering::Relaxed) <= 2,
        "saw {} running at once",
        most.load(Ordering::Relaxed)
    );
    assert_eq!(most.load(Ordering::Relaxed), 2, "the two slots were used");

    let mut records: Vec<Value> = env.records().into_values().collect();
    assert_eq!(records.len(), 12);
    assert!(
        records.iter().all(|r| r["status"] == "completed"),
        "{records:?}"
    );
    records.sort_by_key(|r| r["queueSeq"].as_u64().unwrap());
    let starts: Vec<u64> = records
        .iter()
        .map(|r| r["startTime"].as_u64().unwrap())
        .collect();
    // First come, first served: no run starts a turn ahead of one that came before it. Two
    // runs that both fit when slots free start together, in whichever order their processes
    // get there (a few ms apart).
    for (i, earlier) in starts.iter().enumerate() {
        for later in &starts[i + 1..] {
            assert!(
                later + 500 >= *earlier,
                "a later run started {} ms before an earlier one: {:?}",
                earlier - later,
                records
                    .iter()
                    .map(|r| (r["id"].clone(), r["startTime"].clone()))
                    .collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn a_waiting_run_shows_why_and_a_killed_supervisor_frees_its_slot_at_once() {
    let env = Env::new();
    let mut holder = env
        .cmd()
        .args([
            "run",
            &script("sleeper.py"),
            "-q",
            "-p",
            "1",
            "--run-id",
            "holder",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(20), || env
        .records()
        .get("holder")
        .is_some_and(|r| r["status"] == "running")));
    let waiter = env
        .cmd()
        .args([
            "run",
            &script("exit_code.py"),
            "-q",
            "-p",
            "1",
            "--run-id",
            "waiter",
            "--",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reason = || {
        env.records()
            .get("waiter")
            .and_then(|r| r["reason"].as_str().map(String::from))
    };
    assert!(wait_for(Duration::from_secs(20), || reason()
        .is_some_and(|r| r.contains("maxParallel 1"))));
    let list = env.run(&["list"]);
    assert!(stdout_of(&list).contains("queued"), "{}", stdout_of(&list));
    let status = env.run(&["status"]);
    assert!(
        stdout_of(&status).contains("waiting for a slot"),
        "{}",
        stdout_of(&status)
    );

    holder.kill().unwrap(); // SIGKILL: the slot must not stay taken
    holder.wait().unwrap();
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(env.record("waiter")["status"], "completed");
    let list = env.run(&["list"]);
    assert_eq!(
        env.record("holder")["status"],
        "lost",
        "{}",
        stdout_of(&list)
    );
}
