//! The config: typed keys with built-in defaults, layered with figment as
//! defaults < `backprop.config.json` (or `--config PATH`) < `BACKPROP_*` environment < flags.
//!
//! Errors are one line naming the key, the value, what was expected and where it came from.
//! `backprop.config.example.json` at the repository root shows every key.

mod errors;
mod layers;
mod model;
mod validate;
mod values;

#[cfg(test)]
mod tests;

pub use errors::ConfigError;
pub(crate) use errors::closest;
pub use layers::{
    FILE_NAME, FlagValue, LoadRequest, LoadedConfig, Override, RESERVED_ENV, RESERVED_ENV_PREFIXES,
    check_env_names, env_var_name, load,
};
pub use model::{Config, GpuConfig, SlurmConfig, all_keys};
pub use values::{
    Executor, Framework, GpuProbeKind, MemoryLimit, MemoryLimitAction, Minutes, ScriptArgs,
    Seconds, SignalName,
};

/// The example config shipped at the repository root.
pub const EXAMPLE_FILE_NAME: &str = "backprop.config.example.json";
