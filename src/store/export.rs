//! `experiments.json`, kept as an export for the editor extension and scripts that read it:
//! the same path and fields as always (an object keyed by run id), written atomically and
//! streamed row by row, by one writer at a time. It is never on the hot path: a run's start,
//! a progress write or a command's exit never waits for it beyond a few milliseconds.
//!
//! Every committed change bumps a generation in the database; a status, checkpoint or
//! attempt change also marks the export urgent. A supervising process exports urgent
//! changes within seconds (less often for very large stores, so the export never costs more
//! than about a tenth of a core) and progress-only changes at most every minute; a command
//! that changed the store exports before it exits when the store is small (under about 1,000
//! runs), and otherwise leaves a detached `backprop __export` to do it. If the file differs
//! from what backprop last exported (the original tool also writes this path), its new
//! records are imported first: it is never clobbered.

use super::legacy_json::JsonStore;
use super::{Db, EXPERIMENTS_FILE, ListQuery, StoreError, query, sql};
use rusqlite::OptionalExtension;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Stores at most this big are exported before a command that changed them exits.
pub const SMALL_STORE: u64 = 1_000;
/// Progress-only changes reach the export at most this late.
pub const LAZY_EVERY: Duration = Duration::from_secs(60);
const LOCK_FILE: &str = "experiments.json.lock";
const TEMP_FILE: &str = "experiments.json.tmp";

static CHANGED_HERE: AtomicBool = AtomicBool::new(false);
static ENABLED: AtomicBool = AtomicBool::new(true);

/// `exportJson: false` turns the export off for this process.
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// This process changed the store (so it exports, or leaves that to a helper, on exit).
pub(super) fn note_change(_home: &Path) {
    CHANGED_HERE.store(true, Ordering::Relaxed);
}

/// What the export has not caught up with yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    pub generation: u64,
    pub urgent: bool,
    /// When the last export was written (epoch ms), if ever.
    pub last_export_ms: Option<u64>,
}

fn meta(conn: &rusqlite::Connection, key: &str) -> Result<Option<String>, StoreError> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
        row.get(0)
    })
    .optional()
    .map_err(sql("read the export state"))
}

fn meta_u64(conn: &rusqlite::Connection, key: &str) -> Result<Option<u64>, StoreError> {
    Ok(meta(conn, key)?.and_then(|v| v.parse().ok()))
}

/// None when the export is up to date.
pub fn pending(db: &Db) -> Result<Option<Pending>, StoreError> {
    let conn = db.conn();
    let generation = meta_u64(conn, "generation")?.unwrap_or(0);
    let exported = meta_u64(conn, "exported")?;
    if exported == Some(generation) && db.home().join(EXPERIMENTS_FILE).exists() {
        return Ok(None);
    }
    if exported.is_none() && generation == 0 {
        return Ok(None); // nothing was ever recorded
    }
    Ok(Some(Pending {
        generation,
        urgent: meta(conn, "urgent")?.as_deref() == Some("1") || exported.is_none(),
        last_export_ms: meta_u64(conn, "export_time")?,
    }))
}

/// How one export went.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exported {
    pub records: u64,
    pub bytes: u64,
    pub took: Duration,
    /// New records taken from a file another program wrote.
    pub imported: usize,
}

/// Writes the export now unless another process is writing it (then it catches up itself).
/// Returns None when skipped.
pub fn export_now(db: &mut Db) -> Result<Option<Exported>, StoreError> {
    let home = db.home().to_path_buf();
    let Some(_lock) = try_lock(&home)? else {
        return Ok(None);
    };
    let started = Instant::now();
    let path = home.join(EXPERIMENTS_FILE);
    let imported = take_foreign_changes(db, &path)?;
    let generation = meta_u64(db.conn(), "generation")?.unwrap_or(0);
    let (records, bytes) = write_json(db, &home.join(TEMP_FILE), &path)?;
    let stamp = stamp_of(&path).unwrap_or_default();
    let now = crate::clock::now_ms().to_string();
    db.update(|tx| {
        let conn = tx.connection();
        for (key, value) in [
            ("exported", generation.to_string()),
            ("export_stamp", stamp.clone()),
            ("export_time", now.clone()),
        ] {
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                [key, value.as_str()],
            )?;
        }
        // Urgent changes made during the export stay urgent.
        conn.execute(
            "UPDATE meta SET value = '0' WHERE key = 'urgent'
             AND (SELECT value FROM meta WHERE key = 'generation') = ?1",
            [generation.to_string()],
        )?;
        Ok::<(), rusqlite::Error>(())
    })?
    .map_err(sql("note the export"))?;
    Ok(Some(Exported {
        records,
        bytes,
        took: started.elapsed(),
        imported,
    }))
}

/// The export lock, if nobody else holds it.
fn try_lock(home: &Path) -> Result<Option<File>, StoreError> {
    let file = super::private_file(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    )
    .open(home.join(LOCK_FILE))
    .map_err(|source| StoreError::Io {
        action: "open",
        path: home.join(LOCK_FILE),
        source,
    })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Io {
            action: "lock",
            path: home.join(LOCK_FILE),
            source,
        }),
    }
}

/// Size and modification time of the file, to tell our export from a foreign write.
fn stamp_of(path: &Path) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    Some(format!(
        "{}:{}:{}",
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    ))
}

/// If the file is not the one we wrote last, its new records are imported (a corrupt one
/// is moved aside unchanged).
fn take_foreign_changes(db: &mut Db, path: &Path) -> Result<usize, StoreError> {
    let Some(current) = stamp_of(path) else {
        return Ok(0);
    };
    if meta(db.conn(), "export_stamp")?.as_deref() == Some(current.as_str()) {
        return Ok(0);
    }
    let bytes = fs::read(path).map_err(|source| StoreError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    match JsonStore::parse(&bytes) {
        Ok(json) => {
            let done = db.update(|tx| super::import::import(tx, &json))?;
            if done.records > 0 {
                crate::ui::info(&format!(
                    "{} was changed by another program: imported its {} new run(s)",
                    path.display(),
                    done.records
                ));
            }
            Ok(done.records)
        }
        Err(problem) => {
            let aside = path.with_file_name(format!(
                "{EXPERIMENTS_FILE}.corrupt-{}",
                crate::clock::now_ms()
            ));
            fs::rename(path, &aside).map_err(|source| StoreError::Io {
                action: "move aside",
                path: path.to_path_buf(),
                source,
            })?;
            crate::ui::warn(&format!(
                "{} was damaged ({problem}); moved it aside unchanged to {} and wrote a new export",
                path.display(),
                aside.display()
            ));
            Ok(0)
        }
    }
}

/// Streams every record into `temp`, then renames it over `path`.
fn write_json(db: &Db, temp: &Path, path: &Path) -> Result<(u64, u64), StoreError> {
    let io_error = |source| StoreError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    };
    let file = super::private_file(OpenOptions::new().write(true).create(true).truncate(true))
        .open(temp)
        .map_err(io_error)?;
    let mut out = BufWriter::with_capacity(1 << 16, file);
    let mut records = 0u64;
    let written = (|| -> Result<(), StoreError> {
        out.write_all(b"{\n").map_err(io_error)?;
        let oldest_first = ListQuery {
            oldest_first: true,
            ..ListQuery::default()
        };
        query::each_record(db.conn(), &oldest_first, |id, raw| {
            if records > 0 {
                out.write_all(b",\n")?;
            }
            records += 1;
            serde_json::to_writer(&mut out, id)?;
            out.write_all(b": ")?;
            out.write_all(raw.as_bytes())
        })?;
        out.write_all(b"\n}\n").map_err(io_error)?;
        let file = out.into_inner().map_err(|e| io_error(e.into_error()))?;
        file.sync_all().map_err(io_error)?;
        fs::rename(temp, path).map_err(io_error)
    })();
    if written.is_err() {
        let _ = fs::remove_file(temp);
    }
    written.map(|_| (records, out_bytes(path)))
}

fn out_bytes(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// When a supervising process should export next: urgent changes at once (but never more
/// often than ten times the last export took), progress-only changes after a minute.
pub fn due(pending: &Pending, last_took: Duration, now_ms: u64) -> bool {
    let since = pending
        .last_export_ms
        .map(|t| Duration::from_millis(now_ms.saturating_sub(t)));
    let spacing = (last_took * 10).max(Duration::from_secs(1));
    match since {
        None => true,
        Some(since) if pending.urgent => since >= spacing,
        Some(since) => since >= LAZY_EVERY.max(spacing),
    }
}

/// Small enough to be exported before a command exits.
pub fn is_small(db: &Db) -> bool {
    query::count(db.conn()).is_ok_and(|n| n < SMALL_STORE)
}

/// Before a command that changed the store exits: a small store is exported now; a large
/// one is left to a detached `backprop __export`.
pub fn settle_on_exit(home: &Path) {
    if !CHANGED_HERE.load(Ordering::Relaxed) || !enabled() {
        return;
    }
    // Never a new store from here (one removed under this process would be rebuilt from
    // an older export, and this process no longer has its runs to put back).
    if !home.join(super::DB_FILE).is_file() {
        return;
    }
    let Ok(mut db) = Db::open(home) else { return };
    let Ok(Some(pending)) = pending(&db) else {
        return;
    };
    if is_small(&db) {
        if let Err(e) = export_now(&mut db) {
            // The next command (or supervising process) writes it.
            tracing::debug!("export of {EXPERIMENTS_FILE} failed: {e}");
        }
    } else if due(&pending, Duration::ZERO, crate::clock::now_ms()) {
        spawn_detached_export(home);
    }
}

/// `backprop __export`: exports until the export is current (another process may keep
/// changing the store meanwhile; a few rounds at most).
pub fn run_detached(home: &Path) -> i32 {
    for _ in 0..5 {
        let Ok(mut db) = Db::open(home) else { return 1 };
        match pending(&db) {
            Ok(Some(_)) => {}
            _ => return 0,
        }
        match export_now(&mut db) {
            Ok(Some(_)) => continue,
            Ok(None) => return 0, // another exporter has it
            Err(e) => {
                tracing::warn!("export failed: {e}");
                return 1;
            }
        }
    }
    0
}

fn spawn_detached_export(home: &Path) {
    use std::os::unix::process::CommandExt;
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let spawned = std::process::Command::new(exe)
        .arg("__export")
        .env("BACKPROP_HOME", home)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
    if let Err(e) = spawned {
        tracing::warn!("cannot start the export helper: {e}");
    }
}

/// The formats of `backprop export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The same object keyed by run id as experiments.json.
    Json,
    /// One record per line.
    Jsonl,
    /// One line per run with the main fields.
    Csv,
}

/// Writes every record in `format` to `out`, streamed.
pub fn write(db: &Db, format: Format, out: &mut dyn Write) -> Result<u64, StoreError> {
    let mut records = 0u64;
    let query = ListQuery {
        oldest_first: true,
        ..ListQuery::default()
    };
    let io_error = |source| StoreError::Io {
        action: "write",
        path: PathBuf::from("the output"),
        source,
    };
    match format {
        Format::Json => {
            out.write_all(b"{\n").map_err(io_error)?;
            query::each_record(db.conn(), &query, |id, raw| {
                if records > 0 {
                    out.write_all(b",\n")?;
                }
                records += 1;
                serde_json::to_writer(&mut *out, id)?;
                out.write_all(b": ")?;
                out.write_all(raw.as_bytes())
            })?;
            out.write_all(b"\n}\n").map_err(io_error)?;
        }
        Format::Jsonl => query::each_record(db.conn(), &query, |_, raw| {
            records += 1;
            out.write_all(raw.as_bytes())?;
            out.write_all(b"\n")
        })?,
        Format::Csv => {
            out.write_all(b"id,name,status,batch_id,created_time,start_time,end_time,active_ms,last_step,last_loss,checkpoints,attempts\n")
                .map_err(io_error)?;
            query::each_record(db.conn(), &query, |id, raw| {
                records += 1;
                let line = csv_line(id, raw);
                out.write_all(line.as_bytes())
            })?;
        }
    }
    Ok(records)
}

fn csv_line(id: &str, raw: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(raw).unwrap_or_default();
    let field = |key: &str| match &v[key] {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => csv_quote(s),
        other => other.to_string(),
    };
    let count = |key: &str| v[key].as_array().map_or(0, Vec::len).to_string();
    [
        csv_quote(id),
        field("name"),
        field("status"),
        field("batchId"),
        field("createdTime"),
        field("startTime"),
        field("endTime"),
        field("activeMs"),
        field("lastStep"),
        field("lastLoss"),
        count("checkpoints"),
        count("attempts"),
    ]
    .join(",")
        + "\n"
}

fn csv_quote(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgent_changes_go_out_at_once_but_never_more_often_than_ten_times_an_export() {
        let pending = |urgent, last| Pending {
            generation: 3,
            urgent,
            last_export_ms: last,
        };
        assert!(due(&pending(true, None), Duration::ZERO, 10_000));
        assert!(due(
            &pending(true, Some(8_000)),
            Duration::from_millis(50),
            10_000
        ));
        assert!(!due(
            &pending(true, Some(9_500)),
            Duration::from_millis(50),
            10_000
        ));
        // A 2 s export (a very large store) is repeated at most every 20 s.
        assert!(!due(
            &pending(true, Some(0)),
            Duration::from_secs(2),
            15_000
        ));
        assert!(due(&pending(true, Some(0)), Duration::from_secs(2), 20_000));
        // Progress alone waits a minute.
        assert!(!due(&pending(false, Some(0)), Duration::ZERO, 59_000));
        assert!(due(&pending(false, Some(0)), Duration::ZERO, 60_000));
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_quote("plain"), "plain");
        assert_eq!(csv_quote("a,b"), "\"a,b\"");
        assert_eq!(csv_quote("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
