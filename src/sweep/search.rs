//! `search`: `{"method": "asha", "metric": "val_loss", "mode": "min",
//! "minBudget": {"steps": 100}, "maxBudget": {"steps": 2700}, "reductionFactor": 3, "seed": 7}`,
//! read with errors that say where, then checked by the search module's own rules.

use crate::search::{Budget, DEFAULT_REDUCTION_FACTOR, Method, Mode, SearchSpec};

use super::errors::{Ctx, SweepError, did_you_mean, key_at, quote};
use super::json::{self, Json};

const KEYS: &[&str] = &[
    "method",
    "metric",
    "mode",
    "minBudget",
    "maxBudget",
    "reductionFactor",
    "seed",
];
const EXAMPLE: &str = "{\"method\": \"asha\", \"metric\": \"val_loss\", \"mode\": \"min\", \"minBudget\": {\"steps\": 100}, \"maxBudget\": {\"steps\": 2700}}";
const BUDGET_EXAMPLE: &str = "{\"steps\": 100} or {\"minutes\": 2}";

/// Reads `search` (at `at`).
pub(crate) fn parse(ctx: Ctx, value: &Json, at: &str) -> Result<SearchSpec, SweepError> {
    let entries = json::object(ctx, value, at, EXAMPLE)?;
    let (mut method, mut metric, mut mode) = (None, None, None);
    let (mut min_budget, mut max_budget) = (None, None);
    let mut reduction_factor = DEFAULT_REDUCTION_FACTOR;
    let mut seed = None;
    for (key, value) in entries {
        let here = key_at(at, key);
        match key.as_str() {
            "method" => method = Some(parse_method(ctx, value, &here)?),
            "metric" => {
                let name = json::string(ctx, value, &here)?;
                if name.trim().is_empty() {
                    return Err(ctx.err(
                        &here,
                        "empty; name a metric the script reports, like \"val_loss\"",
                    ));
                }
                metric = Some(name.to_string());
            }
            "mode" => mode = Some(parse_mode(ctx, value, &here)?),
            "minBudget" => min_budget = Some(parse_budget(ctx, value, &here)?),
            "maxBudget" => max_budget = Some(parse_budget(ctx, value, &here)?),
            "reductionFactor" => reduction_factor = parse_reduction_factor(ctx, value, &here)?,
            "seed" => seed = Some(json::whole(ctx, value, &here, 0, u64::MAX, "a seed")?),
            _ => {
                let advice = match key.as_str() {
                    "eta" | "η" => " (did you mean \"reductionFactor\"?)".to_string(),
                    _ => did_you_mean(key, KEYS),
                };
                return Err(ctx.err(
                    &here,
                    format!("unknown key{advice}; search takes {}", KEYS.join(", ")),
                ));
            }
        }
    }
    let missing = |key: &str, example: &str| {
        ctx.err(at, format!("no {}; give it, like {example}", quote(key)))
    };
    let spec = SearchSpec {
        method: method.ok_or_else(|| missing("method", "\"method\": \"asha\""))?,
        metric: metric.ok_or_else(|| missing("metric", "\"metric\": \"val_loss\""))?,
        mode: mode.ok_or_else(|| missing("mode", "\"mode\": \"min\" (lower is better)"))?,
        min_budget: min_budget
            .ok_or_else(|| missing("minBudget", "\"minBudget\": {\"steps\": 100}"))?,
        max_budget: max_budget
            .ok_or_else(|| missing("maxBudget", "\"maxBudget\": {\"steps\": 2700}"))?,
        reduction_factor,
        seed,
    };
    spec.validate()
        .map_err(|e| ctx.err(&key_at(at, e.key), e.message))?;
    Ok(spec)
}

fn parse_method(ctx: Ctx, value: &Json, at: &str) -> Result<Method, SweepError> {
    match json::string(ctx, value, at)? {
        "asha" => Ok(Method::Asha),
        other => Err(ctx.err(
            at,
            format!(
                "unknown method {}; the one method is \"asha\" (asynchronous successive halving)",
                quote(other)
            ),
        )),
    }
}

fn parse_mode(ctx: Ctx, value: &Json, at: &str) -> Result<Mode, SweepError> {
    match json::string(ctx, value, at)? {
        "min" => Ok(Mode::Min),
        "max" => Ok(Mode::Max),
        other => Err(ctx.err(
            at,
            format!(
                "expected \"min\" (lower is better) or \"max\" (higher is better), got {}",
                quote(other)
            ),
        )),
    }
}

/// `{"steps": 100}` (a whole number of at least 1) or `{"minutes": 2}` (above 0).
fn parse_budget(ctx: Ctx, value: &Json, at: &str) -> Result<Budget, SweepError> {
    let entries = json::object(ctx, value, at, BUDGET_EXAMPLE)?;
    let [(unit, amount)] = entries else {
        return Err(ctx.err(
            at,
            format!(
                "expected one unit, like {BUDGET_EXAMPLE}, got {}",
                value.short()
            ),
        ));
    };
    let here = key_at(at, unit);
    match unit.as_str() {
        "steps" => json::whole(ctx, amount, &here, 1, u64::MAX, "a number of steps").map(Budget::Steps),
        "minutes" => {
            let minutes = match amount {
                Json::Number(n) => n.as_f64(),
                _ => None,
            };
            minutes
                .filter(|m| *m > 0.0)
                .and_then(Budget::minutes)
                .ok_or_else(|| {
                    ctx.err(
                        &here,
                        format!(
                            "expected a number of minutes of active time above 0 (at least 1 ms), {}",
                            amount.got()
                        ),
                    )
                })
        }
        _ => Err(ctx.err(
            &here,
            format!(
                "unknown unit{}; a budget is in \"steps\" (the reported step) or \"minutes\" (active time)",
                did_you_mean(unit, &["steps", "minutes"])
            ),
        )),
    }
}

fn parse_reduction_factor(ctx: Ctx, value: &Json, at: &str) -> Result<u32, SweepError> {
    if let Json::Number(n) = value
        && let Some(eta) = n.as_u64()
    {
        return match u32::try_from(eta) {
            Ok(eta) if eta >= 2 => Ok(eta),
            Ok(_) => Err(ctx.err(
                at,
                format!("must be at least 2, got {eta} (each rung keeps the best 1/η)"),
            )),
            Err(_) => Err(ctx.err(at, format!("too large, got {eta}"))),
        };
    }
    Err(ctx.err(
        at,
        format!(
            "expected a whole number of at least 2, like 3, {}",
            value.got()
        ),
    ))
}
