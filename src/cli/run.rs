//! `backprop run <script> [options] [-- args]`

use super::Global;
use super::common::{CliError, load_config, open_store, output, print_json, report_outcome};
use super::flags::ConfigFlags;
use crate::continuation::Plan;
use crate::executor::new_runs::{NewRun, create_records, script_name, spec_for};
use crate::executor::{self, Job, Launch, OnRefusal, Started, on_node};
use crate::runid::RunId;
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;

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
    pub run_id: Option<RunId>,
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
    // Inside the Slurm job a run was submitted to: the run as submitted, with the config it
    // was submitted with (nothing is read again here, and the store is not opened).
    if args.config.executor.as_deref() == Some("local")
        && let Some(id) = &args.run_id
        && let Some((job, run_dir)) = on_node::submitted_here(&super::common::home(), id)
    {
        let result = on_node::run(&super::common::home(), id, &job, &run_dir, output(global));
        return Ok(result.exit_code);
    }
    let loaded = load_config(global, args.config.flags()?)?;
    let config = &loaded.config;
    let executor = config.executor;
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
    let env = parse_env(&args.env)?;
    let spec = spec_for(&script, rest, config, args.cwd.as_deref(), env, &here)?;
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
        search: None,
        rounds: None,
        wanted_id: args.run_id.clone(),
        name,
        spec: spec.clone(),
        params: None,
        batch_id: None,
    };
    let run_id = create_records(&store, vec![new])?.remove(0);
    let plan = Plan::once(spec.options.max_restarts);
    let job = Job::first(run_id.clone(), spec, resume_from, plan).no_wait(args.no_wait);
    let launch = Launch {
        store: &store,
        config,
        output: output(global),
        on_refusal: OnRefusal::Remove,
    };
    match executor::start(vec![job], executor, &launch)? {
        Started::Ran(results) => Ok(report_outcome(global, &store, &run_id, results)),
        Started::Submitted { job_id } => {
            if !global.quiet {
                crate::ui::info(&format!(
                    "run {run_id} submitted to Slurm as job {job_id}; follow it with: backprop status {run_id}"
                ));
            }
            if global.json {
                print_json(&serde_json::json!({"id": run_id, "slurmJobId": job_id}));
            } else {
                super::out::line(run_id.as_str());
            }
            Ok(0)
        }
    }
}

pub fn current_dir() -> Result<PathBuf, CliError> {
    std::env::current_dir()
        .map_err(|e| CliError::usage(format!("cannot read the current directory: {e}")))
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
