//! Parsing nvidia-smi's text listings (pure functions): `nvidia-smi -L`, which names
//! the MIG instances of each GPU with their uuids, and `nvidia-smi -q -d MEMORY,TEMPERATURE`,
//! which gives each MIG instance's memory and each GPU's slowdown temperature.
//!
//! `-L` prints one line per GPU and, under a GPU in MIG mode, one indented line per
//! instance:
//!
//! ```text
//! GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5b9ac3-36f5-3b1c-3c36-31d5d4c1dc05)
//!   MIG 3g.20gb     Device  0: (UUID: MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f)
//!   MIG 2g.10gb     Device  1: (UUID: MIG-GPU-5d5b9ac3-36f5-3b1c-3c36-31d5d4c1dc05/5/0)
//! ```
//!
//! (drivers before R470 spelt MIG uuids the second way). `-q` prints indented
//! "key : value" lines under section headings; the parts read here are, per GPU:
//!
//! ```text
//! GPU 00000000:00:04.0
//!     FB Memory Usage
//!         Total                             : 40536 MiB
//!     MIG Devices
//!         MIG Device
//!             Index                         : 0
//!             FB Memory Usage
//!                 Total                     : 19968 MiB
//!                 Used                      : 11 MiB
//!                 Free                      : 19956 MiB
//!     Temperature
//!         GPU Slowdown Temp                 : 87 C
//! ```
//!
//! Both parsers are lenient: lines they do not know are skipped.

use super::csv::is_marker;

/// One GPU of `nvidia-smi -L`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedGpu {
    pub index: u32,
    pub name: String,
    pub uuid: String,
    pub migs: Vec<ListedMig>,
}

/// One MIG instance of `nvidia-smi -L`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedMig {
    /// "Device N": the instance's index on its GPU.
    pub mig_index: u32,
    /// The profile, e.g. "3g.20gb".
    pub profile: String,
    pub uuid: String,
}

/// The GPUs and MIG instances of `nvidia-smi -L` output.
pub fn parse_list(text: &str) -> Vec<ListedGpu> {
    let mut gpus: Vec<ListedGpu> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(gpu) = parse_gpu_line(line) {
            gpus.push(gpu);
        } else if let Some(mig) = parse_mig_line(line) {
            match gpus.last_mut() {
                Some(gpu) => gpu.migs.push(mig),
                None => tracing::debug!(line, "nvidia-smi -L: a MIG line before any GPU"),
            }
        } else if !line.is_empty() {
            tracing::debug!(line, "nvidia-smi -L: line skipped");
        }
    }
    gpus
}

/// The uuid in "... (UUID: <uuid>)" at the end of `line`, and what comes before it.
fn split_uuid(line: &str) -> Option<(&str, &str)> {
    let at = line.rfind("(UUID:")?;
    let uuid = line[at + "(UUID:".len()..].trim().strip_suffix(')')?.trim();
    (!uuid.is_empty() && uuid.chars().all(|c| c.is_ascii_graphic()))
        .then_some((line[..at].trim_end(), uuid))
}

/// "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-...)".
fn parse_gpu_line(line: &str) -> Option<ListedGpu> {
    let rest = line.strip_prefix("GPU ")?;
    let (index, rest) = rest.split_once(':')?;
    let index = index.trim().parse().ok()?;
    let (name, uuid) = split_uuid(rest)?;
    Some(ListedGpu {
        index,
        name: name.trim().to_string(),
        uuid: uuid.to_string(),
        migs: Vec::new(),
    })
}

/// "MIG 3g.20gb     Device  0: (UUID: MIG-...)".
fn parse_mig_line(line: &str) -> Option<ListedMig> {
    let rest = line.strip_prefix("MIG ")?;
    let (before, uuid) = split_uuid(rest)?;
    let at = before.rfind("Device")?;
    let profile = before[..at].trim();
    let index = before[at + "Device".len()..]
        .trim()
        .strip_suffix(':')?
        .trim();
    Some(ListedMig {
        mig_index: index.parse().ok()?,
        profile: profile.to_string(),
        uuid: uuid.to_string(),
    })
}

/// What `nvidia-smi -q -d MEMORY,TEMPERATURE` says of one GPU.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GpuDetails {
    pub slowdown_temp_c: Option<f64>,
    pub migs: Vec<MigMemory>,
}

/// The memory of one MIG instance, in MiB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigMemory {
    pub mig_index: Option<u32>,
    pub total_mb: Option<u64>,
    pub used_mb: Option<u64>,
    pub free_mb: Option<u64>,
}

/// The GPUs of `nvidia-smi -q` output, in the order printed (the index order).
pub fn parse_details(text: &str) -> Vec<GpuDetails> {
    let mut gpus: Vec<GpuDetails> = Vec::new();
    // Indentation of the "MIG Devices" heading while inside that section.
    let mut mig_section: Option<usize> = None;
    let mut in_mig_device = false;
    // Indentation of the "FB Memory Usage" heading while inside it.
    let mut fb_section: Option<usize> = None;
    for raw in text.lines() {
        let line = raw.trim_end();
        let content = line.trim_start();
        if content.is_empty() {
            continue;
        }
        let indent = line.len() - content.len();
        if mig_section.is_some_and(|i| indent <= i) {
            mig_section = None;
            in_mig_device = false;
        }
        if fb_section.is_some_and(|i| indent <= i) {
            fb_section = None;
        }
        let (key, value) = match content.split_once(" : ").or_else(|| {
            content
                .strip_suffix(" :")
                .or_else(|| content.strip_suffix(':'))
                .map(|k| (k, ""))
        }) {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (content.trim(), None),
        };
        let Some(value) = value else {
            // A heading.
            if indent == 0 && key.starts_with("GPU ") && key.contains(':') {
                gpus.push(GpuDetails::default());
                mig_section = None;
                in_mig_device = false;
                fb_section = None;
            } else if key == "MIG Devices" {
                mig_section = Some(indent);
            } else if key == "MIG Device" && mig_section.is_some() {
                in_mig_device = true;
                if let Some(gpu) = gpus.last_mut() {
                    gpu.migs.push(MigMemory::default());
                }
            } else if key == "FB Memory Usage" {
                fb_section = Some(indent);
            }
            continue;
        };
        let Some(gpu) = gpus.last_mut() else {
            continue;
        };
        let mig = if in_mig_device {
            gpu.migs.last_mut()
        } else {
            None
        };
        match (key, mig) {
            ("GPU Slowdown Temp", _) => gpu.slowdown_temp_c = number(value),
            ("Index", Some(mig)) if fb_section.is_none() => {
                mig.mig_index = value.parse().ok();
            }
            ("Total", Some(mig)) if fb_section.is_some() => mig.total_mb = mib(value),
            ("Used", Some(mig)) if fb_section.is_some() => mig.used_mb = mib(value),
            ("Free", Some(mig)) if fb_section.is_some() => mig.free_mb = mib(value),
            _ => {}
        }
    }
    gpus
}

/// "87 C", "40536 MiB", "87": the number; "N/A" and markers: None.
fn number(value: &str) -> Option<f64> {
    if is_marker(value) {
        return None;
    }
    let n = value.split_whitespace().next()?;
    n.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn mib(value: &str) -> Option<u64> {
    number(value)
        .filter(|v| *v >= 0.0 && *v < u64::MAX as f64)
        .map(|v| v.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5b9ac3-36f5-3b1c-3c36-31d5d4c1dc05)\n\
  MIG 3g.20gb     Device  0: (UUID: MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f)\n\
  MIG 2g.10gb     Device  1: (UUID: MIG-0e8e0b7c-4a43-5e14-0f8a-c2b4c9b8f0a1)\n\
GPU 1: NVIDIA GeForce RTX 4090 (UUID: GPU-0e8e0b7c-4a43-5e14-0f8a-c2b4c9b8f0a1)\n";

    #[test]
    fn list_with_mig_instances() {
        let gpus = parse_list(LIST);
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].index, 0);
        assert_eq!(gpus[0].name, "NVIDIA A100-SXM4-40GB");
        assert_eq!(gpus[0].uuid, "GPU-5d5b9ac3-36f5-3b1c-3c36-31d5d4c1dc05");
        assert_eq!(
            gpus[0].migs,
            vec![
                ListedMig {
                    mig_index: 0,
                    profile: "3g.20gb".into(),
                    uuid: "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f".into()
                },
                ListedMig {
                    mig_index: 1,
                    profile: "2g.10gb".into(),
                    uuid: "MIG-0e8e0b7c-4a43-5e14-0f8a-c2b4c9b8f0a1".into()
                }
            ]
        );
        assert_eq!(gpus[1].index, 1);
        assert!(gpus[1].migs.is_empty());
    }

    #[test]
    fn old_mig_uuids_names_with_parentheses_and_noise() {
        let text = "\r\nGPU 3: NVIDIA A30 (rev. 2) (UUID: GPU-abc)\r\n  MIG 1g.6gb Device 2: (UUID: MIG-GPU-abc/3/0)\r\n\
                    garbage line\n  MIG 1g.6gb Device x: (UUID: MIG-bad)\n";
        let gpus = parse_list(text);
        assert_eq!(gpus.len(), 1);
        assert_eq!(gpus[0].index, 3);
        assert_eq!(gpus[0].name, "NVIDIA A30 (rev. 2)");
        assert_eq!(gpus[0].migs.len(), 1);
        assert_eq!(gpus[0].migs[0].mig_index, 2);
        assert_eq!(gpus[0].migs[0].profile, "1g.6gb");
        assert_eq!(gpus[0].migs[0].uuid, "MIG-GPU-abc/3/0");
        assert!(parse_list("  MIG 1g.5gb Device 0: (UUID: MIG-x)\n").is_empty());
        assert!(parse_list("").is_empty());
    }

    const DETAILS: &str = "
==============NVSMI LOG==============

Timestamp                                 : Mon Jan  1 00:00:00 2024
Driver Version                            : 535.104.05
CUDA Version                              : 12.2

Attached GPUs                             : 2
GPU 00000000:00:04.0
    FB Memory Usage
        Total                             : 40960 MiB
        Reserved                          : 634 MiB
        Used                              : 100 MiB
        Free                              : 40226 MiB
    BAR1 Memory Usage
        Total                             : 65536 MiB
        Used                              : 1 MiB
        Free                              : 65535 MiB
    MIG Devices
        MIG Device
            Index                         : 0
            GPU Instance ID               : 1
            Compute Instance ID           : 0
            FB Memory Usage
                Total                     : 19968 MiB
                Used                      : 11 MiB
                Free                      : 19956 MiB
            BAR1 Memory Usage
                Total                     : 32767 MiB
                Used                      : 0 MiB
                Free                      : 32767 MiB
        MIG Device
            Index                         : 1
            FB Memory Usage
                Total                     : 9856 MiB
                Used                      : 5000 MiB
                Free                      : 4856 MiB
    Temperature
        GPU Current Temp                  : 34 C
        GPU T.Limit Temp                  : N/A
        GPU Shutdown Temp                 : 92 C
        GPU Slowdown Temp                 : 89 C
        GPU Max Operating Temp            : 85 C

GPU 00000000:00:05.0
    FB Memory Usage
        Total                             : 24564 MiB
        Used                              : 0 MiB
        Free                              : 24564 MiB
    Temperature
        GPU Current Temp                  : 40 C
        GPU Slowdown Temp                 : N/A
";

    #[test]
    fn details_give_mig_memory_and_slowdown_per_gpu() {
        let gpus = parse_details(DETAILS);
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].slowdown_temp_c, Some(89.0));
        assert_eq!(
            gpus[0].migs,
            vec![
                MigMemory {
                    mig_index: Some(0),
                    total_mb: Some(19968),
                    used_mb: Some(11),
                    free_mb: Some(19956)
                },
                MigMemory {
                    mig_index: Some(1),
                    total_mb: Some(9856),
                    used_mb: Some(5000),
                    free_mb: Some(4856)
                }
            ]
        );
        assert_eq!(gpus[1].slowdown_temp_c, None);
        assert!(gpus[1].migs.is_empty());
    }

    #[test]
    fn details_of_nothing_or_garbage_are_empty() {
        assert!(parse_details("").is_empty());
        assert!(parse_details("\u{0}\u{1} junk\n : : :\n").is_empty());
        let g =
            parse_details("GPU 0000:01:00.0\n    Temperature\n        GPU Slowdown Temp : hot\n");
        assert_eq!(g, vec![GpuDetails::default()]);
    }
}
