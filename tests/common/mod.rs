//! Helpers for the end-to-end tests: a private home and work directory per test, the real
//! binary, and bounded waits (never fixed long sleeps).
#![allow(dead_code)]

use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub mod fake_gpu;

pub struct Env {
    pub home: TempDir,
    pub work: TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            home: tempfile::tempdir().unwrap(),
            work: tempfile::tempdir().unwrap(),
        }
    }

    pub fn home_path(&self) -> PathBuf {
        self.home.path().join("bp")
    }

    /// The real binary, pointed at this test's home, in this test's work directory. The
    /// CPU and RAM gates are opened wide: a loaded CI machine must not make runs wait.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_backprop"));
        cmd.current_dir(self.work.path())
            .env("BACKPROP_HOME", self.home_path())
            .env("BACKPROP_MIN_FREE_RAM_GB", "0")
            .env("BACKPROP_MAX_CPU_LOAD", "1000")
            .env("BACKPROP_POLL_INTERVAL", "0.5");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd().args(args).output().expect("run backprop")
    }

    pub fn experiments_path(&self) -> PathBuf {
        self.home_path().join("experiments.json")
    }

    /// Every record in the store, by id (read from the database as it is now).
    pub fn records(&self) -> Map<String, Value> {
        let mut records = Map::new();
        if !self.home_path().join("backprop.db").exists() {
            return records;
        }
        let db = backprop::store::Store::open_for_reading(&self.home_path())
            .connect()
            .expect("the store opens");
        backprop::store::query::each_record(db.conn(), &Default::default(), |id, raw| {
            records.insert(
                id.to_string(),
                serde_json::from_str(raw).expect("a record parses"),
            );
            Ok(())
        })
        .expect("the store reads");
        records
    }

    /// experiments.json, the export, parsed (it must always parse).
    pub fn exported(&self) -> Map<String, Value> {
        match std::fs::read(self.experiments_path()) {
            Ok(bytes) => serde_json::from_slice(&bytes).expect("experiments.json parses"),
            Err(_) => Map::new(),
        }
    }

    pub fn record(&self, id: &str) -> Value {
        self.records()
            .get(id)
            .cloned()
            .unwrap_or_else(|| panic!("no record {id}"))
    }

    /// The one record of the store.
    pub fn only_record(&self) -> Value {
        let records = self.records();
        assert_eq!(
            records.len(),
            1,
            "expected one record, got {:?}",
            records.keys()
        );
        records.into_iter().next().unwrap().1
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.home_path().join("runs").join(id)
    }
}

pub fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scripts")
        .join(name)
        .display()
        .to_string()
}

pub fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/train.py")
        .display()
        .to_string()
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    condition()
}

/// A live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

pub fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The losses of metrics.jsonl, per attempt.
pub fn losses_by_attempt(metrics: &Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(metrics).unwrap_or_default();
    let mut by_attempt: Vec<Vec<f64>> = Vec::new();
    for line in text.lines() {
        // Python's NaN tokens would not parse; progress lines here are finite.
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let (Some(attempt), Some(loss)) = (v["attempt"].as_u64(), v["loss"].as_f64()) else {
            continue;
        };
        let index = attempt as usize - 1;
        while by_attempt.len() <= index {
            by_attempt.push(Vec::new());
        }
        by_attempt[index].push(loss);
    }
    by_attempt
}

/// Waits for every process and checks that each exited 0.
pub fn expect_all_succeed(children: Vec<std::process::Child>) {
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    }
}

/// A small tmpfs (root only). Where mounting is not allowed: None and a SKIPPED line, or a
/// failure under CI (which runs as root), so a full-disk test never passes checking nothing.
pub struct Tmpfs(pub std::path::PathBuf);
impl Tmpfs {
    pub fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var("CI").is_err(),
                "cannot mount a tmpfs at {} under CI: the full-disk tests need root",
                dir.display()
            );
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); full-disk cases untested");
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }
    pub fn remount(&self, options: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Whether a test can run: true when its prerequisite is here. Outside CI a missing one is
/// a printed skip; under CI (`CI=true`, where `.ci/run` installs everything) it fails the
/// test, so a test never passes while checking nothing.
pub fn prerequisite(available: bool, what: &str, how: &str) -> bool {
    if available {
        return true;
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "{what} is missing under CI: {how}"
    );
    eprintln!("SKIPPED: {what} is missing ({how})");
    false
}

/// The fields of a record the original tool (and its editor extension) reads.
pub const EXTENSION_FIELDS: [&str; 10] = [
    "id",
    "name",
    "scriptPath",
    "status",
    "startTime",
    "endTime",
    "lastStep",
    "lastLoss",
    "checkpoints",
    "lastCheckpoint",
];
