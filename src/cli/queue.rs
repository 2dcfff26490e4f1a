//! `backprop queue [sweep.json]`: run a batch (grid, random search, explicit runs, or the
//! config's `experiments`) through the admission queue, then print a summary.

use super::Global;
use super::common::{
    CliError, duration_text, load_config, load_config_with, loss_text, open_store, output,
    print_json, print_legacy_hint,
};
use super::flags::ConfigFlags;
use super::run::current_dir;
use super::{out, table};
use crate::config::{self, Executor, FlagValue};
use crate::continuation::{BatchRounds, Plan, Rounds};
use crate::executor::new_runs::{NewRun, NewRunError, create_records, script_name, spec_for};
use crate::executor::{self, Job, Launch, OnRefusal, Results, Started};
use crate::launch::NotFound;
use crate::outcome::EXIT_STOPPED;
use crate::record::{RunRecord, RunSpec, Status};
use crate::runid::RunId;
use crate::search::{SearchRecord, SearchSpec, StoredRun};
use crate::sweep::{self, Batch, PlannedRun};
use clap::Args;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  backprop queue sweep.json --dry-run\n  backprop queue sweep.json -p 2 --rounds 3\n  backprop queue            # the `experiments` of backprop.config.json\n\nA sweep file:\n  {\"script\": \"train.py\", \"args\": [\"--lr\", \"{lr}\"], \"grid\": {\"lr\": [0.1, 0.01]},\n   \"name\": \"lr{lr}\", \"maxRunMinutes\": 5, \"maxParallel\": 2}\n\nRelative `script` and `cwd` paths in a sweep file are taken from the sweep file's own\ndirectory (in the config's `experiments`, from the config file's); the scripts run in the\ncurrent directory unless a run gives its `cwd`."
)]
pub struct QueueArgs {
    /// The sweep file (relative paths inside it are taken from its directory); without it,
    /// the `experiments` of the config file
    pub file: Option<PathBuf>,
    /// Options that set config keys for every run (over the file's own)
    #[command(flatten)]
    pub config: ConfigFlags,
    /// Print the expanded runs without running anything
    #[arg(long)]
    pub dry_run: bool,
    /// A timeboxed run with a checkpoint goes back in the queue, up to N rounds in all
    #[arg(long, value_name = "N")]
    pub rounds: Option<u32>,
    /// Rounds until every run completes, fails or spends --max-total-minutes
    #[arg(long)]
    pub until_done: bool,
    /// Active time one run may spend over all its rounds
    #[arg(long, value_name = "MIN")]
    pub max_total_minutes: Option<String>,
    /// Refuse runs at once (status rejected) instead of waiting for resources; with the
    /// slurm executor, return once the batch is submitted instead of waiting for it to end
    #[arg(long)]
    pub no_wait: bool,
}

/// One run of the batch, resolved.
struct Resolved {
    name: String,
    spec: RunSpec,
    params: serde_json::Map<String, Value>,
    config: config::Config,
}

pub fn execute(global: &Global, args: QueueArgs) -> Result<i32, CliError> {
    let flags = args.config.flags()?;
    let base = load_config(global, flags.clone())?;
    let here = current_dir()?;
    let (batch, batch_dir) = match &args.file {
        Some(path) => (
            sweep::load_file(path).map_err(|e| CliError::usage(e.to_string()))?,
            directory_of(&here.join(path)),
        ),
        None => {
            let Some(file) = base.file() else {
                return Err(CliError::usage(format!(
                    "no sweep file given and there is no {} here; give one: backprop queue <sweep.json> (or list runs under `experiments` in a config file)",
                    config::FILE_NAME
                )));
            };
            let origin = file.display().to_string();
            if base.config.experiments.is_empty() {
                return Err(CliError::usage(format!(
                    "no sweep file given and {origin} has no `experiments`; give one: backprop queue <sweep.json>"
                )));
            }
            (
                sweep::from_experiments(&base.config.experiments, &origin)
                    .map_err(|e| CliError::usage(e.to_string()))?,
                directory_of(file),
            )
        }
    };
    if batch.runs.is_empty() {
        return Err(CliError::usage("the batch has no runs"));
    }
    // Batch-level settings (admission, polling) come from the batch's own overrides too.
    let batch_config = load_with(global, &batch.overrides, &[], &flags)?;
    let on_slurm = batch_config.executor == Executor::Slurm;
    let places = Places {
        here: &here,
        batch_dir: &batch_dir,
    };
    let resolved: Vec<Resolved> = batch
        .runs
        .iter()
        .map(|run| resolve(global, &batch, run, &flags, &places))
        .collect::<Result<_, _>>()?;
    if args.dry_run {
        print_plan(global, &resolved);
        if let Some(spec) = &batch.search
            && !global.json
        {
            print_search(spec, resolved.len());
        }
        return Ok(0);
    }
    let rounds = if args.until_done || batch.until_done {
        Rounds::UntilDone
    } else {
        match args.rounds.or(batch.rounds) {
            Some(n) if n > 1 => Rounds::Limited(n),
            _ => Rounds::Off,
        }
    };
    let max_total = match &args.max_total_minutes {
        Some(text) => Some(
            text.parse::<config::Minutes>()
                .map_err(|e| CliError::usage(format!("--max-total-minutes {text:?}: {e}")))?
                .duration(),
        ),
        None => batch.max_total,
    };
    if batch.search.is_some() && (rounds != Rounds::Off || max_total.is_some()) && !global.quiet {
        crate::ui::warn(
            "rounds, untilDone and maxTotalMinutes do not apply to a search: an attempt timeboxed before its rung's budget always continues toward it",
        );
    }
    if on_slurm && batch.search.is_some() {
        return Err(CliError::usage(
            "a sweep with \"search\" runs locally only (the search decides each run's next step as it goes); run it with --executor local, on a machine (or inside one allocation) that has the resources",
        ));
    }
    if on_slurm && rounds != Rounds::Off {
        return Err(CliError::usage(
            "--rounds / untilDone are not available with the slurm executor; continue runs with `backprop resume`",
        ));
    }
    let store = open_store()?;
    let batch_id = RunId::generate("batch", std::process::id());
    // A search starts its configurations in this order (`order[position]` is an index into
    // the batch's runs).
    let order =
        crate::search::start_order(resolved.len(), batch.search.as_ref().and_then(|s| s.seed));
    let new_runs = resolved
        .iter()
        .enumerate()
        .map(|(index, r)| NewRun {
            wanted_id: None,
            name: r.name.clone(),
            spec: r.spec.clone(),
            params: Some(r.params.clone()),
            batch_id: Some(batch_id.clone()),
            rounds: Some(BatchRounds { rounds, max_total }),
            search: batch.search.as_ref().map(|spec| SearchRecord {
                spec: spec.clone(),
                max_parallel: batch_config.max_parallel,
                run: StoredRun {
                    position: order
                        .iter()
                        .position(|&i| i == index)
                        .expect("a permutation"),
                    started: false,
                    rungs: Vec::new(),
                    promoted_to: None,
                    end: None,
                },
            }),
        })
        .collect();
    let ids = create_records(&store, new_runs)?;
    if let Some(spec) = &batch.search {
        return run_search(global, &store, &batch_config, spec, &batch_id, &ids);
    }
    let jobs: Vec<Job> = ids
        .iter()
        .zip(&resolved)
        .map(|(id, r)| {
            let plan = Plan {
                rounds,
                max_total,
                ..Plan::once(r.config.max_restarts)
            };
            Job::first(id.clone(), r.spec.clone(), None, plan).no_wait(args.no_wait)
        })
        .collect();
    if !global.quiet && !on_slurm {
        crate::ui::info(&format!(
            "batch {batch_id}: {} runs, at most {} at once",
            ids.len(),
            batch_config.max_parallel
        ));
    }
    let launch = Launch {
        store: &store,
        config: &batch_config,
        output: output(global),
        on_refusal: OnRefusal::Remove,
    };
    match executor::start(jobs, batch_config.executor, &launch)? {
        Started::Ran(results) => {
            let records: Vec<RunRecord> = ids.iter().filter_map(|id| store.get(id).ok()).collect();
            print_summary(global, &batch_id, &records, &results);
            print_legacy_hint(&records);
            Ok(exit_code(&results))
        }
        Started::Submitted { job_id } => {
            if args.no_wait {
                if global.json {
                    print_json(&json!({"batchId": batch_id, "slurmJobId": job_id, "runs": ids}));
                } else {
                    out::line(&format!(
                        "batch {batch_id}: {} runs submitted to Slurm as array job {job_id} (at most {} at once); follow it with: backprop status {batch_id}",
                        ids.len(),
                        batch_config.max_parallel
                    ));
                }
                return Ok(0);
            }
            if !global.quiet {
                crate::ui::info(&format!(
                    "batch {batch_id}: {} runs submitted to Slurm as array job {job_id} (at most {} at once); waiting for them (Ctrl-C stops waiting, not the jobs; --no-wait returns at submission)",
                    ids.len(),
                    batch_config.max_parallel
                ));
            }
            let records = super::slurm_wait::until_ended(&store, &ids, global.quiet)?;
            let results = super::slurm_wait::outcomes(&records);
            print_summary(global, &batch_id, &records, &results);
            Ok(exit_code(&results))
        }
    }
}

/// Runs the batch's search here and prints its summary; the records carry the search.
fn run_search(
    global: &Global,
    store: &crate::store::Store,
    config: &config::Config,
    spec: &SearchSpec,
    batch_id: &RunId,
    ids: &[RunId],
) -> Result<i32, CliError> {
    let records: Vec<RunRecord> = ids
        .iter()
        .map(|id| store.get(id))
        .collect::<Result<_, _>>()?;
    let search = crate::executor::search_run::from_records(&records)
        .map_err(|e| CliError::with_code(1, format!("batch {batch_id}: {e}")))?;
    if !global.quiet {
        crate::ui::info(&format!(
            "batch {batch_id}: search over {} configurations, {}; at most {} at once",
            ids.len(),
            spec.summary(),
            search.max_parallel
        ));
    }
    let results = crate::executor::local::run_search(store, config, output(global), search);
    let records: Vec<RunRecord> = ids.iter().filter_map(|id| store.get(id).ok()).collect();
    super::search_summary::print(global, batch_id, &records);
    Ok(exit_code(&results))
}

/// The config of one run: defaults < file < env < the batch's keys < the run's keys < flags.
fn load_with(
    global: &Global,
    batch: &[config::Override],
    run: &[config::Override],
    flags: &[FlagValue],
) -> Result<config::Config, CliError> {
    let overrides = batch.iter().chain(run).cloned().collect();
    Ok(load_config_with(global, overrides, flags.to_vec())?.config)
}

/// Where a batch's paths are taken from.
struct Places<'a> {
    /// Where backprop runs: the scripts' working directory unless a run gives its `cwd`.
    here: &'a Path,
    /// The directory of the sweep (or config) file: relative `script` and `cwd` paths in it.
    batch_dir: &'a Path,
}

/// The directory holding `file` (absolute when `file` is).
fn directory_of(file: &Path) -> PathBuf {
    file.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// A batch's `script` as launch resolves it: a relative path is taken from the batch file's
/// directory; a bare command name stays a command unless it is not on PATH and a file of
/// that name sits beside the batch file.
fn script_in_batch(
    script: &str,
    batch_dir: &Path,
    on_path: impl Fn(&str) -> bool,
    is_file: impl Fn(&Path) -> bool,
) -> String {
    let path = Path::new(script);
    if path.is_absolute() {
        return script.to_string();
    }
    let beside = batch_dir.join(path);
    let is_path = script.contains('/') || script.ends_with(".py");
    if is_path || (!on_path(script) && is_file(&beside)) {
        beside.display().to_string()
    } else {
        script.to_string()
    }
}

fn resolve(
    global: &Global,
    batch: &Batch,
    run: &PlannedRun,
    flags: &[FlagValue],
    places: &Places,
) -> Result<Resolved, CliError> {
    let config = load_with(global, &batch.overrides, &run.overrides, flags)?;
    let cwd = run.cwd.as_deref().map(|dir| places.batch_dir.join(dir));
    let script = script_in_batch(
        &run.script,
        places.batch_dir,
        |name| which::which(name).is_ok(),
        Path::is_file,
    );
    let spec = spec_for(
        &script,
        run.args.clone(),
        &config,
        cwd.as_deref(),
        run.env.clone(),
        places.here,
    )
    .map_err(|e| {
        let message = match &e {
            NewRunError::NotFound(NotFound::Script { looked, .. }) => format!(
                "script {} not found (looked for {looked}; relative paths in a batch file are taken from its directory, {})",
                run.script,
                places.batch_dir.display()
            ),
            _ => e.to_string(),
        };
        let code = CliError::from(e).code;
        CliError::with_code(code, format!("run {:?}: {message}", run.name))
    })?;
    let name = if run.name.is_empty() {
        script_name(&run.script)
    } else {
        run.name.clone()
    };
    Ok(Resolved {
        name,
        spec,
        params: run.params.clone(),
        config,
    })
}

fn print_plan(global: &Global, runs: &[Resolved]) {
    if global.json {
        let plan: Vec<Value> = runs
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "program": r.spec.program,
                    "interpreter": r.spec.interpreter,
                    "args": r.spec.args,
                    "params": r.params,
                    "cwd": r.spec.cwd,
                    "env": r.spec.env,
                    "options": r.spec.options,
                })
            })
            .collect();
        print_json(&plan);
        return;
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let mut command: Vec<String> = r.spec.interpreter.iter().cloned().collect();
            command.push(r.spec.program.clone());
            command.extend(r.spec.args.iter().cloned());
            vec![
                r.name.clone(),
                command.join(" "),
                duration_text(r.spec.options.max_run.as_millis() as u64),
                Value::Object(r.params.clone()).to_string(),
            ]
        })
        .collect();
    out::line(&table::render(
        &["NAME", "COMMAND", "TIMEBOX", "PARAMS"],
        &rows,
    ));
    out::line(&format!("{} runs (dry run: nothing started)", runs.len()));
}

/// The search's rungs and start order, and a warning when too few configurations are given
/// for any run to be sure to reach maxBudget.
fn print_search(spec: &SearchSpec, configurations: usize) {
    println!("search: {}", spec.summary());
    let order = match spec.seed {
        Some(seed) => format!("in a seeded random order (seed {seed})"),
        None => "in the order above".to_string(),
    };
    println!(
        "        reduction factor {}; {configurations} configurations, started {order}",
        spec.reduction_factor
    );
    if spec.sure_to_finish(configurations) == 0 {
        let rungs = spec.rungs().len() as u32;
        let needed = u64::from(spec.reduction_factor).saturating_pow(rungs - 1);
        crate::ui::warn(&format!(
            "with {configurations} configurations no run is sure to reach maxBudget ({}): that takes at least {needed}; add configurations or lower maxBudget",
            spec.max_budget
        ));
    }
}

/// Best loss first; runs without a loss last.
pub(super) fn print_summary(
    global: &Global,
    batch_id: &RunId,
    records: &[RunRecord],
    results: &Results,
) {
    let mut sorted: Vec<&RunRecord> = records.iter().collect();
    sorted.sort_by(|a, b| {
        let key = |r: &RunRecord| r.last_loss.filter(|l| l.is_finite());
        match (key(a), key(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.name.cmp(&b.name),
        }
    });
    if global.json {
        let runs: Vec<Value> = sorted
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "name": r.name,
                    "status": r.status(),
                    "attempts": r.attempts.len(),
                    "activeMs": r.active_ms,
                    "lastStep": r.last_step,
                    "lastLoss": r.last_loss,
                    "params": r.params,
                    "exitCode": results.iter().find(|(id, _)| *id == r.id).map(|(_, o)| o.exit_code),
                })
            })
            .collect();
        print_json(&json!({ "batchId": batch_id, "runs": runs }));
        return;
    }
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.name.clone(),
                r.status().to_string(),
                r.attempts.len().to_string(),
                duration_text(r.active_ms),
                r.last_step
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                loss_text(r.last_loss),
                r.params
                    .as_ref()
                    .map(|p| Value::Object(p.clone()).to_string())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    out::line(&table::render(
        &[
            "ID", "NAME", "STATUS", "ATTEMPTS", "ACTIVE", "STEP", "LOSS", "PARAMS",
        ],
        &rows,
    ));
}

/// 0 when every run completed, was timeboxed or pruned by its search; 130 when stopped by the user; else 1.
pub(super) fn exit_code(results: &Results) -> i32 {
    if results
        .iter()
        .any(|(_, o)| o.status == Status::Stopped && o.reason == "user")
    {
        EXIT_STOPPED
    } else if results.iter().all(|(_, o)| {
        matches!(
            o.status,
            Status::Completed | Status::Timeboxed | Status::Pruned
        )
    }) {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_scripts_are_found_beside_the_batch_file() {
        let dir = Path::new("/sweeps/a");
        let resolve = |script: &str, on_path: bool, beside: bool| {
            script_in_batch(script, dir, |_| on_path, |_| beside)
        };
        assert_eq!(resolve("train.py", false, false), "/sweeps/a/train.py");
        assert_eq!(
            resolve("../t/train.py", false, false),
            "/sweeps/a/../t/train.py"
        );
        assert_eq!(resolve("./job.sh", false, false), "/sweeps/a/./job.sh");
        assert_eq!(resolve("/abs/train.py", false, false), "/abs/train.py");
        // A bare name is a command on PATH first, then a file beside the batch file.
        assert_eq!(resolve("torchrun", true, true), "torchrun");
        assert_eq!(resolve("job.sh", false, true), "/sweeps/a/job.sh");
        assert_eq!(resolve("nothing", false, false), "nothing");
    }
}
