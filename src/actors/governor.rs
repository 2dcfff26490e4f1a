//! The Governor: keeps the latest resource snapshot (CPU, RAM, GPUs), sampled every
//! `pollInterval` on its own thread, hands it to admission, and passes every new snapshot to
//! the Workers that watch their GPUs (thermal pause, memory limit).

use crate::config::GpuProbeKind;
use crate::resources::{self, Snapshot};
use actix::prelude::*;
use crossbeam_channel::{Sender, bounded};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

pub struct Governor {
    poll_interval: Duration,
    gpu_probe: GpuProbeKind,
    probe_timeout: Duration,
    watchers: Vec<Recipient<Sampled>>,
    latest: Option<Arc<Snapshot>>,
    /// Asked for before the first sample arrived.
    waiting: Vec<oneshot::Sender<Arc<Snapshot>>>,
    /// Dropping this stops the sampler thread.
    stop_sampler: Option<Sender<()>>,
}

impl Governor {
    /// `gpu_probe` is the `gpu.probe` setting; the probe is opened on the sampler thread.
    pub fn new(
        poll_interval: Duration,
        gpu_probe: GpuProbeKind,
        probe_timeout: Duration,
    ) -> Governor {
        Governor {
            poll_interval,
            gpu_probe,
            probe_timeout,
            watchers: Vec::new(),
            latest: None,
            waiting: Vec::new(),
            stop_sampler: None,
        }
    }
}

impl Actor for Governor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (stop, stopped) = bounded::<()>(0);
        self.stop_sampler = Some(stop);
        let addr = ctx.address();
        let interval = self.poll_interval;
        let (probe, timeout) = (self.gpu_probe, self.probe_timeout);
        std::thread::Builder::new()
            .name("governor-sampler".into())
            .spawn(move || {
                let mut sampler = resources::Sampler::new(probe.as_str(), timeout);
                // CPU runs start from this one; GPU runs wait for the first full sample.
                if addr
                    .try_send(Sample(sampler.sample_machine_only()))
                    .is_err()
                {
                    return;
                }
                loop {
                    if addr.try_send(Sample(sampler.sample())).is_err() {
                        return;
                    }
                    // Sleeps the interval, or wakes at once when the actor goes away.
                    match stopped.recv_timeout(interval) {
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                        _ => return,
                    }
                }
            })
            .expect("spawn the governor sampler thread");
    }
}

/// A fresh snapshot from the sampler thread.
#[derive(Message)]
#[rtype(result = "()")]
struct Sample(Snapshot);

impl Handler<Sample> for Governor {
    type Result = ();
    fn handle(&mut self, Sample(snapshot): Sample, _: &mut Context<Self>) {
        let shared = Arc::new(snapshot);
        for asker in self.waiting.drain(..) {
            let _ = asker.send(shared.clone());
        }
        self.watchers.retain(|w| {
            !matches!(
                w.try_send(Sampled(shared.clone())),
                Err(SendError::Closed(_))
            )
        });
        self.latest = Some(shared);
    }
}

/// The latest snapshot (waits for the first one).
#[derive(Message)]
#[rtype(result = "Option<Arc<Snapshot>>")]
pub struct Latest;

impl Handler<Latest> for Governor {
    type Result = ResponseFuture<Option<Arc<Snapshot>>>;
    fn handle(&mut self, _: Latest, _: &mut Context<Self>) -> Self::Result {
        match &self.latest {
            Some(snapshot) => {
                let snapshot = snapshot.clone();
                Box::pin(async move { Some(snapshot) })
            }
            None => {
                let (tx, rx) = oneshot::channel();
                self.waiting.push(tx);
                Box::pin(async move { rx.await.ok() })
            }
        }
    }
}

/// A new snapshot, for a Worker watching its GPUs.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Sampled(pub Arc<Snapshot>);

/// Send me every new snapshot (until I stop).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Watch(pub Recipient<Sampled>);

impl Handler<Watch> for Governor {
    type Result = ();
    fn handle(&mut self, Watch(watcher): Watch, _: &mut Context<Self>) {
        self.watchers.push(watcher);
    }
}
