//! Live updates for open pages: a thread polls the store for runs written since the last
//! look (through the `updated_ms` index, after a one-row check that anything changed at all)
//! and broadcasts them, with each machine sample, as server-sent events.

use super::machine::Sample;
use crate::store::{Store, query};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// How often the store is looked at: a change reaches an open page well within a second.
pub const POLL_EVERY: Duration = Duration::from_millis(400);
/// How often runs of dead supervisors are looked for (`lost`), as other commands do.
const REAP_EVERY: Duration = Duration::from_secs(5);
/// How often Slurm jobs not known to be final are asked about.
const SLURM_EVERY: Duration = Duration::from_secs(30);
/// More changed runs than this in one poll: the page reloads its list instead.
pub const MAX_CHANGES: usize = 500;

/// One server-sent event, already encoded, shared by every open page.
pub type Encoded = actix_web::web::Bytes;

/// `event: <kind>` with `data` as JSON on one line (JSON never holds a raw newline).
pub fn encode(kind: &str, data: &impl serde::Serialize) -> Encoded {
    let json = serde_json::to_string(data).expect("event data serialises");
    Encoded::from(format!("event: {kind}\ndata: {json}\n\n"))
}

pub fn gpu_event(sample: &Sample) -> Encoded {
    encode("gpu", sample)
}

/// What changed in one poll.
#[derive(Debug, PartialEq)]
pub enum Change {
    Runs(Vec<query::RunChange>),
    /// Too many at once: the page reads its list again.
    Reload,
}

/// Where a watcher is: the last generation and stamp it saw.
#[derive(Debug, Default)]
pub struct Cursor {
    generation: u64,
    stamp: u64,
}

impl Cursor {
    /// Starts at the store as it is now: only later changes are reported.
    pub fn now(conn: &rusqlite::Connection) -> Result<Cursor, crate::store::StoreError> {
        Ok(Cursor {
            generation: query::generation(conn)?,
            stamp: query::latest_update(conn)?,
        })
    }

    /// What was written since the last call; None when nothing was.
    pub fn poll(
        &mut self,
        conn: &rusqlite::Connection,
    ) -> Result<Option<Change>, crate::store::StoreError> {
        let generation = query::generation(conn)?;
        if generation == self.generation {
            return Ok(None);
        }
        self.generation = generation;
        let changed = query::updated_since(conn, self.stamp, MAX_CHANGES + 1)?;
        if changed.len() > MAX_CHANGES {
            self.stamp = query::latest_update(conn)?;
            return Ok(Some(Change::Reload));
        }
        let Some(last) = changed.last() else {
            // A write without a stamp (an older backprop) or a removal.
            return Ok(None);
        };
        self.stamp = last.updated_ms;
        Ok(Some(Change::Runs(changed)))
    }
}

/// Starts the thread that watches `store` and sends what changed to `events`. The cursor is
/// placed here, before the server announces itself: a change made right after a page
/// connects is then never taken for the starting point and missed.
pub fn start(store: Store, events: broadcast::Sender<Encoded>) {
    let mut complained = false;
    let connection = connect(&store, &mut complained);
    std::thread::Builder::new()
        .name("serve-watch".into())
        .spawn(move || watch(store, events, connection, complained))
        .expect("a thread can be started");
}

fn connect(store: &Store, complained: &mut bool) -> Option<(crate::store::Db, Cursor)> {
    store
        .connect()
        .and_then(|db| Cursor::now(db.conn()).map(|cursor| (db, cursor)))
        .map_err(|e| complain(complained, &e))
        .ok()
}

fn watch(
    store: Store,
    events: broadcast::Sender<Encoded>,
    mut connection: Option<(crate::store::Db, Cursor)>,
    mut complained: bool,
) {
    let mut last_reap = Instant::now();
    let mut last_slurm = Instant::now();
    loop {
        std::thread::sleep(POLL_EVERY);
        if last_reap.elapsed() >= REAP_EVERY {
            last_reap = Instant::now();
            let slurm = last_slurm.elapsed() >= SLURM_EVERY;
            if slurm {
                last_slurm = Instant::now();
            }
            refresh(&store, slurm);
        }
        // A store replaced under us (moved aside after damage) is opened again.
        if connection.as_ref().is_some_and(|(db, _)| !db.is_current()) {
            connection = None;
            let _ = events.send(encode("reload", &serde_json::json!({})));
        }
        if connection.is_none() {
            connection = connect(&store, &mut complained);
        }
        let Some((db, cursor)) = connection.as_mut() else {
            continue;
        };
        match cursor.poll(db.conn()) {
            Ok(None) => {}
            Ok(Some(Change::Runs(runs))) => {
                let _ = events.send(encode("runs", &runs));
            }
            Ok(Some(Change::Reload)) => {
                let _ = events.send(encode("reload", &serde_json::json!({})));
            }
            Err(e) => {
                complain(&mut complained, &e);
                connection = None;
            }
        }
    }
}

/// Marks runs of dead supervisors `lost` (and, every [`SLURM_EVERY`], brings Slurm runs up
/// to date), as every command that reads the store does.
fn refresh(store: &Store, slurm: bool) {
    let result = store.connect().and_then(|db| {
        let records = query::needing_refresh(db.conn())?;
        let records: Vec<&crate::record::RunRecord> = records.iter().collect();
        crate::reaper::reap_records(store, &records)?;
        if slurm && records.iter().any(|r| r.slurm.is_some()) {
            crate::slurm::sync_records(store, &records)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        tracing::warn!("cannot check for lost runs: {e}");
    }
}

/// Says once that the store cannot be read (then quietly retries).
fn complain(complained: &mut bool, e: &crate::store::StoreError) {
    if !*complained {
        crate::ui::warn(&format!("serve: cannot read the store: {e}; retrying"));
        *complained = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RunRecord, RunSpec};
    use crate::runid::RunId;

    fn record(id: &str) -> RunRecord {
        RunRecord::new(RunId::parse(id).unwrap(), id.into(), RunSpec::default(), 1)
    }

    #[test]
    fn a_cursor_reports_each_write_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.update(|tx| tx.put(&record("before"))).unwrap();
        let db = store.connect().unwrap();
        let mut cursor = Cursor::now(db.conn()).unwrap();
        assert_eq!(cursor.poll(db.conn()).unwrap(), None);
        store.update(|tx| tx.put(&record("a"))).unwrap();
        store.update_record("a", |r| r.last_step = Some(3)).unwrap();
        let Some(Change::Runs(runs)) = cursor.poll(db.conn()).unwrap() else {
            panic!("a change expected");
        };
        assert_eq!(runs.len(), 1);
        assert_eq!((runs[0].id.as_str(), runs[0].last_step), ("a", Some(3)));
        assert_eq!(cursor.poll(db.conn()).unwrap(), None);
    }

    #[test]
    fn very_many_changes_at_once_ask_for_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let db = store.connect().unwrap();
        let mut cursor = Cursor::now(db.conn()).unwrap();
        store
            .update(|tx| {
                for i in 0..=MAX_CHANGES {
                    tx.put(&record(&format!("r{i}")));
                }
            })
            .unwrap();
        assert_eq!(cursor.poll(db.conn()).unwrap(), Some(Change::Reload));
        assert_eq!(cursor.poll(db.conn()).unwrap(), None);
        store.update_record("r1", |r| r.name = "x".into()).unwrap();
        assert!(matches!(cursor.poll(db.conn()).unwrap(), Some(Change::Runs(r)) if r.len() == 1));
    }

    #[test]
    fn events_are_one_line_of_json_each() {
        let text = encode("runs", &serde_json::json!([{"name": "a\nb"}]));
        assert_eq!(&text[..], b"event: runs\ndata: [{\"name\":\"a\\nb\"}]\n\n");
    }
}
