//! GPU probes: what GPUs there are, how full and hot they
//! are, and which processes use them, read through NVML or `nvidia-smi`.
//!
//! A probe never crashes the caller: a missing library or program, a hang (bounded by
//! a timeout), `[N/A]` fields and garbage all come back as a [`ProbeError`] or as
//! `None` fields listed in [`GpuInfo::unreadable`], so the governor can say why a
//! check could not be made instead of skipping it silently.
//!
//! Tests drive the nvidia-smi probe with the fake `tests/fake_gpu/nvidia-smi`
//! (no machine here has an NVIDIA GPU).

pub mod csv;
pub mod nvidia_smi;
pub mod nvml;
pub mod select;
pub mod types;

pub use csv::{parse_apps_csv, parse_gpu_csv};
pub use nvidia_smi::{DEFAULT_TIMEOUT, NvidiaSmiProbe, nvidia_smi_available};
pub use nvml::NvmlProbe;
pub use select::{ProbeOptions, Selected, open_probe, open_probe_with};
pub use types::{GpuInfo, GpuProbe, GpuProcess, GpuReading, ProbeError, ProbeKind, field};

/// One reading from `probe`; an error becomes an empty reading plus the error's text.
/// No probe: an empty reading and no error.
pub fn read_with_error(probe: &mut Option<Box<dyn GpuProbe>>) -> (GpuReading, Option<String>) {
    match probe {
        None => (GpuReading::default(), None),
        Some(p) => match p.read() {
            Ok(r) => (r, None),
            Err(e) => (GpuReading::default(), Some(e.to_string())),
        },
    }
}

/// The process group of `pid` (field 5 of /proc/<pid>/stat), or None if it is gone.
/// Maps a GPU process back to the run whose group it belongs to.
pub fn process_group_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_pgrp(&stat)
}

/// Fields are counted after the last ')': the command name (field 2) may hold spaces
/// and parentheses. After it come state (3), ppid (4), pgrp (5).
fn parse_pgrp(stat: &str) -> Option<u32> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_group_of_this_process() {
        let me = std::process::id();
        let expected = nix::unistd::getpgrp().as_raw() as u32;
        assert_eq!(process_group_of(me), Some(expected));
        assert_eq!(process_group_of(u32::MAX), None);
    }

    #[test]
    fn process_group_of_a_child_in_its_own_group() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        let got = process_group_of(pid);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(got, Some(pid));
    }

    #[test]
    fn pgrp_is_counted_after_the_last_paren() {
        let stat = "4242 (a (weird) name) S 1 777 777 0 -1 4194560 0 0 0 0";
        assert_eq!(parse_pgrp(stat), Some(777));
        assert_eq!(parse_pgrp("garbage"), None);
        assert_eq!(parse_pgrp("1 (x) S 1"), None);
    }

    struct Failing;
    impl GpuProbe for Failing {
        fn kind(&self) -> ProbeKind {
            ProbeKind::NvidiaSmi
        }
        fn read(&mut self) -> Result<GpuReading, ProbeError> {
            Err(ProbeError::NotFound {
                program: "nvidia-smi".into(),
            })
        }
    }

    #[test]
    fn read_with_error_turns_errors_into_text() {
        let mut p: Option<Box<dyn GpuProbe>> = Some(Box::new(Failing));
        let (r, e) = read_with_error(&mut p);
        assert_eq!(r, GpuReading::default());
        assert!(e.unwrap().starts_with("nvidia-smi not found on PATH"));
        assert_eq!(read_with_error(&mut None), (GpuReading::default(), None));
    }
}
