//! Reading a probe on a thread of its own, with a bound, so a driver call that hangs
//! (NVML on a GPU that fell off the bus can block for minutes) never holds up the caller.
//!
//! A [`GpuReader`] owns the probe and one worker thread that makes the reads. A read
//! still running past the bound is given up on: its thread is abandoned (left to return
//! on its own; it then exits) and the read answers [`ProbeError::ReadTimeout`]. Until
//! that thread returns, no other read starts, so there is never more than one hung
//! thread per probe: reads answer [`ProbeError::StillHung`] at once. Once it has
//! returned, the next read starts a fresh worker thread.

use super::types::{GpuProbe, GpuReading, ProbeError, ProbeKind};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, unbounded};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What a read answered, and when it finished (ms since the epoch).
pub type Answer = (Result<GpuReading, ProbeError>, u64);

/// A probe read on its own thread, each read bounded.
pub struct GpuReader {
    kind: ProbeKind,
    bound: Duration,
    probe: Arc<Mutex<Box<dyn GpuProbe>>>,
    worker: Option<Worker>,
    /// When the read the worker is making now started.
    in_flight: Option<Instant>,
    hung: Option<Hung>,
}

struct Worker {
    requests: Sender<()>,
    replies: Receiver<Answer>,
}

/// An abandoned worker still inside a read.
struct Hung {
    replies: Receiver<Answer>,
    started: Instant,
}

impl std::fmt::Debug for GpuReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuReader")
            .field("kind", &self.kind)
            .field("bound", &self.bound)
            .field("in_flight", &self.in_flight.is_some())
            .field("hung", &self.hung.is_some())
            .finish()
    }
}

impl GpuReader {
    /// Reads `probe`, each read bounded by the probe's own bound or else `timeout`.
    pub fn new(probe: Box<dyn GpuProbe>, timeout: Duration) -> GpuReader {
        GpuReader {
            kind: probe.kind(),
            bound: probe.read_bound().unwrap_or(timeout),
            probe: Arc::new(Mutex::new(probe)),
            worker: None,
            in_flight: None,
            hung: None,
        }
    }

    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    /// How long a read may take before it is given up on.
    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// One read, waiting at most the bound.
    pub fn read(&mut self) -> Result<GpuReading, ProbeError> {
        self.start()?;
        loop {
            if let Some((result, _)) = self.poll(self.bound) {
                return result;
            }
        }
    }

    /// Starts a read unless one is running. Err at once while an abandoned read has not
    /// returned ([`ProbeError::StillHung`]), or if no thread can be started.
    pub fn start(&mut self) -> Result<(), ProbeError> {
        self.check_hung()?;
        if self.in_flight.is_some() {
            return Ok(());
        }
        for _ in 0..2 {
            if self.worker.is_none() {
                self.worker = Some(self.spawn()?);
            }
            let worker = self.worker.as_ref().expect("set above");
            if worker.requests.send(()).is_ok() {
                self.in_flight = Some(Instant::now());
                return Ok(());
            }
            // The worker is gone (it only leaves when told to, or after a panic).
            self.worker = None;
        }
        Err(self.crashed("the read thread exits at once".into()))
    }

    /// The answer of the running read, if it comes within `wait` (never waiting past the
    /// read's bound; a read past it is abandoned and answers `ReadTimeout`). None when
    /// it is still running, or when no read was started. While an abandoned read has
    /// not returned, `StillHung` at once.
    pub fn poll(&mut self, wait: Duration) -> Option<Answer> {
        if let Err(e) = self.check_hung() {
            return Some((Err(e), crate::clock::now_ms()));
        }
        let started = self.in_flight?;
        let Some(worker) = &self.worker else {
            self.in_flight = None;
            return None;
        };
        let deadline = started + self.bound;
        let now = Instant::now();
        let until = (now + wait).min(deadline);
        match worker
            .replies
            .recv_timeout(until.saturating_duration_since(now))
        {
            Ok(answer) => {
                self.in_flight = None;
                Some(answer)
            }
            Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => None,
            Err(RecvTimeoutError::Timeout) => {
                let worker = self.worker.take().expect("checked above");
                // Dropping `requests` makes the thread exit once its read returns.
                self.hung = Some(Hung {
                    replies: worker.replies,
                    started,
                });
                self.in_flight = None;
                tracing::warn!(
                    probe = %self.kind,
                    bound = ?self.bound,
                    "a GPU read did not return in time; its thread is left to finish"
                );
                Some((
                    Err(ProbeError::ReadTimeout {
                        probe: self.kind,
                        timeout: self.bound,
                    }),
                    crate::clock::now_ms(),
                ))
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.worker = None;
                self.in_flight = None;
                Some((
                    Err(self.crashed("its thread ended".into())),
                    crate::clock::now_ms(),
                ))
            }
        }
    }

    /// Err while an abandoned read is still running; clears it once it has returned.
    fn check_hung(&mut self) -> Result<(), ProbeError> {
        let Some(hung) = &self.hung else {
            return Ok(());
        };
        match hung.replies.try_recv() {
            Err(TryRecvError::Empty) => Err(ProbeError::StillHung {
                probe: self.kind,
                waited: hung.started.elapsed(),
            }),
            // Returned (its late answer is dropped) or ended: reads may start again.
            Ok(_) | Err(TryRecvError::Disconnected) => {
                tracing::info!(probe = %self.kind, "the GPU read that hung has returned");
                self.hung = None;
                Ok(())
            }
        }
    }

    fn crashed(&self, reason: String) -> ProbeError {
        ProbeError::Crashed {
            probe: self.kind,
            reason,
        }
    }

    fn spawn(&self) -> Result<Worker, ProbeError> {
        let (requests, requested) = unbounded::<()>();
        let (reply, replies) = unbounded::<Answer>();
        let probe = Arc::clone(&self.probe);
        let kind = self.kind;
        std::thread::Builder::new()
            .name(format!("gpu-probe-{kind}"))
            .spawn(move || {
                while requested.recv().is_ok() {
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        probe.lock().unwrap_or_else(PoisonError::into_inner).read()
                    }))
                    .unwrap_or_else(|panic| {
                        let reason = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "a panic".into());
                        Err(ProbeError::Crashed {
                            probe: kind,
                            reason: format!("panic: {reason}"),
                        })
                    });
                    if reply.send((result, crate::clock::now_ms())).is_err() {
                        return;
                    }
                }
            })
            .map(|_| Worker { requests, replies })
            .map_err(|e| self.crashed(format!("cannot start a thread: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Reads answer after `delay`; every read counts itself.
    struct Slow {
        delay: Duration,
        reads: Arc<AtomicUsize>,
        panic_on: Option<usize>,
        bound: Duration,
    }

    impl GpuProbe for Slow {
        fn kind(&self) -> ProbeKind {
            ProbeKind::NvidiaSmi
        }
        fn read(&mut self) -> Result<GpuReading, ProbeError> {
            let n = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
            if self.panic_on == Some(n) {
                panic!("probe bug");
            }
            std::thread::sleep(self.delay);
            Ok(GpuReading::default())
        }
        fn read_bound(&self) -> Option<Duration> {
            Some(self.bound)
        }
    }

    fn slow(delay_ms: u64) -> (GpuReader, Arc<AtomicUsize>) {
        let reads = Arc::new(AtomicUsize::new(0));
        let probe = Slow {
            delay: Duration::from_millis(delay_ms),
            reads: reads.clone(),
            panic_on: None,
            bound: Duration::from_millis(150),
        };
        (
            GpuReader::new(Box::new(probe), Duration::from_secs(60)),
            reads,
        )
    }

    #[test]
    fn the_probe_may_set_its_own_bound() {
        let (r, _) = slow(0);
        assert_eq!(r.bound(), Duration::from_millis(150));
        assert_eq!(r.kind(), ProbeKind::NvidiaSmi);
    }

    #[test]
    fn quick_reads_answer_and_reuse_the_worker() {
        let (mut r, reads) = slow(0);
        for _ in 0..3 {
            assert_eq!(r.read().unwrap(), GpuReading::default());
        }
        assert_eq!(reads.load(Ordering::SeqCst), 3);
        assert!(r.poll(Duration::ZERO).is_none(), "nothing running");
    }

    #[test]
    fn a_slow_read_can_be_polled_without_waiting_for_it() {
        let (mut r, _) = slow(100);
        r.start().unwrap();
        r.start().unwrap(); // no second read while one runs
        let t0 = Instant::now();
        assert!(r.poll(Duration::from_millis(10)).is_none());
        assert!(t0.elapsed() < Duration::from_millis(90));
        let (answer, at) = r.poll(Duration::from_secs(1)).unwrap();
        assert!(answer.is_ok());
        assert!(at > 0);
    }

    #[test]
    fn a_hung_read_times_out_then_reports_at_once_until_it_returns() {
        let (mut r, reads) = slow(400);
        let t0 = Instant::now();
        let e = r.read().unwrap_err();
        let took = t0.elapsed();
        assert!(matches!(e, ProbeError::ReadTimeout { .. }), "{e:?}");
        assert!(took >= Duration::from_millis(140) && took < Duration::from_millis(350));
        // Still inside the first read: answered at once, and no second read started.
        let t1 = Instant::now();
        let e = r.read().unwrap_err();
        assert!(matches!(e, ProbeError::StillHung { .. }), "{e:?}");
        assert!(t1.elapsed() < Duration::from_millis(20));
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // Once it has returned, a fresh worker reads again.
        std::thread::sleep(Duration::from_millis(350));
        let e = r.read().unwrap_err(); // 400 ms again: times out again
        assert!(matches!(e, ProbeError::ReadTimeout { .. }), "{e:?}");
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_panicking_probe_is_an_error_and_the_next_read_works() {
        let reads = Arc::new(AtomicUsize::new(0));
        let probe = Slow {
            delay: Duration::ZERO,
            reads: reads.clone(),
            panic_on: Some(1),
            // Printing a panic (with a backtrace, when RUST_BACKTRACE asks) can take longer
            // than a tight bound on a loaded machine.
            bound: Duration::from_secs(10),
        };
        let mut r = GpuReader::new(Box::new(probe), Duration::from_secs(5));
        let e = r.read().unwrap_err();
        assert!(e.to_string().contains("probe bug"), "{e}");
        assert!(r.read().is_ok());
    }
}
