use super::*;
use crate::record::{RunRecord, RunSpec, Status};
use std::os::unix::fs::PermissionsExt;

fn record(id: &str) -> RunRecord {
    RunRecord::new(
        crate::runid::RunId::parse(id).unwrap(),
        id.into(),
        RunSpec::default(),
        1,
    )
}

#[test]
fn creates_a_private_home_and_round_trips_records() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let store = Store::open(&home).unwrap();
    assert_eq!(
        fs::metadata(&home).unwrap().permissions().mode() & 0o777,
        0o700
    );
    store.update(|ex| ex.put(&record("a"))).unwrap();
    let mode = fs::metadata(store.experiments_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(store.get("a").unwrap().status(), Status::Queued);
    assert!(matches!(store.get("b"), Err(StoreError::NotFound(_))));
    assert!(!home.join(TEMP_FILE).exists());
}

#[test]
fn untouched_records_are_written_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let foreign = r#"{"old": {"id":"old","status":"completed","pid":  12,"weird":[1, 2]}}"#;
    fs::write(store.experiments_path(), foreign).unwrap();
    store.update(|ex| ex.put(&record("new"))).unwrap();
    let text = fs::read_to_string(store.experiments_path()).unwrap();
    assert!(text.contains(r#"{"id":"old","status":"completed","pid":  12,"weird":[1, 2]}"#));
    assert_eq!(store.read().unwrap().len(), 2);
}

#[test]
fn an_unreadable_record_is_reported_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    fs::write(store.experiments_path(), r#"{"x": {"status": 42}}"#).unwrap();
    assert!(matches!(store.get("x"), Err(StoreError::Unreadable { .. })));
    store.update(|ex| ex.put(&record("y"))).unwrap();
    let text = fs::read_to_string(store.experiments_path()).unwrap();
    assert!(text.contains(r#"{"status": 42}"#));
}

#[test]
fn corrupt_files_are_moved_aside_byte_for_byte() {
    for bytes in [
        &b"{\"a\": {\"id\": "[..],
        b"",
        b"[1,2]",
        b"\xff\xfe garbage",
        b"null",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        fs::write(store.experiments_path(), bytes).unwrap();
        let ex = store.read().unwrap();
        assert!(ex.is_empty());
        let aside: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(".corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{bytes:?}");
        assert_eq!(fs::read(&aside[0]).unwrap(), bytes);
        // The store is usable again and still parses.
        store.update(|ex| ex.put(&record("a"))).unwrap();
        assert!(Experiments::parse(&fs::read(store.experiments_path()).unwrap()).is_ok());
    }
}

#[test]
fn concurrent_updates_from_many_handles_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    Store::open(&home)
        .unwrap()
        .update(|ex| ex.put(&record("shared")))
        .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let home = home.clone();
            std::thread::spawn(move || {
                // A handle per thread: each opens its own lock file description.
                let store = Store::open(&home).unwrap();
                for i in 0..25 {
                    store
                        .update(|ex| ex.put(&record(&format!("t{t}-{i}"))))
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
    let ex = store.read().unwrap();
    assert_eq!(ex.len(), 8 * 25 + 1);
    assert_eq!(store.get("shared").unwrap().last_step, Some(200));
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
