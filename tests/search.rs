//! Adaptive search end to end: the real binary runs an ASHA search over real Python scripts
//! (tests/scripts/asha_trainer.py: val_loss = quality + 1/step, a checkpoint on the stop
//! signal), to its end with pruned runs, after a kill -9 of its supervisor, and after
//! `stop <batch-id>`. Budgets are a few dozen steps of 10-40 ms: no timing is asserted.

mod common;

use common::{Env, script, stderr_of, stdout_of, wait_for};
use serde_json::{Value, json};
use std::time::Duration;

/// Nine configurations: qualities 0.1 (the best at every rung) to 0.8, and one that never
/// reports val_loss. Rungs 10, 30, 90 steps, η 3, three at once.
fn write_sweep(env: &Env, step_sleep: f64) -> std::path::PathBuf {
    let mut runs: Vec<Value> = [0.1, 0.5, 0.3, 0.8, 0.2, 0.7, 0.4, 0.6]
        .iter()
        .map(|q| json!({"name": format!("q{q}"), "args": ["--quality", q.to_string()]}))
        .collect();
    runs.push(json!({"name": "silent", "args": ["--no-metric"]}));
    for run in &mut runs {
        let args = run["args"].as_array_mut().unwrap();
        // More steps than maxBudget: backprop's stop at the last rung ends every run.
        for extra in ["--steps", "1000", "--sleep", &step_sleep.to_string()] {
            args.push(json!(extra));
        }
    }
    let sweep = json!({
        "script": script("asha_trainer.py"),
        "runs": runs,
        "maxParallel": 3,
        "search": {"method": "asha", "metric": "val_loss", "mode": "min",
                   "minBudget": {"steps": 10}, "maxBudget": {"steps": 90},
                   "reductionFactor": 3}
    });
    let path = env.work.path().join("search.json");
    std::fs::write(&path, sweep.to_string()).unwrap();
    path
}

fn by_name(env: &Env) -> std::collections::BTreeMap<String, Value> {
    env.records()
        .into_values()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r))
        .collect()
}

fn rung_results(rec: &Value) -> Vec<Value> {
    rec["search"]["run"]["rungs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// What every finished search of `write_sweep` shows, whatever the timing.
fn check_finished_search(env: &Env, summary: &str) {
    let runs = by_name(env);
    assert_eq!(runs.len(), 9);
    let best = &runs["q0.1"];
    assert_eq!(best["status"], "completed", "{best}");
    let results = rung_results(best);
    assert_eq!(results.len(), 3, "the best run has a result at every rung");
    // The values when it reached 90 steps (lines read in one chunk count as one report).
    let step = results[2]["step"].as_u64().unwrap();
    assert!((90..100).contains(&step), "{best}");
    let metric = results[2]["metric"].as_f64().unwrap();
    assert!((metric - (0.1 + 1.0 / step as f64)).abs() < 1e-9, "{best}");
    // At least one attempt per rung, each promotion resumed from a checkpoint.
    let attempts = best["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 3, "{best}");
    assert!(attempts[1]["resumedFrom"].is_string());
    // The run that never reports the metric ranks last: pruned after rung 0.
    let silent = &runs["silent"];
    assert_eq!(silent["status"], "pruned", "{silent}");
    assert_eq!(rung_results(silent).len(), 1);
    assert!(rung_results(silent)[0]["metric"].is_null());
    for (name, rec) in &runs {
        let status = rec["status"].as_str().unwrap();
        assert!(
            status == "completed" || status == "pruned",
            "{name} ended {status}"
        );
        assert!(!rung_results(rec).is_empty(), "{name} has a rung result");
        if status == "pruned" {
            assert!(rec["reason"].as_str().unwrap().contains("not promoted"));
            let last = rec["attempts"].as_array().unwrap().last().unwrap().clone();
            assert_eq!(last["reason"], "rung", "{name}: {last}");
        }
    }
    let winner = best["id"].as_str().unwrap();
    assert!(
        summary.contains(&format!("winner: {winner}")),
        "summary: {summary}"
    );
}

fn batch_id(env: &Env) -> Option<String> {
    env.records()
        .values()
        .find_map(|r| r["batchId"].as_str().map(str::to_string))
}

fn any_rung_result(env: &Env) -> bool {
    env.records().values().any(|r| !rung_results(r).is_empty())
}

#[test]
fn a_search_runs_to_its_end_and_prunes_the_losers() {
    let env = Env::new();
    let sweep = write_sweep(&env, 0.01);
    let out = env.run(&["queue", sweep.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("without a value of \"val_loss\""),
        "a warning for the silent run: {stderr}"
    );
    let summary = stdout_of(&out);
    check_finished_search(&env, &summary);
    // Undisturbed, the best run trained in exactly one attempt per rung.
    let best = &by_name(&env)["q0.1"];
    let reasons: Vec<&str> = best["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["rung", "rung", "rung"], "{best}");
    // Best first: the winner's row comes before every other.
    let first_row = summary.lines().nth(2).unwrap_or_default();
    assert!(first_row.starts_with('*'), "{summary}");

    let pruned = env.run(&["--json", "list", "--status", "pruned"]);
    let listed: Vec<Value> = serde_json::from_slice(&pruned.stdout).unwrap();
    assert!(!listed.is_empty());
    assert!(listed.iter().all(|r| r["status"] == "pruned"));

    let batch = batch_id(&env).unwrap();
    let status = env.run(&["status", &batch]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr_of(&status));
    assert!(stdout_of(&status).contains("@30"), "{}", stdout_of(&status));
}

#[test]
fn a_search_whose_supervisor_is_killed_resumes_from_its_records() {
    let env = Env::new();
    let sweep = write_sweep(&env, 0.04);
    let mut child = env
        .cmd()
        .args(["-q", "queue", sweep.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || any_rung_result(&env)),
        "a run reaches its first rung"
    );
    child.kill().unwrap(); // SIGKILL: no chance to record anything more
    child.wait().unwrap();
    let before: Vec<(String, usize)> = by_name(&env)
        .iter()
        .map(|(n, r)| (n.clone(), rung_results(r).len()))
        .collect();

    let batch = batch_id(&env).unwrap();
    let out = env.run(&["resume", &batch]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    check_finished_search(&env, &stdout_of(&out));
    // What was recorded before the kill is kept: no rung result is lost or redone.
    let after = by_name(&env);
    for (name, done) in before {
        assert!(rung_results(&after[&name]).len() >= done, "{name}");
    }
}

#[test]
fn stop_of_a_search_batch_stops_it_gracefully_and_resume_finishes_it() {
    let env = Env::new();
    let sweep = write_sweep(&env, 0.04);
    let child = env
        .cmd()
        .args(["-q", "queue", sweep.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(60), || any_rung_result(&env)));
    let batch = batch_id(&env).unwrap();
    let stop = env.run(&["stop", &batch]);
    assert_eq!(stop.status.code(), Some(0), "{}", stderr_of(&stop));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr_of(&out));
    // Nothing is left queued or running, and the search is still on the records.
    for rec in env.records().values() {
        let status = rec["status"].as_str().unwrap();
        assert!(
            !matches!(status, "queued" | "running" | "paused"),
            "{status}"
        );
        assert!(rec["search"]["run"].is_object());
    }
    let out = env.run(&["resume", &batch]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    check_finished_search(&env, &stdout_of(&out));
}

#[test]
fn a_search_is_refused_on_slurm_with_what_to_do() {
    let env = Env::new();
    let sweep = write_sweep(&env, 0.01);
    let out = env.run(&["queue", sweep.to_str().unwrap(), "--executor", "slurm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("locally"), "{}", stderr_of(&out));
    assert!(env.records().is_empty(), "nothing is recorded");
}

#[test]
fn resume_of_an_ordinary_batch_continues_its_unfinished_runs() {
    let env = Env::new();
    let runs: Vec<Value> = [0.1, 0.2, 0.3]
        .iter()
        .map(|q| json!({"name": format!("q{q}"), "args": ["--quality", q.to_string(), "--steps", "40", "--sleep", "0.05"]}))
        .collect();
    let sweep = json!({"script": script("asha_trainer.py"), "runs": runs, "maxParallel": 1});
    let path = env.work.path().join("batch.json");
    std::fs::write(&path, sweep.to_string()).unwrap();
    let mut child = env
        .cmd()
        .args(["-q", "queue", path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(60), || {
        env.records()
            .values()
            .any(|r| r["lastStep"].as_u64().is_some_and(|s| s >= 5))
    }));
    child.kill().unwrap();
    child.wait().unwrap();
    let batch = batch_id(&env).unwrap();
    let out = env.run(&["resume", &batch]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    for (name, rec) in by_name(&env) {
        assert_eq!(rec["status"], "completed", "{name}: {rec}");
        assert_eq!(rec["lastStep"], 40, "{name}");
    }
    // Nothing is left to resume now.
    let again = env.run(&["resume", &batch]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        stderr_of(&again).contains("nothing to resume"),
        "{}",
        stderr_of(&again)
    );
}

#[test]
fn an_attempt_timeboxed_before_its_rung_continues_toward_it() {
    let env = Env::new();
    // 10 steps of 0.2 s to rung 0 against a timebox of 1.2 s of active time: the first
    // attempt of every run is timeboxed (the script saves a checkpoint on the stop signal).
    let runs: Vec<Value> = [0.1, 0.2, 0.3]
        .iter()
        .map(|q| json!({"name": format!("q{q}"), "args": ["--quality", q.to_string(), "--steps", "1000", "--sleep", "0.2"]}))
        .collect();
    let sweep = json!({
        "script": script("asha_trainer.py"),
        "runs": runs,
        "maxParallel": 3,
        "maxRunMinutes": 0.02,
        "gracePeriod": "5s",
        "search": {"method": "asha", "metric": "val_loss", "mode": "min",
                   "minBudget": {"steps": 10}, "maxBudget": {"steps": 30}}
    });
    let path = env.work.path().join("timeboxed.json");
    std::fs::write(&path, sweep.to_string()).unwrap();
    let out = env.run(&["queue", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let runs = by_name(&env);
    let best = &runs["q0.1"];
    assert_eq!(best["status"], "completed", "{best}");
    assert_eq!(rung_results(best).len(), 2);
    assert!(rung_results(best)[1]["step"].as_u64().unwrap() >= 30);
    for (name, rec) in &runs {
        let reasons: Vec<&str> = rec["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["reason"].as_str().unwrap_or("-"))
            .collect();
        assert_eq!(reasons[0], "timebox", "{name}: {reasons:?}");
        assert_eq!(*reasons.last().unwrap(), "rung", "{name}: {reasons:?}");
        // Every rung result is at its budget, however many attempts it took.
        let first = &rung_results(rec)[0];
        assert!(first["step"].as_u64().unwrap() >= 10, "{name}: {first}");
    }
    assert_eq!(runs["q0.3"]["status"], "pruned");
}
