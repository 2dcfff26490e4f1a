//! Running a short-lived helper program (nvidia-smi, sbatch, squeue, sacct) with a time bound.
//!
//! The child runs in its own process group so that a timeout kills it and anything it
//! started. Its stdout and stderr are drained by two threads from the start, so a
//! child that prints a lot never blocks on a full pipe. It is always reaped: at once
//! normally, and after a kill by a short bounded wait, then (for a process stuck in
//! the kernel, which dies only when its system call returns) by a background thread,
//! so the caller is never held past its deadline by more than that short wait.

use crossbeam_channel::{Receiver, RecvTimeoutError};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Output kept per stream; the rest is read and dropped.
const MAX_CAPTURE: usize = 16 << 20;
/// How long to wait for a killed child to be reaped before leaving it to a thread.
const REAP_WAIT: Duration = Duration::from_millis(500);
/// Time allowed to finish reading the pipes after the child exited, when the deadline
/// has already passed (a child that exits right at the deadline still gets its output).
const DRAIN_GRACE: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub(crate) struct Captured {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug)]
pub(crate) enum RunError {
    Spawn(io::Error),
    /// The child (or something holding its pipes) outlived the deadline; it was killed.
    TimedOut,
}

/// Runs `cmd` (stdin closed, stdout and stderr captured) and waits at most `timeout`.
pub(crate) fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<Captured, RunError> {
    let started = Instant::now();
    let deadline = started + timeout;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().map_err(RunError::Spawn)?;
    let pid = child.id();
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());

    let status = match wait_until(&mut child, deadline) {
        Ok(Some(status)) => status,
        Ok(None) => {
            tracing::debug!(
                pid,
                ?timeout,
                "helper did not exit in time; killing its group"
            );
            kill_and_reap(child);
            return Err(RunError::TimedOut);
        }
        Err(e) => {
            kill_and_reap(child);
            return Err(RunError::Spawn(e));
        }
    };

    // Exited. Its pipes close unless something it started still holds them.
    let until = deadline.max(Instant::now() + DRAIN_GRACE);
    match (collect(&stdout, until), collect(&stderr, until)) {
        (Some(stdout), Some(stderr)) => {
            tracing::trace!(pid, elapsed = ?started.elapsed(), %status, "helper finished");
            Ok(Captured {
                status,
                stdout,
                stderr,
            })
        }
        _ => {
            // Leftovers of its group keep the pipe open: the group still exists, so its
            // id is still its own.
            tracing::debug!(
                pid,
                "helper exited but its pipes stayed open; killing its group"
            );
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            Err(RunError::TimedOut)
        }
    }
}

/// Polls for the child's exit until `deadline`; None if it is still running then.
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

/// SIGKILL to the child's group (it is not reaped yet, so the group id is still its
/// own), then reap it.
fn kill_and_reap(mut child: Child) {
    let pid = child.id();
    if let Err(e) = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL) {
        tracing::debug!(pid, %e, "killpg failed; killing the child alone");
    }
    let _ = child.kill();
    let until = Instant::now() + REAP_WAIT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() < until => thread::sleep(Duration::from_millis(5)),
            Ok(None) => break,
        }
    }
    tracing::warn!(
        pid,
        "killed helper has not exited yet (stuck in the driver?); reaping it in the background"
    );
    let spawned = thread::Builder::new()
        .name("gpu-probe-reaper".into())
        .spawn(move || {
            let _ = child.wait();
        });
    if let Err(e) = spawned {
        tracing::warn!(pid, %e, "could not start a reaper thread; the helper stays a zombie until backprop exits");
    }
}

/// Reads a pipe to its end on a thread; the bytes (at most MAX_CAPTURE) arrive on the channel.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Receiver<Vec<u8>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let Some(mut pipe) = pipe else {
        let _ = tx.send(Vec::new());
        return rx;
    };
    let spawned = thread::Builder::new()
        .name("gpu-probe-pipe".into())
        .spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let room = MAX_CAPTURE.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            let _ = tx.send(kept);
        });
    if let Err(e) = spawned {
        tracing::warn!(%e, "could not start a pipe reader thread");
    }
    rx
}

fn collect(rx: &Receiver<Vec<u8>>, until: Instant) -> Option<Vec<u8>> {
    match rx.recv_deadline(until) {
        Ok(bytes) => Some(bytes),
        Err(RecvTimeoutError::Timeout) => None,
        // The reader thread could not start (or died): no output.
        Err(RecvTimeoutError::Disconnected) => Some(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn captures_both_streams_and_status() {
        let out = run_bounded(
            &mut sh("echo out; echo err >&2; exit 3"),
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn a_lot_of_output_on_both_pipes_does_not_deadlock() {
        // 1 MB on each pipe, far more than a pipe buffer.
        let out = run_bounded(
            &mut sh("head -c 1000000 /dev/zero; head -c 1000000 /dev/zero >&2"),
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), 1_000_000);
        assert_eq!(out.stderr.len(), 1_000_000);
    }

    #[test]
    fn a_hang_is_killed_with_its_group() {
        let t0 = Instant::now();
        // The shell's `sleep` child is in the same group and holds the pipes.
        let r = run_bounded(&mut sh("sleep 30; echo late"), Duration::from_millis(300));
        assert!(matches!(r, Err(RunError::TimedOut)), "{r:?}");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let r = run_bounded(
            &mut Command::new("/nonexistent/backprop-test/nvidia-smi"),
            Duration::from_secs(5),
        );
        match r {
            Err(RunError::Spawn(e)) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
            other => panic!("{other:?}"),
        }
    }
}
