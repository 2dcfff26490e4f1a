//! Tests of sweep expansion: grids, templates, runs lists, random samples and errors.

use std::time::Duration;

use serde_json::json;

use super::*;

const FILE: &str = "sweep.json";

/// Parses text the way `load_file` does (objects in the order written), without a file.
fn parse_text(text: &str) -> Result<Batch, SweepError> {
    let value = json::from_text(text, FILE)?;
    expand::parse_file(&value, FILE)
}

fn ok(text: &str) -> Batch {
    parse_text(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn fails(text: &str) -> String {
    match parse_text(text) {
        Ok(batch) => panic!("{text}: expected an error, got {batch:?}"),
        Err(e) => e.to_string(),
    }
}

fn names(batch: &Batch) -> Vec<&str> {
    batch.runs.iter().map(|r| r.name.as_str()).collect()
}

fn over(origin: &str, key: &str, value: serde_json::Value) -> Override {
    Override {
        origin: origin.into(),
        key: key.into(),
        value,
    }
}

#[test]
fn a_two_by_three_grid_gives_six_runs_in_file_order() {
    let batch = ok(
        r#"{ "script": "train.py", "args": ["--lr", "{lr}", "--batch-size", "{bs}"],
        "grid": {"lr": [0.1, 0.01], "bs": [16, 32, 64]}, "name": "lr{lr}-bs{bs}",
        "maxRunMinutes": 5, "maxParallel": 2 }"#,
    );
    assert_eq!(
        names(&batch),
        [
            "lr0.1-bs16",
            "lr0.1-bs32",
            "lr0.1-bs64",
            "lr0.01-bs16",
            "lr0.01-bs32",
            "lr0.01-bs64"
        ]
    );
    let run = &batch.runs[4];
    assert_eq!(run.script, "train.py");
    assert_eq!(run.args, ["--lr", "0.01", "--batch-size", "32"]);
    assert_eq!(
        serde_json::Value::Object(run.params.clone()),
        json!({"lr": 0.01, "bs": 32})
    );
    assert!(run.env.is_empty() && run.cwd.is_none() && run.overrides.is_empty());
    assert_eq!(
        batch.overrides,
        [
            over(FILE, "maxRunMinutes", json!(5)),
            over(FILE, "maxParallel", json!(2))
        ]
    );
    assert!(!batch.until_done);
    assert_eq!((batch.rounds, batch.max_total), (None, None));
}

#[test]
fn parse_takes_a_value() {
    let value = json!({"script": "train.py", "grid": {"lr": [0.1, 0.01]}, "name": "lr{lr}"});
    let batch = parse(&value, "s.json").unwrap();
    assert_eq!(names(&batch), ["lr0.1", "lr0.01"]);
}

#[test]
fn default_names_use_the_script_stem_and_the_params() {
    let batch =
        ok(r#"{"script": "scripts/train.py", "grid": {"lr": [0.1, 1e-5], "opt": ["adam"]}}"#);
    assert_eq!(
        names(&batch),
        ["train-lr0.1-optadam", "train-lr1e-05-optadam"]
    );
    let batch = ok(r#"{"script": "train.py"}"#);
    assert_eq!(names(&batch), ["train"]);
    assert_eq!(batch.runs.len(), 1);
    assert!(batch.runs[0].args.is_empty());
    let batch = ok(r#"{"script": "train.py", "params": {"epochs": 3}, "args": ["{args}"]}"#);
    assert_eq!(names(&batch), ["train-epochs3"]);
    assert_eq!(batch.runs[0].args, ["--epochs", "3"]);
}

#[test]
fn args_template_expands_every_param_in_order() {
    let batch = ok(
        r#"{"script": "train.py", "params": {"opt": "adam", "amp": true},
        "args": ["--epochs", "3", "{args}", "--tag={{x}}"],
        "grid": {"lr": [0.1, 0.001], "bs": [32]}, "name": "{lr}"}"#,
    );
    assert_eq!(
        batch.runs[1].args,
        [
            "--epochs",
            "3",
            "--opt",
            "adam",
            "--amp",
            "true",
            "--lr",
            "0.001",
            "--bs",
            "32",
            "--tag={x}"
        ]
    );
}

#[test]
fn env_cwd_and_nested_config_keys() {
    let batch = ok(
        r#"{"script": "train.py", "cwd": "exp", "env": {"RUN_LR": "lr={lr}", "MODE": "offline"},
        "grid": {"lr": [0.5]}, "gpu": {"maxTempC": 80, "probe": "none"}, "interpreter": "python3.12"}"#,
    );
    let run = &batch.runs[0];
    assert_eq!(run.env["RUN_LR"], "lr=0.5");
    assert_eq!(run.env["MODE"], "offline");
    assert_eq!(run.cwd.as_deref(), Some("exp"));
    assert_eq!(
        batch.overrides,
        [
            over(FILE, "gpu.maxTempC", json!(80)),
            over(FILE, "gpu.probe", json!("none")),
            over(FILE, "interpreter", json!("python3.12")),
        ]
    );
}

#[test]
fn runs_inherit_from_the_top_level_and_carry_their_own_overrides() {
    let batch = ok(
        r#"{"script": "train.py", "args": ["--lr", "{lr}"], "env": {"A": "1"},
        "cwd": "top", "params": {"lr": 0.1, "seed": 7}, "maxRunMinutes": 30,
        "runs": [
            {"name": "base"},
            {"name": "fast-{lr}", "params": {"lr": 0.5, "warmup": 2}, "args": ["{args}"],
             "maxRunMinutes": 5, "gpu": {"maxTempC": 70}},
            {"script": "eval.py", "env": {"B": "{seed}"}, "cwd": "other"}
        ]}"#,
    );
    assert_eq!(names(&batch), ["base", "fast-0.5", "eval-lr0.1-seed7"]);
    let [base, fast, eval] = &batch.runs[..] else {
        panic!()
    };
    assert_eq!(base.script, "train.py");
    assert_eq!(base.args, ["--lr", "0.1"]);
    assert_eq!(base.env.get("A").map(String::as_str), Some("1"));
    assert_eq!(base.cwd.as_deref(), Some("top"));
    assert!(base.overrides.is_empty());
    assert_eq!(fast.args, ["--lr", "0.5", "--seed", "7", "--warmup", "2"]);
    assert_eq!(
        serde_json::Value::Object(fast.params.clone()),
        json!({"lr": 0.5, "seed": 7, "warmup": 2})
    );
    assert_eq!(
        fast.overrides,
        [
            over("sweep.json runs[1]", "maxRunMinutes", json!(5)),
            over("sweep.json runs[1]", "gpu.maxTempC", json!(70)),
        ]
    );
    assert_eq!(eval.script, "eval.py");
    assert_eq!(eval.env.len(), 1, "a run's env replaces the top level's");
    assert_eq!(eval.env["B"], "7");
    assert_eq!(eval.cwd.as_deref(), Some("other"));
    assert_eq!(batch.overrides, [over(FILE, "maxRunMinutes", json!(30))]);
}

#[test]
fn batch_keys() {
    let batch = ok(r#"{"script": "t.py", "untilDone": true, "rounds": 3, "maxTotalMinutes": 30}"#);
    assert!(batch.until_done);
    assert_eq!(batch.rounds, Some(3));
    assert_eq!(batch.max_total, Some(Duration::from_secs(1800)));
    let batch = ok(r#"{"script": "t.py", "maxTotalMinutes": "1h 30m"}"#);
    assert_eq!(batch.max_total, Some(Duration::from_secs(5400)));
    let batch = ok(r#"{"script": "t.py", "maxTotalMinutes": 0.5}"#);
    assert_eq!(batch.max_total, Some(Duration::from_secs(30)));
}

const RANDOM: &str = r#"{"script": "train.py", "args": ["{args}"],
    "random": {"n": 50, "seed": 1, "params": {
        "lr": {"logUniform": [1e-4, 1e-1]}, "dropout": {"uniform": [0, 0.5]},
        "bs": {"choice": [32, 64, "auto"]}, "layers": {"int": [2, 6]}}}}"#;

#[test]
fn random_is_deterministic_and_within_bounds() {
    let first = ok(RANDOM);
    assert_eq!(first, ok(RANDOM));
    assert_eq!(first.runs.len(), 50);
    let other = ok(&RANDOM.replace("\"seed\": 1", "\"seed\": 2"));
    assert_ne!(first.runs, other.runs);
    let (mut layers_seen, mut bs_seen) = (Vec::new(), Vec::new());
    for run in &first.runs {
        let p = &run.params;
        let lr = p["lr"].as_f64().unwrap();
        assert!((1e-4..=1e-1).contains(&lr), "{lr}");
        let dropout = p["dropout"].as_f64().unwrap();
        assert!((0.0..=0.5).contains(&dropout), "{dropout}");
        for x in [lr, dropout] {
            let rounded: f64 = format!("{x:.5e}").parse().unwrap();
            assert_eq!(rounded, x, "6 significant digits");
        }
        let layers = p["layers"].as_i64().expect("an integer");
        assert!((2..=6).contains(&layers));
        layers_seen.push(layers);
        assert!([json!(32), json!(64), json!("auto")].contains(&p["bs"]));
        bs_seen.push(p["bs"].clone());
        assert_eq!(run.args.len(), 8);
        assert_eq!(run.args[0], "--lr");
    }
    for n in 2..=6 {
        assert!(layers_seen.contains(&n), "int covers both ends: {n}");
    }
    assert!(bs_seen.contains(&json!("auto")) && bs_seen.contains(&json!(32)));
    // Names follow the param order written in the file.
    assert!(
        first.runs[0].name.starts_with("train-lr"),
        "{}",
        first.runs[0].name
    );
    let unique: std::collections::BTreeSet<&str> = names(&first).into_iter().collect();
    assert_eq!(unique.len(), 50);
}

#[test]
fn random_values_are_pinned() {
    // The same seed must give the same runs with any later version: if this fails, sampling
    // changed and existing sweeps would no longer reproduce.
    let batch = ok(
        r#"{"script": "t.py", "random": {"n": 2, "seed": 42, "params": {
        "lr": {"logUniform": [1e-4, 1e-1]}, "d": {"uniform": [0, 1]},
        "c": {"choice": ["a", "b", "c"]}, "k": {"int": [-5, 5]}}}}"#,
    );
    assert_eq!(names(&batch), PINNED);
}

const PINNED: [&str; 2] = [
    "t-lr0.0111093-d0.950275-cb-k-3",
    "t-lr0.000734145-d0.149959-cc-k-1",
];

#[test]
fn seed_defaults_to_zero() {
    let without =
        ok(r#"{"script": "t.py", "random": {"n": 3, "params": {"x": {"uniform": [0, 1]}}}}"#);
    let zero = ok(
        r#"{"script": "t.py", "random": {"n": 3, "seed": 0, "params": {"x": {"uniform": [0, 1]}}}}"#,
    );
    assert_eq!(without, zero);
}

#[test]
fn experiments_are_runs_without_a_top_level() {
    let list = vec![
        json!({"script": "a.py", "params": {"lr": 0.1}, "args": ["{args}"], "maxRunMinutes": 2}),
        json!({"script": "b.py", "name": "bee"}),
    ];
    let batch = from_experiments(&list, "backprop.config.json").unwrap();
    assert_eq!(names(&batch), ["a-lr0.1", "bee"]);
    assert_eq!(batch.runs[0].args, ["--lr", "0.1"]);
    assert_eq!(
        batch.runs[0].overrides,
        [over(
            "backprop.config.json experiments[0]",
            "maxRunMinutes",
            json!(2)
        )]
    );
    assert!(batch.overrides.is_empty());
    let err = from_experiments(&[json!({"name": "x"})], "backprop.config.json").unwrap_err();
    assert_eq!(
        err.to_string(),
        "backprop.config.json: experiments[0]: no \"script\"; name the script to run, like \"script\": \"train.py\""
    );
    let err =
        from_experiments(&[json!({"script": "a.py", "maxRunMinuts": 2})], "c.json").unwrap_err();
    assert_eq!(
        err.to_string(),
        "c.json: experiments[0].maxRunMinuts: unknown key (did you mean \"maxRunMinutes\"?)"
    );
}

#[test]
fn load_file_reads_in_order_and_reports_syntax_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sweep.json");
    std::fs::write(
        &path,
        r#"{"script": "t.py", "grid": {"z": [1, 2], "a": [3]}, "name": "{z}-{a}"}"#,
    )
    .unwrap();
    assert_eq!(names(&load_file(&path).unwrap()), ["1-3", "2-3"]);

    std::fs::write(
        &path,
        "{\n  \"script\": \"t.py\",\n  \"grid\": {\"lr\": [0.1,]}\n}\n",
    )
    .unwrap();
    let err = load_file(&path).unwrap_err();
    assert!(matches!(err, SweepError::Syntax { line: 3, .. }), "{err:?}");
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{}: not valid JSON: ", path.display())),
        "{shown}"
    );
    assert!(shown.contains("at line 3, column"), "{shown}");

    let missing = dir.path().join("nope.json");
    let err = load_file(&missing).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("cannot read sweep file {}: ", missing.display())),
        "{err}"
    );
}

#[test]
fn invalid_json_says_line_and_column() {
    let err = parse_text("{\"script\": \"t.py\",\n \"args\": [\"a\" \"b\"]}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "sweep.json: not valid JSON: expected `,` or `]` at line 2, column 15 (JSON has no comments or trailing commas; keys and strings need double quotes)"
    );
}

/// Malformed files, each with its whole message.
#[test]
fn malformed_files_give_precise_errors() {
    let cases: &[(&str, &str)] = &[
        // The file itself.
        (
            r#"[1, 2]"#,
            r#"sweep.json: a sweep file holds one JSON object like {"script": "train.py", "grid": {"lr": [0.1, 0.01]}}, not a list"#,
        ),
        (
            r#"{"script": "t.py", "script": "u.py"}"#,
            r#"sweep.json: "script" is given twice; keep one"#,
        ),
        // Types.
        (
            r#"{"script": 5}"#,
            r#"sweep.json: script: expected a string, got 5 (a number); quote it: "5""#,
        ),
        (
            r#"{"script": "t.py", "args": "--lr 0.1"}"#,
            r#"sweep.json: args: expected a list like ["--lr", "{lr}"], got "--lr 0.1" (a string)"#,
        ),
        (
            r#"{"script": "t.py", "args": ["--lr", 0.1]}"#,
            r#"sweep.json: args[1]: expected a string, got 0.1 (a number); quote it: "0.1""#,
        ),
        (
            r#"{"script": "t.py", "env": {"A": 1}}"#,
            r#"sweep.json: env.A: expected a string, got 1 (a number); quote it: "1""#,
        ),
        (
            r#"{"script": "t.py", "params": {"lr": [0.1]}}"#,
            r#"sweep.json: params.lr: expected a string, number or boolean, got [0.1] (a list)"#,
        ),
        (
            r#"{"script": "t.py", "untilDone": "yes"}"#,
            r#"sweep.json: untilDone: expected true or false, got "yes" (a string)"#,
        ),
        (
            r#"{"script": "t.py", "rounds": 0}"#,
            r#"sweep.json: rounds: expected the number of rounds, a whole number from 1 to 4294967295, got 0 (a number)"#,
        ),
        (
            r#"{"script": "", "grid": {"lr": [1]}}"#,
            r#"sweep.json: script: empty; name the script to run, like "train.py""#,
        ),
        // Unknown keys.
        (
            r#"{"script": "t.py", "maxRunMinuts": 5}"#,
            r#"sweep.json: maxRunMinuts: unknown key (did you mean "maxRunMinutes"?)"#,
        ),
        (
            r#"{"script": "t.py", "gird": {"lr": [1]}}"#,
            r#"sweep.json: gird: unknown key (did you mean "grid"?)"#,
        ),
        (
            r#"{"script": "t.py", "banana": 1}"#,
            r#"sweep.json: banana: unknown key; a sweep file takes script, args, name, env, cwd, params, grid, random, runs, untilDone, rounds, maxTotalMinutes, search and config keys (see backprop.config.example.json)"#,
        ),
        (
            r#"{"script": "t.py", "maxTempC": 80}"#,
            r#"sweep.json: maxTempC: unknown key (did you mean {"gpu": {"maxTempC": …}}?)"#,
        ),
        (
            r#"{"script": "t.py", "gpu.maxTempC": 80}"#,
            r#"sweep.json: gpu.maxTempC: write it nested: {"gpu": {"maxTempC": …}}"#,
        ),
        (
            r#"{"script": "t.py", "gpu": {"maxTemp": 80}}"#,
            r#"sweep.json: gpu.maxTemp: unknown key (did you mean "maxTempC"?)"#,
        ),
        (
            r#"{"script": "t.py", "gpu": 80}"#,
            r#"sweep.json: gpu: expected an object like {"probe": …}, got 80 (a number)"#,
        ),
        (
            r#"{"script": "t.py", "experiments": []}"#,
            r#"sweep.json: experiments: a list of runs cannot be given here; list runs under "runs" of a sweep file or "experiments" of backprop.config.json"#,
        ),
        (
            r#"{"script": "t.py", "runs": [{}, {}, {"maxRunMinuts": 3}]}"#,
            r#"sweep.json: runs[2].maxRunMinuts: unknown key (did you mean "maxRunMinutes"?)"#,
        ),
        (
            r#"{"script": "t.py", "runs": [{"name": "a", "untilDone": true}]}"#,
            r#"sweep.json: runs[0].untilDone: applies to the whole batch; set it at the top level of a sweep file"#,
        ),
        (
            r#"{"script": "t.py", "runs": [{"grid": {"lr": [1]}}]}"#,
            r#"sweep.json: runs[0].grid: a run cannot hold a grid or random samples; give this run's values in "params", or make a sweep file with a top-level grid/random"#,
        ),
        (
            r#"{"script": "t.py", "runs": ["a.py"]}"#,
            r#"sweep.json: runs[0]: expected an object like {"script": "train.py", "params": {"lr": 0.1}}, got "a.py" (a string)"#,
        ),
        (
            r#"{"script": "t.py", "runs": []}"#,
            r#"sweep.json: runs: empty list; give at least one run, like [{"script": "train.py", "params": {"lr": 0.1}}]"#,
        ),
        // maxTotalMinutes.
        (
            r#"{"script": "t.py", "maxTotalMinutes": -5}"#,
            r#"sweep.json: maxTotalMinutes: must be above 0, got -5"#,
        ),
        (
            r#"{"script": "t.py", "maxTotalMinutes": 0}"#,
            r#"sweep.json: maxTotalMinutes: must be above 0, got 0"#,
        ),
        (
            r#"{"script": "t.py", "maxTotalMinutes": "0s"}"#,
            r#"sweep.json: maxTotalMinutes: must be above 0, got "0s""#,
        ),
        (
            r#"{"script": "t.py", "maxTotalMinutes": "soon"}"#,
            r#"sweep.json: maxTotalMinutes: expected a number of minutes above 0 or a duration like "30m" or "2h", got "soon""#,
        ),
        (
            r#"{"script": "t.py", "maxTotalMinutes": true}"#,
            r#"sweep.json: maxTotalMinutes: expected a number of minutes above 0 or a duration like "30m" or "2h", got true (a boolean)"#,
        ),
        // Grids.
        (
            r#"{"script": "t.py", "grid": {"lr": [0.1], "bs": []}}"#,
            r#"sweep.json: grid.bs: empty list; give at least one value"#,
        ),
        (
            r#"{"script": "t.py", "grid": {}}"#,
            r#"sweep.json: grid: no params; give at least one, like {"lr": [0.1, 0.01]}"#,
        ),
        (
            r#"{"script": "t.py", "grid": {"lr": 0.1}}"#,
            r#"sweep.json: grid.lr: expected a list of values like [0.1, 0.01], got 0.1 (a number) (for one fixed value use "params")"#,
        ),
        (
            r#"{"script": "t.py", "grid": {"lr": [0.1, {"a": 1}]}}"#,
            r#"sweep.json: grid.lr[1]: expected a string, number or boolean, got {"a": 1} (an object)"#,
        ),
        (
            r#"{"script": "t.py", "params": {"lr": 1}, "grid": {"lr": [0.1]}}"#,
            r#"sweep.json: grid.lr: also given in "params"; give each param in one place"#,
        ),
        (
            r#"{"script": "t.py", "grid": {"args": [1]}}"#,
            r#"sweep.json: grid.args: "args" is reserved for the {args} template; rename this param"#,
        ),
        (
            r#"{"script": "t.py", "grid": {"a": [1,2,3,4,5,6,7,8,9,10], "b": [1,2,3,4,5,6,7,8,9,10],
                "c": [1,2,3,4,5,6,7,8,9,10], "d": [1,2,3,4,5,6,7,8,9,10], "e": [1,2]}}"#,
            r#"sweep.json: grid expands to 20000 runs; the limit is 10000 (use fewer values, split the sweep, or sample with "random")"#,
        ),
        (
            r#"{"script": "t.py", "grid": {"lr": [1]}, "random": {"n": 2, "params": {}}}"#,
            r#"sweep.json: "grid" and "random" cannot both be given; use one of them per sweep file"#,
        ),
        (
            r#"{"script": "t.py", "grid": {"lr": [1]}, "runs": [{}]}"#,
            r#"sweep.json: runs: cannot be combined with "grid"; list every run under "runs", or drop "runs" and let "grid" make them"#,
        ),
        (
            r#"{"script": "t.py", "random": {"n": 2, "params": {"x": {"int": [1, 2]}}}, "runs": [{}]}"#,
            r#"sweep.json: runs: cannot be combined with "random"; list every run under "runs", or drop "runs" and let "random" make them"#,
        ),
        // Templates.
        (
            r#"{"script": "t.py", "args": ["--lr", "{lr}", "--bs", "{bz}"], "grid": {"lr": [1], "bs": [2]}}"#,
            r#"sweep.json: args[3]: unknown template {bz} (params: lr, bs)"#,
        ),
        (
            r#"{"script": "t.py", "grid": {"lr": [1], "bs": [2]}, "runs2": 1}"#,
            r#"sweep.json: runs2: unknown key (did you mean "runs"?)"#,
        ),
        (
            r#"{"script": "t.py", "params": {"lr": 1, "bs": 2}, "runs": [{}, {"args": ["--x", "{lr}", "{bz}"]}]}"#,
            r#"sweep.json: runs[1].args[2]: unknown template {bz} (params: lr, bs)"#,
        ),
        (
            r#"{"script": "t.py", "args": ["{lr}"], "runs": [{"params": {"lr": 1}}, {"params": {"bs": 2}}]}"#,
            r#"sweep.json: args[0]: unknown template {lr} for runs[1] (params: bs)"#,
        ),
        (
            r#"{"script": "t.py", "name": "run-{lr}"}"#,
            r#"sweep.json: name: unknown template {lr} (there are no params: add "params", "grid" or "random")"#,
        ),
        (
            r#"{"script": "t.py", "name": "lr{lr", "grid": {"lr": [1]}}"#,
            r#"sweep.json: name: unclosed { in "lr{lr" (write {{ for a literal brace)"#,
        ),
        (
            r#"{"script": "t.py", "args": ["a}b"]}"#,
            r#"sweep.json: args[0]: unmatched } in "a}b" (write }} for a literal brace)"#,
        ),
        (
            r#"{"script": "t.py", "args": ["--all={args}"], "grid": {"lr": [1]}}"#,
            r#"sweep.json: args[0]: {args} must be a whole element of args on its own, like ["--epochs", "3", "{args}"], not part of "--all={args}""#,
        ),
        (
            r#"{"script": "t.py", "name": "{args}", "grid": {"lr": [1]}}"#,
            r#"sweep.json: name: {args} only works as a whole element of "args"; name the params here, like "lr{lr}""#,
        ),
        (
            r#"{"script": "t.py", "env": {"X": "{}"}}"#,
            r#"sweep.json: env.X: empty template {} in "{}" (write {{}} for literal braces)"#,
        ),
        // Names.
        (
            r#"{"script": "t.py", "grid": {"lr": [0.1, 0.01], "bs": [32, 64]}, "name": "lr{lr}"}"#,
            r#"sweep.json: name: duplicate run name "lr0.1" (runs #1 and #2 of 4); put every param that varies in "name", like "lr{lr}-bs{bs}""#,
        ),
        (
            r#"{"script": "t.py", "runs": [{"name": "a"}, {"name": "b"}, {"name": "a"}]}"#,
            r#"sweep.json: duplicate run name "a" (runs[0] and runs[2]); give each run its own "name""#,
        ),
        (
            r#"{"runs": [{"script": "a.py"}, {"script": "b.py"}, {"script": "a.py"}]}"#,
            r#"sweep.json: duplicate run name "a" (runs[0] and runs[2]); give each run its own "name""#,
        ),
        (
            r#"{"script": "t.py", "name": "{x}", "grid": {"x": [""]}}"#,
            r#"sweep.json: name: gives an empty run name; a name needs some text"#,
        ),
        // Script.
        (
            r#"{"grid": {"lr": [1]}}"#,
            r#"sweep.json: no "script"; name the script to run, like "script": "train.py""#,
        ),
        (
            r#"{"runs": [{"script": "a.py"}, {"name": "b"}]}"#,
            r#"sweep.json: runs[1]: no "script"; give one here or at the top level"#,
        ),
        // Random.
        (
            r#"{"script": "t.py", "random": {"n": 0, "params": {"x": {"int": [1, 2]}}}}"#,
            r#"sweep.json: random.n: expected the number of runs, a whole number from 1 to 10000, got 0 (a number)"#,
        ),
        (
            r#"{"script": "t.py", "random": {"n": 10001, "params": {"x": {"int": [1, 2]}}}}"#,
            r#"sweep.json: random.n: expected the number of runs, a whole number from 1 to 10000, got 10001 (a number)"#,
        ),
        (
            r#"{"script": "t.py", "random": {"params": {"x": {"int": [1, 2]}}}}"#,
            r#"sweep.json: random: no "n": say how many runs to sample, like {"n": 8, "seed": 1, "params": {"lr": {"logUniform": [1e-4, 1e-1]}}}"#,
        ),
        (
            r#"{"script": "t.py", "random": {"n": 2, "seed": -1, "params": {"x": {"int": [1, 2]}}}}"#,
            r#"sweep.json: random.seed: expected a seed, a whole number from 0 to 18446744073709551615, got -1 (a number)"#,
        ),
        (
            r#"{"script": "t.py", "random": {"n": 2, "sed": 1, "params": {"x": {"int": [1, 2]}}}}"#,
            r#"sweep.json: random.sed: unknown key (did you mean "seed"?); random takes n, seed and params"#,
        ),
        (
            r#"{"script": "t.py", "random": {"n": 2, "params": {}}}"#,
            r#"sweep.json: random.params: no params; give at least one, like {"lr": {"logUniform": [1e-4, 1e-1]}}"#,
        ),
        (
            r#"{"script": "t.py", "random": {"n": 2, "params": {"lr": {"logUniform": [0, 1]}}}}"#,
            r#"sweep.json: random.params.lr: logUniform needs 0 < low < high, got [0, 1]"#,
        ),
        (
            r#"{"script": "t.py", "random": {"n": 2, "params": {"d": {"uniform": [0.5, 0.5]}}}}"#,
            r#"sweep.json: random.params.d: uniform needs [low, high] with low < high, got [0.5, 0.5]"#,
        ),
        (
            r#"{"script": "t.py", "random": {"n": 2, "params": {"d": {"uniform": [0, "1"]}}}}"#,
            r#"sweep.json: random.params.d: uniform needs [low, high] with low < high, got [0, "1"]"#,
        ),
        (
            r#"{"script": "t.py", "random": {"n": 2, "params": {"k": {"int": [2.5, 6]}}}}"#,
            r#"sweep.json: random.params.k: int needs whole numbers [low, high] with low <= high (both included), got [2.5, 6]"#,
        ),
        (
            r#"{"script": "t.py", "random": {"n": 2, "params": {"k": {"int": [6, 2]}}}}"#,
            r#"sweep.json: random.params.k: int needs whole numbers [low, high] with low <= high (both included), got [6, 2]"#,
        ),
        (
            r#"{"script": "t.py", "random": {"n": 2, "params": {"bs": {"choice": []}}}}"#,
            r#"sweep.json: random.params.bs.choice: empty list; give at least one value to choose from"#,
        ),
        (
            r#"{"script": "t.py", "random": {"n": 2, "params": {"bs": {"choise": [1]}}}}"#,
            r#"sweep.json: random.params.bs.choise: unknown distribution (did you mean "choice"?); give one of uniform, logUniform, choice or int, like {"uniform": [0, 0.5]}"#,
        ),
        (
            r#"{"script": "t.py", "random": {"n": 2, "params": {"bs": {"choice": [1], "int": [1, 2]}}}}"#,
            r#"sweep.json: random.params.bs: needs exactly one distribution, got 2 (choice, int); give one of uniform, logUniform, choice or int, like {"uniform": [0, 0.5]}"#,
        ),
        (
            r#"{"script": "t.py", "random": {"n": 2, "params": {"bs": [32, 64]}}}"#,
            r#"sweep.json: random.params.bs: expected a distribution; give one of uniform, logUniform, choice or int, like {"uniform": [0, 0.5]}, got [32, 64] (a list) (to pick from a list, use {"choice": [...]})"#,
        ),
    ];
    assert!(cases.len() >= 20);
    let mut wrong = Vec::new();
    for (text, expected) in cases {
        let got = fails(text);
        if got != *expected {
            wrong.push(format!("{text}\n  expected: {expected}\n  got:      {got}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn errors_say_where() {
    let err = parse_text(r#"{"script": "t.py", "grid": {"lr": []}}"#).unwrap_err();
    assert_eq!(err.at(), Some("grid.lr"));
    assert_eq!(
        err.to_string(),
        "sweep.json: grid.lr: empty list; give at least one value"
    );
}

const SEARCH_GRID: &str = r#""script": "train.py", "args": ["{args}", "--steps", "2700"],
    "grid": {"lr": [0.1, 0.01, 0.001]}, "name": "lr{lr}""#;

fn with_search(search: &str) -> String {
    format!("{{{SEARCH_GRID}, \"search\": {search}}}")
}

#[test]
fn a_search_block_is_carried_on_the_batch() {
    use crate::search::{Budget, Method, Mode, SearchSpec};
    let batch = ok(&with_search(
        r#"{"method": "asha", "metric": "val_loss", "mode": "min",
            "minBudget": {"steps": 100}, "maxBudget": {"steps": 2700},
            "reductionFactor": 3, "seed": 7}"#,
    ));
    assert_eq!(batch.runs.len(), 3);
    let spec = batch.search.expect("search");
    assert_eq!(
        spec,
        SearchSpec {
            method: Method::Asha,
            metric: "val_loss".into(),
            mode: Mode::Min,
            min_budget: Budget::Steps(100),
            max_budget: Budget::Steps(2700),
            reduction_factor: 3,
            seed: Some(7),
        }
    );
    assert_eq!(
        spec.summary(),
        "asha on val_loss (min), rungs 100, 300, 900, 2700 steps"
    );
    // Minutes, mode max, the default reduction factor and no seed.
    let batch = ok(&with_search(
        r#"{"method": "asha", "metric": "val_acc", "mode": "max",
            "minBudget": {"minutes": 0.5}, "maxBudget": {"minutes": 4.5}}"#,
    ));
    let spec = batch.search.unwrap();
    assert_eq!(
        (spec.mode, spec.reduction_factor, spec.seed),
        (Mode::Max, 3, None)
    );
    assert_eq!(spec.max_budget, Budget::Active(Duration::from_secs(270)));
    assert_eq!(spec.rungs().len(), 3);
    // A single rung; no search, no spec.
    let single = ok(&with_search(
        r#"{"method": "asha", "metric": "loss", "mode": "min",
            "minBudget": {"steps": 50}, "maxBudget": {"steps": 50}}"#,
    ));
    assert_eq!(single.search.unwrap().rungs(), [Budget::Steps(50)]);
    assert_eq!(ok(&format!("{{{SEARCH_GRID}}}")).search, None);
}

#[test]
fn invalid_search_blocks_say_where() {
    let base = r#""method": "asha", "metric": "val_loss", "mode": "min""#;
    let budgets = r#""minBudget": {"steps": 100}, "maxBudget": {"steps": 2700}"#;
    let cases: Vec<(String, &str)> = vec![
        (
            with_search(&format!("{{{base}, {budgets}, \"reductionFactor\": 1}}")),
            "sweep.json: search.reductionFactor: must be at least 2, got 1 (each rung keeps the best 1/η)",
        ),
        (
            with_search(&format!("{{{base}, {budgets}, \"reductionFactor\": 2.5}}")),
            "sweep.json: search.reductionFactor: expected a whole number of at least 2, like 3, got 2.5 (a number)",
        ),
        (
            with_search(&format!("{{{base}, {budgets}, \"eta\": 3}}")),
            "sweep.json: search.eta: unknown key (did you mean \"reductionFactor\"?); search takes method, metric, mode, minBudget, maxBudget, reductionFactor, seed",
        ),
        (
            with_search(&format!("{{{base}, {budgets}, \"metrc\": \"x\"}}")),
            "sweep.json: search.metrc: unknown key (did you mean \"metric\"?); search takes method, metric, mode, minBudget, maxBudget, reductionFactor, seed",
        ),
        (
            with_search(&format!(
                "{{{base}, \"minBudget\": {{\"steps\": 100}}, \"maxBudget\": {{\"minutes\": 30}}}}"
            )),
            "sweep.json: search.maxBudget: is in minutes while minBudget is in steps; give both budgets in the same unit",
        ),
        (
            with_search(&format!(
                "{{{base}, \"minBudget\": {{\"steps\": 900}}, \"maxBudget\": {{\"steps\": 300}}}}"
            )),
            "sweep.json: search.minBudget: 900 steps is more than maxBudget (300 steps)",
        ),
        (
            with_search(&format!(
                "{{{base}, \"minBudget\": {{\"epochs\": 1}}, \"maxBudget\": {{\"steps\": 300}}}}"
            )),
            "sweep.json: search.minBudget.epochs: unknown unit; a budget is in \"steps\" (the reported step) or \"minutes\" (active time)",
        ),
        (
            with_search(&format!(
                "{{{base}, \"minBudget\": 100, \"maxBudget\": {{\"steps\": 300}}}}"
            )),
            "sweep.json: search.minBudget: expected an object like {\"steps\": 100} or {\"minutes\": 2}, got 100 (a number)",
        ),
        (
            with_search(&format!(
                "{{{base}, \"minBudget\": {{\"steps\": 1, \"minutes\": 1}}, \"maxBudget\": {{\"steps\": 300}}}}"
            )),
            "sweep.json: search.minBudget: expected one unit, like {\"steps\": 100} or {\"minutes\": 2}, got {\"steps\": 1, \"minutes\": 1}",
        ),
        (
            with_search(&format!(
                "{{{base}, \"minBudget\": {{\"steps\": 0}}, \"maxBudget\": {{\"steps\": 300}}}}"
            )),
            "sweep.json: search.minBudget.steps: expected a number of steps, a whole number from 1 to 18446744073709551615, got 0 (a number)",
        ),
        (
            with_search(&format!(
                "{{{base}, \"minBudget\": {{\"minutes\": -1}}, \"maxBudget\": {{\"minutes\": 3}}}}"
            )),
            "sweep.json: search.minBudget.minutes: expected a number of minutes of active time above 0 (at least 1 ms), got -1 (a number)",
        ),
        (
            with_search(&format!(
                "{{\"method\": \"hyperband\", \"metric\": \"val_loss\", \"mode\": \"min\", {budgets}}}"
            )),
            "sweep.json: search.method: unknown method \"hyperband\"; the one method is \"asha\" (asynchronous successive halving)",
        ),
        (
            with_search(&format!(
                "{{\"method\": \"asha\", \"metric\": \"val_loss\", \"mode\": \"minimize\", {budgets}}}"
            )),
            "sweep.json: search.mode: expected \"min\" (lower is better) or \"max\" (higher is better), got \"minimize\"",
        ),
        (
            with_search(&format!(
                "{{\"method\": \"asha\", \"metric\": \"\", \"mode\": \"min\", {budgets}}}"
            )),
            "sweep.json: search.metric: empty; name a metric the script reports, like \"val_loss\"",
        ),
        (
            with_search(&format!(
                "{{\"method\": \"asha\", \"mode\": \"min\", {budgets}}}"
            )),
            "sweep.json: search: no \"metric\"; give it, like \"metric\": \"val_loss\"",
        ),
        (
            with_search(&format!("{{{base}, \"minBudget\": {{\"steps\": 100}}}}")),
            "sweep.json: search: no \"maxBudget\"; give it, like \"maxBudget\": {\"steps\": 2700}",
        ),
        (
            with_search("\"asha\""),
            "sweep.json: search: expected an object like {\"method\": \"asha\", \"metric\": \"val_loss\", \"mode\": \"min\", \"minBudget\": {\"steps\": 100}, \"maxBudget\": {\"steps\": 2700}}, got \"asha\" (a string)",
        ),
        (
            r#"{"runs": [{"script": "t.py", "search": {}}]}"#.to_string(),
            "sweep.json: runs[0].search: applies to the whole batch; set it at the top level of a sweep file",
        ),
        (
            r#"{"script": "t.py", "serach": {}}"#.to_string(),
            "sweep.json: serach: unknown key (did you mean \"search\"?)",
        ),
    ];
    let mut wrong = Vec::new();
    for (text, expected) in &cases {
        let got = fails(text);
        if got != *expected {
            wrong.push(format!("{text}\n  expected: {expected}\n  got:      {got}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
