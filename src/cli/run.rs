//! `backprop run <script> [options] [-- args]`

use super::Global;
use super::common::{CliError, load_config, open_store};
use super::flags::Flags;
use crate::actors::supervisor::Job;
use crate::continuation::Plan;
use crate::clock::now_ms;
use crate::launch;
use crate::outcome::EXIT_NOT_FOUND;
use crate::record::{RunRecord, RunSpec};
use clap::Args;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  backprop run examples/train.py -m 0.5\n  backprop run train.py -m 90s --name baseline -- --lr 0.01\n  backprop run -- torchrun --nproc-per-node 2 train.py"
)]
pub struct RunArgs {
    /// The script (.py runs with the interpreter) or any executable / command on PATH
    pub script: Option<String>,
    /// Timebox in minutes (a number) or a duration like 90s, 2h [default: 10]
    #[arg(short = 'm', long, value_name = "MIN")]
    pub max_run_minutes: Option<String>,
    /// pytorch | tensorflow | jax | auto
    #[arg(short = 'f', long)]
    pub framework: Option<String>,
    /// Tell the script to checkpoint every N minutes (BACKPROP_CHECKPOINT_EVERY_SECONDS)
    #[arg(short = 'c', long, value_name = "MIN")]
    pub checkpoint_every_minutes: Option<String>,
    /// Start from this checkpoint (passed as --resume-from and BACKPROP_RESUME_FROM)
    #[arg(short = 'r', long, value_name = "PATH")]
    pub resume_from: Option<PathBuf>,
    /// Use this run id instead of a generated one
    #[arg(long)]
    pub run_id: Option<String>,
    /// A name for the run [default: the script's name]
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// GPU memory limit: 80% of the GPU, or 8 (GB)
    #[arg(short = 'g', long, value_name = "LIMIT")]
    pub gpu_memory_limit: Option<String>,
    /// How many runs may be active at once across this home
    #[arg(short = 'p', long, value_name = "N")]
    pub max_parallel: Option<u32>,
    /// Minimum free RAM to start, in GB [default: 4]
    #[arg(long, value_name = "GB")]
    pub min_free_ram: Option<f64>,
    /// auto | nvml | nvidia-smi | none
    #[arg(long, value_name = "PROBE")]
    pub gpu_probe: Option<String>,
    /// Minimum free VRAM on a GPU to start, in MB [default: 2500]
    #[arg(long, value_name = "MB")]
    pub gpu_min_vram: Option<u64>,
    /// Maximum GPU temperature in °C [default: 85]
    #[arg(long, value_name = "C")]
    pub gpu_max_temp: Option<f64>,
    /// GPUs per run (0 = CPU only)
    #[arg(long, value_name = "N")]
    pub gpus: Option<u32>,
    /// Time between the stop signal and SIGKILL, e.g. 30s [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<String>,
    /// Interpreter for .py scripts [default: python3]
    #[arg(long)]
    pub interpreter: Option<String>,
    /// Working directory of the script [default: the current directory]
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Extra environment for the script (repeatable)
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Refuse at once (exit 75) instead of waiting for resources
    #[arg(long)]
    pub no_wait: bool,
    /// Restart a failed attempt from its latest checkpoint up to N times
    #[arg(long, value_name = "N")]
    pub max_restarts: Option<u32>,
    /// local | slurm
    #[arg(long)]
    pub executor: Option<String>,
    /// Arguments for the script, after `--`
    #[arg(last = true)]
    pub args: Vec<String>,
}

impl RunArgs {
    fn flags(&self) -> Flags {
        let mut f = Flags::default();
        f.add_text(
            "--max-run-minutes",
            "maxRunMinutes",
            self.max_run_minutes.as_ref(),
        );
        f.add(
            "--framework",
            "framework",
            self.framework.clone().map(Value::from),
        );
        f.add_text(
            "--checkpoint-every-minutes",
            "checkpointEveryMinutes",
            self.checkpoint_every_minutes.as_ref(),
        );
        f.add_text(
            "--gpu-memory-limit",
            "gpuMemoryLimit",
            self.gpu_memory_limit.as_ref(),
        );
        f.add(
            "--max-parallel",
            "maxParallel",
            self.max_parallel.map(Value::from),
        );
        f.add(
            "--min-free-ram",
            "minFreeRamGB",
            self.min_free_ram.map(Value::from),
        );
        f.add(
            "--gpu-probe",
            "gpu.probe",
            self.gpu_probe.clone().map(Value::from),
        );
        f.add(
            "--gpu-min-vram",
            "gpu.minFreeVramMB",
            self.gpu_min_vram.map(Value::from),
        );
        f.add(
            "--gpu-max-temp",
            "gpu.maxTempC",
            self.gpu_max_temp.map(Value::from),
        );
        f.add("--gpus", "gpusPerRun", self.gpus.map(Value::from));
        f.add_text("--grace", "gracePeriod", self.grace.as_ref());
        f.add(
            "--interpreter",
            "interpreter",
            self.interpreter.clone().map(Value::from),
        );
        f.add(
            "--max-restarts",
            "maxRestarts",
            self.max_restarts.map(Value::from),
        );
        f.add(
            "--executor",
            "executor",
            self.executor.clone().map(Value::from),
        );
        f
    }
}

pub fn execute(global: &Global, args: RunArgs) -> Result<i32, CliError> {
    let loaded = load_config(global, args.flags().into_vec())?;
    let config = &loaded.config;
    if config.executor != crate::config::Executor::Local {
        return Err(CliError::usage(
            "the slurm executor is not available in this version; use --executor local",
        ));
    }
    let mut rest = args.args.clone();
    let script = match args.script.clone() {
        Some(script) => script,
        None if !rest.is_empty() => rest.remove(0),
        None => {
            return Err(CliError::usage(
                "no script given; usage: backprop run <script> [options] [-- args]",
            ));
        }
    };
    let here = std::env::current_dir()
        .map_err(|e| CliError::usage(format!("cannot read the current directory: {e}")))?;
    let program = launch::resolve(&script, &config.interpreter, &here)
        .map_err(|e| CliError::with_code(EXIT_NOT_FOUND, e.to_string()))?;
    let cwd = working_dir(args.cwd.as_deref(), &here)?;
    let env = parse_env(&args.env)?;
    if let Some(id) = &args.run_id {
        crate::runid::validate(id).map_err(|e| CliError::usage(e.to_string()))?;
    }
    let resume_from = match &args.resume_from {
        Some(path) => {
            let path = here.join(path);
            if !path.exists() {
                return Err(CliError::usage(format!(
                    "checkpoint {} does not exist",
                    path.display()
                )));
            }
            Some(path.display().to_string())
        }
        None => None,
    };
    let options = super::resume::options_from(config);
    let spec = RunSpec {
        program: program.program,
        args: rest,
        interpreter: program.interpreter,
        cwd: cwd.display().to_string(),
        env,
        options,
    };
    let name = args.name.clone().unwrap_or_else(|| script_name(&script));

    let store = open_store()?;
    let run_id = create_record(&store, args.run_id.as_deref(), &name, &spec)?;
    let max_restarts = spec.options.max_restarts;
    let job = Job {
        run_id,
        max_run: Duration::from_secs_f64(spec.options.max_run_seconds),
        spec,
        attempt: 1,
        resume_from,
        no_wait: args.no_wait,
        plan: Plan::once(max_restarts),
    };
    Ok(super::resume::run_and_report(global, &loaded, store, job))
}

/// Inserts the new record (status queued, supervised by this process) under a fresh id.
fn create_record(
    store: &crate::store::Store,
    wanted: Option<&str>,
    name: &str,
    spec: &RunSpec,
) -> Result<String, CliError> {
    let me = crate::proc_info::me();
    store
        .update(|ex| {
            let id = match wanted {
                Some(id) if ex.contains(id) => {
                    return Err(CliError::usage(format!(
                        "run id {id:?} is already taken; pick another --run-id or continue it with `backprop resume {id}`"
                    )));
                }
                Some(id) => id.to_string(),
                None => (0..)
                    .map(|salt| crate::runid::generate(name, salt))
                    .find(|id| !ex.contains(id))
                    .expect("an unused id exists"),
            };
            let mut rec = RunRecord::new(id.clone(), name.to_string(), spec.clone(), now_ms());
            rec.supervisor = Some(me.clone());
            ex.put(&rec);
            Ok(id)
        })?
}

fn working_dir(cwd: Option<&Path>, here: &Path) -> Result<PathBuf, CliError> {
    let dir = match cwd {
        Some(dir) => here.join(dir),
        None => here.to_path_buf(),
    };
    if !dir.is_dir() {
        return Err(CliError::usage(format!(
            "--cwd {} is not a directory",
            dir.display()
        )));
    }
    Ok(dir)
}

fn parse_env(pairs: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(CliError::usage(format!("--env {pair:?} is not K=V"))),
        })
        .collect()
}

/// `examples/train.py` → `train`; `torchrun` → `torchrun`.
fn script_name(script: &str) -> String {
    let file = Path::new(script)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.strip_suffix(".py").unwrap_or(&file).to_string()
}
