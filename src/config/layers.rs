//! Layering: built-in defaults < config file < `BACKPROP_*` environment < flags.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use figment::providers::Serialized;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use super::errors::{ConfigError, closest, describe, from_figment};
use super::model::{Config, EnvForm, KEYS, KeySpec, spec_of};
use super::validate::validate;

/// The config file looked for in the current directory when `--config` is not given.
pub const FILE_NAME: &str = "backprop.config.json";

/// `BACKPROP_*` variables the tool itself uses (mostly what it gives to scripts); never
/// read as config. Also ignored: anything starting with one of [`RESERVED_ENV_PREFIXES`].
pub const RESERVED_ENV: &[&str] = &[
    "BACKPROP_HOME",
    "BACKPROP_LOG",
    "BACKPROP_CONFIG",
    "BACKPROP_RUN_ID",
    "BACKPROP_RUN_DIR",
    "BACKPROP_ATTEMPT",
    "BACKPROP_MAX_RUN_SECONDS",
    "BACKPROP_CHECKPOINT_EVERY_SECONDS",
    "BACKPROP_RESUME_FROM",
    "BACKPROP_FRAMEWORK",
    "BACKPROP_TIMEBOX_FILE",
    "BACKPROP_GPU_MEMORY_LIMIT_MB",
    "BACKPROP_GPU_MEMORY_FRACTION",
    "BACKPROP_BATCH_ID",
];

pub const RESERVED_ENV_PREFIXES: &[&str] = &["BACKPROP_TEST_", "BACKPROP_INTERNAL_"];

const ENV_PREFIX: &str = "BACKPROP_";

/// What to load: the inputs are passed in (not read from the process) so tests control them.
#[derive(Clone, Debug, Default)]
pub struct LoadRequest {
    /// `--config PATH`: must exist; relative paths are taken from `cwd`.
    pub config_path: Option<PathBuf>,
    /// Where `backprop.config.json` is looked for.
    pub cwd: PathBuf,
    /// The process environment; only `BACKPROP_*` names are looked at.
    pub env: Vec<(String, String)>,
    /// Values from a batch (a sweep file or the config's `experiments`), between the
    /// environment and the flags, in order (a later one wins).
    pub overrides: Vec<Override>,
    /// Command-line values the user gave, in order (a later one wins).
    pub flags: Vec<FlagValue>,
}

/// One value for a config key from a batch, named by where it was written
/// (e.g. `sweep.json` or `sweep.json runs[2]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    pub origin: String,
    /// The dotted config key.
    pub key: String,
    pub value: serde_json::Value,
}

/// One command-line flag's value for a config key.
#[derive(Clone, Debug, PartialEq)]
pub struct FlagValue {
    /// As the user would type it, e.g. `--gpu-max-temp`.
    pub flag: String,
    /// The dotted config key, e.g. `gpu.maxTempC`.
    pub key: String,
    pub value: serde_json::Value,
}

/// The layered config, and where each value came from.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    pub config: Config,
    figment: Figment,
    file: Option<PathBuf>,
}

impl LoadedConfig {
    /// Where `dotted_key`'s value came from: `default`, the config file's path,
    /// `environment variable BACKPROP_X` or `flag --x`.
    pub fn source_of(&self, dotted_key: &str) -> String {
        describe(self.figment.find_metadata(dotted_key))
    }

    /// The config file that was read, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The underlying figment, for values outside the typed config.
    pub fn figment(&self) -> &Figment {
        &self.figment
    }
}

/// One source of values, with the name errors and `source_of` give it.
struct Layer {
    name: String,
    source: Source,
    dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone()).source(self.source.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

fn to_figment(value: &serde_json::Value) -> Result<Value, ConfigError> {
    Value::serialize(value).map_err(|e| ConfigError::Other(e.to_string()))
}

/// `{"gpu": {"maxTempC": value}}` from `gpu.maxTempC` and the value.
fn nested(dotted_key: &str, value: &serde_json::Value) -> Result<Dict, ConfigError> {
    let mut segments = dotted_key.rsplit('.');
    let leaf = segments.next().unwrap_or(dotted_key);
    let mut dict = Dict::new();
    dict.insert(leaf.to_string(), to_figment(value)?);
    for parent in segments {
        let mut outer = Dict::new();
        outer.insert(parent.to_string(), Value::from(dict));
        dict = outer;
    }
    Ok(dict)
}

/// `maxRunMinutes` → `MAX_RUN_MINUTES`, `minFreeRamGB` → `MIN_FREE_RAM_GB`.
fn upper_snake(camel: &str) -> String {
    let mut out = String::new();
    let mut previous: Option<char> = None;
    for c in camel.chars() {
        if c.is_ascii_uppercase()
            && previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
        {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
        previous = Some(c);
    }
    out
}

/// The environment variable for a config key (`gpu.maxTempC` → `BACKPROP_GPU_MAX_TEMP_C`).
pub fn env_var_name(dotted_key: &str) -> String {
    let parts: Vec<String> = dotted_key.split('.').map(upper_snake).collect();
    format!("{ENV_PREFIX}{}", parts.join("_"))
}

/// Every accepted variable name: `BACKPROP_GPU_MAX_TEMP_C` and `BACKPROP_GPU__MAX_TEMP_C`.
fn env_table() -> HashMap<String, &'static KeySpec> {
    let mut table = HashMap::new();
    for spec in KEYS {
        table.insert(env_var_name(spec.key), spec);
        if spec.key.contains('.') {
            let parts: Vec<String> = spec.key.split('.').map(upper_snake).collect();
            table.insert(format!("{ENV_PREFIX}{}", parts.join("__")), spec);
        }
    }
    table
}

fn is_reserved(name: &str) -> bool {
    RESERVED_ENV.contains(&name) || RESERVED_ENV_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn env_value(spec: &KeySpec, raw: &str) -> serde_json::Value {
    match spec.env {
        EnvForm::Text => serde_json::Value::String(raw.to_string()),
        EnvForm::Json => {
            serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.to_string()))
        }
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The config file's layer, or `None` when there is no file to read.
fn file_layer(req: &LoadRequest) -> Result<Option<(PathBuf, Layer)>, ConfigError> {
    let (path, shown) = match &req.config_path {
        Some(given) => {
            let path = req.cwd.join(given);
            if !path.exists() {
                return Err(ConfigError::MissingFile {
                    path: given.clone(),
                });
            }
            (path, given.display().to_string())
        }
        None => {
            let path = req.cwd.join(FILE_NAME);
            if !path.exists() {
                return Ok(None);
            }
            (path, FILE_NAME.to_string())
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Unreadable {
        path: PathBuf::from(&shown),
        reason: e.to_string(),
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        ConfigError::Syntax {
            file: shown.clone(),
            line: e.line(),
            column: e.column(),
            reason: full.strip_suffix(&suffix).unwrap_or(&full).to_string(),
        }
    })?;
    if !json.is_object() {
        return Err(ConfigError::NotAnObject {
            file: shown,
            found: json_kind(&json).into(),
        });
    }
    let dict = to_figment(&json)?.into_dict().unwrap_or_default();
    let layer = Layer {
        name: shown,
        source: Source::File(path.clone()),
        dict,
    };
    Ok(Some((path, layer)))
}

/// Refuses a `BACKPROP_*` variable that is neither a config key nor one backprop itself
/// uses, so that a typo is never silently ignored, even by commands that read no config.
pub fn check_env_names(env: &[(String, String)]) -> Result<(), ConfigError> {
    let table = env_table();
    let mut unknown: Vec<&str> = env
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| {
            name.starts_with(ENV_PREFIX) && !is_reserved(name) && !table.contains_key(*name)
        })
        .collect();
    unknown.sort_unstable();
    match unknown.first() {
        Some(name) => Err(unknown_env(name)),
        None => Ok(()),
    }
}

/// Layers defaults, the config file, `BACKPROP_*` variables and flags, then checks the result.
pub fn load(req: LoadRequest) -> Result<LoadedConfig, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));

    let file = match file_layer(&req)? {
        Some((path, layer)) => {
            figment = figment.merge(layer);
            Some(path)
        }
        None => None,
    };

    let table = env_table();
    let mut vars: Vec<&(String, String)> = req
        .env
        .iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX) && !is_reserved(name))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let Some(spec) = table.get(name.as_str()) else {
            return Err(unknown_env(name));
        };
        let origin = format!("environment variable {name}");
        figment = figment.merge(Layer {
            dict: nested(spec.key, &env_value(spec, raw))?,
            source: Source::Custom(origin.clone()),
            name: origin,
        });
    }

    let layered = req
        .overrides
        .iter()
        .map(|o| (o.origin.clone(), &o.key, &o.value))
        .chain(
            req.flags
                .iter()
                .map(|f| (format!("flag {}", f.flag), &f.key, &f.value)),
        );
    for (origin, key, value) in layered {
        if spec_of(key).is_none() {
            let keys = super::all_keys();
            return Err(ConfigError::UnknownKey {
                key: key.clone(),
                value: value.to_string(),
                origin,
                advice: match closest(key, &keys) {
                    Some(found) => format!("did you mean \"{found}\"?"),
                    None => "not a config key".into(),
                },
            });
        }
        figment = figment.merge(Layer {
            dict: nested(key, value)?,
            source: Source::Custom(origin.clone()),
            name: origin,
        });
    }

    let config: Config = figment.extract().map_err(|e| from_figment(e, &figment))?;
    validate(&config, &figment)?;
    Ok(LoadedConfig {
        config,
        figment,
        file,
    })
}

fn unknown_env(name: &str) -> ConfigError {
    let known: Vec<String> = KEYS.iter().map(|s| env_var_name(s.key)).collect();
    let bare: Vec<&str> = known.iter().map(|n| &n[ENV_PREFIX.len()..]).collect();
    let suggestion =
        closest(&name[ENV_PREFIX.len()..], &bare).map(|found| format!("{ENV_PREFIX}{found}"));
    ConfigError::UnknownEnv {
        name: name.to_string(),
        suggestion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_follow_the_keys() {
        assert_eq!(env_var_name("maxRunMinutes"), "BACKPROP_MAX_RUN_MINUTES");
        assert_eq!(env_var_name("minFreeRamGB"), "BACKPROP_MIN_FREE_RAM_GB");
        assert_eq!(env_var_name("gpu.maxTempC"), "BACKPROP_GPU_MAX_TEMP_C");
        assert_eq!(
            env_var_name("gpu.minFreeVramMB"),
            "BACKPROP_GPU_MIN_FREE_VRAM_MB"
        );
        assert_eq!(env_var_name("slurm.partition"), "BACKPROP_SLURM_PARTITION");
        let table = env_table();
        assert_eq!(table["BACKPROP_GPU__MAX_TEMP_C"].key, "gpu.maxTempC");
        // Every key has its own name, and no name collides with a reserved one except
        // BACKPROP_FRAMEWORK (given to scripts, so `framework` is not read from env).
        assert_eq!(
            table.len(),
            KEYS.len() + KEYS.iter().filter(|s| s.key.contains('.')).count()
        );
        let clashes: Vec<&String> = table.keys().filter(|n| is_reserved(n)).collect();
        assert_eq!(clashes, vec!["BACKPROP_FRAMEWORK"]);
    }

    #[test]
    fn unknown_names_are_refused_and_known_ones_pass() {
        let env = |names: &[&str]| -> Vec<(String, String)> {
            names
                .iter()
                .map(|n| (n.to_string(), "1".to_string()))
                .collect()
        };
        assert!(
            check_env_names(&env(&[
                "BACKPROP_MAX_PARALLEL",
                "BACKPROP_HOME",
                "BACKPROP_RUN_ID",
                "BACKPROP_TEST_X",
                "PATH"
            ]))
            .is_ok()
        );
        let err = check_env_names(&env(&["BACKPROP_MAX_PARALEL", "BACKPROP_ZZZ"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown environment variable BACKPROP_MAX_PARALEL: not a config key \
             (did you mean BACKPROP_MAX_PARALLEL?)"
        );
    }
}
