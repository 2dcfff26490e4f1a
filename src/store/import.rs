//! Bringing a JSON store into the database: on first use (this tool's old store or the
//! original tool's `experiments.json`), and whenever another program rewrote the exported
//! file (the original tool writes the same path). Records are taken one for one; an entry
//! that is not a readable record is kept as it is; nothing already in the database is
//! overwritten, so importing twice changes nothing.

use super::legacy_json::JsonStore;
use super::{Db, EXPERIMENTS_FILE, StoreError, Tx};
use crate::record::RunRecord;
use crate::runid::RunId;
use std::path::{Path, PathBuf};

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub records: usize,
    pub unreadable: usize,
    /// Entries already in the database (not touched).
    pub known: usize,
}

/// Imports `experiments.json` the first time the database is used, keeping the original
/// beside it (`experiments.json.imported-<ms>`).
pub fn import_if_present(db: &mut Db) -> Result<(), StoreError> {
    let path = db.home().join(EXPERIMENTS_FILE);
    let already = db
        .conn()
        .query_row("SELECT 1 FROM meta WHERE key = 'imported'", [], |_| Ok(()))
        .is_ok();
    if already || !path.exists() {
        return mark_imported(db);
    }
    let bytes = std::fs::read(&path).map_err(|source| StoreError::Io {
        action: "read",
        path: path.clone(),
        source,
    })?;
    let kept = keep_original(&path, &bytes);
    match JsonStore::parse(&bytes) {
        Ok(json) => {
            let done = db.update(|tx| import(tx, &json))?;
            if done.records + done.unreadable > 0 {
                crate::ui::info(&format!(
                    "imported {} run(s) from {} into the new store{}{}",
                    done.records,
                    path.display(),
                    if done.unreadable > 0 {
                        format!(
                            " ({} entries that are not readable records kept as they are)",
                            done.unreadable
                        )
                    } else {
                        String::new()
                    },
                    kept.map(|k| format!("; the original is kept as {}", k.display()))
                        .unwrap_or_default()
                ));
            }
        }
        Err(problem) => crate::ui::warn(&format!(
            "{} could not be imported ({problem}); it is kept unchanged{}",
            path.display(),
            kept.map(|k| format!(" as {}", k.display()))
                .unwrap_or_default()
        )),
    }
    mark_imported(db)
}

fn mark_imported(db: &mut Db) -> Result<(), StoreError> {
    if db.journal == super::Journal::InMemory {
        return Ok(());
    }
    db.update(|tx| {
        tx.connection()
            .execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('imported', '1')",
                [],
            )
            .map(drop)
    })?
    .map_err(super::sql("note the import"))
}

/// A copy of the file as it was, beside it, never over another file.
fn keep_original(path: &Path, bytes: &[u8]) -> Option<PathBuf> {
    let stamp = crate::clock::now_ms();
    let copy = path.with_file_name(format!("{EXPERIMENTS_FILE}.imported-{stamp}"));
    let written = super::private_file(std::fs::OpenOptions::new().write(true).create_new(true))
        .open(&copy)
        .and_then(|mut f| std::io::Write::write_all(&mut f, bytes));
    written.ok().map(|_| copy)
}

/// Imports the entries of `json` that the database does not have yet.
pub fn import(tx: &mut Tx, json: &JsonStore) -> Imported {
    let mut done = Imported::default();
    for (key, raw) in json.entries() {
        if tx.contains(key) {
            done.known += 1;
            continue;
        }
        match read_record(key, raw) {
            Ok(rec) => {
                tx.put(&rec);
                done.records += 1;
            }
            Err(reason) => {
                tx.keep_unreadable(key, raw, &reason);
                done.unreadable += 1;
            }
        }
    }
    done
}

/// One entry as a record: the key is its id; the original tool's records have no creation
/// time, so their start time stands in for it (the order of `list`).
fn read_record(key: &str, raw: &str) -> Result<RunRecord, String> {
    RunId::parse(key).map_err(|e| e.to_string())?;
    let mut value: serde_json::Value = serde_json::from_str(raw).map_err(|e| e.to_string())?;
    if let Some(object) = value.as_object_mut() {
        object.insert("id".into(), serde_json::Value::from(key));
    }
    let mut rec: RunRecord = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if rec.created_time == 0 {
        rec.created_time = rec.start_time.unwrap_or(0);
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_tools_records_are_read_with_their_start_as_creation() {
        let raw = r#"{"id":"x","name":"n","scriptPath":"/t.py","status":"completed",
            "startTime":1700000000000,"endTime":1700000060000,"lastStep":10,"lastLoss":0.5,
            "checkpoints":[],"lastCheckpoint":null,"pid":7}"#;
        let rec = read_record("exp_1", raw).unwrap();
        assert_eq!(rec.id.as_str(), "exp_1");
        assert_eq!(rec.created_time, 1700000000000);
        assert_eq!(rec.extra["pid"], 7);
        assert!(read_record("bad id", raw).is_err());
        assert!(read_record("x", r#"{"status": 42}"#).is_err());
    }
}
