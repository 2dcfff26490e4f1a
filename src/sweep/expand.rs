//! From a sweep file's JSON (or the config's `experiments`) to the runs of a batch.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::config::{Minutes, Override, all_keys};

use super::errors::{Ctx, SweepError, closest, index_at, key_at, quote};
use super::json::{self, Json, Params};
use super::template::{ARGS, Template, args_pairs, value_text};
use super::{Batch, MAX_RUNS, PlannedRun, sample, search};

/// Keys a run takes (at the top level they are the defaults of every run).
const RUN_KEYS: &[&str] = &["script", "args", "name", "env", "cwd", "params"];
/// Keys only the top level of a sweep file takes.
const BATCH_KEYS: &[&str] = &[
    "grid",
    "random",
    "runs",
    "untilDone",
    "rounds",
    "maxTotalMinutes",
    "search",
];
/// The config key that is itself a list of runs; not allowed inside one.
const EXPERIMENTS: &str = "experiments";

const SWEEP_EXAMPLE: &str = "{\"script\": \"train.py\", \"grid\": {\"lr\": [0.1, 0.01]}}";
const RUN_EXAMPLE: &str = "{\"script\": \"train.py\", \"params\": {\"lr\": 0.1}}";

/// A value and where it was written (`args[2]`, `runs[1].name`).
struct Located<T> {
    value: T,
    at: String,
}

/// What the top level or one `runs` entry says about a run; `None` = not given.
#[derive(Default)]
struct Def {
    script: Option<Located<String>>,
    args: Option<Vec<Located<Template>>>,
    name: Option<Located<Template>>,
    env: Option<Vec<(String, Located<Template>)>>,
    cwd: Option<String>,
    params: Params,
    overrides: Vec<Override>,
}

/// A sweep file's top-level object.
pub(crate) fn parse_file(value: &Json, origin: &str) -> Result<Batch, SweepError> {
    let ctx = Ctx {
        origin,
        list: "runs",
    };
    if !matches!(value, Json::Object(_)) {
        return Err(ctx.err(
            "",
            format!(
                "a sweep file holds one JSON object like {SWEEP_EXAMPLE}, not {}",
                value.kind()
            ),
        ));
    }
    let entries = json::object(ctx, value, "", SWEEP_EXAMPLE)?;

    let mut top = Def::default();
    let (mut grid, mut random, mut list) = (None, None, None);
    let mut until_done = false;
    let mut rounds = None;
    let mut max_total = None;
    let mut search = None;
    for (key, value) in entries {
        if def_key(ctx, &mut top, key, value, "", origin)? {
            continue;
        }
        match key.as_str() {
            "grid" => grid = Some(value),
            "random" => random = Some(value),
            "runs" => list = Some(value),
            "untilDone" => match value {
                Json::Bool(b) => until_done = *b,
                _ => {
                    return Err(ctx.err(key, format!("expected true or false, {}", value.got())));
                }
            },
            "rounds" => {
                let n = json::whole(ctx, value, key, 1, u32::MAX as u64, "the number of rounds")?;
                rounds = u32::try_from(n).ok();
            }
            "maxTotalMinutes" => max_total = Some(total_minutes(ctx, value, key)?),
            "search" => search = Some(search::parse(ctx, value, key)?),
            _ => return Err(unknown_key(ctx, key, "", &[RUN_KEYS, BATCH_KEYS].concat())),
        }
    }

    let runs = match (grid, random, list) {
        (Some(_), Some(_), _) => {
            return Err(ctx.err(
                "",
                "\"grid\" and \"random\" cannot both be given; use one of them per sweep file",
            ));
        }
        (Some(_), None, Some(_)) | (None, Some(_), Some(_)) => {
            let other = if grid.is_some() { "grid" } else { "random" };
            return Err(ctx.err(
                "runs",
                format!(
                    "cannot be combined with \"{other}\"; list every run under \"runs\", or drop \"runs\" and let \"{other}\" make them"
                ),
            ));
        }
        (None, None, Some(list)) => {
            let items = json::list(ctx, list, "runs", &format!("[{RUN_EXAMPLE}]"))?;
            runs_of_list(ctx, &top, items)?
        }
        (Some(grid), None, None) => {
            let (sets, varying) = grid_params(ctx, grid, &top.params)?;
            runs_of_sets(ctx, &top, sets, &varying)?
        }
        (None, Some(random), None) => {
            let fixed = &top.params;
            let check = |name: &str, at: &str| {
                param_name(ctx, name, at)?;
                not_fixed(ctx, name, at, fixed)
            };
            let spec = sample::parse(ctx, random, "random", &check)?;
            let varying: Vec<String> = spec.params.iter().map(|(n, _, _)| n.clone()).collect();
            let sets = sample::sample(&spec)
                .into_iter()
                .map(|drawn| fixed.iter().cloned().chain(drawn).collect())
                .collect();
            runs_of_sets(ctx, &top, sets, &varying)?
        }
        (None, None, None) => {
            let run = build(ctx, &top, None, top.params.clone(), None)?;
            vec![run]
        }
    };

    Ok(Batch {
        runs,
        overrides: top.overrides,
        until_done,
        rounds,
        max_total,
        search,
    })
}

/// The config's `experiments`: `runs` with nothing at the top level.
pub(crate) fn parse_experiments(items: &[Json], origin: &str) -> Result<Batch, SweepError> {
    let ctx = Ctx {
        origin,
        list: EXPERIMENTS,
    };
    let runs = runs_of_list(ctx, &Def::default(), items)?;
    Ok(Batch {
        runs,
        overrides: Vec::new(),
        until_done: false,
        rounds: None,
        max_total: None,
        search: None,
    })
}

/// Reads `key` into `def` when it is something a run can have (a run key or a config key);
/// `Ok(false)` when it is not. `base` is where `def` is written, `origin` names its overrides.
fn def_key(
    ctx: Ctx,
    def: &mut Def,
    key: &str,
    value: &Json,
    base: &str,
    origin: &str,
) -> Result<bool, SweepError> {
    let at = key_at(base, key);
    match key {
        "script" => {
            let script = json::string(ctx, value, &at)?;
            if script.trim().is_empty() {
                return Err(ctx.err(&at, "empty; name the script to run, like \"train.py\""));
            }
            def.script = Some(Located {
                value: script.to_string(),
                at,
            });
        }
        "args" => {
            let items = json::list(ctx, value, &at, "[\"--lr\", \"{lr}\"]")?;
            let mut args = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let here = index_at(&at, i);
                let text = json::string(ctx, item, &here)?;
                let template = Template::parse(text).map_err(|m| ctx.err(&here, m))?;
                if template.mentions_args() && !template.is_args() {
                    return Err(ctx.err(
                        &here,
                        format!(
                            "{{args}} must be a whole element of args on its own, like [\"--epochs\", \"3\", \"{{args}}\"], not part of {}",
                            quote(text)
                        ),
                    ));
                }
                args.push(Located {
                    value: template,
                    at: here,
                });
            }
            def.args = Some(args);
        }
        "name" => {
            let text = json::string(ctx, value, &at)?;
            def.name = Some(Located {
                value: text_template(ctx, text, &at)?,
                at,
            });
        }
        "env" => {
            let entries = json::object(ctx, value, &at, "{\"WANDB_MODE\": \"offline\"}")?;
            let mut env = Vec::new();
            for (name, value) in entries {
                let here = key_at(&at, name);
                if name.is_empty() || name.contains(['=', '\0']) {
                    return Err(ctx.err(
                        &at,
                        format!(
                            "{} is not an environment variable name (not empty, no = or NUL)",
                            quote(name)
                        ),
                    ));
                }
                let text = json::string(ctx, value, &here)?;
                let template = text_template(ctx, text, &here)?;
                env.push((
                    name.clone(),
                    Located {
                        value: template,
                        at: here,
                    },
                ));
            }
            def.env = Some(env);
        }
        "cwd" => {
            let cwd = json::string(ctx, value, &at)?;
            if cwd.is_empty() {
                return Err(ctx.err(&at, "empty; give a directory, or leave \"cwd\" out"));
            }
            def.cwd = Some(cwd.to_string());
        }
        "params" => {
            let entries = json::object(ctx, value, &at, "{\"epochs\": 10}")?;
            for (name, value) in entries {
                let here = key_at(&at, name);
                param_name(ctx, name, &here)?;
                json::scalar(ctx, value, &here)?;
                def.params.push((name.clone(), value.clone()));
            }
        }
        EXPERIMENTS => {
            return Err(ctx.err(
                &at,
                "a list of runs cannot be given here; list runs under \"runs\" of a sweep file or \"experiments\" of backprop.config.json",
            ));
        }
        _ if key.contains('.') && all_keys().contains(&key) => {
            let (section, leaf) = key.split_once('.').unwrap_or((key, ""));
            return Err(ctx.err(
                &at,
                format!("write it nested: {{\"{section}\": {{\"{leaf}\": …}}}}"),
            ));
        }
        _ if all_keys().contains(&key) => def.overrides.push(Override {
            origin: origin.to_string(),
            key: key.to_string(),
            value: value.to_value(),
        }),
        _ if !section_leaves(key).is_empty() => {
            let leaves = section_leaves(key);
            let example = format!("{{\"{}\": …}}", leaves[0]);
            for (leaf, value) in json::object(ctx, value, &at, &example)? {
                if !leaves.contains(&leaf.as_str()) {
                    let advice = match closest(leaf, &leaves) {
                        Some(found) => format!(" (did you mean {}?)", quote(found)),
                        None => format!("; {key} takes {}", leaves.join(", ")),
                    };
                    return Err(ctx.err(&key_at(&at, leaf), format!("unknown key{advice}")));
                }
                def.overrides.push(Override {
                    origin: origin.to_string(),
                    key: format!("{key}.{leaf}"),
                    value: value.to_value(),
                });
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// A template for `name` or an `env` value, where `{args}` has no meaning.
fn text_template(ctx: Ctx, text: &str, at: &str) -> Result<Template, SweepError> {
    let template = Template::parse(text).map_err(|m| ctx.err(at, m))?;
    if template.mentions_args() {
        return Err(ctx.err(
            at,
            "{args} only works as a whole element of \"args\"; name the params here, like \"lr{lr}\"",
        ));
    }
    Ok(template)
}

/// The keys of a config section (`gpu` → `maxTempC`, ...); empty when `name` is none.
fn section_leaves(name: &str) -> Vec<&'static str> {
    all_keys()
        .into_iter()
        .filter_map(|k| k.strip_prefix(name)?.strip_prefix('.'))
        .collect()
}

/// The error for a key that is neither one of `own` nor a config key, with the closest match.
fn unknown_key(ctx: Ctx, key: &str, base: &str, own: &[&str]) -> SweepError {
    let keys = all_keys();
    let mut candidates: Vec<&str> = own.to_vec();
    for k in &keys {
        let first = k.split('.').next().unwrap_or(k);
        if first != EXPERIMENTS && !candidates.contains(&first) {
            candidates.push(first);
        }
    }
    let nested: Vec<&str> = keys.iter().filter(|k| k.contains('.')).copied().collect();
    let leaves: Vec<&str> = nested
        .iter()
        .filter_map(|k| k.split_once('.').map(|(_, leaf)| leaf))
        .collect();
    let advice = if let Some(found) = closest(key, &candidates) {
        format!(" (did you mean {}?)", quote(found))
    } else if let Some(leaf) = closest(key, &leaves)
        && let Some(full) = nested.iter().find(|k| k.ends_with(&format!(".{leaf}")))
    {
        let (section, leaf) = full.split_once('.').unwrap_or((full, leaf));
        format!(" (did you mean {{\"{section}\": {{\"{leaf}\": …}}}}?)")
    } else {
        let what = if base.is_empty() {
            "a sweep file"
        } else {
            "a run"
        };
        format!(
            "; {what} takes {} and config keys (see backprop.config.example.json)",
            own.join(", ")
        )
    };
    ctx.err(&key_at(base, key), format!("unknown key{advice}"))
}

/// A param's name: not empty, not `args`, no braces.
fn param_name(ctx: Ctx, name: &str, at: &str) -> Result<(), SweepError> {
    if name.is_empty() {
        return Err(ctx.err(at, "a param needs a name"));
    }
    if name == ARGS {
        return Err(ctx.err(
            at,
            "\"args\" is reserved for the {args} template; rename this param",
        ));
    }
    if name.contains(['{', '}']) {
        return Err(ctx.err(at, "a param's name cannot hold { or }"));
    }
    Ok(())
}

/// A grid or random param must not also be one of the shared `params`.
fn not_fixed(ctx: Ctx, name: &str, at: &str, fixed: &Params) -> Result<(), SweepError> {
    if fixed.iter().any(|(k, _)| k == name) {
        return Err(ctx.err(at, "also given in \"params\"; give each param in one place"));
    }
    Ok(())
}

/// `maxTotalMinutes`: a number of minutes above 0 or a duration string.
fn total_minutes(ctx: Ctx, value: &Json, at: &str) -> Result<Duration, SweepError> {
    let expected = "a number of minutes above 0 or a duration like \"30m\" or \"2h\"";
    let minutes = match value {
        Json::Number(n) => {
            let m = n.as_f64().unwrap_or(0.0);
            if m <= 0.0 {
                return Err(ctx.err(at, format!("must be above 0, got {value}")));
            }
            Minutes::from_minutes(m).map_err(|reason| ctx.err(at, reason))?
        }
        Json::String(s) => s
            .parse::<Minutes>()
            .map_err(|_| ctx.err(at, format!("expected {expected}, got {value}")))?,
        _ => return Err(ctx.err(at, format!("expected {expected}, {}", value.got()))),
    };
    if minutes.duration().is_zero() {
        return Err(ctx.err(at, format!("must be above 0, got {value}")));
    }
    Ok(minutes.duration())
}

/// Every combination of the grid's values after the shared params, the first grid param
/// varying slowest; and the grid's param names.
fn grid_params(
    ctx: Ctx,
    grid: &Json,
    fixed: &Params,
) -> Result<(Vec<Params>, Vec<String>), SweepError> {
    let entries = json::object(ctx, grid, "grid", "{\"lr\": [0.1, 0.01], \"bs\": [32, 64]}")?;
    if entries.is_empty() {
        return Err(ctx.err(
            "grid",
            "no params; give at least one, like {\"lr\": [0.1, 0.01]}",
        ));
    }
    let mut axes: Vec<(&str, &[Json])> = Vec::new();
    for (name, values) in entries {
        let at = key_at("grid", name);
        param_name(ctx, name, &at)?;
        not_fixed(ctx, name, &at, fixed)?;
        let Json::Array(values) = values else {
            return Err(ctx.err(
                &at,
                format!(
                    "expected a list of values like [0.1, 0.01], {} (for one fixed value use \"params\")",
                    values.got()
                ),
            ));
        };
        if values.is_empty() {
            return Err(ctx.err(&at, "empty list; give at least one value"));
        }
        for (i, value) in values.iter().enumerate() {
            json::scalar(ctx, value, &index_at(&at, i))?;
        }
        axes.push((name, values));
    }
    let total = axes.iter().fold(1u128, |n, (_, values)| {
        n.saturating_mul(values.len() as u128)
    });
    if total > MAX_RUNS as u128 {
        return Err(ctx.err(
            "",
            format!(
                "grid expands to {total} runs; the limit is {MAX_RUNS} (use fewer values, split the sweep, or sample with \"random\")"
            ),
        ));
    }
    let mut sets = Vec::with_capacity(total as usize);
    let mut index = vec![0usize; axes.len()];
    for _ in 0..total {
        let mut set = fixed.clone();
        for ((name, values), i) in axes.iter().zip(&index) {
            set.push((name.to_string(), values[*i].clone()));
        }
        sets.push(set);
        // The odometer: the last axis turns fastest.
        for (slot, (_, values)) in index.iter_mut().zip(&axes).rev() {
            *slot += 1;
            if *slot < values.len() {
                break;
            }
            *slot = 0;
        }
    }
    let names = axes.iter().map(|(name, _)| name.to_string()).collect();
    Ok((sets, names))
}

/// One run per param set (grid or random), all from the top level.
fn runs_of_sets(
    ctx: Ctx,
    top: &Def,
    sets: Vec<Params>,
    varying: &[String],
) -> Result<Vec<PlannedRun>, SweepError> {
    let runs = sets
        .into_iter()
        .map(|params| build(ctx, top, None, params, None))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some((name, indices)) = first_duplicate(&runs) {
        let shown: Vec<String> = indices.iter().map(|i| format!("#{}", i + 1)).collect();
        let example: Vec<String> = varying.iter().map(|p| format!("{p}{{{p}}}")).collect();
        let at = top.name.as_ref().map_or("", |n| n.at.as_str());
        return Err(ctx.err(
            at,
            format!(
                "duplicate run name {} (runs {} of {}); put every param that varies in \"name\", like {}",
                quote(name),
                join_and(&shown),
                runs.len(),
                quote(&example.join("-"))
            ),
        ));
    }
    Ok(runs)
}

/// One run per entry of `runs` (or `experiments`), each inheriting from the top level.
fn runs_of_list(ctx: Ctx, top: &Def, items: &[Json]) -> Result<Vec<PlannedRun>, SweepError> {
    if items.is_empty() {
        return Err(ctx.err(
            ctx.list,
            format!("empty list; give at least one run, like [{RUN_EXAMPLE}]"),
        ));
    }
    let mut runs = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let label = index_at(ctx.list, i);
        let entry = parse_entry(ctx, item, &label)?;
        let mut params = top.params.clone();
        for (name, value) in &entry.params {
            match params.iter_mut().find(|(k, _)| k == name) {
                Some(slot) => slot.1 = value.clone(),
                None => params.push((name.clone(), value.clone())),
            }
        }
        runs.push(build(ctx, top, Some(&entry), params, Some(&label))?);
    }
    if let Some((name, indices)) = first_duplicate(&runs) {
        let shown: Vec<String> = indices.iter().map(|i| index_at(ctx.list, *i)).collect();
        return Err(ctx.err(
            "",
            format!(
                "duplicate run name {} ({}); give each run its own \"name\"",
                quote(name),
                join_and(&shown)
            ),
        ));
    }
    Ok(runs)
}

/// One entry of `runs`: run keys and config keys (this run's overrides).
fn parse_entry(ctx: Ctx, item: &Json, label: &str) -> Result<Def, SweepError> {
    let entries = json::object(ctx, item, label, RUN_EXAMPLE)?;
    let origin = format!("{} {label}", ctx.origin);
    let mut def = Def::default();
    for (key, value) in entries {
        if def_key(ctx, &mut def, key, value, label, &origin)? {
            continue;
        }
        let at = key_at(label, key);
        let message = match key.as_str() {
            "grid" | "random" => {
                "a run cannot hold a grid or random samples; give this run's values in \"params\", or make a sweep file with a top-level grid/random"
            }
            "runs" => "runs cannot hold runs; list them all in one list",
            "untilDone" | "rounds" | "maxTotalMinutes" | "search" => {
                "applies to the whole batch; set it at the top level of a sweep file"
            }
            _ => return Err(unknown_key(ctx, key, label, RUN_KEYS)),
        };
        return Err(ctx.err(&at, message));
    }
    Ok(def)
}

/// One run: the entry's values, else the top level's, with templates filled in from `params`.
/// `label` is the entry (`runs[1]`) when the run comes from a list.
fn build(
    ctx: Ctx,
    top: &Def,
    entry: Option<&Def>,
    params: Params,
    label: Option<&str>,
) -> Result<PlannedRun, SweepError> {
    let unknown = |at: &str, name: String| {
        let names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
        let listed = if names.is_empty() {
            "there are no params: add \"params\", \"grid\" or \"random\"".to_string()
        } else {
            format!("params: {}", names.join(", "))
        };
        let inherited = label.filter(|l| !at.starts_with(&format!("{l}.")));
        match inherited {
            Some(l) => ctx.err(
                at,
                format!("unknown template {{{name}}} for {l} ({listed})"),
            ),
            None => ctx.err(at, format!("unknown template {{{name}}} ({listed})")),
        }
    };

    let Some(script) = entry
        .and_then(|e| e.script.as_ref())
        .or(top.script.as_ref())
    else {
        let hint = if label.is_some() && ctx.list == "runs" {
            "give one here or at the top level"
        } else {
            "name the script to run, like \"script\": \"train.py\""
        };
        return Err(ctx.err(label.unwrap_or(""), format!("no \"script\"; {hint}")));
    };

    let mut args = Vec::new();
    if let Some(templates) = entry.and_then(|e| e.args.as_ref()).or(top.args.as_ref()) {
        for arg in templates {
            if arg.value.is_args() {
                args.extend(args_pairs(&params));
            } else {
                args.push(arg.value.render(&params).map_err(|n| unknown(&arg.at, n))?);
            }
        }
    }

    let name = match entry.and_then(|e| e.name.as_ref()).or(top.name.as_ref()) {
        Some(template) => {
            let name = template
                .value
                .render(&params)
                .map_err(|n| unknown(&template.at, n))?;
            if name.trim().is_empty() {
                let whose = label.map(|l| format!(" for {l}")).unwrap_or_default();
                return Err(ctx.err(
                    &template.at,
                    format!("gives an empty run name{whose}; a name needs some text"),
                ));
            }
            name
        }
        None => default_name(&script.value, &params),
    };

    let mut env = BTreeMap::new();
    if let Some(vars) = entry.and_then(|e| e.env.as_ref()).or(top.env.as_ref()) {
        for (var, template) in vars {
            let value = template
                .value
                .render(&params)
                .map_err(|n| unknown(&template.at, n))?;
            env.insert(var.clone(), value);
        }
    }

    Ok(PlannedRun {
        name,
        script: script.value.clone(),
        args,
        params: params
            .iter()
            .map(|(k, v)| (k.clone(), v.to_value()))
            .collect(),
        env,
        cwd: entry
            .and_then(|e| e.cwd.clone())
            .or_else(|| top.cwd.clone()),
        overrides: entry.map(|e| e.overrides.clone()).unwrap_or_default(),
    })
}

/// The script's file stem, then `-` and the params like `lr0.1-bs32`; just the stem without params.
fn default_name(script: &str, params: &Params) -> String {
    let stem = Path::new(script)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| script.to_string());
    if params.is_empty() {
        return stem;
    }
    let parts: Vec<String> = params
        .iter()
        .map(|(name, value)| format!("{name}{}", value_text(value)))
        .collect();
    format!("{stem}-{}", parts.join("-"))
}

/// The first name used by more than one run, and the indices of those runs.
fn first_duplicate(runs: &[PlannedRun]) -> Option<(&str, Vec<usize>)> {
    let mut seen: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, run) in runs.iter().enumerate() {
        seen.entry(run.name.as_str()).or_default().push(i);
    }
    runs.iter().find_map(|run| {
        let indices = &seen[run.name.as_str()];
        (indices.len() > 1).then(|| (run.name.as_str(), indices.clone()))
    })
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
