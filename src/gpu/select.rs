//! Choosing the probe from `gpu.probe` (`auto` | `nvml` | `nvidia-smi` | `none`).

use super::bounded::GpuReader;
use super::nvidia_smi::{DEFAULT_PROGRAM, NvidiaSmiProbe};
use super::nvml::{self, DEFAULT_LIBRARIES, NvmlProbe};
use super::types::{ProbeError, ProbeKind};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// The probe chosen, and why, for `backprop status`.
pub struct Selected {
    /// None: GPUs are not probed (none configured, none found, or NVML failed). Each
    /// read runs on the reader's own thread, bounded.
    pub probe: Option<GpuReader>,
    pub kind: ProbeKind,
    /// Why the choice is what it is, when that is worth telling: why NVML was skipped
    /// under `auto`, or why the configured probe is missing. Under `auto` this is for
    /// `backprop status` only (a CPU-only machine prints no warnings); under `nvml` the
    /// caller shows it.
    pub note: Option<String>,
}

impl std::fmt::Debug for Selected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selected")
            .field("probe", &self.probe.as_ref().map(|p| p.kind()))
            .field("kind", &self.kind)
            .field("note", &self.note)
            .finish()
    }
}

/// How the probes are made. [`ProbeOptions::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// Bound on each nvidia-smi call and on each NVML read (config gpu.probeTimeout,
    /// default 5 s).
    pub timeout: Duration,
    /// `nvidia-smi`, looked up on the search path at each call, or a path.
    pub nvidia_smi_program: PathBuf,
    /// PATH-style list to look nvidia-smi up on instead of `$PATH`.
    pub search_path: Option<OsString>,
    /// Extra environment for nvidia-smi (tests: the fake's state file).
    pub env: Vec<(OsString, OsString)>,
    /// NVML library names or paths, tried in order.
    pub nvml_libraries: Vec<OsString>,
}

impl ProbeOptions {
    pub fn new(timeout: Duration) -> Self {
        ProbeOptions {
            timeout,
            nvidia_smi_program: PathBuf::from(DEFAULT_PROGRAM),
            search_path: None,
            env: Vec::new(),
            nvml_libraries: DEFAULT_LIBRARIES.iter().map(OsString::from).collect(),
        }
    }

    pub fn nvidia_smi(&self) -> NvidiaSmiProbe {
        let mut p = NvidiaSmiProbe::new(self.timeout).with_program(&self.nvidia_smi_program);
        if let Some(sp) = &self.search_path {
            p = p.with_search_path(sp);
        }
        for (k, v) in &self.env {
            p = p.with_env(k, v);
        }
        p
    }
}

/// The probe for `gpu.probe` = `kind`, with default options.
pub fn open_probe(kind: &str, timeout: Duration) -> Selected {
    open_probe_with(kind, &ProbeOptions::new(timeout))
}

/// The probe for `gpu.probe` = `kind`:
/// - `none`: no probe, no note.
/// - `nvml`: NVML, or no probe and a note saying why (GPUs are then unknown).
/// - `nvidia-smi`: the nvidia-smi probe, even if the program is missing now (reads
///   then fail with `NotFound`, which is shown).
/// - `auto`: NVML if it loads and its first read (bounded) gets something from at least
///   one GPU; else nvidia-smi if it is on the search path now; else NVML if it loaded
///   (its failures are then shown), else none. Quietly: the note says why NVML was
///   skipped, for `backprop status`.
/// - anything else: no probe and a note.
pub fn open_probe_with(kind: &str, opts: &ProbeOptions) -> Selected {
    select(kind, opts, || {
        NvmlProbe::with_libraries(&opts.nvml_libraries)
    })
}

/// [`open_probe_with`], with NVML opened by `open_nvml` (tests: a scripted NVML).
pub(crate) fn select(
    kind: &str,
    opts: &ProbeOptions,
    open_nvml: impl FnOnce() -> Result<NvmlProbe, ProbeError>,
) -> Selected {
    let none = |note: Option<String>| Selected {
        probe: None,
        kind: ProbeKind::None,
        note,
    };
    match kind {
        "none" => none(None),
        "nvml" => match open_nvml() {
            Ok(p) => nvml(p, opts),
            Err(e) => none(Some(format!(
                "gpu.probe is nvml but NVML could not be loaded ({}); GPUs are treated as unknown: \
                 install the NVIDIA driver or set gpu.probe to nvidia-smi or none",
                nvml_reason(&e)
            ))),
        },
        "nvidia-smi" => Selected {
            probe: Some(GpuReader::new(Box::new(opts.nvidia_smi()), opts.timeout)),
            kind: ProbeKind::NvidiaSmi,
            note: None,
        },
        "auto" => {
            // NVML that loaded but read nothing: kept only if nvidia-smi is missing too.
            let (loaded, nvml_reason) = match open_nvml() {
                Ok(p) => {
                    let mut reader = GpuReader::new(Box::new(p), opts.timeout);
                    match reader.read() {
                        Ok(r) if !nvml::read_nothing(&r) => {
                            return Selected {
                                probe: Some(reader),
                                kind: ProbeKind::Nvml,
                                note: None,
                            };
                        }
                        Ok(r) => {
                            let why = r
                                .gpus
                                .iter()
                                .find_map(|g| g.failure.as_ref())
                                .map(|f| f.message.clone())
                                .unwrap_or_default();
                            (Some(reader), format!("NVML loaded but read no GPU ({why})"))
                        }
                        Err(e) => (
                            Some(reader),
                            format!("NVML loaded but its first read failed ({e})"),
                        ),
                    }
                }
                Err(e) => (None, nvml_reason(&e)),
            };
            let smi = opts.nvidia_smi();
            match smi.locate() {
                Ok(path) => {
                    tracing::debug!(path = %path.display(), %nvml_reason, "GPU probe: nvidia-smi");
                    Selected {
                        probe: Some(GpuReader::new(Box::new(smi), opts.timeout)),
                        kind: ProbeKind::NvidiaSmi,
                        note: Some(format!("NVML skipped: {nvml_reason}")),
                    }
                }
                Err(smi_error) => {
                    let where_ = if smi.program().components().count() > 1 {
                        ""
                    } else {
                        " on PATH"
                    };
                    if let Some(reader) = loaded {
                        tracing::debug!(%nvml_reason, %smi_error, "GPU probe: NVML (nothing better)");
                        return Selected {
                            probe: Some(reader),
                            kind: ProbeKind::Nvml,
                            note: Some(format!(
                                "{nvml_reason}; {} not found{where_} to use instead",
                                smi.program().display()
                            )),
                        };
                    }
                    tracing::debug!(%nvml_reason, %smi_error, "GPU probe: none (CPU only)");
                    none(Some(format!(
                        "no GPU probe (CPU only): NVML skipped ({nvml_reason}) and {} not found{where_}",
                        smi.program().display()
                    )))
                }
            }
        }
        other => none(Some(format!(
            "unknown gpu.probe '{other}' (expected auto, nvml, nvidia-smi or none); GPUs are treated as unknown"
        ))),
    }
}

/// The reason alone, without the advice the full message gives.
fn nvml_reason(e: &ProbeError) -> String {
    match e {
        ProbeError::NvmlUnavailable(reason) => reason.clone(),
        other => other.to_string(),
    }
}

fn nvml(p: NvmlProbe, opts: &ProbeOptions) -> Selected {
    Selected {
        probe: Some(GpuReader::new(Box::new(p), opts.timeout)),
        kind: ProbeKind::Nvml,
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::nvidia_smi::tests::{FakeState, fake_dir};

    const T: Duration = Duration::from_secs(30);

    /// Options whose NVML cannot load, whatever the machine.
    fn no_nvml(search_path: OsString) -> ProbeOptions {
        let mut o = ProbeOptions::new(T);
        o.nvml_libraries = vec!["/nonexistent/backprop-test/libnvidia-ml.so.1".into()];
        o.search_path = Some(search_path);
        o
    }

    fn fake_state() -> FakeState {
        FakeState::new(serde_json::json!({
            "gpus": [{"name": "Tesla T4", "uuid": "GPU-t4", "totalMb": 15360, "usedMb": 0}],
            "apps": []
        }))
    }

    #[test]
    fn none_is_quiet() {
        let s = open_probe("none", T);
        assert!(s.probe.is_none());
        assert_eq!(s.kind, ProbeKind::None);
        assert_eq!(s.note, None);
    }

    #[test]
    fn auto_falls_back_to_nvidia_smi_on_the_search_path() {
        let fake = fake_state();
        let mut o = no_nvml(std::env::join_paths(["/nonexistent".into(), fake_dir()]).unwrap());
        o.env
            .push(("FAKE_NVIDIA_SMI_STATE".into(), fake.state_file().into()));
        let mut s = open_probe_with("auto", &o);
        assert_eq!(s.kind, ProbeKind::NvidiaSmi);
        let note = s.note.clone().unwrap();
        assert!(note.starts_with("NVML skipped: /nonexistent/"), "{note}");
        let (r, err) = crate::gpu::read_with_error(&mut s.probe);
        assert_eq!(err, None);
        assert_eq!(r.gpus[0].name, "Tesla T4");
    }

    #[test]
    fn auto_without_nvml_or_nvidia_smi_is_none() {
        let empty = tempfile::tempdir().unwrap();
        let mut s = open_probe_with("auto", &no_nvml(empty.path().into()));
        assert!(s.probe.is_none());
        assert_eq!(s.kind, ProbeKind::None);
        let note = s.note.clone().unwrap();
        assert!(
            note.starts_with("no GPU probe (CPU only): NVML skipped (/nonexistent/"),
            "{note}"
        );
        assert!(
            note.ends_with(") and nvidia-smi not found on PATH"),
            "{note}"
        );
        assert_eq!(
            crate::gpu::read_with_error(&mut s.probe),
            (Default::default(), None)
        );
    }

    #[test]
    fn auto_on_this_machine() {
        // No NVML here; whatever is on $PATH decides between nvidia-smi and none.
        let s = open_probe("auto", T);
        if NvmlProbe::new().is_err() {
            assert_ne!(s.kind, ProbeKind::Nvml);
            assert!(s.note.is_some());
        }
    }

    #[test]
    fn nvml_that_cannot_load_is_no_probe_and_a_note() {
        let empty = tempfile::tempdir().unwrap();
        let s = open_probe_with("nvml", &no_nvml(empty.path().into()));
        assert!(s.probe.is_none());
        assert_eq!(s.kind, ProbeKind::None);
        let note = s.note.unwrap();
        assert!(
            note.starts_with("gpu.probe is nvml but NVML could not be loaded"),
            "{note}"
        );
    }

    #[test]
    fn nvidia_smi_is_kept_even_when_missing_and_reads_say_so() {
        let empty = tempfile::tempdir().unwrap();
        let mut s = open_probe_with("nvidia-smi", &no_nvml(empty.path().into()));
        assert_eq!(s.kind, ProbeKind::NvidiaSmi);
        assert_eq!(s.note, None);
        let (r, err) = crate::gpu::read_with_error(&mut s.probe);
        assert_eq!(r, Default::default());
        assert!(err.unwrap().starts_with("nvidia-smi not found on PATH"));
    }

    #[test]
    fn unknown_kind_is_no_probe_and_a_note() {
        let s = open_probe("cuda", T);
        assert!(s.probe.is_none());
        assert!(s.note.unwrap().contains("unknown gpu.probe 'cuda'"));
    }

    fn scripted(gpus: Vec<crate::gpu::nvml::scripted::ScriptedGpu>) -> NvmlProbe {
        NvmlProbe::with_api(Box::new(crate::gpu::nvml::scripted::ScriptedNvml::new(
            gpus,
        )))
    }

    #[test]
    fn auto_keeps_nvml_that_reads_a_gpu() {
        use crate::gpu::nvml::scripted::{Fail, ScriptedGpu};
        let empty = tempfile::tempdir().unwrap();
        let o = no_nvml(empty.path().into());
        let gpus = vec![ScriptedGpu::failing(Fail::GpuLost), ScriptedGpu::healthy(1)];
        let mut s = select("auto", &o, || Ok(scripted(gpus)));
        assert_eq!(s.kind, ProbeKind::Nvml);
        assert_eq!(s.note, None);
        let (r, err) = crate::gpu::read_with_error(&mut s.probe);
        assert_eq!(err, None);
        assert_eq!(r.gpus.len(), 2);
    }

    #[test]
    fn auto_switches_to_nvidia_smi_when_nvml_reads_no_gpu() {
        use crate::gpu::nvml::scripted::{Fail, ScriptedGpu};
        let fake = fake_state();
        let mut o = no_nvml(fake_dir().into());
        o.env
            .push(("FAKE_NVIDIA_SMI_STATE".into(), fake.state_file().into()));
        let gpus = vec![ScriptedGpu::all_calls_fail(Fail::NoPermission)];
        let mut s = select("auto", &o, || Ok(scripted(gpus)));
        assert_eq!(s.kind, ProbeKind::NvidiaSmi);
        let note = s.note.clone().unwrap();
        assert!(
            note.starts_with(
                "NVML skipped: NVML loaded but read no GPU (GPU 0: NVML reads nothing"
            ),
            "{note}"
        );
        let (r, err) = crate::gpu::read_with_error(&mut s.probe);
        assert_eq!(err, None);
        assert_eq!(r.gpus[0].name, "Tesla T4");

        // Its first read failing outright counts the same.
        let mut nvml = crate::gpu::nvml::scripted::ScriptedNvml::new(vec![]);
        nvml.count = Some(Err(Fail::Unknown));
        let s = select("auto", &o, || Ok(NvmlProbe::with_api(Box::new(nvml))));
        assert_eq!(s.kind, ProbeKind::NvidiaSmi);
        let note = s.note.unwrap();
        assert!(note.contains("its first read failed"), "{note}");

        // Without nvidia-smi, NVML stays, to show what fails.
        let empty = tempfile::tempdir().unwrap();
        let gpus = vec![ScriptedGpu::failing(Fail::GpuLost)];
        let mut s = select("auto", &no_nvml(empty.path().into()), || Ok(scripted(gpus)));
        assert_eq!(s.kind, ProbeKind::Nvml);
        let note = s.note.clone().unwrap();
        assert!(note.contains("read no GPU"), "{note}");
        assert!(
            note.ends_with("nvidia-smi not found on PATH to use instead"),
            "{note}"
        );
        let (r, _) = crate::gpu::read_with_error(&mut s.probe);
        assert_eq!(
            r.gpus[0].failure.as_ref().unwrap().kind,
            crate::gpu::FailureKind::Lost
        );
    }

    #[test]
    fn explicit_nvml_keeps_a_failing_nvml() {
        use crate::gpu::nvml::scripted::{Fail, ScriptedGpu};
        let o = no_nvml(fake_dir().into());
        let gpus = vec![ScriptedGpu::failing(Fail::NoPermission)];
        let s = select("nvml", &o, || Ok(scripted(gpus)));
        assert_eq!(s.kind, ProbeKind::Nvml);
        assert_eq!(s.note, None);
    }
}
