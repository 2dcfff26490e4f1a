//! Facts about processes on this host, read from /proc: is a supervisor still alive?

use crate::record::SupervisorRef;
use std::fs;

/// The start time (clock ticks after boot) of `pid`, or None if it does not exist.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_ticks(&stat)
}

/// Field 22 of /proc/<pid>/stat. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted after its closing parenthesis.
fn parse_start_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // after_comm starts with field 3 (state); field 22 is the 20th from there.
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` is a zombie or gone.
pub fn is_defunct(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| {
                stat[i + 1..]
                    .split_whitespace()
                    .next()
                    .map(|s| s == "Z" || s == "X")
            })
            .unwrap_or(true),
        Err(_) => true,
    }
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// This process, as other backprop processes will check it.
pub fn me() -> SupervisorRef {
    let pid = std::process::id();
    SupervisorRef {
        pid,
        start_ticks: start_ticks(pid).unwrap_or(0),
        host: hostname(),
    }
}

/// Liveness of a supervisor as seen from this host.
#[derive(Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Dead,
    /// On another host (a shared home on a cluster): cannot tell from here.
    Unknown,
}

pub fn liveness(sup: &SupervisorRef, this_host: &str) -> Liveness {
    if sup.host != this_host {
        return Liveness::Unknown;
    }
    match start_ticks(sup.pid) {
        Some(ticks) if ticks == sup.start_ticks && !is_defunct(sup.pid) => Liveness::Alive,
        _ => Liveness::Dead,
    }
}

/// Whether any process is still in process group `pgid`.
pub fn group_has_members(pgid: u32) -> bool {
    use nix::sys::signal::killpg;
    use nix::unistd::Pid;
    // Signal 0 checks existence without delivering anything.
    killpg(Pid::from_raw(pgid as i32), None).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_start_ticks_even_with_parentheses_in_the_name() {
        let stat =
            "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_ticks(stat), Some(987654));
    }

    #[test]
    fn this_process_is_alive_and_a_forged_one_is_not() {
        let me = me();
        assert_eq!(liveness(&me, &me.host), Liveness::Alive);
        let recycled = SupervisorRef {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert_eq!(liveness(&recycled, &me.host), Liveness::Dead);
        let elsewhere = SupervisorRef {
            host: "other-node".into(),
            ..me.clone()
        };
        assert_eq!(liveness(&elsewhere, &me.host), Liveness::Unknown);
    }
}
