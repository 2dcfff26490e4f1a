//! The governor and GPU allocation, through a fake `nvidia-smi` on PATH whose numbers the
//! tests change mid-run (no machine here has a GPU; NVML cannot load, so `auto` falls back).

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct GpuEnv {
    env: Env,
    state: PathBuf,
}

fn gpu(free_mb: u64, temp: Value) -> Value {
    json!({"name": "NVIDIA A100-SXM4-40GB", "totalMb": 40960, "usedMb": 40960 - free_mb, "freeMb": free_mb, "tempC": temp, "utilPct": 5})
}

impl GpuEnv {
    fn new(state: Value) -> GpuEnv {
        let env = Env::new();
        let path = env.home.path().join("fake-gpu.json");
        let g = GpuEnv { env, state: path };
        g.set(state);
        g
    }

    /// Rewrites the fake's state atomically (it reads it on every call).
    fn set(&self, state: Value) {
        let temp = self.state.with_extension("tmp");
        std::fs::write(&temp, state.to_string()).unwrap();
        std::fs::rename(&temp, &self.state).unwrap();
    }

    fn cmd(&self) -> Command {
        let fake_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_gpu");
        let path = format!(
            "{}:{}",
            fake_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = self.env.cmd();
        cmd.env("PATH", path)
            .env("FAKE_NVIDIA_SMI_STATE", &self.state);
        cmd
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd().args(args).output().unwrap()
    }

    fn status_json(&self) -> Value {
        let out = self.run(&["status", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        serde_json::from_slice(&out.stdout).expect("status --json parses")
    }

    /// The environment `env_dump.py` saw in the run `id`.
    fn script_env(&self, id: &str) -> Value {
        let path = self.env.run_dir(id).join("env-attempt1.json");
        assert!(
            wait_for(Duration::from_secs(20), || path.exists()),
            "{path:?} never written"
        );
        serde_json::from_slice::<Value>(&std::fs::read(path).unwrap()).unwrap()["env"].clone()
    }
}

fn two_gpus() -> Value {
    json!({"mode": "ok", "gpus": [gpu(10_000, json!(40)), gpu(20_000, json!(40))]})
}

#[test]
fn a_run_lands_on_the_gpu_with_the_most_free_memory() {
    let g = GpuEnv::new(two_gpus());
    let out = g.run(&["run", &script("env_dump.py"), "-q", "--run-id", "one"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(g.script_env("one")["CUDA_VISIBLE_DEVICES"], "1");
    let rec = g.env.record("one");
    assert_eq!(rec["attempts"][0]["gpus"], json!([1]));
    assert!(rec.get("gpuLease").is_none(), "the lease ends with the run");

    let out = g.run(&[
        "run",
        &script("env_dump.py"),
        "-q",
        "--gpus",
        "0",
        "--run-id",
        "cpu",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(g.script_env("cpu")["CUDA_VISIBLE_DEVICES"], "-1");
}

#[test]
fn two_runs_started_together_with_big_reservations_take_different_gpus() {
    // 12 GB fits both GPUs but not twice on one.
    let g = GpuEnv::new(
        json!({"mode": "ok", "gpus": [gpu(20_000, json!(40)), gpu(24_000, json!(40))]}),
    );
    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|id| {
            g.cmd()
                .args([
                    "run",
                    &script("env_dump.py"),
                    "-q",
                    "-g",
                    "12",
                    "--run-id",
                    id,
                    "--",
                    "--sleep",
                    "3",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    expect_all_succeed(children);
    let (a, b) = (g.script_env("a"), g.script_env("b"));
    let mut devices = [
        a["CUDA_VISIBLE_DEVICES"].clone(),
        b["CUDA_VISIBLE_DEVICES"].clone(),
    ];
    devices.sort_by_key(|d| d.to_string());
    assert_eq!(devices, [json!("0"), json!("1")]);
    assert_eq!(a["BACKPROP_GPU_MEMORY_LIMIT_MB"], "12288");
    assert_eq!(a["TF_FORCE_GPU_ALLOW_GROWTH"], "true");
    assert!(
        a["BACKPROP_GPU_MEMORY_FRACTION"]
            .as_str()
            .unwrap()
            .starts_with("0.3")
    );
}

#[test]
fn a_hot_gpu_pauses_the_run_and_the_paused_time_does_not_count() {
    let g = GpuEnv::new(json!({"mode": "ok", "gpus": [gpu(30_000, json!(40))]}));
    let started = Instant::now();
    let backprop = g
        .cmd()
        .args([
            "run",
            &script("sleeper.py"),
            "-q",
            "-m",
            "8s",
            "--gpu-max-temp",
            "85",
            "--run-id",
            "hot",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = || g.env.records().get("hot").map(|r| r["status"].clone());
    assert!(wait_for(Duration::from_secs(20), || status()
        == Some(json!("running"))));
    std::thread::sleep(Duration::from_secs(1));
    g.set(json!({"mode": "ok", "gpus": [gpu(30_000, json!(90))]}));
    // Poll interval 0.5 s: paused within two polls (plus the store's write).
    assert!(
        wait_for(Duration::from_secs(5), || status() == Some(json!("paused"))),
        "never paused"
    );
    let log = g.env.run_dir("hot").join("stdout.log");
    let size = || std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let before = size();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(size(), before, "the script kept running while paused");
    let out = g.run(&["status", "hot"]);
    assert!(stdout_of(&out).contains("paused"), "{}", stdout_of(&out));
    g.set(json!({"mode": "ok", "gpus": [gpu(30_000, json!(70))]}));
    assert!(
        wait_for(Duration::from_secs(5), || status()
            == Some(json!("running"))),
        "never resumed"
    );
    let out = backprop.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(124), "{}", stderr_of(&out));
    let wall = started.elapsed();
    let rec = g.env.record("hot");
    let attempt = &rec["attempts"][0];
    let kinds: Vec<_> = attempt["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].clone())
        .collect();
    assert_eq!(kinds, [json!("pause"), json!("resume")]);
    // The timebox was extended by the pause: 8 s of active time took longer than that.
    let active = attempt["activeMs"].as_u64().unwrap();
    assert!((7_500..=9_500).contains(&active), "active {active} ms");
    assert!(
        wall > Duration::from_millis(active + 2_000),
        "wall {wall:?}, active {active} ms"
    );
    assert!(g.env.run_dir("hot").join("resources.jsonl").exists());
}

#[test]
fn too_little_free_vram_waits_with_the_reason_and_starts_when_it_frees_up() {
    let g = GpuEnv::new(json!({"mode": "ok", "gpus": [gpu(1_000, json!(40))]}));
    let out = g.run(&[
        "run",
        &script("env_dump.py"),
        "-q",
        "--no-wait",
        "--run-id",
        "refused",
    ]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr_of(&out));
    assert_eq!(g.env.record("refused")["status"], "rejected");
    assert!(
        stderr_of(&out).contains("gpu.minFreeVramMB"),
        "{}",
        stderr_of(&out)
    );

    let backprop = g
        .cmd()
        .args([
            "run",
            &script("env_dump.py"),
            "-q",
            "--gpu-min-vram",
            "2500",
            "--run-id",
            "waiter",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reason = || {
        g.env
            .records()
            .get("waiter")
            .and_then(|r| r["reason"].as_str().map(String::from))
    };
    assert!(wait_for(Duration::from_secs(20), || reason()
        .is_some_and(|r| r.contains("1000 MB free"))));
    let status = g.run(&["status"]);
    assert!(
        stdout_of(&status).contains("waiter"),
        "{}",
        stdout_of(&status)
    );
    assert!(
        stdout_of(&status)
            .contains("needs 2500 MB (gpuMemoryLimit -g / gpu.minFreeVramMB --gpu-min-vram)"),
        "{}",
        stdout_of(&status)
    );
    assert_eq!(g.env.record("waiter")["status"], "queued");
    g.set(json!({"mode": "ok", "gpus": [gpu(20_000, json!(40))]}));
    let out = backprop.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(g.env.record("waiter")["status"], "completed");
}

#[test]
fn an_unreadable_temperature_is_shown_and_gates_as_configured() {
    let g = GpuEnv::new(json!({"mode": "ok", "gpus": [gpu(30_000, json!("[N/A]"))]}));
    let status = g.status_json();
    assert_eq!(status["gpuProbe"]["kind"], "nvidia-smi");
    assert_eq!(status["gpus"][0]["temperatureC"], Value::Null);
    let out = g.run(&["run", &script("env_dump.py"), "-q", "--no-wait"]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("temperature unreadable"),
        "{}",
        stderr_of(&out)
    );
    let out = g
        .cmd()
        .env("BACKPROP_GPU_REQUIRE_READINGS", "false")
        .args(["run", &script("env_dump.py"), "-q", "--no-wait"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}

#[test]
fn a_hanging_failing_or_garbled_nvidia_smi_never_crashes_and_never_passes_silently() {
    for (mode, needle) in [
        ("hang", "did not answer"),
        ("garbage", "nvidia-smi"),
        ("fail", "NVIDIA driver"),
    ] {
        let g = GpuEnv::new(
            json!({"mode": mode, "hangSeconds": 30, "exitCode": 9, "gpus": [gpu(30_000, json!(40))]}),
        );
        let started = Instant::now();
        let out = g
            .cmd()
            .env("BACKPROP_GPU_PROBE_TIMEOUT", "1")
            .args(["status"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", stderr_of(&out));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{mode}: status took {:?}",
            started.elapsed()
        );
        let text = stdout_of(&out);
        assert!(text.contains(needle), "{mode}: {text}");
        let out = g
            .cmd()
            .env("BACKPROP_GPU_PROBE_TIMEOUT", "1")
            .args(["run", &script("env_dump.py"), "-q", "--no-wait"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(75), "{mode}: {}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains("GPU probe failed"),
            "{mode}: {}",
            stderr_of(&out)
        );
        // A CPU-only run does not need the GPUs.
        let out = g
            .cmd()
            .env("BACKPROP_GPU_PROBE_TIMEOUT", "1")
            .args(["run", &script("env_dump.py"), "-q", "--gpus", "0"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", stderr_of(&out));
    }
}

#[test]
fn without_nvidia_smi_auto_runs_on_the_cpu_quietly_and_an_explicit_probe_says_why() {
    let env = Env::new();
    let out = env.run(&["run", &script("env_dump.py"), "--run-id", "cpu"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        !err.contains("warning") && !err.contains("GPU") && !err.contains("NVML"),
        "{err}"
    );
    let dump: Value = serde_json::from_slice(
        &std::fs::read(env.run_dir("cpu").join("env-attempt1.json")).unwrap(),
    )
    .unwrap();
    // A CPU run sees no GPU, whatever the machine may have.
    assert_eq!(dump["env"]["CUDA_VISIBLE_DEVICES"], "-1");

    let status: Value = serde_json::from_slice(&env.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["gpuProbe"]["kind"], "none");
    assert!(
        status["gpuProbe"]["note"]
            .as_str()
            .unwrap_or("")
            .contains("NVML"),
        "{status}"
    );

    let out = env.run(&["--json", "status"]);
    assert_eq!(out.status.code(), Some(0));
    let out = env.run(&[
        "run",
        &script("env_dump.py"),
        "--gpu-probe",
        "nvidia-smi",
        "--no-wait",
    ]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("nvidia-smi"),
        "{}",
        stderr_of(&out)
    );
    let out = env.run(&[
        "run",
        &script("env_dump.py"),
        "--gpu-probe",
        "nvml",
        "--no-wait",
    ]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("NVML"), "{}", stderr_of(&out));
}

#[test]
fn a_run_over_its_gpu_memory_limit_is_warned_and_stopped_when_configured() {
    let uuid = "GPU-00000000-0000-0000-0000-00000000beef";
    let mut device = gpu(30_000, json!(40));
    device["uuid"] = json!(uuid);
    let g = GpuEnv::new(json!({"mode": "ok", "gpus": [device.clone()]}));
    let backprop = g
        .cmd()
        .env("BACKPROP_GPU_MEMORY_LIMIT_ACTION", "stop")
        .args([
            "run",
            &script("sleeper.py"),
            "-q",
            "-g",
            "8",
            "--run-id",
            "greedy",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid_file = g.env.run_dir("greedy").join("pid");
    assert!(
        wait_for(Duration::from_secs(20), || pid_file.exists()),
        "never started"
    );
    let pid: u64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The script's process now uses 20 GB on its GPU, over the 8 GB limit.
    g.set(json!({"mode": "ok", "gpus": [device], "apps": [{"pid": pid, "gpuUuid": uuid, "usedMb": 20_000}]}));
    let out = backprop.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("over its limit"),
        "{}",
        stderr_of(&out)
    );
    let rec = g.env.record("greedy");
    assert_eq!(rec["status"], "stopped");
    assert_eq!(rec["attempts"][0]["reason"], "gpu_memory_limit");
    let kinds: Vec<_> = rec["attempts"][0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].clone())
        .collect();
    assert_eq!(kinds, [json!("gpu_memory_limit")]);
}
