//! From what the user typed to what is executed: finding the script or command (a missing
//! one is exit 127 before anything is recorded), the argv and the script's environment.

use crate::config::Framework;
use crate::record::RunSpec;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum NotFound {
    #[error("script {shown} not found (looked for {looked}); check the path")]
    Script { shown: String, looked: String },
    #[error("interpreter {0:?} not found on PATH; install it or pass --interpreter PATH")]
    Interpreter(String),
    #[error("command {0:?} not found: not a file here and not on PATH")]
    Command(String),
    #[error(
        "{0} is not executable; chmod +x it, or run it through its interpreter: backprop run -- bash {0}"
    )]
    NotExecutable(String),
}

/// What `run <script>` resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Absolute path of the script or executable (or the bare command for PATH lookups
    /// that should be re-resolved at resume).
    pub program: String,
    /// For `.py` scripts: the interpreter as given (re-resolved at each start).
    pub interpreter: Option<String>,
}

/// Resolves `script`: `.py` through the interpreter, any other
/// existing executable file or command on PATH directly. Relative paths are taken from
/// `base` (where backprop was invoked).
pub fn resolve(script: &str, interpreter: &str, base: &Path) -> Result<Program, NotFound> {
    if script.ends_with(".py") {
        let path = absolute(base, script);
        if !path.is_file() {
            return Err(NotFound::Script {
                shown: script.to_string(),
                looked: path.display().to_string(),
            });
        }
        find_interpreter(interpreter)?;
        return Ok(Program {
            program: path.display().to_string(),
            interpreter: Some(interpreter.to_string()),
        });
    }
    if script.contains('/') {
        let path = absolute(base, script);
        return executable_file(&path, script).map(|p| Program {
            program: p.display().to_string(),
            interpreter: None,
        });
    }
    if let Ok(found) = which::which(script) {
        return Ok(Program {
            program: found.display().to_string(),
            interpreter: None,
        });
    }
    let local = base.join(script);
    if local.is_file() {
        return executable_file(&local, script).map(|p| Program {
            program: p.display().to_string(),
            interpreter: None,
        });
    }
    Err(NotFound::Command(script.to_string()))
}

/// The interpreter's path, or why it cannot be used.
pub fn find_interpreter(interpreter: &str) -> Result<PathBuf, NotFound> {
    which::which(interpreter).map_err(|_| NotFound::Interpreter(interpreter.to_string()))
}

fn executable_file(path: &Path, shown: &str) -> Result<PathBuf, NotFound> {
    let meta = std::fs::metadata(path).map_err(|_| NotFound::Script {
        shown: shown.to_string(),
        looked: path.display().to_string(),
    })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(NotFound::NotExecutable(shown.to_string()));
    }
    Ok(path.to_path_buf())
}

fn absolute(base: &Path, path: &str) -> PathBuf {
    let joined = base.join(path);
    // Keep symlinks as the user named them; just drop `.` components.
    joined.components().collect()
}

/// What the original tool put on a script's command line (`scriptArgs: "legacy"`).
pub struct LegacyArgs<'a> {
    pub run_id: &'a str,
    pub timebox: std::time::Duration,
}

/// The program and argv for one attempt: with `scriptArgs: "legacy"` the original tool's
/// arguments before the script's own, and `--resume-from P` appended when resuming.
pub fn command_line(
    spec: &RunSpec,
    resume_from: Option<&str>,
    legacy: Option<LegacyArgs>,
) -> Result<(String, Vec<String>), NotFound> {
    let mut args = Vec::new();
    let program = match &spec.interpreter {
        Some(interpreter) => {
            args.push(spec.program.clone());
            find_interpreter(interpreter)?.display().to_string()
        }
        None => spec.program.clone(),
    };
    if let Some(legacy) = legacy.filter(|_| spec.options.legacy_args) {
        args.extend(legacy_args(spec, &legacy, resume_from));
        args.extend(spec.args.iter().cloned());
        return Ok((program, args));
    }
    args.extend(spec.args.iter().cloned());
    if let Some(path) = resume_from
        && !spec.options.resume_arg.is_empty()
    {
        args.push(spec.options.resume_arg.clone());
        args.push(path.to_string());
    }
    Ok((program, args))
}

/// What the script's command runs under: nothing for a local run; `srun` for a multi-task
/// Slurm job, whose tasks get the graceful stop through Slurm (`slurm_job`), because srun
/// turns a SIGTERM it receives itself into SIGKILL for every task.
#[derive(Clone, Debug, Default)]
pub struct Launcher {
    pub prefix: Vec<String>,
    /// The job whose srun steps get the stop signal (`scancel --signal`).
    pub slurm_job: Option<String>,
}

/// The command with `launcher` (e.g. `srun --kill-on-bad-exit=1`) before it.
pub fn with_launcher(
    launcher: &[String],
    program: String,
    args: Vec<String>,
) -> (String, Vec<String>) {
    match launcher.split_first() {
        None => (program, args),
        Some((first, rest)) => {
            let mut all = rest.to_vec();
            all.push(program);
            all.extend(args);
            (first.clone(), all)
        }
    }
}

/// `--run-id ID --max-minutes N` (+ `--framework F` when not auto, `--checkpoint-every-seconds
/// S` when set, `--resume-from P` on resume), in the original tool's order.
fn legacy_args(spec: &RunSpec, legacy: &LegacyArgs, resume_from: Option<&str>) -> Vec<String> {
    let minutes = legacy.timebox.as_secs_f64() / 60.0;
    let mut args = vec![
        "--run-id".to_string(),
        legacy.run_id.to_string(),
        "--max-minutes".to_string(),
        trim_number(minutes),
    ];
    if spec.options.framework != Framework::Auto {
        args.extend([
            "--framework".to_string(),
            spec.options.framework.to_string(),
        ]);
    }
    if let Some(every) = spec.options.checkpoint_every {
        args.extend([
            "--checkpoint-every-seconds".to_string(),
            trim_number(every.as_secs_f64()),
        ]);
    }
    if let Some(path) = resume_from {
        args.extend(["--resume-from".to_string(), path.to_string()]);
    }
    args
}

/// `10` rather than `10.0`; `0.5` stays `0.5`.
fn trim_number(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as u64)
    } else {
        format!("{n}")
    }
}

/// Everything an attempt needs to know to build the script's environment.
pub struct AttemptEnv<'a> {
    pub run_id: &'a str,
    pub run_dir: &'a Path,
    pub attempt: u32,
    pub timebox: std::time::Duration,
    pub resume_from: Option<&'a str>,
    pub framework: Framework,
    /// The file the Worker keeps current with the attempt's active time (pauses excluded).
    pub timebox_file: Option<&'a Path>,
    /// From the GPU allocator: CUDA_VISIBLE_DEVICES and memory hints.
    pub gpu_env: &'a [(String, String)],
    /// Where `backprop_helper.py` was written (`pythonHelper`): first on PYTHONPATH.
    pub python_helper_dir: Option<&'a Path>,
    /// The PYTHONPATH backprop inherited, kept after the helper's directory.
    pub inherited_pythonpath: Option<&'a str>,
}

/// Changes to the inherited environment for the script: variables to set and to remove.
/// Only changes are applied, so inherited variables (even non-UTF-8 ones) pass unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvChanges {
    pub set: Vec<(String, String)>,
    pub remove: Vec<String>,
}

/// The variables backprop gives every script, on top of the inherited environment and
/// the user's `--env` values. Hints (GPU memory, allocator growth) never override a value
/// the user set (`inherited_has` tells what the environment already has); backprop's own
/// variables always win.
pub fn script_env(
    spec: &RunSpec,
    attempt: &AttemptEnv<'_>,
    inherited_has: impl Fn(&str) -> bool,
) -> EnvChanges {
    let mut set: std::collections::BTreeMap<String, String> =
        spec.env.clone().into_iter().collect();
    // An inherited resume path or checkpoint interval belongs to some other run.
    let mut remove = vec![
        "BACKPROP_RESUME_FROM".to_string(),
        "BACKPROP_CHECKPOINT_EVERY_SECONDS".to_string(),
        "BACKPROP_TIMEBOX_FILE".to_string(),
    ];
    for (k, v) in attempt.gpu_env {
        let is_hint = k != "CUDA_VISIBLE_DEVICES";
        let user_set = spec.env.contains_key(k) || inherited_has(k);
        if !(is_hint && user_set) {
            set.insert(k.clone(), v.clone());
        }
    }
    let mut own = vec![
        ("BACKPROP_RUN_ID", attempt.run_id.to_string()),
        ("BACKPROP_RUN_DIR", attempt.run_dir.display().to_string()),
        ("BACKPROP_ATTEMPT", attempt.attempt.to_string()),
        (
            "BACKPROP_MAX_RUN_SECONDS",
            format!("{}", attempt.timebox.as_secs_f64().ceil() as u64),
        ),
        ("BACKPROP_FRAMEWORK", attempt.framework.to_string()),
        (
            "BACKPROP_STOP_SIGNAL",
            spec.options.stop_signal.as_str().to_string(),
        ),
        ("PYTHONUNBUFFERED", "1".to_string()),
        ("CUDA_DEVICE_ORDER", "PCI_BUS_ID".to_string()),
    ];
    if let Some(every) = spec.options.checkpoint_every {
        own.push((
            "BACKPROP_CHECKPOINT_EVERY_SECONDS",
            format!("{}", every.as_secs_f64().round() as u64),
        ));
    }
    if let Some(file) = attempt.timebox_file {
        own.push(("BACKPROP_TIMEBOX_FILE", file.display().to_string()));
    }
    if let Some(path) = attempt.resume_from {
        own.push(("BACKPROP_RESUME_FROM", path.to_string()));
    }
    if let Some(dir) = attempt.python_helper_dir {
        // The user's own --env PYTHONPATH, else the inherited one, stays after the helper.
        let existing = spec
            .env
            .get("PYTHONPATH")
            .map(String::as_str)
            .or(attempt.inherited_pythonpath);
        own.push((
            "PYTHONPATH",
            crate::python_helper::pythonpath(dir, existing),
        ));
    }
    for (k, v) in own {
        set.insert(k.to_string(), v);
    }
    remove.retain(|k| !set.contains_key(k));
    EnvChanges {
        set: set.into_iter().collect(),
        remove,
    }
}

/// The framework for `BACKPROP_FRAMEWORK`: the configured one, or detected from the script
/// (never `auto`).
pub fn framework_for(spec: &RunSpec) -> Framework {
    if spec.options.framework != Framework::Auto {
        return spec.options.framework;
    }
    if spec.interpreter.is_none() {
        return Framework::None;
    }
    std::fs::read(&spec.program)
        .ok()
        .and_then(|bytes| crate::framework::detect(&String::from_utf8_lossy(&bytes)))
        .unwrap_or(Framework::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_script_or_interpreter_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve("nope.py", "python3", dir.path()).unwrap_err();
        assert!(matches!(err, NotFound::Script { .. }), "{err}");
        std::fs::write(dir.path().join("t.py"), "print(1)").unwrap();
        let err = resolve("t.py", "no-such-python-here", dir.path()).unwrap_err();
        assert!(err.to_string().contains("interpreter"), "{err}");
        let ok = resolve("t.py", "python3", dir.path()).unwrap();
        assert_eq!(ok.interpreter.as_deref(), Some("python3"));
        assert!(ok.program.ends_with("/t.py") && ok.program.starts_with('/'));
    }

    #[test]
    fn commands_come_from_path_or_an_executable_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            resolve("sh", "python3", dir.path())
                .unwrap()
                .program
                .ends_with("/sh")
        );
        assert!(matches!(
            resolve("no-such-cmd-xyz", "python3", dir.path()),
            Err(NotFound::Command(_))
        ));
        std::fs::write(dir.path().join("job.sh"), "echo hi").unwrap();
        assert!(matches!(
            resolve("./job.sh", "python3", dir.path()),
            Err(NotFound::NotExecutable(_))
        ));
    }

    #[test]
    fn resume_appends_the_configured_flag() {
        let mut spec = RunSpec {
            program: "/bin/true".into(),
            args: vec!["--lr".into(), "0.1".into()],
            ..Default::default()
        };
        let (_, args) = command_line(&spec, Some("/c.pt"), None).unwrap();
        assert_eq!(args, ["--lr", "0.1", "--resume-from", "/c.pt"]);
        spec.options.resume_arg = String::new();
        let (_, args) = command_line(&spec, Some("/c.pt"), None).unwrap();
        assert_eq!(args, ["--lr", "0.1"]);
    }

    #[test]
    fn legacy_scripts_get_the_original_tools_arguments_before_their_own() {
        let mut spec = RunSpec {
            program: "/bin/true".into(),
            args: vec!["--lr".into(), "0.1".into()],
            ..Default::default()
        };
        spec.options.legacy_args = true;
        let legacy = || {
            Some(LegacyArgs {
                run_id: "r1",
                timebox: std::time::Duration::from_secs(600),
            })
        };
        let (_, args) = command_line(&spec, None, legacy()).unwrap();
        assert_eq!(
            args,
            ["--run-id", "r1", "--max-minutes", "10", "--lr", "0.1"]
        );
        spec.options.framework = Framework::Pytorch;
        spec.options.checkpoint_every = Some(std::time::Duration::from_secs(30));
        let (_, args) = command_line(&spec, Some("/c.pt"), legacy()).unwrap();
        assert_eq!(
            args,
            [
                "--run-id",
                "r1",
                "--max-minutes",
                "10",
                "--framework",
                "pytorch",
                "--checkpoint-every-seconds",
                "30",
                "--resume-from",
                "/c.pt",
                "--lr",
                "0.1"
            ]
        );
    }

    #[test]
    fn hints_do_not_override_the_user_but_backprop_variables_do() {
        let mut spec = RunSpec::default();
        spec.env
            .insert("TF_FORCE_GPU_ALLOW_GROWTH".into(), "false".into());
        let gpu_env = vec![
            ("TF_FORCE_GPU_ALLOW_GROWTH".to_string(), "true".to_string()),
            ("CUDA_VISIBLE_DEVICES".to_string(), "1".to_string()),
        ];
        let attempt = AttemptEnv {
            run_id: "r",
            run_dir: Path::new("/h/runs/r"),
            attempt: 2,
            timebox: std::time::Duration::from_secs_f64(5.5),
            resume_from: Some("/c.pt"),
            framework: Framework::None,
            timebox_file: None,
            gpu_env: &gpu_env,
            python_helper_dir: None,
            inherited_pythonpath: Some("/site"),
        };
        let inherited = [
            "CUDA_VISIBLE_DEVICES",
            "BACKPROP_ATTEMPT",
            "BACKPROP_RESUME_FROM",
        ];
        let changes = script_env(&spec, &attempt, |k| inherited.contains(&k));
        assert_eq!(
            changes.remove,
            ["BACKPROP_CHECKPOINT_EVERY_SECONDS", "BACKPROP_TIMEBOX_FILE"],
            "the resume path is set, not removed"
        );
        let env: std::collections::HashMap<_, _> = changes.set.into_iter().collect();
        assert_eq!(env["TF_FORCE_GPU_ALLOW_GROWTH"], "false");
        assert_eq!(env["CUDA_VISIBLE_DEVICES"], "1");
        assert_eq!(env["BACKPROP_ATTEMPT"], "2");
        assert_eq!(env["BACKPROP_MAX_RUN_SECONDS"], "6");
        assert_eq!(env["BACKPROP_RESUME_FROM"], "/c.pt");
        assert_eq!(env["PYTHONUNBUFFERED"], "1");
        assert_eq!(env["CUDA_DEVICE_ORDER"], "PCI_BUS_ID");
        assert!(
            !env.contains_key("PYTHONPATH"),
            "untouched without the helper"
        );
    }

    #[test]
    fn the_helper_directory_goes_first_on_pythonpath() {
        let mut spec = RunSpec::default();
        let attempt = |inherited| AttemptEnv {
            run_id: "r",
            run_dir: Path::new("/h/runs/r"),
            attempt: 1,
            timebox: std::time::Duration::from_secs(60),
            resume_from: None,
            framework: Framework::None,
            timebox_file: None,
            gpu_env: &[],
            python_helper_dir: Some(Path::new("/h/python")),
            inherited_pythonpath: inherited,
        };
        let pythonpath = |spec: &RunSpec, inherited| {
            let changes = script_env(spec, &attempt(inherited), |_| false);
            let env: std::collections::HashMap<_, _> = changes.set.into_iter().collect();
            env["PYTHONPATH"].clone()
        };
        assert_eq!(pythonpath(&spec, None), "/h/python");
        assert_eq!(
            pythonpath(&spec, Some("/site:/lib")),
            "/h/python:/site:/lib"
        );
        spec.env.insert("PYTHONPATH".into(), "/mine".into());
        assert_eq!(pythonpath(&spec, Some("/site")), "/h/python:/mine");
    }
}
