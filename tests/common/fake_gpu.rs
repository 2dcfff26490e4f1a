//! A home whose `nvidia-smi` is the fake in `tests/fake_gpu/`, driven through a JSON state
//! file the tests rewrite mid-run, and processes started together at one instant.

use super::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct GpuEnv {
    pub env: Env,
    pub state: PathBuf,
}

/// One fake GPU of 40 GiB with `free_mb` free.
pub fn gpu(free_mb: u64, temp: Value) -> Value {
    sized_gpu(40_960, free_mb, temp)
}

pub fn sized_gpu(total_mb: u64, free_mb: u64, temp: Value) -> Value {
    json!({"name": "NVIDIA A100", "totalMb": total_mb, "usedMb": total_mb - free_mb,
           "freeMb": free_mb, "tempC": temp, "utilPct": 5})
}

impl GpuEnv {
    pub fn new(state: Value) -> GpuEnv {
        let env = Env::new();
        let path = env.home.path().join("fake-gpu.json");
        let g = GpuEnv { env, state: path };
        g.set(state);
        g
    }

    /// Rewrites the fake's state atomically (it reads it on every call).
    pub fn set(&self, state: Value) {
        let temp = self.state.with_extension("tmp");
        std::fs::write(&temp, state.to_string()).unwrap();
        std::fs::rename(&temp, &self.state).unwrap();
    }

    pub fn cmd(&self) -> Command {
        let fake_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_gpu");
        let path = format!(
            "{}:{}",
            fake_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = self.env.cmd();
        cmd.env("PATH", path)
            .env("FAKE_NVIDIA_SMI_STATE", &self.state)
            .env("BACKPROP_GPU_PROBE", "nvidia-smi")
            .env_remove("CUDA_VISIBLE_DEVICES");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd().args(args).output().unwrap()
    }

    /// The environment `env_dump.py` saw in the run `id`.
    pub fn script_env(&self, id: &str) -> Value {
        let path = self.env.run_dir(id).join("env-attempt1.json");
        assert!(
            wait_for(Duration::from_secs(30), || path.exists()),
            "{path:?} never written"
        );
        serde_json::from_slice::<Value>(&std::fs::read(path).unwrap()).unwrap()["env"].clone()
    }
}

/// Processes that wait for one barrier file and then exec their command: created together,
/// they start at the same instant.
pub struct Barrier {
    path: PathBuf,
}

impl Barrier {
    pub fn new(dir: &Path) -> Barrier {
        Barrier {
            path: dir.join("barrier-go"),
        }
    }

    /// `cmd` as a child that waits for the barrier first (stdout and stderr captured).
    pub fn spawn(&self, cmd: &Command) -> Child {
        let mut script = String::from("while [ ! -e \"$BARRIER\" ]; do sleep 0.002; done; exec");
        for part in std::iter::once(cmd.get_program()).chain(cmd.get_args()) {
            script.push_str(&format!(
                " '{}'",
                part.to_string_lossy().replace('\'', "'\\''")
            ));
        }
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(script).env("BARRIER", &self.path);
        if let Some(dir) = cmd.get_current_dir() {
            sh.current_dir(dir);
        }
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        sh.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Lets every waiting process go at once.
    pub fn release(&self) {
        // Give the shells time to reach their wait loop.
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(&self.path, b"go").unwrap();
    }
}
