//! The database's layout and its version. The version is SQLite's own `user_version`: a
//! store written by a newer backprop (a larger number) is refused, never rewritten.

use rusqlite::Connection;

/// 1 was the JSON store (experiments.json); 2 is the first SQLite layout.
pub const VERSION: i64 = 2;

/// One row per run: the fields `list`, admission and the export need, indexed where they are
/// searched, and the whole record as JSON beside them (unknown fields survive). The attempts
/// and GPU leases are also rows of their own, kept in step with the record.
const TABLES: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id           TEXT PRIMARY KEY,
    status       TEXT NOT NULL,
    name         TEXT NOT NULL,
    batch_id     TEXT,
    queue_seq    INTEGER NOT NULL,
    held         INTEGER NOT NULL,
    created_time INTEGER NOT NULL,
    start_time   INTEGER,
    end_time     INTEGER,
    active_ms    INTEGER NOT NULL,
    last_step    INTEGER,
    last_loss    REAL,
    checkpoints  INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    slurm_job    TEXT,
    slurm_state  TEXT,
    stop_requested INTEGER NOT NULL,
    record       TEXT NOT NULL,
    updated_ms   INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status);
CREATE INDEX IF NOT EXISTS runs_by_batch ON runs(batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_by_slurm_state ON runs(slurm_state) WHERE slurm_state IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_by_update ON runs(updated_ms);
-- Covers `list`: its rows are read from this index alone, never from the (large) records.
CREATE INDEX IF NOT EXISTS runs_for_list ON runs(created_time, id, name, status, active_ms,
    last_step, last_loss, checkpoints, start_time, slurm_job, slurm_state);
CREATE TABLE IF NOT EXISTS attempts (
    run_id     TEXT NOT NULL,
    number     INTEGER NOT NULL,
    status     TEXT,
    start_time INTEGER,
    end_time   INTEGER,
    reason     TEXT,
    gpus       TEXT NOT NULL,
    PRIMARY KEY (run_id, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    run_id      TEXT PRIMARY KEY,
    gpus        TEXT NOT NULL,
    uuids       TEXT NOT NULL,
    reserved_mb INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (
    id   TEXT PRIMARY KEY,
    spec TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS unreadable_records (
    id     TEXT PRIMARY KEY,
    raw    TEXT NOT NULL,
    reason TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
";

/// What the database says about its own version.
pub enum Found {
    /// A database no backprop has written yet.
    Empty,
    Current,
    /// Written by a newer backprop.
    Newer(i64),
}

pub fn version_of(conn: &Connection) -> rusqlite::Result<Found> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
        [],
        |row| row.get(0),
    )?;
    Ok(match version {
        0 if tables == 0 => Found::Empty,
        v if v > VERSION => Found::Newer(v),
        _ => Found::Current,
    })
}

/// `updated_ms` came after the first SQLite layout: a store made before it gains the column
/// and its index in place (the version stays 2, so an older backprop still reads and writes
/// the store; the rows it writes carry no stamp).
const UPDATE_STAMP: &str = "
ALTER TABLE runs ADD COLUMN updated_ms INTEGER;
CREATE INDEX IF NOT EXISTS runs_by_update ON runs(updated_ms);
";

/// Whether the runs table lacks a column added since the first layout.
pub fn needs_upgrade(conn: &Connection) -> rusqlite::Result<bool> {
    let has_stamp: bool = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('runs') WHERE name = 'updated_ms'",
        [],
        |row| row.get::<_, i64>(0).map(|n| n > 0),
    )?;
    Ok(!has_stamp)
}

/// Adds what [`needs_upgrade`] found missing; call inside a write transaction, which makes
/// the check and the change one step for concurrent openers.
pub fn upgrade(conn: &Connection) -> rusqlite::Result<()> {
    if needs_upgrade(conn)? {
        conn.execute_batch(UPDATE_STAMP)?;
    }
    Ok(())
}

/// Creates the tables (once) and stamps the version.
pub fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(TABLES)?;
    conn.pragma_update(None, "user_version", VERSION)
}
