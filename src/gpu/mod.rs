//! GPU probes: what GPUs (and MIG instances) there are, how full and hot they are, and
//! which processes use them, read through NVML or `nvidia-smi`.
//!
//! A probe never crashes the caller: a missing library or program, a hang (each read
//! runs on its own thread, bounded by a timeout: see [`bounded`]), `[N/A]` fields and
//! garbage all come back as a [`ProbeError`], as `None` fields listed in
//! [`GpuInfo::unreadable`], or as a [`GpuInfo::failure`] for a device that cannot be
//! used at all, so the governor can say why a check could not be made instead of
//! skipping it silently.
//!
//! Tests drive the NVML probe's logic through a scripted stand-in for the library, and
//! the nvidia-smi probe through the fake `tests/fake_gpu/nvidia-smi`.

pub mod bounded;
pub mod csv;
pub mod nvidia_smi;
pub mod nvml;
pub mod select;
pub mod smi_text;
pub mod types;

pub use bounded::GpuReader;
pub use csv::{parse_apps_csv, parse_gpu_csv};
pub use nvidia_smi::{DEFAULT_TIMEOUT, NvidiaSmiProbe, nvidia_smi_available};
pub use nvml::NvmlProbe;
pub use select::{ProbeOptions, Selected, open_probe, open_probe_with};
pub use types::{
    ComputeMode, FailureKind, GpuFailure, GpuInfo, GpuProbe, GpuProcess, GpuReading,
    MIG_INDEX_BASE, ProbeError, ProbeKind, field, mig_device_index,
};

/// The thermal limit used when none is configured: 5 °C below the GPU's own slowdown
/// threshold where the driver reports one (laptops slow down well below 85 °C), else
/// 85 °C. A threshold outside 50–150 °C is taken for garbage and ignored.
pub fn default_max_temp_c(slowdown_temp_c: Option<f64>) -> f64 {
    const FALLBACK: f64 = 85.0;
    match slowdown_temp_c {
        Some(t) if t.is_finite() && (50.0..=150.0).contains(&t) => t - 5.0,
        _ => FALLBACK,
    }
}

/// One bounded reading from `probe`; an error becomes an empty reading plus the error's
/// text. No probe: an empty reading and no error.
pub fn read_with_error(probe: &mut Option<GpuReader>) -> (GpuReading, Option<String>) {
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
    fn default_max_temp_is_5_below_slowdown_else_85() {
        assert_eq!(default_max_temp_c(None), 85.0);
        assert_eq!(default_max_temp_c(Some(87.0)), 82.0);
        assert_eq!(default_max_temp_c(Some(100.0)), 95.0);
        assert_eq!(default_max_temp_c(Some(f64::NAN)), 85.0);
        assert_eq!(default_max_temp_c(Some(0.0)), 85.0);
        assert_eq!(default_max_temp_c(Some(4_294_967_295.0)), 85.0);
    }

    #[test]
    fn read_with_error_turns_errors_into_text() {
        let mut p = Some(GpuReader::new(
            Box::new(Failing),
            std::time::Duration::from_secs(5),
        ));
        let (r, e) = read_with_error(&mut p);
        assert_eq!(r, GpuReading::default());
        assert!(e.unwrap().starts_with("nvidia-smi not found on PATH"));
        assert_eq!(read_with_error(&mut None), (GpuReading::default(), None));
    }
}
