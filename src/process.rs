//! Starting the script in its own process group and signalling that group.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// What to execute, fully resolved.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: String,
    pub env: crate::launch::EnvChanges,
}

/// Spawns the child as the leader of a new process group, with stdout/stderr piped and
/// stdin closed. If backprop dies, the kernel kills the child (PR_SET_PDEATHSIG); the
/// guard process (see `guard`) takes care of the rest of the group.
pub fn spawn(launch: &Launch) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    let mut command = Command::new(&launch.program);
    command
        .args(&launch.args)
        .current_dir(Path::new(&launch.cwd))
        .envs(launch.env.set.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for key in &launch.env.remove {
        command.env_remove(key);
    }
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(137);
            }
            // Start the script with default dispositions: a backprop launched in the
            // background (`cmd &`) inherits SIGINT ignored, and Python would then never see
            // the timebox's KeyboardInterrupt.
            for signal in [
                libc::SIGINT,
                libc::SIGTERM,
                libc::SIGQUIT,
                libc::SIGHUP,
                libc::SIGUSR1,
                libc::SIGUSR2,
                libc::SIGPIPE,
            ] {
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Sends `signal` to every process of group `pgid`. A group that is already gone is fine.
pub fn signal_group(pgid: u32, signal: Signal) {
    if pgid == 0 {
        return;
    }
    match killpg(Pid::from_raw(pgid as i32), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!("signalling process group {pgid} with {signal}: {e}"),
    }
}

/// Sends `signal` to one process.
pub fn signal_pid(pid: u32, signal: Signal) {
    if pid == 0 {
        return;
    }
    if let Err(e) = nix::sys::signal::kill(Pid::from_raw(pid as i32), signal)
        && e != nix::errno::Errno::ESRCH
    {
        tracing::warn!("signalling process {pid} with {signal}: {e}");
    }
}

/// Parses "SIGINT", "INT", "int" or "2".
pub fn parse_signal(name: &str) -> Option<Signal> {
    let trimmed = name.trim();
    if let Ok(n) = trimmed.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = trimmed.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_signal_names_in_every_usual_form() {
        assert_eq!(parse_signal("SIGINT"), Some(Signal::SIGINT));
        assert_eq!(parse_signal("usr1"), Some(Signal::SIGUSR1));
        assert_eq!(parse_signal("15"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("SIGNOPE"), None);
    }
}
