//! The Store actor: every write this process makes to experiments.json goes through it.
//!
//! Writes run on one dedicated thread (file locks and fsync never block the actor loop),
//! in the order they were sent; whatever is queued when the thread wakes is applied in one
//! locked read-modify-write. Progress is coalesced per run and written at most about once a
//! second; checkpoints and status changes are written at once.

use crate::record::RunRecord;
use crate::store::Store;
use actix::prelude::*;
use crossbeam_channel::{Receiver, Sender, unbounded};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::oneshot;

/// A change to one record. `Fn`, not `FnOnce`: a batch whose write failed (disk full, say)
/// is applied again, to the state then on disk, at the next attempt.
pub type Change = Box<dyn Fn(&mut RunRecord) + Send>;

const RETRY_INTERVAL: Duration = Duration::from_secs(1);

const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

enum Job {
    Change { id: String, change: Change },
    Barrier(oneshot::Sender<()>),
}

pub struct StoreActor {
    writer: Sender<Job>,
    pending_progress: HashMap<String, ProgressUpdate>,
    flush_scheduled: bool,
}

/// Change one run's record now (status, checkpoint, attempt).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Update {
    pub id: String,
    pub change: Change,
}

/// The latest progress of a run; only the newest per run is written, at most once a second.
#[derive(Message, Clone, Debug, Default)]
#[rtype(result = "()")]
pub struct ProgressUpdate {
    pub id: String,
    pub step: Option<u64>,
    pub loss: Option<f64>,
    pub metrics: BTreeMap<String, f64>,
    pub active_ms: u64,
}

/// Resolves once everything sent before it is on disk.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

impl StoreActor {
    pub fn new(store: Store) -> StoreActor {
        let (writer, jobs) = unbounded();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_loop(store, jobs))
            .expect("spawn the store writer thread");
        StoreActor {
            writer,
            pending_progress: HashMap::new(),
            flush_scheduled: false,
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

fn write_loop(store: Store, jobs: Receiver<Job>) {
    let mut warned = false;
    let mut unwritten: Vec<(String, Change)> = Vec::new();
    loop {
        let first = if unwritten.is_empty() {
            match jobs.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            }
        } else {
            match jobs.recv_timeout(RETRY_INTERVAL) {
                Ok(job) => Some(job),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            }
        };
        let mut barriers = Vec::new();
        for job in first.into_iter().chain(jobs.try_iter()) {
            match job {
                Job::Change { id, change } => unwritten.push((id, change)),
                Job::Barrier(done) => barriers.push(done),
            }
        }
        if !unwritten.is_empty() {
            let result = store.update(|ex| {
                for (id, change) in &unwritten {
                    match ex.record(id) {
                        Ok(mut rec) => {
                            change(&mut rec);
                            ex.put(&rec);
                        }
                        Err(e) => tracing::warn!("store update of {id} skipped: {e}"),
                    }
                }
            });
            match result {
                Ok(()) => {
                    unwritten.clear();
                    warned = false;
                }
                Err(e) if !warned => {
                    // The run goes on; the changes are kept and written when the store
                    // can be written again.
                    crate::ui::warn(&format!(
                        "could not update the run record (will retry): {e}"
                    ));
                    warned = true;
                }
                Err(e) => tracing::warn!("store write failed again: {e}"),
            }
        }
        for done in barriers {
            let _ = done.send(());
        }
    }
}
