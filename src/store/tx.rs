//! A write transaction (`BEGIN IMMEDIATE`): the records read and written inside it, the
//! rows kept in step with each record, and what the change means for waiting processes and
//! the export.

use super::StoreError;
use crate::record::{RunRecord, Status};
use rusqlite::{OptionalExtension, Transaction, params};

pub struct Tx<'a> {
    tx: Transaction<'a>,
    /// The first failure of a write; the transaction is rolled back with it.
    failed: Option<StoreError>,
    freed: bool,
    urgent: bool,
    changed: bool,
    /// The records written, as written (for a supervisor's own copy of its runs).
    written: Vec<RunRecord>,
    /// The last `updated_ms` stamped in this transaction.
    last_stamp: Option<i64>,
}

impl<'a> Tx<'a> {
    pub(super) fn new(tx: Transaction<'a>) -> Tx<'a> {
        Tx {
            tx,
            failed: None,
            freed: false,
            urgent: false,
            changed: false,
            written: Vec::new(),
            last_stamp: None,
        }
    }

    pub(super) fn finish(self) -> Result<Outcome, StoreError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let outcome = Outcome {
            freed: self.freed,
            changed: self.changed,
            written: self.written,
        };
        if self.changed {
            self.tx
                .execute(
                    "INSERT INTO meta(key, value) VALUES ('generation', '1')
                     ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                    [],
                )
                .map_err(super::sql("note a change"))?;
            if self.urgent {
                self.tx
                    .execute(
                        "INSERT INTO meta(key, value) VALUES ('urgent', '1')
                         ON CONFLICT(key) DO UPDATE SET value = '1'",
                        [],
                    )
                    .map_err(super::sql("note a change"))?;
            }
        }
        self.tx.commit().map_err(super::sql("commit"))?;
        Ok(outcome)
    }

    /// Notes `key` in the store's own table (not a run; no change for waiters or the export).
    pub fn set_meta(&mut self, key: &str, value: &str) {
        let written = self.tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        );
        if let Err(e) = written {
            self.fail(super::sql("note in the store")(e));
        }
    }

    /// Removes `key` from the store's own table; its value if it was there.
    pub fn take_meta(&mut self, key: &str) -> Option<String> {
        let value: Option<String> = self
            .tx
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .ok()
            .flatten();
        if value.is_some()
            && let Err(e) = self.tx.execute("DELETE FROM meta WHERE key = ?1", [key])
        {
            self.fail(super::sql("note in the store")(e));
        }
        value
    }

    fn fail(&mut self, e: StoreError) {
        self.failed.get_or_insert(e);
    }

    pub fn contains(&self, id: &str) -> bool {
        self.tx
            .query_row("SELECT 1 FROM runs WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .is_ok_and(|found| found.is_some())
    }

    /// One record, parsed; a record that does not parse is reported, never dropped.
    pub fn record(&self, id: &str) -> Result<RunRecord, StoreError> {
        let raw: Option<String> = self
            .tx
            .query_row("SELECT record FROM runs WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()
            .map_err(super::sql("read a record"))?;
        match raw {
            Some(raw) => super::parse_record(id, &raw),
            None => Err(StoreError::NotFound(id.to_string())),
        }
    }

    /// The queued, running and paused records (admission and the ledger need no others).
    pub fn active_records(&self) -> Vec<RunRecord> {
        match super::query::active(&self.tx) {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!("{e}");
                Vec::new()
            }
        }
    }

    /// Inserts or replaces a record, with its attempts and lease rows.
    pub fn put(&mut self, rec: &RunRecord) {
        match self.write(rec) {
            Ok(()) => self.written.push(rec.clone()),
            Err(e) => self.fail(e),
        }
    }

    fn write(&mut self, rec: &RunRecord) -> Result<(), StoreError> {
        let before: Option<(String, i64, i64)> = self
            .tx
            .query_row(
                "SELECT status, checkpoints, attempts FROM runs WHERE id = ?1",
                [rec.id.as_str()],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(super::sql("read a record"))?;
        let status = rec.status();
        let old_status = before
            .as_ref()
            .and_then(|(s, _, _)| s.parse::<Status>().ok());
        self.freed |= frees(old_status, Some(status));
        self.urgent |= match &before {
            None => true,
            Some((s, checkpoints, attempts)) => {
                *s != status.as_str()
                    || *checkpoints != rec.checkpoints.len() as i64
                    || *attempts != rec.attempts.len() as i64
            }
        };
        self.changed = true;
        let updated_ms = self.next_stamp()?;
        let record = serde_json::to_string(rec).expect("a record always serialises");
        self.tx
            .execute(
                "INSERT OR REPLACE INTO runs (id, status, name, batch_id, queue_seq, held,
                    created_time, start_time, end_time, active_ms, last_step, last_loss,
                    checkpoints, attempts, slurm_job, slurm_state, stop_requested, record,
                    updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                    ?19)",
                params![
                    rec.id.as_str(),
                    status.as_str(),
                    rec.name,
                    rec.batch_id.as_ref().map(|b| b.as_str()),
                    rec.queue_seq as i64,
                    rec.held,
                    rec.created_time as i64,
                    rec.start_time.map(|t| t as i64),
                    rec.end_time.map(|t| t as i64),
                    rec.active_ms as i64,
                    rec.last_step.map(|s| s as i64),
                    rec.last_loss.filter(|l| l.is_finite()),
                    rec.checkpoints.len() as i64,
                    rec.attempts.len() as i64,
                    rec.slurm.as_ref().map(|j| j.job_id.as_str()),
                    rec.slurm.as_ref().and_then(|j| j.state.as_deref()),
                    rec.stop_requested,
                    record,
                    updated_ms,
                ],
            )
            .map_err(super::sql("write a record"))?;
        self.write_rows(rec)
    }

    /// The `updated_ms` of the next row written: the time now, but always after every stamp
    /// already in the store, so that "updated since T" misses no write even when two writes
    /// fall in one millisecond or a host's clock is behind (writers are serialised).
    fn next_stamp(&mut self) -> Result<i64, StoreError> {
        let latest = match self.last_stamp {
            Some(stamp) => Some(stamp),
            None => self
                .tx
                .query_row("SELECT max(updated_ms) FROM runs", [], |row| row.get(0))
                .map_err(super::sql("read the latest update"))?,
        };
        let now = crate::clock::now_ms() as i64;
        let stamp = latest.map_or(now, |latest: i64| now.max(latest + 1));
        self.last_stamp = Some(stamp);
        Ok(stamp)
    }

    /// The attempt and lease rows of `rec`, replaced.
    fn write_rows(&mut self, rec: &RunRecord) -> Result<(), StoreError> {
        let id = rec.id.as_str();
        let sql = super::sql("write a record's rows");
        self.tx
            .execute("DELETE FROM attempts WHERE run_id = ?1", [id])
            .map_err(&sql)?;
        for a in &rec.attempts {
            self.tx
                .execute(
                    "INSERT INTO attempts (run_id, number, status, start_time, end_time, reason, gpus)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        id,
                        a.number,
                        a.status().map(Status::as_str),
                        a.start_time.map(|t| t as i64),
                        a.end_time.map(|t| t as i64),
                        a.reason,
                        serde_json::to_string(&a.gpus).expect("a list of numbers"),
                    ],
                )
                .map_err(&sql)?;
        }
        self.tx
            .execute("DELETE FROM leases WHERE run_id = ?1", [id])
            .map_err(&sql)?;
        if let Some(lease) = &rec.gpu_lease {
            self.tx
                .execute(
                    "INSERT INTO leases (run_id, gpus, uuids, reserved_mb) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        id,
                        serde_json::to_string(&lease.gpus).expect("a list of numbers"),
                        serde_json::to_string(&lease.uuids).expect("a list of strings"),
                        lease.reserved_mb as i64,
                    ],
                )
                .map_err(&sql)?;
        }
        Ok(())
    }

    /// Removes a record (only one that never ran, e.g. a refused Slurm submission).
    pub fn remove(&mut self, id: &str) -> bool {
        let before: Option<String> = self
            .tx
            .query_row("SELECT status FROM runs WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()
            .unwrap_or(None);
        let Some(before) = before else {
            return false;
        };
        for table in ["runs", "attempts", "leases"] {
            let column = if table == "runs" { "id" } else { "run_id" };
            if let Err(e) = self
                .tx
                .execute(&format!("DELETE FROM {table} WHERE {column} = ?1"), [id])
            {
                self.fail(super::sql("remove a record")(e));
                return false;
            }
        }
        self.freed |= frees(before.parse().ok(), None);
        self.urgent = true;
        self.changed = true;
        true
    }

    /// A batch's stored description (its settings, for `resume <batch-id>`).
    pub fn batch(&self, id: &str) -> Option<String> {
        self.tx
            .query_row("SELECT spec FROM batches WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()
            .ok()
            .flatten()
    }

    pub fn put_batch(&mut self, id: &str, spec: &str) {
        if let Err(e) = self.tx.execute(
            "INSERT OR REPLACE INTO batches (id, spec) VALUES (?1, ?2)",
            params![id, spec],
        ) {
            self.fail(super::sql("write a batch")(e));
        }
        self.changed = true;
    }

    /// Keeps an entry that could not be read as a record, untouched (an import).
    pub fn keep_unreadable(&mut self, id: &str, raw: &str, reason: &str) {
        if let Err(e) = self.tx.execute(
            "INSERT OR REPLACE INTO unreadable_records (id, raw, reason) VALUES (?1, ?2, ?3)",
            params![id, raw, reason],
        ) {
            self.fail(super::sql("keep an unreadable record")(e));
        }
        self.changed = true;
    }

    pub(super) fn connection(&self) -> &rusqlite::Connection {
        &self.tx
    }
}

/// What a committed transaction changed.
#[derive(Clone, Debug, Default)]
pub(super) struct Outcome {
    pub written: Vec<RunRecord>,
    /// A slot or GPU freed, or a run left the queue: wake the waiting processes.
    pub freed: bool,
    pub changed: bool,
}

/// A running run that stops running frees its slot and lease; a queued one that leaves the
/// queue lets the runs behind it move up.
fn frees(before: Option<Status>, after: Option<Status>) -> bool {
    let holds = |s: Option<Status>| matches!(s, Some(Status::Running | Status::Paused));
    match before {
        Some(Status::Running | Status::Paused) => !holds(after),
        Some(Status::Queued) => after.is_none_or(|s| !s.is_active()),
        _ => false,
    }
}
