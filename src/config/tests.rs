use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use super::*;

fn request(dir: &Path) -> LoadRequest {
    LoadRequest {
        config_path: None,
        cwd: dir.to_path_buf(),
        env: Vec::new(),
        overrides: Vec::new(),
        flags: Vec::new(),
    }
}

fn write_config(dir: &Path, json: &Value) {
    std::fs::write(
        dir.join(FILE_NAME),
        serde_json::to_string_pretty(json).unwrap(),
    )
    .unwrap();
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn flag(flag: &str, key: &str, value: Value) -> FlagValue {
    FlagValue {
        flag: flag.into(),
        key: key.into(),
        value,
    }
}

fn error_of(req: LoadRequest) -> String {
    let message = load(req)
        .expect_err("the config should be refused")
        .to_string();
    assert!(!message.contains('\n'), "one line: {message}");
    message
}

/// A file-only load in a fresh directory.
fn with_file(json: Value) -> (tempfile::TempDir, LoadRequest) {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &json);
    let req = request(dir.path());
    (dir, req)
}

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE_FILE_NAME)
}

#[test]
fn defaults_without_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load(request(dir.path())).unwrap();
    let c = &loaded.config;
    assert_eq!(c, &Config::default());
    assert_eq!(c.max_run_minutes.duration(), Duration::from_secs(600));
    assert_eq!(c.max_parallel, 4);
    assert_eq!(c.gpu_memory_limit, None);
    assert_eq!(c.framework, Framework::Auto);
    assert_eq!(c.stop_signal.signal(), Signal::SIGINT);
    assert_eq!(c.min_free_ram_gb, 4.0);
    assert_eq!(c.max_cpu_load, 2.0);
    assert_eq!(c.grace_period.duration(), Duration::from_secs(30));
    assert_eq!(c.poll_interval.duration(), Duration::from_secs(5));
    assert_eq!(c.interpreter, "python3");
    assert_eq!(c.resume_arg, "--resume-from");
    assert_eq!(c.executor, Executor::Local);
    assert_eq!(c.gpu.probe, GpuProbeKind::Auto);
    assert_eq!(c.gpu.min_free_vram_mb, 2500);
    assert_eq!(c.gpu.max_temp_c, None);
    let plain = crate::gpu::GpuInfo::new(0, "GPU-0", "T4");
    assert_eq!(c.gpu.thermal().for_gpu(&plain), (85.0, 80.0));
    assert_eq!(c.gpu.memory_limit_action, MemoryLimitAction::Warn);
    assert_eq!(c.slurm.time_margin.duration(), Duration::from_secs(300));
    assert!(c.experiments.is_empty());
    assert_eq!(loaded.file(), None);
    assert_eq!(loaded.source_of("maxRunMinutes"), "default");
    assert_eq!(loaded.source_of("gpu.maxTempC"), "default");
}

#[test]
fn defaults_round_trip_through_json() {
    let json = serde_json::to_value(Config::default()).unwrap();
    let back: Config = serde_json::from_value(json).unwrap();
    assert_eq!(back, Config::default());
    let partial: Config = serde_json::from_value(json!({"gpu": {"maxTempC": 70}})).unwrap();
    assert_eq!(partial.gpu.min_free_vram_mb, 2500);
}

#[test]
fn the_file_overrides_defaults() {
    let (dir, req) = with_file(json!({
        "maxRunMinutes": 30, "framework": "torch", "gpuMemoryLimit": "8GB",
        "checkpointSignal": "USR1", "slurm": {"partition": "gpu"}
    }));
    let loaded = load(req).unwrap();
    let c = &loaded.config;
    assert_eq!(c.max_run_minutes.duration(), Duration::from_secs(1800));
    assert_eq!(c.framework, Framework::Pytorch);
    assert_eq!(c.gpu_memory_limit, Some(MemoryLimit::Gigabytes(8.0)));
    assert_eq!(
        c.checkpoint_signal.map(|s| s.signal()),
        Some(Signal::SIGUSR1)
    );
    assert_eq!(c.slurm.partition.as_deref(), Some("gpu"));
    assert_eq!(c.max_parallel, 4);
    assert_eq!(loaded.file(), Some(dir.path().join(FILE_NAME).as_path()));
    assert_eq!(loaded.source_of("maxRunMinutes"), FILE_NAME);
    assert_eq!(loaded.source_of("maxParallel"), "default");
}

#[test]
fn config_flag_picks_the_file_and_it_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &json!({"maxParallel": 2}));
    std::fs::write(dir.path().join("other.json"), r#"{"maxParallel": 7}"#).unwrap();

    let mut req = request(dir.path());
    req.config_path = Some("other.json".into());
    let loaded = load(req).unwrap();
    assert_eq!(loaded.config.max_parallel, 7);
    assert_eq!(loaded.source_of("maxParallel"), "other.json");
    assert_eq!(loaded.file(), Some(dir.path().join("other.json").as_path()));

    let mut req = request(dir.path());
    req.config_path = Some("missing.json".into());
    assert_eq!(error_of(req), "config file missing.json does not exist");
}

#[test]
fn environment_beats_the_file() {
    let (_dir, mut req) = with_file(json!({"maxRunMinutes": 30, "gpu": {"maxTempC": 80}}));
    req.env = env(&[
        ("BACKPROP_MAX_RUN_MINUTES", "45"),
        ("BACKPROP_GPU_MAX_TEMP_C", "75"),
        ("BACKPROP_SLURM_EXTRA_ARGS", r#"["--mem=32G"]"#),
        ("BACKPROP_INTERPRETER", "/opt/py/bin/python"),
        ("PATH", "/usr/bin"),
    ]);
    let loaded = load(req).unwrap();
    assert_eq!(
        loaded.config.max_run_minutes.duration(),
        Duration::from_secs(45 * 60)
    );
    assert_eq!(loaded.config.gpu.max_temp_c, Some(75.0));
    assert_eq!(loaded.config.slurm.extra_args, vec!["--mem=32G"]);
    assert_eq!(loaded.config.interpreter, "/opt/py/bin/python");
    assert_eq!(
        loaded.source_of("maxRunMinutes"),
        "environment variable BACKPROP_MAX_RUN_MINUTES"
    );
    assert_eq!(
        loaded.source_of("gpu.maxTempC"),
        "environment variable BACKPROP_GPU_MAX_TEMP_C"
    );
}

#[test]
fn double_underscore_nesting_and_null_are_accepted() {
    let (_dir, mut req) = with_file(json!({"gpuMemoryLimit": "80%"}));
    req.env = env(&[
        ("BACKPROP_GPU__MIN_FREE_VRAM_MB", "4000"),
        ("BACKPROP_GPU_MEMORY_LIMIT", "null"),
        ("BACKPROP_SLURM_PARTITION", "123"),
    ]);
    let c = load(req).unwrap().config;
    assert_eq!(c.gpu.min_free_vram_mb, 4000);
    assert_eq!(c.gpu_memory_limit, None);
    assert_eq!(c.slurm.partition.as_deref(), Some("123"));
}

#[test]
fn flags_beat_the_environment() {
    let (_dir, mut req) = with_file(json!({"maxParallel": 2}));
    req.env = env(&[("BACKPROP_MAX_PARALLEL", "3")]);
    req.flags = vec![flag("--max-parallel", "maxParallel", json!(5))];
    let loaded = load(req).unwrap();
    assert_eq!(loaded.config.max_parallel, 5);
    assert_eq!(loaded.source_of("maxParallel"), "flag --max-parallel");
}

#[test]
fn nested_keys_merge_deeply() {
    let (_dir, mut req) =
        with_file(json!({"gpu": {"maxTempC": 80, "minFreeVramMB": 4000, "probe": "nvml"}}));
    req.env = env(&[("BACKPROP_GPU_PROBE", "nvidia-smi")]);
    req.flags = vec![flag("--gpu-max-temp", "gpu.maxTempC", json!(70.0))];
    let loaded = load(req).unwrap();
    let gpu = &loaded.config.gpu;
    assert_eq!(gpu.max_temp_c, Some(70.0));
    assert_eq!(gpu.min_free_vram_mb, 4000);
    assert_eq!(gpu.probe, GpuProbeKind::NvidiaSmi);
    assert_eq!(gpu.memory_limit_action, MemoryLimitAction::Warn);
    let plain = crate::gpu::GpuInfo::new(0, "GPU-0", "T4");
    assert_eq!(gpu.thermal().for_gpu(&plain), (70.0, 65.0));
    assert_eq!(loaded.source_of("gpu.maxTempC"), "flag --gpu-max-temp");
    assert_eq!(loaded.source_of("gpu.minFreeVramMB"), FILE_NAME);
    assert_eq!(
        loaded.source_of("gpu.probe"),
        "environment variable BACKPROP_GPU_PROBE"
    );
    assert_eq!(loaded.source_of("gpu.probeTimeout"), "default");
}

#[test]
fn durations_as_numbers_and_humantime() {
    let (_dir, mut req) = with_file(json!({
        "maxRunMinutes": "1h 30m", "checkpointEveryMinutes": 0.1,
        "gracePeriod": 45, "pollInterval": "500ms", "slurm": {"timeMargin": "10m"}
    }));
    let c = load(req.clone()).unwrap().config;
    assert_eq!(c.max_run_minutes.duration(), Duration::from_secs(5400));
    assert_eq!(
        c.checkpoint_every_minutes.unwrap().duration(),
        Duration::from_secs(6)
    );
    assert_eq!(c.grace_period.duration(), Duration::from_secs(45));
    assert_eq!(c.poll_interval.duration(), Duration::from_millis(500));
    assert_eq!(c.slurm.time_margin.duration(), Duration::from_secs(600));

    req.env = env(&[
        ("BACKPROP_GRACE_PERIOD", "2m"),
        ("BACKPROP_MAX_RUN_MINUTES", "90s"),
    ]);
    req.flags = vec![flag(
        "--checkpoint-every-minutes",
        "checkpointEveryMinutes",
        json!(2.0),
    )];
    let c = load(req).unwrap().config;
    assert_eq!(c.max_run_minutes.duration(), Duration::from_secs(90));
    assert_eq!(c.grace_period.duration(), Duration::from_secs(120));
    assert_eq!(
        c.checkpoint_every_minutes.unwrap().duration(),
        Duration::from_secs(120)
    );
}

#[test]
fn wrong_types_name_key_value_expectation_and_source() {
    let (_dir, req) = with_file(json!({"gpu": {"maxTempC": "hot"}}));
    assert_eq!(
        error_of(req),
        "invalid config: gpu.maxTempC = \"hot\" (from backprop.config.json): expected a temperature in °C (a number)"
    );

    let (_dir, req) = with_file(json!({"maxRunMinutes": "soon"}));
    let message = error_of(req);
    assert!(message.contains("maxRunMinutes = \"soon\""), "{message}");
    assert!(message.contains("(from backprop.config.json)"), "{message}");
    assert!(
        message.contains("expected a number of minutes above 0 or a duration like \"90s\""),
        "{message}"
    );

    let (_dir, req) = with_file(json!({"framework": "caffe"}));
    let message = error_of(req);
    assert!(message.contains("framework = \"caffe\""), "{message}");
    assert!(message.contains("\"pytorch\""), "{message}");

    let (_dir, req) = with_file(json!({"gpu": 5}));
    let message = error_of(req);
    assert!(message.contains("gpu = 5"), "{message}");
    assert!(message.contains("expected an object"), "{message}");
}

#[test]
fn wrong_values_from_environment_and_flags_name_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(dir.path());
    req.env = env(&[("BACKPROP_MAX_PARALLEL", "-1")]);
    let message = error_of(req);
    assert!(message.contains("maxParallel = -1"), "{message}");
    assert!(
        message.contains("(from environment variable BACKPROP_MAX_PARALLEL)"),
        "{message}"
    );
    assert!(
        message.contains("expected a whole number of runs, at least 1"),
        "{message}"
    );

    let mut req = request(dir.path());
    req.flags = vec![flag("--gpu-min-vram", "gpu.minFreeVramMB", json!(-100))];
    let message = error_of(req);
    assert!(message.contains("gpu.minFreeVramMB = -100"), "{message}");
    assert!(message.contains("(from flag --gpu-min-vram)"), "{message}");
    assert!(message.contains("expected free VRAM in MB"), "{message}");

    let mut req = request(dir.path());
    req.flags = vec![flag("--gpu-memory-limit", "gpuMemoryLimit", json!("150%"))];
    let message = error_of(req);
    assert!(
        message.contains("gpuMemoryLimit = \"150%\" (from flag --gpu-memory-limit)"),
        "{message}"
    );
    assert!(message.contains("at most 100"), "{message}");

    let mut req = request(dir.path());
    req.env = env(&[("BACKPROP_STOP_SIGNAL", "SIGBOGUS")]);
    let message = error_of(req);
    assert!(
        message
            .contains("stopSignal = \"SIGBOGUS\" (from environment variable BACKPROP_STOP_SIGNAL)")
    );
}

#[test]
fn validation_failures_have_the_same_shape() {
    let (_dir, req) = with_file(json!({"maxRunMinutes": 0}));
    assert_eq!(
        error_of(req),
        "invalid config: maxRunMinutes = 0 (from backprop.config.json): \
         expected a number of minutes above 0 or a duration like \"90s\" or \"2h\", \
         at most 1 year (525600 minutes)"
    );
    let (_dir, req) = with_file(json!({"maxRunMinutes": 1e9}));
    assert!(error_of(req).contains("maxRunMinutes = 1000000000.0 (from backprop.config.json)"),);
    let (_dir, req) = with_file(json!({"checkpointEveryMinutes": "400d"}));
    assert!(error_of(req).contains("at most 1 year (525600 minutes)"));

    let (_dir, mut req) = with_file(json!({}));
    req.flags = vec![flag("--max-parallel", "maxParallel", json!(0))];
    let message = error_of(req);
    assert!(
        message.contains("maxParallel = 0 (from flag --max-parallel)"),
        "{message}"
    );

    let (_dir, mut req) = with_file(json!({"gpu": {"resumeTempC": 80}}));
    req.flags = vec![flag("--gpu-max-temp", "gpu.maxTempC", json!(75))];
    let message = error_of(req);
    assert!(
        message.contains("gpu.resumeTempC = 80 (from backprop.config.json)"),
        "{message}"
    );
    assert!(
        message.contains("below gpu.maxTempC = 75 (from flag --gpu-max-temp)"),
        "{message}"
    );

    let (_dir, mut req) = with_file(json!({}));
    req.env = env(&[("BACKPROP_INTERPRETER", "")]);
    let message = error_of(req);
    assert!(
        message.contains("interpreter = \"\" (from environment variable BACKPROP_INTERPRETER)")
    );
    assert!(message.contains("not empty"), "{message}");

    let (_dir, req) = with_file(json!({"checkpointSignal": "SIGKILL"}));
    let message = error_of(req);
    assert!(
        message.contains("checkpointSignal = \"SIGKILL\""),
        "{message}"
    );

    let (_dir, req) = with_file(json!({"pollInterval": 0}));
    assert!(error_of(req).contains("pollInterval = 0 (from backprop.config.json)"));

    let (_dir, req) = with_file(json!({"maxCpuLoad": 0}));
    assert!(error_of(req).contains("maxCpuLoad = 0"));

    let (_dir, req) = with_file(json!({"minFreeRamGB": -1}));
    assert!(error_of(req).contains("minFreeRamGB = -1"));
}

#[test]
fn unknown_keys_are_named_with_a_suggestion() {
    let (_dir, req) = with_file(json!({"maxRunMinuts": 5}));
    assert_eq!(
        error_of(req),
        "unknown config key \"maxRunMinuts\" in backprop.config.json (value 5): did you mean \"maxRunMinutes\"?"
    );

    let (_dir, req) = with_file(json!({"gpu": {"maxTmp": 90}}));
    assert_eq!(
        error_of(req),
        "unknown config key \"gpu.maxTmp\" in backprop.config.json (value 90): did you mean \"gpu.maxTempC\"?"
    );

    let (_dir, req) = with_file(json!({"colour": "blue"}));
    assert_eq!(
        error_of(req),
        "unknown config key \"colour\" in backprop.config.json (value \"blue\"): not a config key"
    );

    let (_dir, req) = with_file(json!({"gpu.maxTempC": 80}));
    let message = error_of(req);
    assert!(
        message.contains("unknown config key \"gpu.maxTempC\""),
        "{message}"
    );
    assert!(
        message.contains("nest it as {\"gpu\": {\"maxTempC\": …}}"),
        "{message}"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut req = request(dir.path());
    req.flags = vec![flag("--gpu-max-temp", "gpu.maxTemp", json!(80))];
    let message = error_of(req);
    assert!(
        message.contains("in flag --gpu-max-temp (value 80): did you mean \"gpu.maxTempC\"?"),
        "{message}"
    );
}

#[test]
fn unknown_backprop_variables_are_refused_and_reserved_ones_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(dir.path());
    req.env = env(&[("BACKPROP_MAX_RUN_MINUTS", "5")]);
    assert_eq!(
        error_of(req),
        "unknown environment variable BACKPROP_MAX_RUN_MINUTS: not a config key \
         (did you mean BACKPROP_MAX_RUN_MINUTES?)"
    );

    let mut req = request(dir.path());
    req.env = env(&[("BACKPROP_WHATEVER_ELSE_ENTIRELY", "1")]);
    assert_eq!(
        error_of(req),
        "unknown environment variable BACKPROP_WHATEVER_ELSE_ENTIRELY: not a config key"
    );

    let mut req = request(dir.path());
    let mut vars: Vec<(String, String)> = RESERVED_ENV
        .iter()
        .map(|name| (name.to_string(), "not config".to_string()))
        .collect();
    vars.push(("BACKPROP_TEST_ANYTHING".into(), "x".into()));
    vars.push(("BACKPROP_INTERNAL_SOCKET".into(), "x".into()));
    vars.push(("NOT_BACKPROP_MAX".into(), "x".into()));
    req.env = vars;
    let loaded = load(req).unwrap();
    assert_eq!(loaded.config, Config::default());
}

#[test]
fn invalid_json_names_the_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(FILE_NAME),
        "{\n  \"maxParallel\": 2,\n  \"framework\" \"jax\"\n}\n",
    )
    .unwrap();
    let message = error_of(request(dir.path()));
    assert!(
        message.starts_with("config file backprop.config.json is not valid JSON: "),
        "{message}"
    );
    assert!(message.contains("line 3, column"), "{message}");

    std::fs::write(dir.path().join(FILE_NAME), "[1, 2]").unwrap();
    assert_eq!(
        error_of(request(dir.path())),
        "config file backprop.config.json must hold a JSON object of config keys, not an array"
    );
}

#[test]
fn errors_carry_a_hint() {
    let (_dir, req) = with_file(json!({"maxParallel": "many"}));
    let error = load(req).unwrap_err();
    assert_eq!(error.key(), Some("maxParallel"));
    assert!(error.hint().contains(EXAMPLE_FILE_NAME));
}

/// Leaf keys of a config object, dotted; `experiments` is a leaf.
fn leaf_keys(value: &Value, prefix: &str, out: &mut Vec<String>) {
    let Value::Object(map) = value else { return };
    for (key, child) in map {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if child.is_object() && dotted != "experiments" {
            leaf_keys(child, &dotted, out);
        } else {
            out.push(dotted);
        }
    }
}

#[test]
fn all_keys_are_the_leaves_of_the_config() {
    let mut leaves = Vec::new();
    leaf_keys(
        &serde_json::to_value(Config::default()).unwrap(),
        "",
        &mut leaves,
    );
    leaves.sort();
    let mut keys: Vec<String> = all_keys().into_iter().map(String::from).collect();
    keys.sort();
    assert_eq!(leaves, keys);
}

#[test]
fn the_example_file_loads_and_shows_every_key() {
    let path = example_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    let mut shown = Vec::new();
    leaf_keys(&json, "", &mut shown);
    for key in all_keys() {
        assert!(
            shown.iter().any(|s| s == key),
            "{EXAMPLE_FILE_NAME} lacks {key}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let mut req = request(dir.path());
    req.config_path = Some(path.clone());
    let loaded = load(req).unwrap();
    let c = &loaded.config;
    assert_eq!(c.gpu_memory_limit, Some(MemoryLimit::Percent(80.0)));
    assert_eq!(
        c.checkpoint_every_minutes.unwrap().duration(),
        Duration::from_secs(300)
    );
    assert_eq!(c.checkpoint_signal.unwrap().signal(), Signal::SIGUSR1);
    assert_eq!(c.slurm.partition.as_deref(), Some("gpu"));
    assert_eq!(c.experiments.len(), 1);
    assert_eq!(c.experiments[0]["name"], json!("lr-0.1"));
    assert_eq!(loaded.source_of("maxParallel"), path.display().to_string());
}

#[test]
fn batch_overrides_sit_between_the_environment_and_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(dir.path());
    req.env.push(("BACKPROP_MAX_PARALLEL".into(), "3".into()));
    req.overrides.push(Override {
        origin: "sweep.json".into(),
        key: "maxParallel".into(),
        value: json!(5),
    });
    req.overrides.push(Override {
        origin: "sweep.json".into(),
        key: "gpu.maxTempC".into(),
        value: json!("hot"),
    });
    let err = load(req.clone()).unwrap_err().to_string();
    assert!(
        err.contains("gpu.maxTempC") && err.contains("sweep.json"),
        "{err}"
    );
    req.overrides.pop();
    let loaded = load(req.clone()).unwrap();
    assert_eq!(loaded.config.max_parallel, 5);
    assert_eq!(loaded.source_of("maxParallel"), "sweep.json");
    req.flags.push(FlagValue {
        flag: "--max-parallel".into(),
        key: "maxParallel".into(),
        value: json!(7),
    });
    assert_eq!(load(req).unwrap().config.max_parallel, 7);
}
