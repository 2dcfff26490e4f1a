//! The guard: a tiny helper process (`backprop __guard <pgid> <run-dir> <attempt>`) that outlives a killed
//! backprop just long enough to kill the script's whole process group.
//!
//! PR_SET_PDEATHSIG reaches only the direct child; grandchildren (data loaders, torchrun
//! workers) would keep running unsupervised after `kill -9` of backprop. The guard holds
//! the read end of a pipe whose write end only backprop has: EOF without a "done" line
//! means backprop died, so the guard kills the group.

use crate::process::signal_group;
use nix::sys::signal::Signal;
use std::io::{self, BufRead, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};

/// backprop's end of the guard: tell it the run ended normally before dropping it.
pub struct Guard {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Guard {
    /// Starts `<current exe> __guard <pgid>` in its own process group, so a Ctrl-C at the
    /// terminal does not reach it.
    pub fn start(pgid: u32, run_dir: &str, attempt: u32) -> io::Result<Guard> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("__guard")
            .arg(pgid.to_string())
            .arg(run_dir)
            .arg(attempt.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take();
        Ok(Guard { child, stdin })
    }

    /// The run is over and its group handled: the guard exits without killing anything.
    pub fn release(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"done\n");
        }
        // Reap it off the caller's thread; it exits at once after "done".
        let mut child = self.child;
        std::thread::spawn(move || child.wait());
    }
}

/// The guard's own main: wait for "done" or EOF.
pub fn run_guard(pgid: u32, run_dir: &str, attempt: u32) -> i32 {
    // Ignore the signals a terminal or a group kill might send our way.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let mut line = String::new();
    let stdin = io::stdin();
    let released =
        matches!(stdin.lock().read_line(&mut line), Ok(n) if n > 0 && line.trim() == "done");
    if !released {
        kill_run(pgid, run_dir, attempt);
    }
    0
}

/// Kills everything of an attempt: its process group, and processes that left the group but
/// still carry the run's environment (double-forked daemons).
pub fn kill_run(pgid: u32, run_dir: &str, attempt: u32) {
    signal_group(pgid, Signal::SIGKILL);
    for pid in crate::proc_info::processes_of_run(run_dir, attempt) {
        crate::process::signal_pid(pid, Signal::SIGKILL);
    }
}
