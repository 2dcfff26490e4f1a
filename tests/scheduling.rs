//! Scheduling under contention, as a reliability tester tries it: many backprop processes
//! started at the same instant (a barrier file), a fake `nvidia-smi` changed mid-run.

mod common;
use common::fake_gpu::{Barrier, GpuEnv, gpu, sized_gpu};
use common::*;
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ten_gb_gpus(n: usize) -> Value {
    let gpus: Vec<Value> = (0..n)
        .map(|_| sized_gpu(10_240, 10_240, json!(40)))
        .collect();
    json!({"mode": "ok", "gpus": gpus})
}

fn env_dump(g: &GpuEnv, id: &str, extra: &[&str], sleep: &str) -> Command {
    let mut cmd = g.cmd();
    cmd.args(["run", &script("env_dump.py"), "-q", "--run-id", id])
        .args(extra)
        .args(["--", "--sleep", sleep]);
    cmd
}

#[test]
fn two_six_gb_runs_started_together_never_share_a_ten_gb_gpu() {
    let g = GpuEnv::new(ten_gb_gpus(1));
    let barrier = Barrier::new(g.env.work.path());
    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|id| {
            barrier.spawn(&env_dump(
                &g,
                id,
                &["-g", "6", "--gpus", "1", "--no-wait"],
                "4",
            ))
        })
        .collect();
    barrier.release();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let codes: Vec<Option<i32>> = outs.iter().map(|o| o.status.code()).collect();
    assert!(
        codes.contains(&Some(0)) && codes.contains(&Some(75)),
        "one starts, the other is refused: {codes:?} {:?}",
        outs.iter().map(stderr_of).collect::<Vec<_>>()
    );
    let refused = outs.iter().find(|o| o.status.code() == Some(75)).unwrap();
    let why = stderr_of(refused);
    assert!(
        why.contains("GPU 0: 4096 MB free for new runs, needs 6144 MB"),
        "the refusal names the GPU and the numbers: {why}"
    );
}

/// Which runs held each GPU, and when, from the records' attempts.
fn gpu_intervals(env: &Env) -> Vec<(u64, u64, u64, String)> {
    let mut spans = Vec::new();
    for (id, rec) in env.records() {
        for attempt in rec["attempts"].as_array().unwrap() {
            for gpu in attempt["gpus"].as_array().unwrap() {
                spans.push((
                    gpu.as_u64().unwrap(),
                    attempt["startTime"].as_u64().unwrap(),
                    attempt["endTime"].as_u64().unwrap(),
                    id.clone(),
                ));
            }
        }
    }
    spans
}

#[test]
fn ten_six_gb_runs_started_together_on_four_ten_gb_gpus_take_one_gpu_each_at_a_time() {
    let g = GpuEnv::new(ten_gb_gpus(4));
    let barrier = Barrier::new(g.env.work.path());
    let children: Vec<_> = (0..10)
        .map(|i| {
            barrier.spawn(&env_dump(
                &g,
                &format!("r{i}"),
                &["-g", "6", "-p", "20"],
                "1",
            ))
        })
        .collect();
    barrier.release();
    expect_all_succeed(children);
    let spans = gpu_intervals(&g.env);
    assert_eq!(spans.len(), 10, "every run ran once on one GPU: {spans:?}");
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            let overlap = a.0 == b.0 && a.1 < b.2 && b.1 < a.2;
            assert!(
                !overlap,
                "{} and {} shared GPU {} at once: {spans:?}",
                a.3, b.3, a.0
            );
        }
    }
}

#[test]
fn simultaneous_no_wait_runs_that_fit_all_start() {
    for round in 0..3 {
        let env = Env::new();
        let barrier = Barrier::new(env.work.path());
        let children: Vec<_> = (0..5)
            .map(|i| {
                let mut cmd = env.cmd();
                cmd.args(["run", "--gpus", "0", "-p", "5", "--no-wait", "-q"])
                    .args(["--run-id", &format!("n{i}"), "--", "sleep", "2"]);
                barrier.spawn(&cmd)
            })
            .collect();
        barrier.release();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "round {round}: {}",
                stderr_of(&out)
            );
        }
    }
}

#[test]
fn a_cpu_run_is_not_held_behind_a_gpu_run_waiting_for_a_cool_gpu() {
    let g = GpuEnv::new(json!({"mode": "ok", "gpus": [gpu(30_000, json!(92))]}));
    let mut waiting = env_dump(&g, "hot", &["-p", "2"], "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(20), || {
        g.env
            .records()
            .get("hot")
            .is_some_and(|r| r["reason"].as_str().is_some_and(|why| why.contains("92°C")))
    }));
    let started = Instant::now();
    let out = g.run(&[
        "run", "--gpus", "0", "-p", "2", "-q", "--run-id", "cpu", "--", "true",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let out = g.run(&[
        "run",
        "--gpus",
        "0",
        "-p",
        "2",
        "-q",
        "--no-wait",
        "--run-id",
        "cpu2",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(g.env.record("hot")["status"], "queued");
    g.set(json!({"mode": "ok", "gpus": [gpu(30_000, json!(50))]}));
    assert!(waiting.wait().unwrap().success());
}

#[test]
fn requests_no_state_of_the_machine_could_satisfy_are_refused_at_once() {
    let gpus: Vec<Value> = (0..8).map(|_| gpu(30_000, json!(40))).collect();
    let g = GpuEnv::new(json!({"mode": "ok", "gpus": gpus}));
    let started = Instant::now();
    let out = g.run(&["run", "--gpus", "9", "-q", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("asks for 9 GPUs but this machine has 8"),
        "{}",
        stderr_of(&out)
    );
    let out = g.run(&["run", "-g", "50", "-q", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("largest GPU here has 40960 MB"),
        "{}",
        stderr_of(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let out = g
        .cmd()
        .env("CUDA_VISIBLE_DEVICES", "2,5")
        .args(["run", "--gpus", "3", "-q", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("CUDA_VISIBLE_DEVICES allows 2 of this machine's 8 GPUs (2, 5)"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn cpu_runs_see_no_gpu_and_do_not_wait_for_a_failing_or_hanging_probe() {
    let g = GpuEnv::new(json!({"mode": "fail", "exitCode": 9}));
    let out = g.run(&[
        "run",
        &script("env_dump.py"),
        "--gpus",
        "0",
        "-q",
        "--run-id",
        "cpu",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(g.script_env("cpu")["CUDA_VISIBLE_DEVICES"], "-1");

    g.set(json!({"mode": "hang", "hangSeconds": 60, "gpus": [gpu(30_000, json!(40))]}));
    let started = Instant::now();
    let out = g
        .cmd()
        .env("BACKPROP_GPU_PROBE_TIMEOUT", "8s")
        .args([
            "run", "--gpus", "0", "-q", "--run-id", "cpu-hang", "--", "true",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "a CPU run waited {:?} for a hanging GPU probe",
        started.elapsed()
    );
}

#[test]
fn a_reservation_is_not_counted_twice_when_the_runs_own_use_cannot_be_seen() {
    // 24 GB GPU. A holds 6 GB; once it has allocated it, its process is not visible here
    // (another PID namespace), so the driver's figure already includes it.
    let mut fresh = sized_gpu(24_576, 24_576, json!(40));
    fresh["uuid"] = json!("GPU-0");
    let g = GpuEnv::new(json!({"mode": "ok", "gpus": [fresh]}));
    let mut a = env_dump(&g, "a", &["-g", "6"], "8")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(20), || {
        g.env
            .records()
            .get("a")
            .is_some_and(|r| r["status"] == "running")
    }));
    let mut allocated = sized_gpu(24_576, 24_576 - 6_144, json!(40));
    allocated["uuid"] = json!("GPU-0");
    g.set(json!({"mode": "ok", "gpus": [allocated],
                 "apps": [{"pid": 4_000_000, "gpuUuid": "GPU-0", "usedMb": 6_144}]}));
    let out = g.run(&[
        "run",
        &script("env_dump.py"),
        "-q",
        "-g",
        "16",
        "--no-wait",
        "--run-id",
        "b",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    a.kill().unwrap();
    let _ = a.wait();
}

#[test]
fn memory_taken_by_another_program_is_an_event_on_the_run() {
    let mut roomy = gpu(30_000, json!(40));
    roomy["uuid"] = json!("GPU-0");
    let g = GpuEnv::new(json!({"mode": "ok", "gpus": [roomy]}));
    let mut a = env_dump(&g, "a", &["-g", "8"], "6")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(20), || {
        g.env
            .records()
            .get("a")
            .is_some_and(|r| r["status"] == "running")
    }));
    // Another program (visible here: this test process) fills the GPU.
    let mut crowded = gpu(1_000, json!(40));
    crowded["uuid"] = json!("GPU-0");
    g.set(json!({"mode": "ok", "gpus": [crowded],
                 "apps": [{"pid": std::process::id(), "gpuUuid": "GPU-0", "usedMb": 29_000}]}));
    let noted = wait_for(Duration::from_secs(20), || {
        g.env.records().get("a").is_some_and(|r| {
            r["attempts"][0]["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["kind"] == "gpu_memory_taken"))
        })
    });
    assert!(noted, "{}", g.env.record("a"));
    assert!(a.wait().unwrap().success());
}

#[test]
fn a_stopped_supervisor_ends_an_expired_timebox_as_soon_as_it_continues() {
    let env = Env::new();
    let mut child = env
        .cmd()
        .args(["run", "-q", "-m", "10s", "--gpus", "0", "--run-id", "s"])
        .args([
            "--",
            "python3",
            "-c",
            "import time\nwhile True: time.sleep(0.05)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(20), || {
        env.records()
            .get("s")
            .is_some_and(|r| r["status"] == "running")
    }));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    // Stopped past its whole timebox: a clock that stood still while stopped would give
    // the run most of its 10 s again after SIGCONT.
    std::thread::sleep(Duration::from_secs(12));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let continued = Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(124));
    // The graceful stop and the final writes take a moment on a loaded machine; far less
    // than the ~8 s a stalled clock would leave.
    assert!(
        continued.elapsed() < Duration::from_secs(6),
        "the expired timebox fired {:?} after continuing",
        continued.elapsed()
    );
}

#[test]
fn a_waiting_run_starts_when_another_process_frees_its_slot_not_at_the_next_poll() {
    let env = Env::new();
    let slow_poll = |cmd: &mut Command| {
        cmd.env("BACKPROP_POLL_INTERVAL", "60");
    };
    let mut first = env.cmd();
    slow_poll(&mut first);
    let mut first = first
        .args([
            "run", "--gpus", "0", "-p", "1", "-q", "--run-id", "first", "--", "sleep", "2",
        ])
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(20), || {
        env.records()
            .get("first")
            .is_some_and(|r| r["status"] == "running")
    }));
    let mut second = env.cmd();
    slow_poll(&mut second);
    let second = second
        .args([
            "run", "--gpus", "0", "-p", "1", "-q", "--run-id", "second", "--", "true",
        ])
        .spawn()
        .unwrap();
    assert!(first.wait().unwrap().success());
    expect_all_succeed(vec![second]);
    let (a, b) = (env.record("first"), env.record("second"));
    let freed = a["endTime"].as_u64().unwrap();
    let started = b["startTime"].as_u64().unwrap();
    assert!(
        started.saturating_sub(freed) < 2_000,
        "started {} ms after the slot freed (poll interval 60 s)",
        started.saturating_sub(freed)
    );
}

#[test]
fn stop_all_speaks_only_of_active_runs() {
    let env = Env::new();
    for i in 0..3 {
        let out = env.run(&[
            "run",
            "--gpus",
            "0",
            "-q",
            "--run-id",
            &format!("done{i}"),
            "--",
            "true",
        ]);
        assert_eq!(out.status.code(), Some(0));
    }
    let out = env.run(&["stop", "--all"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stderr_of(&out) + &stdout_of(&out);
    assert!(
        !text.contains("done0") && text.contains("no active runs"),
        "{text}"
    );
}

#[test]
fn a_run_on_a_mig_instance_gets_the_instances_uuid_and_its_memory() {
    let g = GpuEnv::new(json!({"mode": "ok", "gpus": [{
        "name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-aaaa", "totalMb": 40960, "usedMb": 0,
        "tempC": 40, "utilPct": 0, "migMode": "Enabled",
        "mig": [{"uuid": "MIG-1111", "profile": "3g.20gb", "totalMb": 19968, "usedMb": 11, "freeMb": 19957},
                {"uuid": "MIG-2222", "profile": "3g.20gb", "totalMb": 19968, "usedMb": 11, "freeMb": 19957}]}]}));
    let a = env_dump(&g, "a", &["-g", "15"], "3")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = g.run(&[
        "run",
        &script("env_dump.py"),
        "-q",
        "-g",
        "15",
        "--run-id",
        "b",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    expect_all_succeed(vec![a]);
    let mut devices = vec![
        g.script_env("a")["CUDA_VISIBLE_DEVICES"].clone(),
        g.script_env("b")["CUDA_VISIBLE_DEVICES"].clone(),
    ];
    devices.sort_by_key(|d| d.to_string());
    assert_eq!(devices, [json!("MIG-1111"), json!("MIG-2222")]);
    // The memory hint is a share of the instance, not of the whole GPU.
    let fraction: f64 = g.script_env("a")["BACKPROP_GPU_MEMORY_FRACTION"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(fraction > 0.7, "{fraction}");
}

#[test]
fn inherited_uuids_stay_uuids_and_unknown_ones_pass_through() {
    let mut a = gpu(30_000, json!(40));
    a["uuid"] = json!("GPU-aaaa-1111");
    let mut b = gpu(20_000, json!(40));
    b["uuid"] = json!("GPU-bbbb-2222");
    let g = GpuEnv::new(json!({"mode": "ok", "gpus": [a, b]}));
    let out = g
        .cmd()
        .env("CUDA_VISIBLE_DEVICES", "GPU-bbbb-2222")
        .args(["run", &script("env_dump.py"), "-q", "--run-id", "uuid"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(
        g.script_env("uuid")["CUDA_VISIBLE_DEVICES"],
        "GPU-bbbb-2222"
    );
    let out = g
        .cmd()
        .env("CUDA_VISIBLE_DEVICES", "MIG-not-probed")
        .args(["run", &script("env_dump.py"), "-q", "--run-id", "unknown"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(
        g.script_env("unknown")["CUDA_VISIBLE_DEVICES"],
        "MIG-not-probed"
    );
}

#[test]
fn an_exclusive_gpu_takes_one_run_and_a_prohibited_one_none() {
    let mut exclusive = gpu(30_000, json!(40));
    exclusive["computeMode"] = json!("Exclusive_Process");
    let mut prohibited = gpu(30_000, json!(40));
    prohibited["computeMode"] = json!("Prohibited");
    let g = GpuEnv::new(json!({"mode": "ok", "gpus": [exclusive, prohibited]}));
    let mut first = env_dump(&g, "first", &[], "4")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(g.script_env("first")["CUDA_VISIBLE_DEVICES"], "0");
    let out = g.run(&["run", "-q", "--no-wait", "--run-id", "second", "--", "true"]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr_of(&out));
    let why = stderr_of(&out);
    assert!(
        why.contains("GPU 0: exclusive-process mode and already in use"),
        "{why}"
    );
    assert!(why.contains("GPU 1: compute mode is prohibited"), "{why}");
    assert!(first.wait().unwrap().success());
}
