//! A reader that goes away early (`backprop list | head -1`): commands that print data end
//! quietly (no panic, no message, exit 0 or 141); `run` and `queue` keep their runs going and
//! record them, only their pass-through stops.

mod common;
use common::*;
use serde_json::{Map, Value, json};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often each command is tried: the moment the pipe closes varies.
const TRIES: usize = 3;

/// A pipe holding a single page, so that even a few kilobytes of output outlast the reader.
fn small_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own; O_CLOEXEC keeps the read end out of
    // the child, which must see the reader go away.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: a plain fcntl on a descriptor we own.
    unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    (read, write)
}

/// Runs backprop with `args`, reads the first line of its stdout, closes the pipe, and returns
/// how backprop ended and what it wrote to stderr (waiting at most two minutes).
fn first_line_then_close(env: &Env, args: &[&str]) -> (ExitStatus, String) {
    let (read, write) = small_pipe();
    let mut cmd = env.cmd();
    cmd.args(args)
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start backprop");
    drop(cmd); // our copy of the write end
    let mut stderr = child.stderr.take().unwrap();
    let collect = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut first = String::new();
    let _ = BufReader::with_capacity(64, File::from(read)).read_line(&mut first);
    // The reader is dropped here: backprop's next write meets a closed pipe.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("backprop {args:?} did not end after its stdout closed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, collect.join().unwrap())
}

fn assert_quiet_end(env: &Env, args: &[&str]) {
    for _ in 0..TRIES {
        let (status, stderr) = first_line_then_close(env, args);
        let ok = status.code() == Some(0)
            || status.code() == Some(141)
            || status.signal() == Some(libc::SIGPIPE);
        assert!(ok, "{args:?} ended {status:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}

/// A store of `n` ended runs, each with a few attempts and metrics, written directly.
fn big_store(env: &Env, n: usize) -> Vec<String> {
    std::fs::create_dir_all(env.home_path()).unwrap();
    let mut records = Map::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("run-{i:05}");
        let attempts: Vec<Value> = (1..=3)
            .map(|a| {
                json!({"number": a, "status": "failed", "exitCode": 1, "reason": "exit",
                "startTime": 1_700_000_000_000u64 + a, "endTime": 1_700_000_001_000u64 + a})
            })
            .collect();
        records.insert(
            id.clone(),
            json!({"id": id, "name": format!("sweep-lr-{i}"), "status": "failed",
                "createdTime": 1_700_000_000_000u64 + i as u64, "startTime": 1_700_000_000_000u64,
                "lastStep": i, "lastLoss": 0.5, "attempts": attempts}),
        );
        ids.push(id);
    }
    std::fs::write(
        env.experiments_path(),
        serde_json::to_vec(&Value::Object(records)).unwrap(),
    )
    .unwrap();
    ids
}

#[test]
fn data_commands_end_quietly_when_the_reader_goes_away() {
    let env = Env::new();
    let ids = big_store(&env, 2000);
    assert_quiet_end(&env, &["list"]);
    assert_quiet_end(&env, &["--json", "list"]);
    assert_quiet_end(&env, &["--json", "status", &ids[0]]);
    assert_quiet_end(&env, &["status", &ids[0]]);
    assert_quiet_end(&env, &["status"]);
    for shell in ["bash", "zsh", "fish", "powershell"] {
        assert_quiet_end(&env, &["completions", shell]);
    }

    // logs: a long stdout.log.
    let run_dir = env.run_dir(&ids[0]);
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(run_dir.join("stdout.log"), "a logged line\n".repeat(20_000)).unwrap();
    assert_quiet_end(&env, &["logs", &ids[0]]);

    // plot: many runs overlaid, one legend line each.
    for id in &ids[..300] {
        let dir = env.run_dir(id);
        std::fs::create_dir_all(&dir).unwrap();
        let lines: String = (0..20)
            .map(|s| {
                format!(
                    "{{\"time\":1,\"attempt\":1,\"step\":{s},\"loss\":{}}}\n",
                    1.0 / (s + 1) as f64
                )
            })
            .collect();
        std::fs::write(dir.join("metrics.jsonl"), lines).unwrap();
    }
    let mut plot = vec!["plot"];
    plot.extend(ids[..300].iter().map(String::as_str));
    assert_quiet_end(&env, &plot);

    // config: a config file whose experiments make a long line.
    let experiments: Vec<Value> = (0..300)
        .map(|i| json!({"name": format!("e{i}"), "script": "train.py", "args": ["--lr", i]}))
        .collect();
    std::fs::write(
        env.work.path().join("backprop.config.json"),
        json!({"experiments": experiments}).to_string(),
    )
    .unwrap();
    assert_quiet_end(&env, &["config"]);
    assert_quiet_end(&env, &["--json", "config"]);
}

#[test]
fn a_dry_run_plan_ends_quietly_when_the_reader_goes_away() {
    let env = Env::new();
    let values: Vec<u32> = (0..400).collect();
    let sweep = env.work.path().join("sweep.json");
    std::fs::write(
        &sweep,
        json!({"script": script("exit_code.py"), "args": ["{x}"], "grid": {"x": values}})
            .to_string(),
    )
    .unwrap();
    assert_quiet_end(&env, &["--json", "queue", "sweep.json", "--dry-run"]);
    assert_quiet_end(&env, &["queue", "sweep.json", "--dry-run"]);
}

#[test]
fn a_run_goes_on_and_is_recorded_when_its_stdout_closes() {
    let env = Env::new();
    for attempt in 0..TRIES {
        let id = format!("chatty-{attempt}");
        let (status, stderr) = first_line_then_close(
            &env,
            &[
                "run",
                &script("chatty.py"),
                "-q",
                "--run-id",
                &id,
                "--",
                "30000",
            ],
        );
        assert_eq!(status.code(), Some(0), "{status:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let rec = env.record(&id);
        assert_eq!(rec["status"], "completed", "{rec}");
        assert_eq!(rec["lastStep"], 30000);
        let log = std::fs::read_to_string(env.run_dir(&id).join("stdout.log")).unwrap();
        assert_eq!(log.lines().count(), 30001, "the whole output is logged");
    }
}

#[test]
fn a_batch_goes_on_and_is_recorded_when_its_stdout_closes() {
    let env = Env::new();
    std::fs::write(
        env.work.path().join("sweep.json"),
        json!({"script": script("chatty.py"), "args": ["{n}"], "grid": {"n": [20000, 30000]},
            "maxParallel": 2})
        .to_string(),
    )
    .unwrap();
    let (status, stderr) = first_line_then_close(&env, &["queue", "sweep.json", "-q"]);
    assert_eq!(status.code(), Some(0), "{status:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let records = env.records();
    assert_eq!(records.len(), 2);
    for rec in records.values() {
        assert_eq!(rec["status"], "completed", "{rec}");
    }

    let (status, stderr) = first_line_then_close(&env, &["--json", "queue", "sweep.json", "-q"]);
    assert_eq!(status.code(), Some(0), "{status:?}: {stderr}");
    assert_eq!(env.records().len(), 4);
}
