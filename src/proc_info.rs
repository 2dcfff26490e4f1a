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

/// Processes (other than this one) started for attempt `attempt` of the run whose directory
/// is `run_dir`, wherever they went: a daemon that double-forked and left the process group
/// still carries the environment backprop gave the script, unless it cleared it. The run
/// directory (home + id) tells runs of different homes apart.
pub fn processes_of_run(run_dir: &str, attempt: u32) -> Vec<u32> {
    let id = format!("BACKPROP_RUN_DIR={run_dir}");
    let number = format!("BACKPROP_ATTEMPT={attempt}");
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                let mut vars = env.split(|b| *b == 0);
                let (mut has_id, mut has_attempt) = (false, false);
                for var in vars.by_ref() {
                    has_id |= var == id.as_bytes();
                    has_attempt |= var == number.as_bytes();
                }
                has_id && has_attempt
            })
        })
        .filter(|pid| !is_defunct(*pid))
        .collect()
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
    fn finds_the_processes_of_a_run_by_their_environment() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .env("BACKPROP_RUN_DIR", "/nowhere/runs/env-scan-test")
            .env("BACKPROP_ATTEMPT", "2")
            .spawn()
            .unwrap();
        // Until the child has exec'd, /proc shows the parent's environment: wait (bounded).
        let mut found = Vec::new();
        for _ in 0..200 {
            found = processes_of_run("/nowhere/runs/env-scan-test", 2);
            if !found.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(found, vec![child.id()]);
        assert!(processes_of_run("/nowhere/runs/env-scan-test", 1).is_empty());
        assert!(processes_of_run("/elsewhere/runs/env-scan-test", 2).is_empty());
        child.kill().unwrap();
        child.wait().unwrap();
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
