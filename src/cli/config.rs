//! `backprop config [--json]`: the effective configuration and where each value came from.

use super::Global;
use super::common::{CliError, load_config, print_json};
use super::flags::ConfigFlags;
use super::table;
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
    let loaded = load_config(global, args.config.flags())?;
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
    match loaded.file() {
        Some(file) => println!("config file: {}", file.display()),
        None => println!("config file: none (no backprop.config.json here)"),
    }
    let rows: Vec<Vec<String>> = entries
        .into_iter()
        .map(|(key, value, source)| vec![key, shown(&value), source])
        .collect();
    println!("{}", table::render(&["KEY", "VALUE", "SOURCE"], &rows));
    Ok(0)
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
