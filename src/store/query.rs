//! Reading the store: each query touches the rows it needs (through the indexed columns),
//! so its cost does not grow with every run ever made.

use super::{StoreError, parse_record, sql};
use crate::record::{RunRecord, SlurmJob, Status};
use rusqlite::{Connection, OptionalExtension, params_from_iter};

const ACTIVE: &str = "status IN ('queued', 'running', 'paused')";

pub fn get(conn: &Connection, id: &str) -> Result<RunRecord, StoreError> {
    let raw: Option<String> = conn
        .query_row("SELECT record FROM runs WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .optional()
        .map_err(sql("read a record"))?;
    match raw {
        Some(raw) => parse_record(id, &raw),
        None => Err(StoreError::NotFound(id.to_string())),
    }
}

/// Records matching a `WHERE` clause, parsed; unreadable ones are skipped with a warning.
fn records_where(
    conn: &Connection,
    clause: &str,
    values: &[&dyn rusqlite::ToSql],
) -> Result<Vec<RunRecord>, StoreError> {
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT id, record FROM runs WHERE {clause} ORDER BY queue_seq, id"
        ))
        .map_err(sql("read records"))?;
    let rows = statement
        .query_map(values, |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(sql("read records"))?;
    let mut records = Vec::new();
    for row in rows {
        let (id, raw) = row.map_err(sql("read records"))?;
        match parse_record(&id, &raw) {
            Ok(rec) => records.push(rec),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    Ok(records)
}

/// The queued, running and paused runs.
pub fn active(conn: &Connection) -> Result<Vec<RunRecord>, StoreError> {
    records_where(conn, ACTIVE, &[])
}

/// The runs of a batch, in queue order.
pub fn batch(conn: &Connection, batch_id: &str) -> Result<Vec<RunRecord>, StoreError> {
    records_where(conn, "batch_id = ?1", &[&batch_id])
}

/// Runs a command must look at before it reads or writes: the active ones (lost runs are
/// noticed among them) and Slurm jobs whose last known state is not final.
pub fn needing_refresh(conn: &Connection) -> Result<Vec<RunRecord>, StoreError> {
    let mut records = active(conn)?;
    // A separate query, so each side uses its index (an OR across two columns would scan).
    let watched = records_where(
        conn,
        "slurm_state IS NOT NULL AND slurm_state IN ('PENDING', 'RUNNING', 'CONFIGURING', 'COMPLETING', 'SUSPENDED',
         'REQUEUED', 'RESIZING', 'REQUEUE_HOLD', 'REQUEUE_FED') AND NOT (status IN
         ('queued', 'running', 'paused'))",
        &[],
    )?;
    records.extend(watched);
    Ok(records)
}

/// Which of `ids` have a stop requested.
pub fn stop_requested(conn: &Connection, ids: &[&str]) -> Result<Vec<String>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; ids.len()].join(", ");
    let mut statement = conn
        .prepare(&format!(
            "SELECT id FROM runs WHERE stop_requested AND id IN ({marks})"
        ))
        .map_err(sql("read stop requests"))?;
    let found = statement
        .query_map(params_from_iter(ids), |row| row.get(0))
        .map_err(sql("read stop requests"))?
        .collect::<Result<Vec<String>, _>>()
        .map_err(sql("read stop requests"))?;
    Ok(found)
}

pub fn count(conn: &Connection) -> Result<u64, StoreError> {
    conn.query_row("SELECT count(*) FROM runs", [], |row| row.get::<_, i64>(0))
        .map(|n| n as u64)
        .map_err(sql("count the runs"))
}

/// Which runs `list` shows.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub status: Option<Status>,
    /// A glob matched against the name or the id.
    pub name: Option<String>,
    pub batch: Option<String>,
    /// Created at or after this time (epoch ms).
    pub since_ms: Option<u64>,
    /// The newest this many.
    pub limit: Option<usize>,
    /// Oldest first (the export) instead of newest first.
    pub oldest_first: bool,
}

impl ListQuery {
    fn clause(&self) -> (String, Vec<Box<dyn rusqlite::ToSql>>) {
        let mut conditions = vec!["1".to_string()];
        let mut values: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        if let Some(status) = self.status {
            values.push(Box::new(status.as_str()));
            conditions.push(format!("status = ?{}", values.len()));
        }
        if let Some(glob) = &self.name {
            values.push(Box::new(glob.clone()));
            let n = values.len();
            conditions.push(format!("(name GLOB ?{n} OR id GLOB ?{n})"));
        }
        if let Some(batch) = &self.batch {
            values.push(Box::new(batch.clone()));
            conditions.push(format!("batch_id = ?{}", values.len()));
        }
        if let Some(since) = self.since_ms {
            values.push(Box::new(since as i64));
            conditions.push(format!("created_time >= ?{}", values.len()));
        }
        let limit = match self.limit {
            Some(n) => format!(" LIMIT {n}"),
            None => String::new(),
        };
        let order = if self.oldest_first { "ASC" } else { "DESC" };
        (
            format!(
                "{} ORDER BY created_time {order}, id {order}{limit}",
                conditions.join(" AND ")
            ),
            values,
        )
    }
}

/// What a line of `list` shows of a run, from the indexed columns (no JSON is parsed).
#[derive(Clone, Debug, PartialEq)]
pub struct ListRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub active_ms: u64,
    pub last_step: Option<u64>,
    pub last_loss: Option<f64>,
    pub checkpoints: u64,
    pub start_time: Option<u64>,
    pub created_time: u64,
    pub slurm: Option<SlurmJob>,
}

pub fn list_rows(conn: &Connection, query: &ListQuery) -> Result<Vec<ListRow>, StoreError> {
    let (clause, values) = query.clause();
    let mut statement = conn
        .prepare(&format!(
            "SELECT id, name, status, active_ms, last_step, last_loss, checkpoints, start_time,
                    created_time, slurm_state, slurm_job
             FROM runs WHERE {clause}"
        ))
        .map_err(sql("list the runs"))?;
    let rows = statement
        .query_map(params_from_iter(values.iter()), |row| {
            let job_id: Option<String> = row.get(10)?;
            Ok(ListRow {
                id: row.get(0)?,
                name: row.get(1)?,
                status: row.get(2)?,
                active_ms: row.get::<_, i64>(3)? as u64,
                last_step: row.get::<_, Option<i64>>(4)?.map(|s| s as u64),
                last_loss: row.get(5)?,
                checkpoints: row.get::<_, i64>(6)? as u64,
                start_time: row.get::<_, Option<i64>>(7)?.map(|t| t as u64),
                created_time: row.get::<_, i64>(8)? as u64,
                slurm: job_id.map(|job_id| SlurmJob {
                    job_id,
                    state: row.get(9).ok().flatten(),
                    ..Default::default()
                }),
            })
        })
        .map_err(sql("list the runs"))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(sql("list the runs"))
}

/// Calls `each` with every matching record's id and JSON text, newest first, without
/// holding them all in memory (`list --json`, the export).
pub fn each_record(
    conn: &Connection,
    query: &ListQuery,
    mut each: impl FnMut(&str, &str) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    let (clause, values) = query.clause();
    let mut statement = conn
        .prepare(&format!("SELECT id, record FROM runs WHERE {clause}"))
        .map_err(sql("read the runs"))?;
    let mut rows = statement
        .query(params_from_iter(values.iter()))
        .map_err(sql("read the runs"))?;
    while let Some(row) = rows.next().map_err(sql("read the runs"))? {
        let id: String = row.get(0).map_err(sql("read the runs"))?;
        let raw: String = row.get(1).map_err(sql("read the runs"))?;
        each(&id, &raw).map_err(|source| StoreError::Io {
            action: "write",
            path: "the output".into(),
            source,
        })?;
    }
    Ok(())
}

/// A run as a live view shows it after a change: the indexed columns of its row (no JSON is
/// parsed), named as in the record.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunChange {
    pub id: String,
    pub name: String,
    pub status: String,
    pub batch_id: Option<String>,
    pub created_time: u64,
    pub start_time: Option<u64>,
    pub end_time: Option<u64>,
    pub active_ms: u64,
    pub last_step: Option<u64>,
    pub last_loss: Option<f64>,
    pub checkpoints: u64,
    pub attempts: u64,
    /// When the row was last written (epoch ms, made strictly increasing across writes).
    pub updated_ms: u64,
}

/// The runs written after `since_ms` (an `updated_ms` seen before), oldest change first, at
/// most `limit`: found through the `updated_ms` index, so a poll costs only what changed.
pub fn updated_since(
    conn: &Connection,
    since_ms: u64,
    limit: usize,
) -> Result<Vec<RunChange>, StoreError> {
    let mut statement = conn
        .prepare_cached(
            "SELECT id, name, status, batch_id, created_time, start_time, end_time, active_ms,
                    last_step, last_loss, checkpoints, attempts, updated_ms
             FROM runs WHERE updated_ms > ?1 ORDER BY updated_ms LIMIT ?2",
        )
        .map_err(sql("read the changed runs"))?;
    let as_u64 = |v: Option<i64>| v.map(|v| v.max(0) as u64);
    let rows = statement
        .query_map(rusqlite::params![since_ms as i64, limit as i64], |row| {
            Ok(RunChange {
                id: row.get(0)?,
                name: row.get(1)?,
                status: row.get(2)?,
                batch_id: row.get(3)?,
                created_time: row.get::<_, i64>(4)?.max(0) as u64,
                start_time: as_u64(row.get(5)?),
                end_time: as_u64(row.get(6)?),
                active_ms: row.get::<_, i64>(7)?.max(0) as u64,
                last_step: as_u64(row.get(8)?),
                last_loss: row.get(9)?,
                checkpoints: row.get::<_, i64>(10)?.max(0) as u64,
                attempts: row.get::<_, i64>(11)?.max(0) as u64,
                updated_ms: row.get::<_, i64>(12)?.max(0) as u64,
            })
        })
        .map_err(sql("read the changed runs"))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(sql("read the changed runs"))
}

/// The latest `updated_ms` in the store (0 when no row has one): where a watcher starts.
pub fn latest_update(conn: &Connection) -> Result<u64, StoreError> {
    conn.query_row("SELECT max(updated_ms) FROM runs", [], |row| {
        row.get::<_, Option<i64>>(0)
    })
    .map(|latest| latest.unwrap_or(0).max(0) as u64)
    .map_err(sql("read the latest update"))
}

/// A number that grows with every committed change to the store (one indexed row): a poller
/// reads it first and looks for what changed only when it moved.
pub fn generation(conn: &Connection) -> Result<u64, StoreError> {
    conn.query_row(
        "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'generation'",
        [],
        |row| row.get::<_, i64>(0),
    )
    .optional()
    .map(|g| g.unwrap_or(0).max(0) as u64)
    .map_err(sql("read the store's generation"))
}

/// Entries an import could not read as records, kept as they were: (id, raw, why).
pub fn unreadable(conn: &Connection) -> Result<Vec<(String, String, String)>, StoreError> {
    let mut statement = conn
        .prepare("SELECT id, raw, reason FROM unreadable_records ORDER BY id")
        .map_err(sql("read the unreadable records"))?;
    let rows = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .map_err(sql("read the unreadable records"))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(sql("read the unreadable records"))
}
