//! `backprop status [run-id]`: the machine and its active runs, or one run whole.

use super::Global;
use super::common::{
    CliError, duration_text, find_run, load_config, loss_text, open_store_refreshed, print_json,
    time_text,
};
use super::{out, table};
use crate::config::Config;
use crate::gpu::{ComputeMode, GpuInfo};
use crate::record::{RunRecord, Status};
use crate::resources::{self, GpuState, Snapshot, Thresholds, Verdict};
use crate::store::{Store, StoreError};
use clap::Args;
use serde_json::json;
use std::collections::HashMap;

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  backprop status\n  backprop status <run-id> --json")]
pub struct StatusArgs {
    /// Show this run whole, or a batch (its runs; a search's rung table)
    pub run_id: Option<crate::runid::RunId>,
}

/// A batch: its runs with their status and progress, and a search's rung table.
fn describe_batch(global: &Global, batch_id: &crate::runid::RunId, mut runs: Vec<RunRecord>) {
    runs.sort_by_key(|r| r.queue_seq);
    if global.json {
        let ranked = super::search_summary::rank(&runs);
        print_json(&json!({
            "batchId": batch_id,
            "search": ranked.as_ref().map(|r| &r.spec),
            "runs": runs,
        }));
        return;
    }
    let count = |wanted: &[Status]| runs.iter().filter(|r| wanted.contains(&r.status())).count();
    let mut text = format!(
        "batch {batch_id}: {} runs; {} running, {} queued, {} completed, {} pruned, {} other\n",
        runs.len(),
        count(&[Status::Running, Status::Paused]),
        count(&[Status::Queued]),
        count(&[Status::Completed]),
        count(&[Status::Pruned]),
        count(&[
            Status::Failed,
            Status::Timeboxed,
            Status::Stopped,
            Status::Rejected,
            Status::Lost
        ]),
    );
    match super::search_summary::rank(&runs) {
        Some(ranked) => text.push_str(&super::search_summary::table_text(&ranked)),
        None => {
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.status().to_string(),
                        duration_text(r.active_ms),
                        r.last_step.map_or("-".into(), |s| s.to_string()),
                        loss_text(r.last_loss),
                        r.reason.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            text.push_str(&table::render_with_status(
                &["ID", "STATUS", "ACTIVE", "STEP", "LOSS", "REASON"],
                &rows,
                table::colour(),
            ));
        }
    }
    out::line(text.trim_end());
}

pub fn execute(global: &Global, args: StatusArgs) -> Result<i32, CliError> {
    let store = open_store_refreshed()?;
    if let Some(id) = args.run_id {
        let rec = match find_run(&store, &id) {
            Ok(rec) => rec,
            Err(e) => {
                let batch = super::resume_batch::records(&store, &id)?;
                if batch.is_empty() {
                    return Err(e);
                }
                describe_batch(global, &id, batch);
                return Ok(0);
            }
        };
        if global.json {
            print_json(&rec);
        } else {
            out::print(&describe_run(&rec, &store.run_dir(&id)));
        }
        return Ok(0);
    }
    let config = load_config(global, Vec::new())?.config;
    let snapshot = resources::Sampler::new(
        config.gpu.probe.as_str(),
        config.gpu.probe_timeout.duration(),
    )
    .sample();
    if global.json {
        print_json(&status_json(&store, &config, &snapshot)?);
        return Ok(0);
    }
    let verdict = start_verdict(&config, &snapshot);
    let mut active: Vec<RunRecord> = store.active()?;
    super::list::sort_newest_first(&mut active);
    let holders = gpu_holders(&active);
    let mut text = format!(
        "CPU   load {:.2} per core ({} cores, maxCpuLoad {})\n",
        snapshot.load_per_core, snapshot.cpus, config.max_cpu_load
    );
    text.push_str(&format!(
        "RAM   {:.1} GB free of {:.1} GB (minFreeRamGB {})\n",
        snapshot.free_ram_gb, snapshot.total_ram_gb, config.min_free_ram_gb
    ));
    text.push_str(&format!("{}\n", store_text(&store)));
    text.push_str(&describe_gpus(&snapshot.gpu, &holders));
    if let Some(why) = verdict {
        text.push_str(&format!("new runs would wait: {why}\n"));
    }
    if active.is_empty() {
        text.push_str("\nno active runs\n");
        out::print(&text);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = active
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.status().to_string(),
                duration_text(r.active_ms),
                r.last_step
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                loss_text(r.last_loss),
                r.gpu_lease
                    .as_ref()
                    .map(|l| gpu_list(&l.gpus))
                    .unwrap_or_else(|| "-".into()),
                reason_text(r).unwrap_or_default(),
            ]
        })
        .collect();
    text.push('\n');
    text.push_str(&table::render_with_status(
        &[
            "ID",
            "STATUS",
            "ACTIVE",
            "STEP",
            "LOSS",
            "GPUS",
            "WAITING FOR / PAUSED BY",
        ],
        &rows,
        table::colour(),
    ));
    text.push('\n');
    out::print(&text);
    Ok(0)
}

/// Why a new run would wait now, if it would.
fn start_verdict(config: &Config, snapshot: &Snapshot) -> Option<String> {
    let limits = Thresholds {
        min_free_ram_gb: config.min_free_ram_gb,
        max_cpu_load: config.max_cpu_load,
    };
    match resources::check(snapshot, &limits) {
        Verdict::Go => None,
        Verdict::Wait(why) => Some(why),
    }
}

/// What `status --json` prints (and the dashboard's `/api/status` serves): CPU, RAM, the
/// GPUs each with the runs holding them, the probe, why a start would wait, the store, and
/// the active runs newest first.
pub(crate) fn status_json(
    store: &Store,
    config: &Config,
    snapshot: &Snapshot,
) -> Result<serde_json::Value, StoreError> {
    let mut active: Vec<RunRecord> = store.active()?;
    super::list::sort_newest_first(&mut active);
    let holders = gpu_holders(&active);
    let gpus: Vec<_> = snapshot
        .gpu
        .gpus
        .iter()
        .map(|g| {
            let mut value = serde_json::to_value(g).expect("serialisable");
            value["runs"] = json!(holders.get(&g.index).cloned().unwrap_or_default());
            value
        })
        .collect();
    Ok(json!({
        "cpu": {"loadPerCore": snapshot.load_per_core, "cpus": snapshot.cpus, "maxCpuLoad": config.max_cpu_load},
        "ram": {"freeGB": snapshot.free_ram_gb, "totalGB": snapshot.total_ram_gb, "minFreeRamGB": config.min_free_ram_gb},
        "resourceError": snapshot.error,
        "gpus": gpus,
        "gpuProcesses": snapshot.gpu.processes,
        "gpuProbe": {"kind": snapshot.gpu.probe, "error": snapshot.gpu.error, "note": snapshot.gpu.note, "takenMs": snapshot.gpu.taken_ms, "visibleDevicesNote": visible_note(&snapshot.gpu)},
        "startBlockedBy": start_verdict(config, snapshot),
        "store": store_json(store),
        "runs": active,
    }))
}

/// Why a run is where it is. A queued run always has an answer: before its process has
/// asked for a start (or after `resume` claimed it) no reason is stored yet.
fn reason_text(rec: &RunRecord) -> Option<String> {
    match (&rec.reason, rec.status()) {
        (Some(reason), _) => Some(reason.clone()),
        (None, Status::Queued) if rec.slurm.is_some() => Some("submitted to Slurm".into()),
        (None, Status::Queued) => Some("waiting for its process to ask for a start".into()),
        (None, _) => None,
    }
}

/// Which active runs hold (or have reserved) each GPU.
pub(crate) fn gpu_holders(active: &[RunRecord]) -> HashMap<u32, Vec<String>> {
    let mut holders: HashMap<u32, Vec<String>> = HashMap::new();
    for rec in active {
        if let Some(lease) = &rec.gpu_lease {
            for gpu in &lease.gpus {
                holders
                    .entry(*gpu)
                    .or_default()
                    .push(format!("{} ({} MB reserved)", rec.id, lease.reserved_mb));
            }
        }
    }
    holders
}

fn gpu_list(gpus: &[u32]) -> String {
    gpus.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Entries of an inherited CUDA_VISIBLE_DEVICES that no probed device matches: runs get
/// them as given (a MIG id the probe cannot see, a GPU hidden from it).
fn visible_note(gpu: &GpuState) -> Option<String> {
    let inherited = std::env::var("CUDA_VISIBLE_DEVICES").ok()?;
    let visible = crate::policy::Visible::parse(&inherited);
    let unmatched: Vec<&str> = visible
        .entries()
        .filter(|entry| {
            let one = crate::policy::Visible::parse(entry);
            !gpu.gpus.iter().any(|g| one.entry_for(g).is_some())
        })
        .collect();
    (!unmatched.is_empty() && gpu.error.is_none()).then(|| {
        format!(
            "CUDA_VISIBLE_DEVICES entries {} match no GPU the probe sees; runs are handed them as given",
            unmatched.join(", ")
        )
    })
}

fn describe_gpus(gpu: &GpuState, holders: &HashMap<u32, Vec<String>>) -> String {
    let mut out = String::new();
    if let Some(note) = visible_note(gpu) {
        out.push_str(&format!("note  {note}\n"));
    }
    let probe = gpu.probe.as_str();
    if gpu.gpus.is_empty() && gpu.error.is_none() {
        out.push_str(&format!(
            "GPUs  none found (probe: {probe}); runs use the CPU\n"
        ));
    } else {
        out.push_str(&format!("GPUs  (probe: {probe})\n"));
    }
    let known = |v: Option<f64>, unit: &str| {
        v.map(|v| format!("{v:.0}{unit}"))
            .unwrap_or_else(|| "N/A".into())
    };
    let gb = |mb: Option<u64>| {
        mb.map(|m| format!("{:.1}", m as f64 / 1024.0))
            .unwrap_or_else(|| "N/A".into())
    };
    let rows: Vec<Vec<String>> = gpu
        .gpus
        .iter()
        .map(|g| {
            let mode = match g.compute_mode {
                ComputeMode::ExclusiveProcess | ComputeMode::Prohibited => {
                    format!(" [{}]", g.compute_mode)
                }
                ComputeMode::Default | ComputeMode::Unknown => String::new(),
            };
            vec![
                gpu_label(g),
                format!("{}{mode}", g.name),
                format!("{} / {} GB", gb(g.memory_used_mb), gb(g.memory_total_mb)),
                known(g.temperature_c, "°C"),
                known(g.utilization_pct, "%"),
                holders
                    .get(&g.index)
                    .map(|h| h.join(", "))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        let table = table::render(
            &["#", "NAME", "USED / TOTAL", "TEMP", "UTIL", "RUNS"],
            &rows,
        );
        for line in table.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    for g in &gpu.gpus {
        if let Some(failure) = &g.failure {
            out.push_str(&format!("  GPU {} unusable: {failure}\n", gpu_label(g)));
        }
    }
    if let Some(error) = &gpu.error {
        out.push_str(&format!("GPU probe error: {error}\n"));
    }
    if let Some(note) = &gpu.note
        && (gpu.probe != crate::gpu::ProbeKind::None || !gpu.gpus.is_empty() || gpu.error.is_some())
    {
        out.push_str(&format!("GPU probe note: {note}\n"));
    }
    out
}

/// "3" for a GPU, "0:1" for MIG instance 1 of GPU 0.
fn gpu_label(g: &GpuInfo) -> String {
    match (g.parent_index, g.mig_index) {
        (Some(parent), Some(mig)) => format!("{parent}:{mig}"),
        _ => g.index.to_string(),
    }
}

fn describe_run(rec: &RunRecord, run_dir: &std::path::Path) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: String| out.push_str(&format!("{name:<15} {value}\n"));
    field("id", rec.id.to_string());
    field("name", rec.name.clone());
    field("status", rec.status().to_string());
    if let Some(reason) = reason_text(rec) {
        field("reason", reason);
    }
    let mut command = rec.spec.interpreter.clone().into_iter().collect::<Vec<_>>();
    command.push(rec.spec.program.clone());
    command.extend(rec.spec.args.iter().cloned());
    field("command", command.join(" "));
    field("cwd", rec.spec.cwd.clone());
    if rec.slurm.is_some() {
        field("slurm job", super::list::slurm_text(rec.slurm.as_ref()));
    }
    field(
        "timebox",
        duration_text(rec.spec.options.max_run.as_millis() as u64),
    );
    field("active", duration_text(rec.active_ms));
    field(
        "step",
        rec.last_step
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into()),
    );
    field("loss", loss_text(rec.last_loss));
    for (name, value) in &rec.metrics {
        field(
            &format!("  {name}"),
            value
                .map(|v| v.to_string())
                .unwrap_or_else(|| "NaN/inf".into()),
        );
    }
    field("checkpoints", rec.checkpoints.len().to_string());
    if let Some(last) = &rec.last_checkpoint {
        field("last checkpoint", last.clone());
    }
    field("run dir", run_dir.display().to_string());
    out.push_str("\nattempts:\n");
    let rows: Vec<Vec<String>> = rec
        .attempts
        .iter()
        .map(|a| {
            vec![
                a.number.to_string(),
                a.status()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                a.reason.clone().unwrap_or_default(),
                a.exit_code
                    .map(|c| c.to_string())
                    .or(a.signal.map(|s| format!("signal {s}")))
                    .unwrap_or_else(|| "-".into()),
                a.start_time.map(time_text).unwrap_or_else(|| "-".into()),
                duration_text(a.active_ms),
                a.resumed_from.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    out.push_str(&table::render(
        &[
            "#",
            "STATUS",
            "REASON",
            "EXIT",
            "STARTED",
            "ACTIVE",
            "RESUMED FROM",
        ],
        &rows,
    ));
    out.push('\n');
    out
}

/// How the store keeps its transactions, for `status` and `doctor`.
pub fn journal_text(journal: &crate::store::Journal) -> String {
    match journal {
        crate::store::Journal::Wal => "WAL".to_string(),
        crate::store::Journal::Rollback(fs) => format!(
            "rollback journal: the home is on a network filesystem ({fs}), where WAL is unsafe"
        ),
        crate::store::Journal::InMemory => "read-only copy of an old JSON store".to_string(),
    }
}

fn store_text(store: &crate::store::Store) -> String {
    let Ok(db) = store.connect() else {
        return "STORE cannot be opened".to_string();
    };
    let runs = crate::store::query::count(db.conn()).unwrap_or(0);
    let mut text = format!(
        "STORE {} ({runs} runs, {})",
        store.db_path().display(),
        journal_text(&db.journal)
    );
    if let Some(holder) = crate::store::holder::current(store.home()) {
        text.push_str(&format!("\n      locked by {holder}"));
    }
    text
}

fn store_json(store: &crate::store::Store) -> serde_json::Value {
    let db = store.connect().ok();
    json!({
        "path": store.db_path(),
        "runs": db.as_ref().and_then(|db| crate::store::query::count(db.conn()).ok()),
        "journal": db.as_ref().map(|db| journal_text(&db.journal)),
        "lockedBy": crate::store::holder::current(store.home()).map(|h| json!({
            "pid": h.pid, "command": h.command, "stopped": h.stopped,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RunSpec, SlurmJob};
    use crate::runid::RunId;

    fn queued() -> RunRecord {
        RunRecord::new(
            RunId::parse("r").unwrap(),
            "r".into(),
            RunSpec::default(),
            1,
        )
    }

    #[test]
    fn a_queued_run_always_says_why() {
        let mut rec = queued();
        assert_eq!(
            reason_text(&rec).as_deref(),
            Some("waiting for its process to ask for a start")
        );
        rec.slurm = Some(SlurmJob::default());
        assert_eq!(reason_text(&rec).as_deref(), Some("submitted to Slurm"));
        rec.reason = Some("waiting for a slot".into());
        assert_eq!(reason_text(&rec).as_deref(), Some("waiting for a slot"));
    }
}
