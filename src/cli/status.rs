//! `backprop status [run-id]`: the machine and its active runs, or one run whole.

use super::Global;
use super::common::{
    CliError, duration_text, find_run, load_config, loss_text, open_store_for_reading, print_json,
    time_text,
};
use super::table;
use crate::record::RunRecord;
use crate::resources::{self, Thresholds, Verdict};
use clap::Args;
use serde_json::json;

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  backprop status\n  backprop status <run-id> --json")]
pub struct StatusArgs {
    /// Show this run whole
    pub run_id: Option<String>,
}

pub fn execute(global: &Global, args: StatusArgs) -> Result<i32, CliError> {
    let store = open_store_for_reading()?;
    if let Some(id) = args.run_id {
        let rec = find_run(&store, &id)?;
        if global.json {
            print_json(&rec);
        } else {
            print!("{}", describe_run(&rec, &store.run_dir(&id)));
        }
        return Ok(0);
    }
    let config = load_config(global, Vec::new())?.config;
    let snapshot = resources::Sampler::default().sample();
    let limits = Thresholds {
        min_free_ram_gb: config.min_free_ram_gb,
        max_cpu_load: config.max_cpu_load,
    };
    let verdict = match resources::check(&snapshot, &limits) {
        Verdict::Go => None,
        Verdict::Wait(why) => Some(why),
    };
    let mut active: Vec<RunRecord> = store
        .read()?
        .records()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|r| r.status.is_active())
        .collect();
    super::list::sort_newest_first(&mut active);
    if global.json {
        print_json(&json!({
            "resources": snapshot,
            "gpus": [],
            "gpuProbe": {"kind": "none", "error": null},
            "startBlockedBy": verdict,
            "runs": active,
        }));
        return Ok(0);
    }
    println!(
        "CPU   load {:.2} per core ({} cores, maxCpuLoad {})",
        snapshot.load_per_core, snapshot.cpus, config.max_cpu_load
    );
    println!(
        "RAM   {:.1} GB free of {:.1} GB (minFreeRamGB {})",
        snapshot.free_ram_gb, snapshot.total_ram_gb, config.min_free_ram_gb
    );
    println!("GPUs  none (CPU-only runs)");
    if let Some(why) = verdict {
        println!("new runs would wait: {why}");
    }
    if active.is_empty() {
        println!("\nno active runs");
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = active
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.status.to_string(),
                duration_text(r.active_ms),
                r.last_step
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                loss_text(r.last_loss),
                r.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    println!(
        "\n{}",
        table::render(
            &["ID", "STATUS", "ACTIVE", "STEP", "LOSS", "WAITING FOR"],
            &rows
        )
    );
    Ok(0)
}

fn describe_run(rec: &RunRecord, run_dir: &std::path::Path) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: String| out.push_str(&format!("{name:<15} {value}\n"));
    field("id", rec.id.clone());
    field("name", rec.name.clone());
    field("status", rec.status.to_string());
    if let Some(reason) = &rec.reason {
        field("reason", reason.clone());
    }
    let mut command = rec.spec.interpreter.clone().into_iter().collect::<Vec<_>>();
    command.push(rec.spec.program.clone());
    command.extend(rec.spec.args.iter().cloned());
    field("command", command.join(" "));
    field("cwd", rec.spec.cwd.clone());
    field(
        "timebox",
        duration_text((rec.spec.options.max_run_seconds * 1000.0) as u64),
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
                a.status
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
