use super::*;
use crate::record::{RunRecord, RunSpec, Status};
use crate::runid::RunId;
use std::os::unix::fs::PermissionsExt;

fn record(id: &str) -> RunRecord {
    RunRecord::new(RunId::parse(id).unwrap(), id.into(), RunSpec::default(), 1)
}

#[test]
fn creates_a_private_home_and_database_and_round_trips_records() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let store = Store::open(&home).unwrap();
    assert_eq!(
        fs::metadata(&home).unwrap().permissions().mode() & 0o777,
        0o700
    );
    store.update(|tx| tx.put(&record("a"))).unwrap();
    let mode = fs::metadata(store.db_path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(store.get("a").unwrap().status(), Status::Queued);
    assert!(matches!(store.get("b"), Err(StoreError::NotFound(_))));
    assert_eq!(store.active().unwrap().len(), 1);
}

#[test]
fn unknown_fields_survive_a_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut rec = record("a");
    rec.extra
        .insert("fromTheFuture".into(), serde_json::json!({"kept": [1, 2]}));
    store.update(|tx| tx.put(&rec)).unwrap();
    store
        .update_record("a", |r| r.name = "renamed".into())
        .unwrap();
    let back = store.get("a").unwrap();
    assert_eq!(
        back.extra["fromTheFuture"],
        serde_json::json!({"kept": [1, 2]})
    );
    assert_eq!(back.name, "renamed");
}

#[test]
fn an_existing_json_store_is_imported_once_and_kept_beside() {
    let dir = tempfile::tempdir().unwrap();
    let json = r#"{"old": {"id":"old","status":"completed","startTime":5,"pid":  12},
                   "bad": {"status": 42},
                   "not an id": {"id": "x", "status": "failed"}}"#;
    fs::write(dir.path().join(EXPERIMENTS_FILE), json).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let old = store.get("old").unwrap();
    assert_eq!(old.status(), Status::Completed);
    assert_eq!(old.extra["pid"], 12);
    assert_eq!(old.created_time, 5);
    let db = store.connect().unwrap();
    let unreadable = query::unreadable(db.conn()).unwrap();
    let ids: Vec<&str> = unreadable.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, ["bad", "not an id"]);
    let kept: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".imported-"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(fs::read_to_string(kept[0].path()).unwrap(), json);
    // Opening again imports nothing twice.
    store
        .update_record("old", |r| r.name = "changed".into())
        .unwrap();
    Store::open(dir.path()).unwrap();
    assert_eq!(store.get("old").unwrap().name, "changed");
}

#[test]
fn a_corrupt_json_store_is_kept_unchanged_and_the_store_starts_empty() {
    for bytes in [
        &b"{\"a\": {\"id\": "[..],
        b"",
        b"[1,2]",
        b"\xff\xfe garbage",
    ] {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(EXPERIMENTS_FILE), bytes).unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(query::count(store.connect().unwrap().conn()).unwrap(), 0);
        let kept: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".imported-"))
            .collect();
        assert_eq!(fs::read(kept[0].path()).unwrap(), bytes);
        store.update(|tx| tx.put(&record("a"))).unwrap();
    }
}

#[test]
fn a_store_of_a_newer_format_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.update(|tx| tx.put(&record("a"))).unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let before = fs::read(dir.path().join(DB_FILE)).unwrap();
    let err = Store::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("written by a newer backprop (format 99"),
        "{err}"
    );
    assert!(err.contains("upgrade backprop"), "{err}");
    assert_eq!(fs::read(dir.path().join(DB_FILE)).unwrap(), before);
}

#[test]
fn a_damaged_database_is_moved_aside_and_a_new_one_started() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(DB_FILE),
        b"this is not a database at all, not even close",
    )
    .unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.update(|tx| tx.put(&record("a"))).unwrap();
    let aside: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".damaged-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        fs::read(aside[0].path()).unwrap(),
        b"this is not a database at all, not even close"
    );
}

#[test]
fn concurrent_updates_from_many_handles_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    Store::open(&home)
        .unwrap()
        .update(|tx| tx.put(&record("shared")))
        .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let home = home.clone();
            std::thread::spawn(move || {
                let store = Store::open(&home).unwrap();
                for i in 0..25 {
                    store
                        .update(|tx| tx.put(&record(&format!("t{t}-{i}"))))
                        .unwrap();
                    store
                        .update_record("shared", |r| {
                            r.last_step = Some(r.last_step.unwrap_or(0) + 1)
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let store = Store::open(&home).unwrap();
    assert_eq!(
        query::count(store.connect().unwrap().conn()).unwrap(),
        8 * 25 + 1
    );
    assert_eq!(store.get("shared").unwrap().last_step, Some(200));
}

#[test]
fn the_export_is_an_object_keyed_by_run_id_with_the_original_fields() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .update(|tx| {
            tx.put(&record("a"));
            tx.put(&record("b"));
        })
        .unwrap();
    let mut db = store.connect().unwrap();
    assert!(export::pending(&db).unwrap().is_some());
    let done = export::export_now(&mut db).unwrap().unwrap();
    assert_eq!(done.records, 2);
    assert!(export::pending(&db).unwrap().is_none());
    let text = fs::read_to_string(store.experiments_path()).unwrap();
    let value: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    for field in [
        "id",
        "name",
        "scriptPath",
        "status",
        "startTime",
        "endTime",
        "lastStep",
        "lastLoss",
        "checkpoints",
        "lastCheckpoint",
    ] {
        assert!(value["a"].get(field).is_some(), "{field}");
    }
    // Another program adds a record to the file: it is imported before the next export.
    let mut foreign = value.clone();
    foreign.insert(
        "exp_ts".into(),
        serde_json::json!({"id": "exp_ts", "name": "ts", "scriptPath": "/t.py",
            "status": "completed", "startTime": 9, "endTime": 10, "lastStep": 1,
            "lastLoss": 0.1, "checkpoints": [], "lastCheckpoint": null}),
    );
    fs::write(
        store.experiments_path(),
        serde_json::to_vec(&foreign).unwrap(),
    )
    .unwrap();
    store
        .update_record("a", |r| r.name = "again".into())
        .unwrap();
    export::export_now(&mut db).unwrap().unwrap();
    assert_eq!(store.get("exp_ts").unwrap().name, "ts");
    let text = fs::read_to_string(store.experiments_path()).unwrap();
    assert!(text.contains("\"exp_ts\"") && text.contains("\"again\""));
}

#[test]
fn an_unwritable_home_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    fs::write(&file, "x").unwrap();
    let err = Store::open(&file).unwrap_err().to_string();
    assert!(err.contains("cannot write to the backprop home"), "{err}");
    assert!(err.contains("BACKPROP_HOME"), "{err}");
}

#[test]
fn every_put_stamps_the_row_and_updated_since_finds_only_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let conn = || store.connect().unwrap();
    assert_eq!(query::latest_update(conn().conn()).unwrap(), 0);
    // Three puts in one transaction and one in another: every stamp is a new one.
    store
        .update(|tx| {
            tx.put(&record("a"));
            tx.put(&record("b"));
            tx.put(&record("a"));
        })
        .unwrap();
    let first = query::updated_since(conn().conn(), 0, 100).unwrap();
    let ids: Vec<&str> = first.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["b", "a"], "oldest change first, one row per run");
    assert!(first[0].updated_ms < first[1].updated_ms);
    let seen = query::latest_update(conn().conn()).unwrap();
    assert_eq!(seen, first[1].updated_ms);
    assert!(
        query::updated_since(conn().conn(), seen, 100)
            .unwrap()
            .is_empty()
    );
    let generation = query::generation(conn().conn()).unwrap();
    store.update_record("b", |r| r.last_step = Some(7)).unwrap();
    let later = query::updated_since(conn().conn(), seen, 100).unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(
        (
            later[0].id.as_str(),
            later[0].last_step,
            later[0].status.as_str()
        ),
        ("b", Some(7), "queued")
    );
    assert!(later[0].updated_ms > seen);
    assert!(query::generation(conn().conn()).unwrap() > generation);
    // The limit bounds one read; the rest follow from the last stamp read.
    let page = query::updated_since(conn().conn(), 0, 1).unwrap();
    assert_eq!(page[0].id, "a");
}

#[test]
fn a_stamp_never_goes_back_even_when_the_clock_does() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.update(|tx| tx.put(&record("a"))).unwrap();
    // A write from a host whose clock is an hour ahead.
    let ahead = crate::clock::now_ms() as i64 + 3_600_000;
    store
        .connect()
        .unwrap()
        .conn()
        .execute("UPDATE runs SET updated_ms = ?1 WHERE id = 'a'", [ahead])
        .unwrap();
    store.update(|tx| tx.put(&record("b"))).unwrap();
    let changes = query::updated_since(store.connect().unwrap().conn(), ahead as u64, 10).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].id, "b");
    assert_eq!(changes[0].updated_ms, ahead as u64 + 1);
}

#[test]
fn a_store_made_before_the_update_stamp_gains_it_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.update(|tx| tx.put(&record("old"))).unwrap();
    drop(store);
    // The first SQLite layout: no updated_ms column, no index on it.
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.execute_batch("DROP INDEX runs_by_update; ALTER TABLE runs DROP COLUMN updated_ms;")
        .unwrap();
    assert!(schema::needs_upgrade(&conn).unwrap());
    drop(conn);
    let store = Store::open(dir.path()).unwrap();
    let db = store.connect().unwrap();
    assert!(!schema::needs_upgrade(db.conn()).unwrap());
    let version: i64 = db
        .conn()
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(
        version,
        schema::VERSION,
        "the format stays readable by older backprop"
    );
    // The old row has no stamp; the next write of it does.
    assert!(query::updated_since(db.conn(), 0, 10).unwrap().is_empty());
    assert_eq!(store.get("old").unwrap().status(), Status::Queued);
    store.update_record("old", |r| r.name = "n".into()).unwrap();
    let changes = query::updated_since(db.conn(), 0, 10).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].name, "n");
    let plan: String = db
        .conn()
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id FROM runs WHERE updated_ms > 5",
            [],
            |row| row.get(3),
        )
        .unwrap();
    assert!(plan.contains("runs_by_update"), "{plan}");
}

#[test]
fn a_new_database_over_old_run_directories_asks_once_for_them_to_be_checked() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = Store::open(&dir.path().join("new")).unwrap();
    assert!(!fresh.take_run_dir_check().unwrap(), "a new home has none");
    let home = dir.path().join("old");
    fs::create_dir_all(home.join("runs").join("r")).unwrap();
    let store = Store::open(&home).unwrap();
    assert!(store.take_run_dir_check().unwrap());
    assert!(!store.take_run_dir_check().unwrap(), "once");
}
