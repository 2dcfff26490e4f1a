//! The Store actor: every write this process makes to the store goes through it.
//!
//! Writes run on one dedicated thread (locks and fsync never block the actor loop), in the
//! order they were sent; consecutive changes queued when the thread wakes are applied in one
//! transaction. Progress is coalesced per run and written at most about once a second;
//! checkpoints and status changes are written at once. Admission decisions are transactions
//! of their own, made on the same thread so they see every change sent before them.
//!
//! On a Slurm node the same actor writes the node's one run to its node file instead of the
//! store's database (see `slurm::node`): the allocation is the admission, so an admission
//! there only records the start.

use crate::admission::{self, Answer, Ask};
use crate::policy;
use crate::record::RunRecord;
use crate::resources::Snapshot;
use crate::runid::RunId;
use crate::slurm::NodeFile;
use crate::store::{Db, Store, StoreError, Tx, export};
use actix::prelude::*;
use crossbeam_channel::{Receiver, Sender, unbounded};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// A change to one record. `Fn`, not `FnOnce`: a batch whose write failed (disk full, say)
/// is applied again, to the state then in the store, at the next attempt.
pub type Change = Box<dyn Fn(&mut RunRecord) + Send>;

const RETRY_INTERVAL: Duration = Duration::from_secs(1);

const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

enum Job {
    /// This process's runs as they are now (their records are put back if the store loses
    /// them before this process writes them again).
    Remember(Vec<RunRecord>),
    Change {
        id: RunId,
        change: Change,
    },
    /// A transaction of its own, after every change sent before it.
    Exclusive(Box<dyn FnOnce(&mut Writer) + Send>),
    Barrier(oneshot::Sender<()>),
    /// Before the process ends: this process's runs in the store are as it last wrote them.
    Verify(oneshot::Sender<()>),
}

pub struct StoreActor {
    writer: Sender<Job>,
    pending_progress: HashMap<RunId, ProgressUpdate>,
    flush_scheduled: bool,
    /// Dropping it ends the export thread.
    _stop_export: Option<Sender<()>>,
}

/// Change one run's record now (status, checkpoint, attempt).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Update {
    pub id: RunId,
    pub change: Change,
}

/// The latest progress of a run; only the newest per run is written, at most once a second.
#[derive(Message, Clone, Debug, PartialEq)]
#[rtype(result = "()")]
pub struct ProgressUpdate {
    pub id: RunId,
    pub step: Option<u64>,
    pub loss: Option<f64>,
    pub metrics: BTreeMap<String, f64>,
    /// Active time of the attempt under way.
    pub active_ms: u64,
}

impl ProgressUpdate {
    pub fn new(id: RunId) -> ProgressUpdate {
        ProgressUpdate {
            id,
            step: None,
            loss: None,
            metrics: BTreeMap::new(),
            active_ms: 0,
        }
    }
}

/// Resolves once everything is written and this process's runs in the store are as it last
/// wrote them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FinalFlush;

impl Handler<FinalFlush> for StoreActor {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: FinalFlush, _: &mut Context<Self>) -> Self::Result {
        self.send_pending_progress();
        let (done, wait) = oneshot::channel();
        let _ = self.writer.send(Job::Verify(done));
        Box::pin(async move {
            let _ = wait.await;
        })
    }
}

/// Keep a copy of these runs (this process supervises them) to put back if the store loses
/// them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Remember(pub Vec<RunRecord>);

impl Handler<Remember> for StoreActor {
    type Result = ();
    fn handle(&mut self, Remember(records): Remember, _: &mut Context<Self>) {
        let _ = self.writer.send(Job::Remember(records));
    }
}

/// Resolves once everything sent before it is in the store.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

/// May this run start its next attempt now? Decided and recorded in one transaction.
#[derive(Message)]
#[rtype(result = "Answer")]
pub struct Admit {
    pub run_id: RunId,
    pub attempt: u32,
    pub resumed_from: Option<String>,
    pub snapshot: Arc<Snapshot>,
    pub settings: policy::Settings,
}

impl StoreActor {
    pub fn new(store: Store) -> StoreActor {
        StoreActor::with_writer(Writer::new(store.clone()), Some(store))
    }

    /// On a Slurm node: the run's changes go to its node file; the database is not touched.
    pub fn on_node(store: Store, file: NodeFile) -> StoreActor {
        let mut writer = Writer::new(store);
        writer.node = Some(file);
        StoreActor::with_writer(writer, None)
    }

    /// Starts the writer thread (and the export thread when there is a store to export).
    fn with_writer(writer: Writer, exported: Option<Store>) -> StoreActor {
        let (sender, jobs) = unbounded();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_loop(writer, jobs))
            .expect("spawn the store writer thread");
        let writer = sender;
        let stop_export = exported.filter(|_| export::enabled()).map(|store| {
            let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
            std::thread::Builder::new()
                .name("store-export".into())
                .spawn(move || export_loop(store, stopped))
                .expect("spawn the export thread");
            stop
        });
        StoreActor {
            writer,
            pending_progress: HashMap::new(),
            flush_scheduled: false,
            _stop_export: stop_export,
        }
    }

    fn send_pending_progress(&mut self) {
        for (id, progress) in self.pending_progress.drain() {
            let _ = self.writer.send(Job::Change {
                id,
                change: Box::new(move |rec| apply_progress(rec, &progress)),
            });
        }
    }
}

impl Actor for StoreActor {
    type Context = Context<Self>;
}

impl Handler<Update> for StoreActor {
    type Result = ();
    fn handle(&mut self, msg: Update, _: &mut Context<Self>) {
        // Keep order: progress received before this change is written before it.
        self.send_pending_progress();
        let _ = self.writer.send(Job::Change {
            id: msg.id,
            change: msg.change,
        });
    }
}

impl Handler<ProgressUpdate> for StoreActor {
    type Result = ();
    fn handle(&mut self, msg: ProgressUpdate, ctx: &mut Context<Self>) {
        self.pending_progress.insert(msg.id.clone(), msg);
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.run_later(PROGRESS_INTERVAL, |act, _| {
                act.flush_scheduled = false;
                act.send_pending_progress();
            });
        }
    }
}

impl Handler<Flush> for StoreActor {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> Self::Result {
        self.send_pending_progress();
        let (done, wait) = oneshot::channel();
        let _ = self.writer.send(Job::Barrier(done));
        Box::pin(async move {
            let _ = wait.await;
        })
    }
}

impl Handler<Admit> for StoreActor {
    type Result = ResponseFuture<Answer>;
    fn handle(&mut self, msg: Admit, _: &mut Context<Self>) -> Self::Result {
        self.send_pending_progress();
        let (reply, answer) = oneshot::channel();
        let job = move |writer: &mut Writer| {
            let host = crate::proc_info::hostname();
            let ask = Ask {
                run_id: &msg.run_id,
                attempt: msg.attempt,
                resumed_from: msg.resumed_from.clone(),
                snapshot: &msg.snapshot,
                settings: &msg.settings,
            };
            if writer.node.is_some() {
                let _ = reply.send(writer.admit_on_node(&ask));
                return;
            }
            let home = writer.store.home().to_path_buf();
            // The time is taken inside the transaction, so starts are recorded in the order
            // they happen.
            let result = writer
                .transact(|tx| admission::admit(tx, &ask, &home, &host, crate::clock::now_ms()));
            let _ = reply.send(result.unwrap_or_else(|e| {
                Answer::Waiting(
                    policy::WaitOn::Machine,
                    format!("cannot write the store: {e}"),
                )
            }));
        };
        let _ = self.writer.send(Job::Exclusive(Box::new(job)));
        Box::pin(async move {
            answer.await.unwrap_or(Answer::Waiting(
                policy::WaitOn::Machine,
                "the store writer stopped".into(),
            ))
        })
    }
}

/// Applies a progress update to a record (the run's totals and its current attempt).
pub fn apply_progress(rec: &mut RunRecord, progress: &ProgressUpdate) {
    if progress.step.is_some() {
        rec.last_step = progress.step;
    }
    if progress.loss.is_some() {
        rec.last_loss = progress.loss;
    }
    for (name, value) in &progress.metrics {
        rec.metrics
            .insert(name.clone(), value.is_finite().then_some(*value));
    }
    let previous_attempts: u64 = rec.attempts.iter().rev().skip(1).map(|a| a.active_ms).sum();
    rec.active_ms = previous_attempts + progress.active_ms;
    if let Some(attempt) = rec.attempts.last_mut() {
        attempt.active_ms = progress.active_ms;
        if progress.step.is_some() {
            attempt.last_step = progress.step;
        }
        if progress.loss.is_some() {
            attempt.last_loss = progress.loss;
        }
    }
}

/// The writer thread's state: its connection, the changes not written yet, and its own copy
/// of this process's live runs, put back if the store loses them (damaged, truncated or
/// replaced under a running supervisor).
struct Writer {
    store: Store,
    db: Option<Db>,
    unwritten: Vec<(RunId, Change)>,
    /// This process's runs as it last wrote them: its copy is the one that counts.
    mine: HashMap<RunId, RunRecord>,
    /// The database was replaced or rebuilt: every run of `mine` is written again.
    rebuilt: bool,
    warned: bool,
    told_recovery: bool,
    /// On a Slurm node: where the run's record goes instead of the database.
    node: Option<NodeFile>,
}

impl Writer {
    fn new(store: Store) -> Writer {
        Writer {
            store,
            db: None,
            unwritten: Vec::new(),
            mine: HashMap::new(),
            rebuilt: false,
            warned: false,
            told_recovery: false,
            node: None,
        }
    }

    /// Inside a Slurm allocation: the start is recorded as the policy places it (exactly
    /// what Slurm gave), with no queue and no gates.
    fn admit_on_node(&mut self, ask: &Ask) -> Answer {
        let Some(mut rec) = self.mine.get(ask.run_id).cloned() else {
            return Answer::Gone(format!("run {} is not this job's run", ask.run_id));
        };
        if rec.status() != crate::record::Status::Queued || rec.held {
            return Answer::Gone(format!(
                "run {} is {} and no longer waits for a start",
                ask.run_id,
                rec.status()
            ));
        }
        let placement = policy::given_by_allocation(ask.settings);
        let start = crate::record::lifecycle::AttemptStart {
            number: ask.attempt,
            gpus: placement.gpus.clone(),
            reserved_mb: None,
            resumed_from: ask.resumed_from.clone(),
            host: crate::proc_info::hostname(),
            lease: None,
        };
        if let Err(refused) =
            crate::record::lifecycle::admit(&mut rec, start, crate::clock::now_ms())
        {
            return Answer::Gone(refused.to_string());
        }
        self.mine.insert(rec.id.clone(), rec);
        self.write_node_file();
        Answer::Started(placement)
    }

    /// Writes the node's run to its node file; a failed write is retried with the next.
    fn write_node_file(&mut self) -> bool {
        let Some(file) = &self.node else { return false };
        let Some(rec) = self.mine.values().next() else {
            return true;
        };
        match file.write(rec) {
            Ok(()) => {
                if self.warned {
                    crate::ui::info("the run's node file is written again");
                }
                self.warned = false;
                true
            }
            Err(e) => {
                if !self.warned {
                    crate::ui::warn(&format!(
                        "could not write {} (retrying every second): {e}",
                        file.path().display()
                    ));
                    self.warned = true;
                }
                false
            }
        }
    }

    /// On a node: changes apply to this process's copy, which is written whole.
    fn write_node_changes(&mut self) {
        let unwritten = std::mem::take(&mut self.unwritten);
        for (id, change) in &unwritten {
            if let Some(rec) = self.mine.get_mut(id) {
                change(rec);
            }
        }
        if !unwritten.is_empty() && !self.write_node_file() {
            // Applied already; only the file write is pending.
            self.unwritten
                .push((unwritten[0].0.clone(), Box::new(|_: &mut RunRecord| {})));
        }
    }

    /// The connection, (re)opened when there is none or the file was replaced.
    fn db(&mut self) -> Result<&mut Db, StoreError> {
        if let Some(db) = self.db.take_if(|db| !db.is_current()) {
            self.rebuilt = true;
            if db.shrunk() {
                // Truncated in place: what is left of it is damage, set aside.
                let judged = db.inode();
                drop(db);
                let aside = crate::store::move_aside(self.store.home(), judged)?;
                self.told_recovery = false;
                self.tell_recovery(&[], aside);
            }
        }
        if self.db.is_none() {
            self.db = Some(self.store.connect()?);
        }
        Ok(self.db.as_mut().expect("just opened"))
    }

    /// A transaction that first puts back any of this process's runs the store has lost;
    /// a damaged database is moved aside and replaced by a fresh one, once.
    fn transact<R>(&mut self, mut change: impl FnMut(&mut Tx) -> R) -> Result<R, StoreError> {
        let mut recovered = false;
        loop {
            self.db()?;
            let all = self.rebuilt;
            let (db, mine) = (self.db.as_mut().expect("just opened"), &self.mine);
            let result = db.update_written(|tx| {
                let restored = restore(tx, mine, all);
                (change(tx), restored)
            });
            match result {
                Ok(((result, restored), written)) => {
                    self.rebuilt = false;
                    if !restored.is_empty() {
                        self.tell_recovery(&restored, None);
                    }
                    for rec in written {
                        self.mine.insert(rec.id.clone(), rec);
                    }
                    return Ok(result);
                }
                Err(e) if (e.is_damage() || e.is_emptied()) && !recovered => {
                    recovered = true;
                    let judged = self.db.take().and_then(|db| db.inode());
                    self.rebuilt = true;
                    if e.is_damage() {
                        let aside = crate::store::move_aside(self.store.home(), judged)?;
                        self.told_recovery = false;
                        self.tell_recovery(&[], aside);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn tell_recovery(&mut self, restored: &[RunId], aside: Option<std::path::PathBuf>) {
        if self.told_recovery {
            return;
        }
        self.told_recovery = true;
        let mut text = String::from("the store lost the records of live runs");
        if let Some(aside) = aside {
            text = format!(
                "the store was damaged; it is moved aside unchanged to {} and a new one started",
                aside.display()
            );
        }
        if !restored.is_empty() {
            let ids: Vec<&str> = restored.iter().map(RunId::as_str).collect();
            text.push_str(&format!("; put back the records of {}", ids.join(", ")));
        } else {
            text.push_str("; this process puts back the records of its runs");
        }
        crate::ui::warn(&text);
    }

    /// Puts back this process's runs wherever the store's copy is not the one it wrote last
    /// (a store rebuilt from an older export after damage, say).
    fn verify(&mut self) {
        if self.node.is_some() {
            self.write_node_file();
            return;
        }
        let mine = self.mine.clone();
        let fixed = self.transact(|tx| {
            let mut fixed = Vec::new();
            for (id, rec) in &mine {
                if tx.record(id).ok().as_ref() != Some(rec) {
                    tx.put(rec);
                    fixed.push(id.clone());
                }
            }
            fixed
        });
        match fixed {
            Ok(fixed) if !fixed.is_empty() => self.tell_recovery(&fixed, None),
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot check the runs' records: {e}"),
        }
    }

    /// Writes the changes not written yet in one transaction; they stay queued if the store
    /// cannot be written.
    fn write_changes(&mut self) {
        if self.unwritten.is_empty() {
            return;
        }
        if self.node.is_some() {
            return self.write_node_changes();
        }
        let unwritten = std::mem::take(&mut self.unwritten);
        let mine = self.mine.clone();
        let result = self.transact(|tx| {
            // Several changes to one run in this batch build on each other; each run is
            // written once, in the order first changed.
            let mut changed: Vec<RunRecord> = Vec::new();
            for (id, change) in &unwritten {
                if let Some(rec) = changed.iter_mut().find(|r| r.id == *id) {
                    change(rec);
                    continue;
                }
                // This process's copy of its own run counts (a stale copy brought back from
                // the export after damage must not win); only a stop request comes from others.
                let mut rec = match (mine.get(id), tx.record(id)) {
                    (Some(ours), Ok(theirs)) => {
                        let mut rec = ours.clone();
                        rec.stop_requested |= theirs.stop_requested;
                        rec
                    }
                    (Some(ours), Err(_)) => ours.clone(),
                    (None, Ok(theirs)) => theirs,
                    (None, Err(e)) => {
                        tracing::warn!("store update of {id} skipped: {e}");
                        continue;
                    }
                };
                change(&mut rec);
                changed.push(rec);
            }
            for rec in &changed {
                tx.put(rec);
            }
        });
        match result {
            Ok(()) => {
                if self.warned {
                    crate::ui::info("the run records are written again");
                }
                self.warned = false;
            }
            Err(e) => {
                if !self.warned {
                    // The runs go on; the changes are kept and written when the store can
                    // be written again (a full disk, say).
                    crate::ui::warn(&format!(
                        "could not update the run records (retrying every second): {e}"
                    ));
                    self.warned = true;
                } else {
                    tracing::warn!("store write failed again: {e}");
                }
                self.unwritten = unwritten;
            }
        }
    }
}

/// Puts back this process's runs that the store no longer has (all of them, over what the
/// store holds, after it was replaced or rebuilt); returns their ids.
fn restore(tx: &mut Tx, mine: &HashMap<RunId, RunRecord>, all: bool) -> Vec<RunId> {
    let mut restored = Vec::new();
    for (id, rec) in mine {
        if all || !tx.contains(id) {
            tx.put(rec);
            restored.push(id.clone());
        }
    }
    restored
}

fn write_loop(mut writer: Writer, jobs: Receiver<Job>) {
    let mut barriers: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let waiting = !writer.unwritten.is_empty() || !barriers.is_empty();
        let first = if waiting {
            match jobs.recv_timeout(RETRY_INTERVAL) {
                Ok(job) => Some(job),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match jobs.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            }
        };
        for job in first.into_iter().chain(jobs.try_iter()) {
            match job {
                Job::Change { id, change } => writer.unwritten.push((id, change)),
                Job::Remember(records) => {
                    for rec in records {
                        writer.mine.insert(rec.id.clone(), rec);
                    }
                }
                Job::Exclusive(run) => {
                    writer.write_changes();
                    run(&mut writer);
                }
                Job::Barrier(done) => barriers.push(done),
                Job::Verify(done) => {
                    writer.write_changes();
                    writer.verify();
                    barriers.push(done);
                }
            }
        }
        writer.write_changes();
        // A barrier resolves only once everything sent before it is in the store.
        if writer.unwritten.is_empty() {
            for done in barriers.drain(..) {
                let _ = done.send(());
            }
        }
    }
}

/// Keeps `experiments.json` current while this process supervises runs (see
/// `store::export` for when). Ends when `stop` is dropped.
fn export_loop(store: Store, stop: Receiver<()>) {
    let mut last_took = Duration::ZERO;
    loop {
        match stop.recv_timeout(Duration::from_secs(1)) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let Ok(mut db) = store.connect() else {
            continue;
        };
        let Ok(Some(pending)) = export::pending(&db) else {
            continue;
        };
        if !export::due(&pending, last_took, crate::clock::now_ms()) {
            continue;
        }
        match export::export_now(&mut db) {
            Ok(Some(done)) => last_took = done.took,
            Ok(None) => {}
            Err(e) => tracing::warn!("export of experiments.json failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RunSpec;

    fn store_with(id: &RunId) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rec = RunRecord::new(id.clone(), "r".into(), RunSpec::default(), 1);
        store.update(|ex| ex.put(&rec)).unwrap();
        (dir, store)
    }

    #[test]
    fn changes_that_fail_to_write_are_kept_and_written_once_the_store_works_again() {
        let id = RunId::parse("r").unwrap();
        let (dir, store) = store_with(&id);
        let (writer, jobs) = unbounded();
        let thread = {
            let store = store.clone();
            std::thread::spawn(move || write_loop(Writer::new(store), jobs))
        };
        // The store cannot be written: its home is replaced by a file.
        let home = dir.path().to_path_buf();
        let aside = home.with_extension("aside");
        std::fs::rename(&home, &aside).unwrap();
        std::fs::write(&home, b"not a directory").unwrap();
        writer
            .send(Job::Change {
                id: id.clone(),
                change: Box::new(|rec| rec.name = "renamed".into()),
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        std::fs::remove_file(&home).unwrap();
        std::fs::rename(&aside, &home).unwrap();
        let (done, wait) = oneshot::channel();
        writer.send(Job::Barrier(done)).unwrap();
        wait.blocking_recv().unwrap();
        assert_eq!(store.get(&id).unwrap().name, "renamed");
        drop(writer);
        thread.join().unwrap();
    }

    #[test]
    fn progress_updates_the_run_and_its_attempt() {
        let id = RunId::parse("r").unwrap();
        let mut rec = RunRecord::new(id.clone(), "r".into(), RunSpec::default(), 1);
        let start = crate::record::lifecycle::AttemptStart {
            number: 1,
            ..Default::default()
        };
        crate::record::lifecycle::admit(&mut rec, start, 1).unwrap();
        let mut progress = ProgressUpdate::new(id);
        progress.step = Some(7);
        progress.loss = Some(0.5);
        progress.metrics.insert("lr".into(), 0.1);
        progress.metrics.insert("gnorm".into(), f64::NAN);
        progress.active_ms = 1500;
        apply_progress(&mut rec, &progress);
        assert_eq!(
            (rec.last_step, rec.last_loss, rec.active_ms),
            (Some(7), Some(0.5), 1500)
        );
        assert_eq!(rec.metrics["gnorm"], None);
        assert_eq!(rec.attempts[0].last_step, Some(7));
    }
}
