//! The on-disk format guard: stores written by earlier versions (and by the original
//! TypeScript tool) in `tests/fixtures/` are read by this one, record for record, and a store
//! of a newer format is refused without being touched.

mod common;
use common::*;
use serde_json::{Map, Value};
use std::path::Path;

/// The fixture's experiments.json as this checkout sees it: the 0.1 store was written in a
/// checkout at /work/main with runs working in /tmp/fx/work; both are put where they are here.
fn fixture_text(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .join("experiments.json");
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::create_dir_all(FIXTURE_WORK).unwrap();
    text.replace("/work/main/", concat!(env!("CARGO_MANIFEST_DIR"), "/"))
}

/// The working directory the fixture's runs were started in (created when missing).
const FIXTURE_WORK: &str = "/tmp/fx/work";

fn fixture(name: &str) -> Map<String, Value> {
    serde_json::from_str(&fixture_text(name)).unwrap()
}

/// A home holding the fixture's experiments.json, as a user upgrading would have it.
fn home_with(env: &Env, name: &str) {
    std::fs::create_dir_all(env.home_path()).unwrap();
    std::fs::write(env.experiments_path(), fixture_text(name)).unwrap();
}

fn listed(env: &Env) -> Vec<Value> {
    let out = env.run(&["--json", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_store_written_by_backprop_0_1_is_read_record_for_record() {
    let env = Env::new();
    home_with(&env, "store-0.1");
    let original = fixture("store-0.1");
    let runs = listed(&env);
    assert_eq!(runs.len(), original.len(), "every record is there");
    for run in &runs {
        let id = run["id"].as_str().unwrap();
        let before = &original[id];
        for field in EXTENSION_FIELDS {
            if field == "status" || field == "endTime" {
                continue; // a run left running by a dead supervisor becomes lost
            }
            assert_eq!(run[field], before[field], "{id}.{field}");
        }
        assert_eq!(
            run["spec"], before["spec"],
            "{id}: the spec, typed, reads back the same"
        );
        assert_eq!(
            run["attempts"].as_array().unwrap().len(),
            before["attempts"].as_array().unwrap().len()
        );
    }
    let by_id = |id: &str| runs.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(by_id("fx-timeboxed")["status"], "timeboxed");
    assert_eq!(
        by_id("fx-options")["spec"]["options"]["gpuMemoryLimit"],
        "80%"
    );
    assert_eq!(by_id("fx-slurm")["slurm"]["jobId"], "123_4");
    let orphan = by_id("fx-orphan");
    assert_eq!(orphan["unknownFieldFromTheFuture"]["kept"], true);
    let here = nix::unistd::gethostname().unwrap().into_string().unwrap();
    // Its supervisor was on host "vm" and is long gone: lost there; elsewhere it cannot be
    // judged and stays as it was.
    let expected = if here == "vm" { "lost" } else { "running" };
    assert_eq!(orphan["status"], expected);

    // Resuming a run of the old store works with its stored spec.
    let out = env.run(&["resume", "fx-timeboxed", "-m", "2s", "-q"]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr_of(&out));
    assert_eq!(
        by_id("fx-timeboxed")["attempts"].as_array().unwrap().len(),
        2
    );
    let after: Vec<Value> = listed(&env);
    let resumed = after.iter().find(|r| r["id"] == "fx-timeboxed").unwrap();
    assert_eq!(resumed["attempts"].as_array().unwrap().len(), 3);
}

#[test]
fn the_original_tools_store_is_imported_and_kept_beside() {
    let env = Env::new();
    home_with(&env, "original-tool");
    let original = fixture("original-tool");
    let runs = listed(&env);
    assert_eq!(runs.len(), 4);
    for run in &runs {
        let id = run["id"].as_str().unwrap();
        for field in EXTENSION_FIELDS {
            if field == "status" || field == "endTime" {
                continue;
            }
            assert_eq!(run[field], original[id][field], "{id}.{field}");
        }
    }
    let orphan = runs
        .iter()
        .find(|r| r["id"] == "exp_1732002000000_orphan")
        .unwrap();
    assert_eq!(orphan["status"], "lost", "nothing supervises it any more");
    let mnist = runs
        .iter()
        .find(|r| r["id"] == "exp_1732000000000_mnist")
        .unwrap();
    assert_eq!(mnist["gpuId"], 0, "the original tool's own fields are kept");
    assert_eq!(mnist["framework"], "pytorch");
    let kept: Vec<_> = std::fs::read_dir(env.home_path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("experiments.json.imported-"))
        .collect();
    assert_eq!(kept.len(), 1);
    let kept: Map<String, Value> =
        serde_json::from_slice(&std::fs::read(&kept[0]).unwrap()).unwrap();
    assert_eq!(kept, original, "the original file is kept unchanged");
}

#[test]
fn the_export_reads_as_the_editor_extension_reads_it() {
    let env = Env::new();
    home_with(&env, "original-tool");
    for id in ["one", "two"] {
        let out = env.run(&[
            "run",
            &script("progress.py"),
            "-q",
            "--gpus",
            "0",
            "--run-id",
            id,
            "--",
            "--steps",
            "12",
            "--delay",
            "0",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    }
    // As the extension does: one object keyed by run id, each value a run with its fields.
    let exported = env.exported();
    assert_eq!(exported.len(), 6);
    for (id, run) in &exported {
        assert_eq!(run["id"], id.as_str());
        assert!(run["name"].is_string() && run["scriptPath"].is_string());
        assert!(run["status"].is_string());
        assert!(run["startTime"].is_u64() || run["startTime"].is_null());
        assert!(run["endTime"].is_u64() || run["endTime"].is_null());
        assert!(run["lastStep"].is_u64() || run["lastStep"].is_null());
        assert!(run["lastLoss"].is_number() || run["lastLoss"].is_null());
        assert!(run["checkpoints"].is_array());
    }
    assert_eq!(exported["one"]["status"], "completed");
    assert_eq!(exported["one"]["lastStep"], 11);

    // The original tool writes the same path: its new run is imported, not clobbered.
    let mut theirs = exported.clone();
    let mut added = original_run("exp_1732009999999_new");
    added["name"] = "written-by-the-original-tool".into();
    theirs.insert("exp_1732009999999_new".into(), added);
    std::fs::write(env.experiments_path(), serde_json::to_vec(&theirs).unwrap()).unwrap();
    let out = env.run(&[
        "run", "-q", "--gpus", "0", "--run-id", "three", "--", "true",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let runs = listed(&env);
    assert!(
        runs.iter()
            .any(|r| r["name"] == "written-by-the-original-tool")
    );
    let exported = env.exported();
    assert!(exported.contains_key("exp_1732009999999_new") && exported.contains_key("three"));
}

fn original_run(id: &str) -> Value {
    let mut run = fixture("original-tool")["exp_1732001000000_stopped"].clone();
    run["id"] = id.into();
    run
}

#[test]
fn a_store_of_a_newer_format_is_refused_and_left_as_it_is() {
    let env = Env::new();
    let out = env.run(&["run", "-q", "--gpus", "0", "--", "true"]);
    assert_eq!(out.status.code(), Some(0));
    let db = env.home_path().join("backprop.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    drop(conn);
    let before = std::fs::read(&db).unwrap();
    for args in [vec!["list"], vec!["run", "-q", "--gpus", "0", "--", "true"]] {
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let said = stderr_of(&out);
        assert!(
            said.contains("written by a newer backprop (format 99"),
            "{said}"
        );
        assert!(said.contains("upgrade backprop"), "{said}");
    }
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the newer store is untouched"
    );
}
