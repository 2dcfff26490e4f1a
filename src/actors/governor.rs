//! The Governor: keeps the latest resource snapshot (CPU, RAM, GPUs), sampled every
//! `pollInterval` on its own thread, hands it to admission, and passes every new snapshot to
//! the Workers that watch their GPUs (thermal pause, memory limit).

use crate::config::GpuProbeKind;
use crate::resources::{self, Snapshot};
use actix::prelude::*;
use crossbeam_channel::{Receiver, Sender, bounded};
use std::sync::Arc;
use std::time::{Duration, Instant};
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
            .spawn(move || sampler_loop(addr, stopped, interval, probe.as_str(), timeout))
            .expect("spawn the governor sampler thread");
    }
}

/// The sampler thread: a snapshot every `interval` until the Governor is gone. It never
/// leaves otherwise: a full mailbox drops the sample (the next one follows), and a panic
/// while sampling is logged and the sampler made anew.
fn sampler_loop(
    addr: Addr<Governor>,
    stopped: Receiver<()>,
    interval: Duration,
    probe: &str,
    timeout: Duration,
) {
    let mut sampler: Option<resources::Sampler> = None;
    // CPU runs start from this one; GPU runs wait for the first full sample.
    let first = sampler
        .get_or_insert_with(|| resources::Sampler::new(probe, timeout))
        .sample_machine_only();
    if addr.try_send(Sample(first)).is_err() {
        return;
    }
    loop {
        let started = Instant::now();
        let sampled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sampler
                .get_or_insert_with(|| resources::Sampler::new(probe, timeout))
                .sample_every(interval)
        }));
        match sampled {
            Ok(snapshot) => match addr.try_send(Sample(snapshot)) {
                Ok(()) => {}
                Err(SendError::Full(_)) => {
                    tracing::debug!("the governor is busy; this resource sample is dropped")
                }
                Err(SendError::Closed(_)) => return,
            },
            Err(_) => {
                tracing::error!("sampling resources panicked; starting the sampler again");
                sampler = None;
            }
        }
        if !addr.connected() {
            return;
        }
        // Sleeps the rest of the interval, or wakes at once when the actor goes away.
        let rest = interval.saturating_sub(started.elapsed());
        match stopped.recv_timeout(rest) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            _ => return,
        }
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
