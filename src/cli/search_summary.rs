//! The rung table of a search batch: each run's metric at every rung it finished, best first
//! (furthest rung, then the metric in the search's mode), the winner marked. Printed at the
//! end of `queue` and `resume <batch-id>`, and by `status <batch-id>` while it runs.

use super::Global;
use super::common::{loss_text, print_json};
use super::{out, table};
use crate::record::RunRecord;
use crate::runid::RunId;
use crate::search::{AshaState, SearchSpec};
use serde_json::{Value, json};

/// The runs of a search, best first, with the winner's index in that order.
pub struct Ranked<'a> {
    pub spec: SearchSpec,
    pub runs: Vec<(&'a RunRecord, crate::search::StoredRun)>,
    pub winner: Option<usize>,
}

/// Ranks the batch's runs; `None` when the batch is not a search (or its records cannot be
/// read as one, which is reported).
pub fn rank(records: &[RunRecord]) -> Option<Ranked<'_>> {
    let parts = match crate::executor::search_run::parts(records)? {
        Ok(parts) => parts,
        Err(e) => {
            crate::ui::warn(&format!("the batch's search cannot be shown: {e}"));
            return None;
        }
    };
    let spec = parts.first()?.spec.clone();
    let stored: Vec<_> = parts.iter().map(|p| p.run.clone()).collect();
    let state = AshaState::from_stored(spec.clone(), &stored).ok();
    // The state's ranking at each rung, the furthest rung first; runs without a result last.
    let mut order: Vec<usize> = Vec::new();
    if let Some(state) = &state {
        for rung in (0..state.rungs().len()).rev() {
            for position in state.ranking(rung) {
                if !order.contains(&position) {
                    order.push(position);
                }
            }
        }
    }
    let mut positions: Vec<usize> = (0..parts.len()).map(|i| parts[i].run.position).collect();
    positions.sort();
    for position in positions {
        if !order.contains(&position) {
            order.push(position);
        }
    }
    let by_position = |position: usize| {
        parts
            .iter()
            .position(|p| p.run.position == position)
            .expect("every position has a run")
    };
    let runs: Vec<(&RunRecord, crate::search::StoredRun)> = order
        .iter()
        .map(|&p| {
            let i = by_position(p);
            (&records[i], parts[i].run.clone())
        })
        .collect();
    let winner = state
        .as_ref()
        .and_then(AshaState::best)
        .and_then(|best| order.iter().position(|&p| p == best));
    Some(Ranked { spec, runs, winner })
}

/// The rung table as text (`*` marks the winner, or the best so far).
pub fn table_text(ranked: &Ranked) -> String {
    let rungs = ranked.spec.rungs();
    let mut headers: Vec<String> = ["", "ID", "NAME", "STATUS", "STEP"]
        .map(String::from)
        .to_vec();
    headers.extend(rungs.iter().map(|b| format!("@{}", b.amount_text())));
    headers.push("PARAMS".into());
    let rows: Vec<Vec<String>> = ranked
        .runs
        .iter()
        .enumerate()
        .map(|(i, (rec, stored))| {
            let mut row = vec![
                if Some(i) == ranked.winner { "*" } else { "" }.to_string(),
                rec.id.to_string(),
                rec.name.clone(),
                rec.status().to_string(),
                rec.last_step.map_or("-".into(), |s| s.to_string()),
            ];
            for k in 0..rungs.len() {
                row.push(match stored.rungs.get(k) {
                    Some(result) => loss_text(result.metric),
                    None => "-".into(),
                });
            }
            row.push(
                rec.params
                    .as_ref()
                    .map(|p| Value::Object(p.clone()).to_string())
                    .unwrap_or_default(),
            );
            row
        })
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    format!(
        "search: {} (metric at each rung's budget; * best)\n{}",
        ranked.spec.summary(),
        table::render_with_status(&headers, &rows, table::colour())
    )
}

/// The summary at the end of a search.
pub fn print(global: &Global, batch_id: &RunId, records: &[RunRecord]) {
    let Some(ranked) = rank(records) else {
        return;
    };
    if global.json {
        let runs: Vec<Value> = ranked
            .runs
            .iter()
            .map(|(rec, stored)| {
                json!({
                    "id": rec.id,
                    "name": rec.name,
                    "status": rec.status(),
                    "rungs": stored.rungs,
                    "activeMs": rec.active_ms,
                    "lastStep": rec.last_step,
                    "params": rec.params,
                })
            })
            .collect();
        let winner = ranked.winner.map(|i| ranked.runs[i].0.id.clone());
        print_json(&json!({
            "batchId": batch_id,
            "search": ranked.spec,
            "winner": winner,
            "runs": runs,
        }));
        return;
    }
    out::line(&table_text(&ranked));
    if let Some(i) = ranked.winner {
        let (rec, stored) = &ranked.runs[i];
        let metric = stored.rungs.last().and_then(|r| r.metric);
        out::line(&format!(
            "winner: {} ({} {})",
            rec.id,
            ranked.spec.metric,
            loss_text(metric)
        ));
    }
}
