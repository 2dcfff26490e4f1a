//! `backprop list`: runs, newest first.

use super::Global;
use super::common::{CliError, duration_text, loss_text, open_store_refreshed, time_text};
use super::{out, table};
use crate::record::{RunRecord, Status};
use crate::store::{ListQuery, ListRow, query};
use clap::Args;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  backprop list\n  backprop list --status running --limit 5\n  backprop list --name 'lr0.1-*' --since 2d\n  backprop list --all\n  backprop list --json | python3 -m json.tool"
)]
pub struct ListArgs {
    /// Only runs with this status (queued, running, paused, completed, failed, timeboxed, stopped, rejected, lost)
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// At most this many runs, the newest [default: 50 on a terminal, all with --json]
    #[arg(long, value_name = "N", conflicts_with = "all")]
    pub limit: Option<usize>,
    /// Every run (no limit)
    #[arg(long)]
    pub all: bool,
    /// Only runs created in this last stretch of time (e.g. 2h, 3d) or since a date (2026-11-30)
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only runs whose name (or id) matches this glob, e.g. 'lr0.1-*'
    #[arg(long, value_name = "GLOB")]
    pub name: Option<String>,
}

/// The newest this many on a terminal, unless asked otherwise.
const TERMINAL_LIMIT: usize = 50;

pub fn execute(global: &Global, args: ListArgs) -> Result<i32, CliError> {
    let status: Option<Status> = match &args.status {
        Some(text) => Some(text.parse().map_err(|_| {
            CliError::usage(format!(
                "--status {text:?} is not a status; use one of queued, running, paused, completed, failed, timeboxed, stopped, rejected, lost"
            ))
        })?),
        None => None,
    };
    if let Some(glob) = &args.name {
        glob::Pattern::new(glob)
            .map_err(|e| CliError::usage(format!("--name {glob:?} is not a valid glob: {e}")))?;
    }
    let since_ms = match &args.since {
        Some(text) => Some(since(text, crate::clock::now_ms())?),
        None => None,
    };
    let on_terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let limit = match (args.limit, args.all || global.json || !on_terminal) {
        (Some(n), _) => Some(n),
        (None, true) => None,
        (None, false) => Some(TERMINAL_LIMIT),
    };
    let query = ListQuery {
        status,
        name: args.name.clone(),
        since_ms,
        limit: limit.map(|n| n + 1), // one more, to tell whether some were left out
        ..ListQuery::default()
    };
    let store = open_store_refreshed()?;
    let db = store.connect()?;
    if global.json {
        return print_records(&db, &ListQuery { limit, ..query });
    }
    let mut rows = query::list_rows(db.conn(), &query)?;
    let more = limit.is_some_and(|n| rows.len() > n);
    if let Some(n) = limit {
        rows.truncate(n);
    }
    if rows.is_empty() {
        if args.status.is_some() || args.name.is_some() || args.since.is_some() {
            out::line("no runs match");
        } else {
            out::line("no runs yet; start one with: backprop run examples/train.py");
        }
        return Ok(0);
    }
    let colour = table::colour();
    let mut headers = vec![
        "ID", "NAME", "STATUS", "ACTIVE", "STEP", "LOSS", "CKPTS", "STARTED",
    ];
    let on_slurm = rows.iter().any(|r| r.slurm.is_some());
    if on_slurm {
        headers.push("SLURM");
        with_where_and_why(&store, &mut rows);
    }
    let cells: Vec<Vec<String>> = rows.iter().map(|r| cells(r, on_slurm)).collect();
    out::line(&table::render_with_status(&headers, &cells, colour));
    if more && args.limit.is_none() {
        out::line(&format!(
            "(the newest {}; --limit N or --all for more)",
            rows.len()
        ));
    }
    Ok(0)
}

/// `list --json`: the records as one JSON array, streamed (a reader that goes away ends it
/// quietly).
fn print_records(db: &crate::store::Db, query: &ListQuery) -> Result<i32, CliError> {
    let mut first = true;
    let mut text = String::from("[");
    let streamed = query::each_record(db.conn(), query, |_, raw| {
        text.push_str(if first { "\n" } else { ",\n" });
        first = false;
        // The stored text, normalised (the same form as the record's own serialisation).
        let value: serde_json::Value = serde_json::from_str(raw).map_err(std::io::Error::other)?;
        text.push_str(&serde_json::to_string_pretty(&value).map_err(std::io::Error::other)?);
        // Written in pieces, so a long list is never held whole.
        if text.len() > 1 << 16 && !out::print(&std::mem::take(&mut text)) {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        Ok(())
    });
    match streamed {
        Err(crate::store::StoreError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            return Ok(0);
        }
        other => other?,
    }
    text.push_str("\n]\n");
    out::print(&text);
    Ok(0)
}

/// `--since`: a duration back from now (`2h`, `3d`) or a date/time (`2026-11-30`,
/// `2026-11-30 14:00:00`), as epoch ms.
fn since(text: &str, now_ms: u64) -> Result<u64, CliError> {
    if let Ok(back) = humantime::parse_duration(text.trim()) {
        return Ok(now_ms.saturating_sub(back.as_millis() as u64));
    }
    let stamp = if text.trim().len() == 10 {
        format!("{}T00:00:00Z", text.trim())
    } else {
        format!("{}Z", text.trim().replace(' ', "T"))
    };
    humantime::parse_rfc3339_weak(&stamp)
        .map(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64
        })
        .map_err(|_| {
            CliError::usage(format!(
                "--since {text:?} is neither a duration (2h, 3d) nor a date (2026-11-30 or 2026-11-30 14:00:00)"
            ))
        })
}

/// Why a pending job waits and where a running one runs are in the record only (not in the
/// list's index); the few live Slurm jobs are read whole.
fn with_where_and_why(store: &crate::store::Store, rows: &mut [ListRow]) {
    for row in rows.iter_mut() {
        let live = row
            .slurm
            .as_ref()
            .and_then(|j| j.state.as_deref())
            .is_some_and(|s| matches!(s, "PENDING" | "RUNNING"));
        if live
            && let Ok(id) = crate::runid::RunId::parse(&row.id)
            && let Ok(rec) = store.get(&id)
        {
            row.slurm = rec.slurm;
        }
    }
}

fn cells(r: &ListRow, with_slurm: bool) -> Vec<String> {
    let mut cells = vec![
        r.id.clone(),
        r.name.clone(),
        r.status.clone(),
        duration_text(r.active_ms),
        r.last_step
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into()),
        loss_text(r.last_loss),
        r.checkpoints.to_string(),
        r.start_time.map(time_text).unwrap_or_else(|| "-".into()),
    ];
    if with_slurm {
        cells.push(slurm_text(r.slurm.as_ref()));
    }
    cells
}

pub fn sort_newest_first(records: &mut [RunRecord]) {
    records.sort_by_key(|r| std::cmp::Reverse(r.created_time.max(r.start_time.unwrap_or(0))));
}

/// `1234 RUNNING on node7` or `1235 PENDING (Resources)` for a run handed to Slurm, marked
/// `(stale)` when Slurm could not be asked just now.
pub fn slurm_text(job: Option<&crate::record::SlurmJob>) -> String {
    let Some(job) = job else {
        return "-".into();
    };
    let state = job.state.as_deref().unwrap_or("?");
    let mut text = format!("{} {state}", job.job_id);
    match (state, &job.pending_reason, &job.nodes) {
        ("PENDING", Some(reason), _) if reason != "None" => text.push_str(&format!(" ({reason})")),
        ("RUNNING", _, Some(nodes)) if !nodes.is_empty() => text.push_str(&format!(" on {nodes}")),
        _ => {}
    }
    if crate::slurm::stale().is_some() {
        text.push_str(" (stale)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_back_or_a_date() {
        let now = 1_800_000_000_000;
        assert_eq!(since("2h", now).unwrap(), now - 7_200_000);
        assert_eq!(since("2026-11-30", now).unwrap(), 1_795_996_800_000);
        assert_eq!(
            since("2026-11-30 01:00:00", now).unwrap(),
            1_796_000_400_000
        );
        assert!(since("yesterday-ish", now).is_err());
    }

    #[test]
    fn the_slurm_column_says_why_a_job_waits_and_where_it_runs() {
        let job =
            |state: &str, reason: Option<&str>, nodes: Option<&str>| crate::record::SlurmJob {
                job_id: "7".into(),
                state: Some(state.into()),
                pending_reason: reason.map(str::to_string),
                nodes: nodes.map(str::to_string),
                ..Default::default()
            };
        let pending = job("PENDING", Some("PartitionTimeLimit"), None);
        assert_eq!(slurm_text(Some(&pending)), "7 PENDING (PartitionTimeLimit)");
        let running = job("RUNNING", None, Some("node3"));
        assert_eq!(slurm_text(Some(&running)), "7 RUNNING on node3");
        let done = job("COMPLETED", None, Some("node3"));
        assert_eq!(slurm_text(Some(&done)), "7 COMPLETED");
        assert_eq!(slurm_text(None), "-");
    }
}
