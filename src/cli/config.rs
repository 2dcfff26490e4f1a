//! `backprop config [--json]`: the effective configuration and where each value came from.

use super::Global;
use super::common::{CliError, load_config, print_json};
use super::flags::ConfigFlags;
use super::{out, table};
use crate::config::all_keys;
use clap::Args;
use serde_json::{Map, Value, json};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  backprop config\n  BACKPROP_MAX_PARALLEL=2 backprop --json config --gpu-max-temp 80"
)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub config: ConfigFlags,
}

pub fn execute(global: &Global, args: ConfigArgs) -> Result<i32, CliError> {
    let loaded = load_config(global, args.config.flags()?)?;
    let values = serde_json::to_value(&loaded.config).expect("the config serialises");
    let entries: Vec<(String, Value, String)> = all_keys()
        .into_iter()
        .map(|key| (key.to_string(), lookup(&values, key), loaded.source_of(key)))
        .collect();
    if global.json {
        let mut keys = Map::new();
        for (key, value, source) in entries {
            keys.insert(key, json!({ "value": value, "source": source }));
        }
        print_json(&json!({
            "file": loaded.file().map(|f| f.display().to_string()),
            "keys": keys,
        }));
        return Ok(0);
    }
    out::line(&match loaded.file() {
        Some(file) => format!("config file: {}", file.display()),
        None => "config file: none (no backprop.config.json here)".to_string(),
    });
    let rows: Vec<Vec<String>> = entries
        .into_iter()
        .map(|(key, value, source)| {
            let text = match value.as_f64() {
                Some(minutes) if MINUTES_KEYS.contains(&key.as_str()) => minutes_text(minutes),
                _ => shown(&value),
            };
            vec![key, text, source]
        })
        .collect();
    out::line(&table::render(&["KEY", "VALUE", "SOURCE"], &rows));
    Ok(0)
}

/// Keys whose value is a duration kept in minutes.
const MINUTES_KEYS: &[&str] = &["maxRunMinutes", "checkpointEveryMinutes"];

/// Minutes as a user would write them: `10`, `0.5`, or a duration (`20s`) when a number of
/// minutes would need many decimals.
fn minutes_text(minutes: f64) -> String {
    let thousandths = minutes * 1000.0;
    if (thousandths - thousandths.round()).abs() < 1e-6 {
        let rounded = thousandths.round() / 1000.0;
        return format!("{rounded}");
    }
    let seconds = std::time::Duration::from_secs_f64(minutes * 60.0);
    // Whole milliseconds: float noise in the minutes must not show as nanoseconds.
    let shown = std::time::Duration::from_millis(seconds.as_millis() as u64);
    humantime::format_duration(shown).to_string()
}

/// The value at a dotted key (`gpu.maxTempC`).
fn lookup(values: &Value, key: &str) -> Value {
    key.split('.')
        .try_fold(values, |v, part| v.get(part))
        .cloned()
        .unwrap_or(Value::Null)
}

fn shown(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_read_as_typed() {
        assert_eq!(minutes_text(10.0), "10");
        assert_eq!(minutes_text(0.5), "0.5");
        assert_eq!(minutes_text(0.1), "0.1");
        assert_eq!(minutes_text(20.0 / 60.0), "20s");
        assert_eq!(minutes_text(90.5 / 60.0), "1m 30s 500ms");
    }
}
