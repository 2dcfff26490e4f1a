//! The GPU probe layer through the real binary and the fake `nvidia-smi`: MIG instances,
//! compute modes, per-device failures, old drivers, and a probe that hangs while a run
//! is going (the governor keeps sampling).

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Fake {
    env: Env,
    state: PathBuf,
}

impl Fake {
    fn new(state: Value) -> Fake {
        let env = Env::new();
        let path = env.home.path().join("fake-gpu.json");
        let f = Fake { env, state: path };
        f.set(state);
        f
    }

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

    fn status_json(&self) -> Value {
        let out = self.cmd().args(["status", "--json"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        serde_json::from_slice(&out.stdout).expect("status --json parses")
    }

    fn status_text(&self) -> String {
        let out = self.cmd().arg("status").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        stdout_of(&out)
    }
}

fn mig_machine() -> Value {
    json!({
        "gpus": [
            {"name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-a100", "totalMb": 40960, "usedMb": 4000,
             "tempC": 55, "utilPct": "[N/A]", "migMode": "Enabled", "slowdownTempC": 89,
             "mig": [
                {"uuid": "MIG-11111111-2222-3333-4444-555555555555", "profile": "3g.20gb",
                 "totalMb": 19968, "usedMb": 4000},
                {"uuid": "MIG-66666666-7777-8888-9999-000000000000", "profile": "3g.20gb",
                 "totalMb": 19968, "usedMb": 0}
             ]},
            {"name": "NVIDIA RTX A6000", "uuid": "GPU-a6000", "totalMb": 49140, "usedMb": 0,
             "tempC": 40, "utilPct": 0, "migMode": "[N/A]", "computeMode": "Exclusive_Process"}
        ],
        "apps": []
    })
}

#[test]
fn status_lists_mig_instances_with_the_device_id_cuda_needs() {
    let f = Fake::new(mig_machine());
    let status = f.status_json();
    assert_eq!(status["gpuProbe"]["kind"], "nvidia-smi");
    assert_eq!(status["gpuProbe"]["error"], Value::Null);
    assert!(status["gpuProbe"]["takenMs"].as_u64().unwrap() > 0);
    let gpus = status["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 3, "{status}");
    let mig = &gpus[0];
    assert_eq!(mig["index"], 1000);
    assert_eq!(mig["deviceId"], "MIG-11111111-2222-3333-4444-555555555555");
    assert_eq!(mig["uuid"], mig["deviceId"]);
    assert_eq!(mig["parentIndex"], 0);
    assert_eq!(mig["parentUuid"], "GPU-a100");
    assert_eq!(mig["migIndex"], 0);
    assert_eq!(mig["migMode"], true);
    assert_eq!(mig["memoryFreeMb"], 15968);
    assert_eq!(mig["temperatureC"], 55.0);
    assert_eq!(mig["slowdownTempC"], 89.0);
    assert_eq!(mig["failure"], Value::Null);
    assert_eq!(gpus[1]["migIndex"], 1);
    assert_eq!(gpus[1]["memoryFreeMb"], 19968);
    let plain = &gpus[2];
    assert_eq!(plain["index"], 1);
    assert_eq!(plain["deviceId"], "1");
    assert_eq!(plain["computeMode"], "exclusive_process");
    assert_eq!(plain["parentIndex"], Value::Null);

    let text = f.status_text();
    assert!(text.contains("0:0"), "{text}");
    assert!(text.contains("0:1"), "{text}");
    assert!(text.contains("NVIDIA A100-SXM4-40GB MIG 3g.20gb"), "{text}");
    assert!(
        text.contains("NVIDIA RTX A6000 [exclusive_process]"),
        "{text}"
    );
    assert!(!text.contains("unusable"), "{text}");
}

#[test]
fn a_mig_gpu_whose_instances_cannot_be_listed_is_shown_unusable() {
    let mut state = mig_machine();
    state["queryModes"] = json!({"list": "fail"});
    let f = Fake::new(state);
    let status = f.status_json();
    let g = &status["gpus"][0];
    assert_eq!(g["index"], 0);
    assert_eq!(g["failure"]["kind"], "mig_not_enumerable");
    assert_eq!(status["gpus"][1]["failure"], Value::Null);
    // A device failure is not a probe failure: the other GPU stays usable.
    assert_eq!(status["gpuProbe"]["error"], Value::Null);
    let text = f.status_text();
    assert!(
        text.contains("GPU 0 unusable: mig_not_enumerable: GPU 0 is in MIG mode"),
        "{text}"
    );
}

#[test]
fn a_lost_gpu_is_shown_with_its_kind_and_the_others_are_still_read() {
    let f = Fake::new(json!({
        "gpus": [
            {"name": "Tesla T4", "handleError": "GPU is lost. Reboot the system to recover this GPU"},
            {"name": "Tesla T4", "uuid": "GPU-ok", "totalMb": 15360, "usedMb": 0},
            {"name": "Tesla T4", "uuid": "GPU-denied", "totalMb": "[Insufficient Permissions]",
             "usedMb": "[Insufficient Permissions]", "freeMb": "[Insufficient Permissions]",
             "tempC": "[Insufficient Permissions]", "utilPct": "[Insufficient Permissions]"}
        ]
    }));
    let status = f.status_json();
    assert_eq!(status["gpuProbe"]["error"], Value::Null, "{status}");
    let kinds: Vec<_> = status["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["failure"]["kind"].clone())
        .collect();
    assert_eq!(kinds, [json!("lost"), Value::Null, json!("no_permission")]);
    let text = f.status_text();
    assert!(text.contains("GPU 0 unusable: lost:"), "{text}");
    assert!(text.contains("GPU 2 unusable: no_permission:"), "{text}");
}

#[test]
fn an_old_driver_without_the_mig_field_is_read_with_fewer_fields() {
    let f = Fake::new(json!({
        "invalidFields": ["mig.mode.current"],
        "gpus": [{"name": "Tesla P100-PCIE-16GB", "totalMb": 16280, "usedMb": 0,
                  "computeMode": "Prohibited"}]
    }));
    let status = f.status_json();
    assert_eq!(status["gpuProbe"]["error"], Value::Null, "{status}");
    assert_eq!(status["gpus"][0]["computeMode"], "prohibited");
    assert_eq!(status["gpus"][0]["migMode"], Value::Null);
    assert_eq!(status["gpus"][0]["memoryFreeMb"], 16280);
}

#[test]
fn the_governor_keeps_sampling_while_the_gpu_probe_hangs() {
    let healthy = json!({"gpus": [{"name": "Tesla T4", "uuid": "GPU-t4", "totalMb": 15360,
                                    "usedMb": 0, "tempC": 40}]});
    let f = Fake::new(healthy.clone());
    let backprop = f
        .cmd()
        .env("BACKPROP_GPU_PROBE_TIMEOUT", "1")
        .args([
            "run",
            &script("sleeper.py"),
            "-q",
            "-m",
            "12s",
            "--run-id",
            "hung",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let samples = f.env.run_dir("hung").join("resources.jsonl");
    let lines = || -> Vec<Value> {
        std::fs::read_to_string(&samples)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    assert!(
        wait_for(Duration::from_secs(20), || !lines().is_empty()),
        "no resource sample"
    );
    // Every nvidia-smi call now hangs (killed after the 1 s probe timeout).
    let mut hang = healthy.clone();
    hang["mode"] = "hang".into();
    hang["hangSeconds"] = 30.into();
    f.set(hang);
    let failed = |l: &Value| l["gpus"][0]["failure"]["kind"] == "timeout";
    assert!(
        wait_for(Duration::from_secs(10), || lines().iter().any(failed)),
        "no sample marked the GPU timed out: {:?}",
        lines().last()
    );
    let during = lines().len();
    // Samples keep coming while it hangs.
    assert!(
        wait_for(Duration::from_secs(10), || lines().len() >= during + 3),
        "sampling stopped while the probe hung"
    );
    f.set(healthy);
    assert!(
        wait_for(Duration::from_secs(15), || lines()
            .last()
            .is_some_and(|l| l["gpus"][0]["temperatureC"] == 40.0)),
        "readings never came back: {:?}",
        lines().last()
    );
    let out = backprop.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(124), "{}", stderr_of(&out));
}
