//! `backprop run <script> [options] [-- args]`

use super::Global;
use super::common::{CliError, load_config, open_store};
use super::flags::ConfigFlags;
use super::slurm_submit::{self, OnRefusal, Submission};
use crate::actors::supervisor::Job;
use crate::clock::now_ms;
use crate::config::{Config, Executor};
use crate::continuation::Plan;
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
    #[command(flatten)]
    pub config: ConfigFlags,
    /// Start from this checkpoint (passed as --resume-from and BACKPROP_RESUME_FROM)
    #[arg(short = 'r', long, value_name = "PATH")]
    pub resume_from: Option<PathBuf>,
    /// Use this run id instead of a generated one
    #[arg(long)]
    pub run_id: Option<String>,
    /// A name for the run [default: the script's name]
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// Working directory of the script [default: the current directory]
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Extra environment for the script (repeatable)
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Refuse at once (exit 75) instead of waiting for resources
    #[arg(long)]
    pub no_wait: bool,
    /// Arguments for the script, after `--`
    #[arg(last = true)]
    pub args: Vec<String>,
}

pub fn execute(global: &Global, args: RunArgs) -> Result<i32, CliError> {
    let loaded = load_config(global, args.config.flags())?;
    let config = &loaded.config;
    let on_slurm = config.executor == Executor::Slurm;
    if !on_slurm && let Some(id) = &args.run_id {
        crate::runid::validate(id).map_err(|e| CliError::usage(e.to_string()))?;
        if let Some(rec) = slurm_submit::adopt(&open_store()?, id)? {
            return Ok(run_adopted(global, &loaded, rec));
        }
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
    let here = current_dir()?;
    let spec = spec_for(
        &script,
        rest,
        config,
        args.cwd.as_deref(),
        parse_env(&args.env)?,
        &here,
    )?;
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
    let name = args.name.clone().unwrap_or_else(|| script_name(&script));

    let store = open_store()?;
    let new = NewRun {
        wanted_id: args.run_id.clone(),
        name,
        spec: spec.clone(),
        params: None,
        batch_id: None,
    };
    let run_id = create_records(&store, vec![new])?.remove(0);
    if on_slurm {
        let submission = Submission {
            run_id: run_id.clone(),
            resume_from,
            max_run: Duration::from_secs_f64(spec.options.max_run_seconds),
        };
        let job = slurm_submit::submit(
            &store,
            config,
            &[submission],
            spec.options.gpus,
            1,
            &spec.cwd,
            OnRefusal::Remove,
        )?;
        if !global.quiet {
            crate::ui::info(&format!(
                "run {run_id} submitted to Slurm as job {job}; follow it with: backprop status {run_id}"
            ));
        }
        if global.json {
            super::common::print_json(&serde_json::json!({"id": run_id, "slurmJobId": job}));
        } else {
            println!("{run_id}");
        }
        return Ok(0);
    }
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

/// On a Slurm node: the attempt of a submitted run, with the spec stored when it was submitted.
fn run_adopted(global: &Global, loaded: &crate::config::LoadedConfig, rec: RunRecord) -> i32 {
    let slurm = rec.slurm.clone().unwrap_or_default();
    let mut spec = rec.spec.clone();
    // Slurm already admitted this job (`--array=...%P`); the node does not queue it again.
    spec.options.max_parallel = u32::MAX;
    let job = Job {
        run_id: rec.id.clone(),
        max_run: Duration::from_secs_f64(
            slurm
                .max_run_seconds
                .unwrap_or(spec.options.max_run_seconds),
        ),
        plan: Plan::once(spec.options.max_restarts),
        spec,
        attempt: rec.attempts.len() as u32 + 1,
        resume_from: slurm.resume_from,
        no_wait: false,
    };
    super::resume::run_and_report(
        global,
        loaded,
        crate::store::Store::open_for_reading(&super::common::home()),
        job,
    )
}

pub fn current_dir() -> Result<PathBuf, CliError> {
    std::env::current_dir()
        .map_err(|e| CliError::usage(format!("cannot read the current directory: {e}")))
}

/// The spec of a new run: the program resolved (exit 127 when missing, before anything is
/// recorded), the working directory checked, the options taken from `config`.
pub fn spec_for(
    script: &str,
    args: Vec<String>,
    config: &Config,
    cwd: Option<&Path>,
    env: BTreeMap<String, String>,
    here: &Path,
) -> Result<RunSpec, CliError> {
    let program = launch::resolve(script, &config.interpreter, here)
        .map_err(|e| CliError::with_code(EXIT_NOT_FOUND, e.to_string()))?;
    let cwd = working_dir(cwd, here)?;
    Ok(RunSpec {
        program: program.program,
        args,
        interpreter: program.interpreter,
        cwd: cwd.display().to_string(),
        env,
        options: super::resume::options_from(config),
    })
}

/// A run to enter in the store.
pub struct NewRun {
    pub wanted_id: Option<String>,
    pub name: String,
    pub spec: RunSpec,
    pub params: Option<serde_json::Map<String, Value>>,
    pub batch_id: Option<String>,
}

/// Inserts the new records (status queued, supervised by this process) in one locked write,
/// in order, each under a fresh id; returns the ids.
pub fn create_records(
    store: &crate::store::Store,
    runs: Vec<NewRun>,
) -> Result<Vec<String>, CliError> {
    let me = crate::proc_info::me();
    store.update(|ex| {
        let mut ids = Vec::new();
        let mut last_seq = 0;
        for run in runs {
            let id = match run.wanted_id {
                Some(id) if ex.contains(&id) => {
                    return Err(CliError::usage(format!(
                        "run id {id:?} is already taken; pick another --run-id or continue it with `backprop resume {id}`"
                    )));
                }
                Some(id) => id,
                None => (0..)
                    .map(|salt| crate::runid::generate(&run.name, salt))
                    .find(|id| !ex.contains(id))
                    .expect("an unused id exists"),
            };
            let mut rec = RunRecord::new(id.clone(), run.name, run.spec, now_ms());
            // Strictly increasing even within one clock tick: arrival order is queue order.
            rec.queue_seq = rec.queue_seq.max(last_seq + 1);
            last_seq = rec.queue_seq;
            rec.supervisor = Some(me.clone());
            rec.params = run.params;
            rec.batch_id = run.batch_id;
            ex.put(&rec);
            ids.push(id);
        }
        Ok(ids)
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
pub fn script_name(script: &str) -> String {
    let file = Path::new(script)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.strip_suffix(".py").unwrap_or(&file).to_string()
}
