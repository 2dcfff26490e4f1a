//! What users see: the live line, plain output when piped, tables and `--json`, `config`,
//! completions.

mod common;
use common::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn on_a_terminal_the_live_line_updates_under_the_scripts_output() {
    if !prerequisite(tmux_available(), "tmux", ".ci/run installs it") {
        return;
    }
    let env = Env::new();
    let session = format!("bp-{}", std::process::id());
    let log = env.work.path().join("done");
    let command = format!(
        "cd {work} && BACKPROP_HOME={home} BACKPROP_MIN_FREE_RAM_GB=0 BACKPROP_MAX_CPU_LOAD=1000 {bin} run {example} -m 0.2; touch {log}; sleep 60",
        work = env.work.path().display(),
        home = env.home_path().display(),
        bin = env!("CARGO_BIN_EXE_backprop"),
        example = example(),
        log = log.display(),
    );
    let started = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "160",
            "-y",
            "20",
            &command,
        ])
        .status()
        .unwrap();
    assert!(started.success());
    let capture = || {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &session])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let live_line = |screen: &str| {
        screen
            .lines()
            .find(|l| l.contains("step ") && l.contains("left"))
            .map(String::from)
    };
    assert!(
        wait_for(Duration::from_secs(20), || live_line(&capture()).is_some()),
        "{}",
        capture()
    );
    let first = live_line(&capture()).unwrap();
    assert!(first.contains("loss "), "{first}");
    std::thread::sleep(Duration::from_secs(3));
    let second = live_line(&capture()).unwrap_or_default();
    assert_ne!(first, second, "the live line did not update");
    assert!(
        wait_for(Duration::from_secs(40), || log.exists()),
        "{}",
        capture()
    );
    let screen = capture();
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .status();
    // The script's own plain line is intact, and backprop's summary follows it.
    let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
    let interrupted = lines
        .iter()
        .position(|l| l.starts_with("interrupted at step"))
        .expect("script output");
    assert!(
        lines[interrupted + 1].contains("timeboxed after"),
        "{screen}"
    );
    assert!(
        !screen.contains("left  ETA") || !lines.last().unwrap().contains("left"),
        "the live line was cleared: {screen}"
    );
}

#[test]
fn piped_output_has_no_escape_sequences() {
    let env = Env::new();
    let out = env.run(&["run", &example(), "-m", "6s"]);
    assert_eq!(out.status.code(), Some(124));
    assert!(!out.stdout.contains(&0x1b), "escape in stdout");
    assert!(!out.stderr.contains(&0x1b), "escape in stderr");
    let err = stderr_of(&out);
    let progress_lines = err.lines().filter(|l| l.contains("active,")).count();
    // A plain line at most every few seconds (plus the first one).
    assert!((1..=3).contains(&progress_lines), "{err}");
    let quiet = env.run(&["run", &script("progress.py"), "-q", "--", "--steps", "3"]);
    assert_eq!(quiet.status.code(), Some(0));
    assert!(
        !stderr_of(&quiet).contains("active,"),
        "{}",
        stderr_of(&quiet)
    );
}

fn json_tool_parses(bytes: &[u8]) -> bool {
    let mut child = Command::new("python3")
        .args(["-m", "json.tool"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    child.wait().unwrap().success()
}

#[test]
fn list_and_status_json_parse_and_carry_the_store_fields() {
    let env = Env::new();
    for name in ["alpha", "beta"] {
        let out = env.run(&[
            "run",
            &script("progress.py"),
            "-q",
            "--name",
            name,
            "--",
            "--steps",
            "5",
            "--delay",
            "0",
        ]);
        assert_eq!(out.status.code(), Some(0));
    }
    let list = env.run(&["list", "--json"]);
    assert!(json_tool_parses(&list.stdout));
    let runs: Value = serde_json::from_slice(&list.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for field in EXTENSION_FIELDS.into_iter().chain(["attempts", "activeMs"]) {
        assert!(runs[0].get(field).is_some(), "list --json lacks {field}");
    }
    assert_eq!(runs[0]["name"], "beta", "newest first");
    let status = env.run(&["--json", "status"]);
    assert!(json_tool_parses(&status.stdout));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    for field in ["cpu", "ram", "gpus", "gpuProbe", "runs"] {
        assert!(status.get(field).is_some(), "status --json lacks {field}");
    }
    let id = runs[0]["id"].as_str().unwrap();
    let one = env.run(&["status", id, "--json"]);
    assert!(json_tool_parses(&one.stdout));
    assert_eq!(
        serde_json::from_slice::<Value>(&one.stdout).unwrap()["id"],
        id
    );

    let filtered = env.run(&["list", "--name", "al*", "--json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&filtered.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let limited = env.run(&["list", "--limit", "1", "--status", "completed"]);
    assert_eq!(
        stdout_of(&limited).lines().count(),
        2,
        "{}",
        stdout_of(&limited)
    );
    let bad = env.run(&["list", "--status", "done"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn config_names_the_source_of_every_value() {
    let env = Env::new();
    std::fs::write(
        env.work.path().join("backprop.config.json"),
        r#"{"maxParallel": 3, "gpu": {"maxTempC": 80}}"#,
    )
    .unwrap();
    let out = env
        .cmd()
        .env("BACKPROP_GRACE_PERIOD", "10s")
        .args(["--json", "config", "--gpu-min-vram", "4000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = &config["keys"];
    assert_eq!(keys["maxParallel"]["value"], 3);
    assert_eq!(keys["maxParallel"]["source"], "backprop.config.json");
    assert_eq!(
        keys["gracePeriod"]["source"],
        "environment variable BACKPROP_GRACE_PERIOD"
    );
    assert_eq!(keys["gpu.minFreeVramMB"]["value"], 4000);
    assert_eq!(keys["gpu.minFreeVramMB"]["source"], "flag --gpu-min-vram");
    assert_eq!(keys["gpu.maxTempC"]["source"], "backprop.config.json");
    assert_eq!(keys["maxRunMinutes"]["source"], "default");
    let text = env
        .cmd()
        .env("BACKPROP_GRACE_PERIOD", "10s")
        .args(["config"])
        .output()
        .unwrap();
    let text = stdout_of(&text);
    assert!(
        text.contains("environment variable BACKPROP_GRACE_PERIOD")
            && text.contains("backprop.config.json"),
        "{text}"
    );
}

#[test]
fn completions_and_help_examples() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = env.run(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(stdout_of(&out).contains("backprop"), "{shell}");
    }
    for command in [
        "run",
        "resume",
        "queue",
        "list",
        "status",
        "stop",
        "logs",
        "config",
        "completions",
        "plot",
    ] {
        let out = env.run(&[command, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{command}");
        assert!(
            stdout_of(&out).contains("Example"),
            "{command} --help shows no example"
        );
    }
}

#[test]
fn plots_draw_in_the_terminal_and_to_a_png_that_is_not_blank() {
    let env = Env::new();
    for (name, steps) in [("a", "20"), ("b", "30"), ("c", "40")] {
        let out = env.run(&[
            "run",
            &script("progress.py"),
            "-q",
            "--run-id",
            name,
            "--",
            "--steps",
            steps,
            "--delay",
            "0",
        ]);
        assert_eq!(out.status.code(), Some(0));
    }
    let out = env.run(&["plot", "a", "b", "c"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(!text.contains('\u{1b}'), "no colour when piped");
    for legend in ["* a", "+ b", "x c"] {
        assert!(text.contains(legend), "{legend} missing in\n{text}");
    }

    let png = env.work.path().join("loss.png");
    let out = env.run(&["plot", "a", "--out", png.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let pixels = &pixels[..info.buffer_size()];
    let first = &pixels[..3];
    let different = pixels.chunks(3).filter(|p| *p != first).count();
    assert!(
        different > 1000,
        "the image is blank ({different} non-background pixels)"
    );

    let out = env.run(&["plot", "a", "--out", "loss.jpg"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains(".png"), "{}", stderr_of(&out));
}
