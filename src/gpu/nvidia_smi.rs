//! The nvidia-smi probe: bounded `nvidia-smi` calls per reading.
//!
//! Every reading makes two: `--query-gpu` (with `compute_mode` and `mig.mode.current`,
//! stepping down to fewer fields on drivers that refuse them) and
//! `--query-compute-apps`. Two more only when needed: `-q -d MEMORY,TEMPERATURE` the
//! first time a GPU is seen (its slowdown temperature, kept) and on every reading while
//! a GPU is in MIG mode (its instances' memory), and `-L` while a GPU is in MIG mode
//! (its instances and their uuids). A GPU in MIG mode is replaced by its instances.
//!
//! Under MIG, nvidia-smi lists compute processes under the parent GPU's uuid; a MIG
//! instance names its parent in [`GpuInfo::parent_uuid`].

use super::csv::{
    APPS_QUERY_FIELDS, GpuQuery, NO_DEVICES, has_unopenable_gpu, parse_apps_csv, parse_gpu_csv_as,
    quote_max,
};
use super::smi_text::{GpuDetails, ListedGpu, parse_details, parse_list};
use super::types::{
    FailureKind, GpuFailure, GpuInfo, GpuProbe, GpuProcess, GpuReading, ProbeError, ProbeKind,
    field, mig_device_index,
};
use crate::helper_command::{RunError, run_bounded};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

/// Default program name, looked up on PATH at each call.
pub const DEFAULT_PROGRAM: &str = "nvidia-smi";
/// Default for gpu.probeTimeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

const CSV_FORMAT: &str = "--format=csv,noheader,nounits";
/// What nvidia-smi says of a `--query-gpu` field it does not know.
const INVALID_FIELD: &str = "is not a valid field to query";
/// The most calls one reading makes (three field lists, details, list, apps).
const MAX_CALLS_PER_READ: u32 = 6;

/// Reads GPUs by running nvidia-smi. Cheap to construct; nothing is checked until a read.
#[derive(Clone, Debug)]
pub struct NvidiaSmiProbe {
    program: PathBuf,
    search_path: Option<OsString>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
    /// The `--query-gpu` field list this driver accepts (learnt on the first read).
    query: GpuQuery,
    /// Slowdown temperature by GPU uuid, read once per GPU.
    slowdown: HashMap<String, Option<f64>>,
}

impl NvidiaSmiProbe {
    /// `nvidia-smi` from PATH, each call bounded by `timeout`.
    pub fn new(timeout: Duration) -> Self {
        NvidiaSmiProbe {
            program: PathBuf::from(DEFAULT_PROGRAM),
            search_path: None,
            env: Vec::new(),
            timeout,
            query: GpuQuery::Full,
            slowdown: HashMap::new(),
        }
    }
    /// The program to run: a bare name is looked up on the search path at each call,
    /// anything with a `/` is used as is.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// Look a bare program name up on this PATH-style list instead of `$PATH`
    /// (the child's own environment is not changed).
    pub fn with_search_path(mut self, path: impl Into<OsString>) -> Self {
        self.search_path = Some(path.into());
        self
    }

    /// An extra environment variable for the child (e.g. a fake's state file in tests).
    pub fn with_env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Where the program is now, or `ProbeError::NotFound`.
    pub fn locate(&self) -> Result<PathBuf, ProbeError> {
        let not_found = || ProbeError::NotFound {
            program: self.program_name(),
        };
        if self.program.components().count() > 1 || self.program.is_absolute() {
            return if self.program.is_file() {
                Ok(self.program.clone())
            } else {
                Err(not_found())
            };
        }
        let path = self
            .search_path
            .clone()
            .or_else(|| std::env::var_os("PATH"))
            .ok_or_else(not_found)?;
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        which::which_in(&self.program, Some(path), cwd).map_err(|_| not_found())
    }

    /// `--query-gpu` (one call; more the first time if the driver refuses fields).
    pub fn query_gpus(&mut self) -> Result<Vec<GpuInfo>, ProbeError> {
        loop {
            let query = format!("--query-gpu={}", self.query.fields());
            let out = self.call(&[&query, CSV_FORMAT])?;
            if out.no_devices() {
                return Ok(Vec::new());
            }
            if out.status.success() {
                return parse_gpu_csv_as(&out.stdout, self.query);
            }
            if out.says(INVALID_FIELD)
                && let Some(simpler) = self.query.simpler()
            {
                tracing::debug!(
                    fields = self.query.fields(),
                    "nvidia-smi refused a field; asking for fewer"
                );
                self.query = simpler;
                continue;
            }
            // A GPU it cannot open makes it fail, but the others are listed.
            if has_unopenable_gpu(&out.stdout)
                && let Ok(gpus) = parse_gpu_csv_as(&out.stdout, self.query)
            {
                return Ok(gpus);
            }
            return Err(self.failed(&out));
        }
    }

    /// `--query-compute-apps` (one call).
    pub fn query_apps(&self) -> Result<Vec<GpuProcess>, ProbeError> {
        let query = format!("--query-compute-apps={APPS_QUERY_FIELDS}");
        let out = self.call(&[&query, CSV_FORMAT])?;
        if out.no_devices() {
            return Ok(Vec::new());
        }
        if !out.status.success() {
            return Err(self.failed(&out));
        }
        parse_apps_csv(&out.stdout)
    }

    /// `-L` (one call): GPUs and their MIG instances. A failing call that still lists
    /// GPUs (one GPU could not be opened) counts for what it lists.
    pub fn query_list(&self) -> Result<Vec<ListedGpu>, ProbeError> {
        let out = self.call(&["-L"])?;
        if out.no_devices() {
            return Ok(Vec::new());
        }
        let listed = parse_list(&out.stdout);
        if !out.status.success() && listed.is_empty() {
            return Err(self.failed(&out));
        }
        Ok(listed)
    }

    /// `-q -d MEMORY,TEMPERATURE` (one call): slowdown temperatures, MIG memory. Like
    /// [`Self::query_list`], a failing call that still describes GPUs counts.
    pub fn query_details(&self) -> Result<Vec<GpuDetails>, ProbeError> {
        let out = self.call(&["-q", "-d", "MEMORY,TEMPERATURE"])?;
        let details = parse_details(&out.stdout);
        if !out.status.success() && details.is_empty() {
            return Err(self.failed(&out));
        }
        Ok(details)
    }

    fn program_name(&self) -> String {
        self.program.display().to_string()
    }

    fn call(&self, args: &[&str]) -> Result<Output, ProbeError> {
        let program = self.locate()?;
        let name = self.program_name();
        let mut cmd = Command::new(&program);
        cmd.args(args);
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_os_str(), v.as_os_str())));
        let out = run_bounded(&mut cmd, self.timeout).map_err(|e| match e {
            RunError::TimedOut => ProbeError::Timeout {
                program: name.clone(),
                timeout: self.timeout,
            },
            // Gone since it was located. (ENOENT for a file that exists means its
            // `#!` interpreter is missing: a Spawn error, not NotFound.)
            RunError::Spawn(e) if e.kind() == std::io::ErrorKind::NotFound && !program.exists() => {
                ProbeError::NotFound {
                    program: name.clone(),
                }
            }
            RunError::Spawn(e) => ProbeError::Spawn {
                program: name.clone(),
                reason: e.to_string(),
            },
        })?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !stderr.is_empty() {
            tracing::debug!(
                ?args,
                stderr = %stderr.trim_end(),
                "nvidia-smi wrote to stderr"
            );
        }
        Ok(Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        })
    }

    /// The error for a call that exited non-zero.
    fn failed(&self, out: &Output) -> ProbeError {
        // nvidia-smi prints its own failures ("NVIDIA-SMI has failed ...", "Failed to
        // initialize NVML: ...") on stdout; stderr is for what runs it (env, loader).
        let message = first_line(&out.stdout)
            .or_else(|| first_line(&out.stderr))
            .map(|l| quote_max(l, 200))
            .unwrap_or_else(|| "it printed nothing".to_string());
        ProbeError::Failed {
            program: self.program_name(),
            status: describe(out.status),
            message,
        }
    }

    /// Slowdown temperatures and MIG instances, where they are wanted (see the module
    /// documentation). Never fails the reading: what cannot be read is left out.
    fn complete(&mut self, gpus: Vec<GpuInfo>) -> Vec<GpuInfo> {
        let any_mig = gpus.iter().any(|g| g.mig_mode == Some(true));
        let new_gpu = gpus
            .iter()
            .any(|g| !g.uuid.is_empty() && !self.slowdown.contains_key(&g.uuid));
        let details = if any_mig || new_gpu {
            match self.query_details() {
                Ok(d) if d.len() == gpus.len() => Some(d),
                Ok(d) => {
                    tracing::debug!(
                        listed = d.len(),
                        gpus = gpus.len(),
                        "nvidia-smi -q lists another number of GPUs; its details are not used"
                    );
                    None
                }
                Err(e) => {
                    tracing::debug!(%e, "nvidia-smi -q failed; no slowdown temperature or MIG memory");
                    None
                }
            }
        } else {
            None
        };
        for (i, g) in gpus.iter().enumerate() {
            if !g.uuid.is_empty() && !self.slowdown.contains_key(&g.uuid) {
                let t = details.as_ref().and_then(|d| d[i].slowdown_temp_c);
                self.slowdown.insert(g.uuid.clone(), t);
            }
        }
        let list = if any_mig {
            Some(self.query_list())
        } else {
            None
        };
        let mut out = Vec::with_capacity(gpus.len());
        for (i, mut g) in gpus.into_iter().enumerate() {
            g.slowdown_temp_c = self.slowdown.get(&g.uuid).copied().flatten();
            if g.mig_mode != Some(true) || g.failure.is_some() {
                out.push(g);
                continue;
            }
            let detail = details.as_ref().map(|d| &d[i]);
            match list.as_ref().expect("listed when a GPU is in MIG mode") {
                Err(e) => {
                    g.failure = Some(GpuFailure::new(
                        FailureKind::MigNotEnumerable,
                        format!(
                            "GPU {} is in MIG mode but its MIG instances cannot be listed \
                             (nvidia-smi -L: {e})",
                            g.index
                        ),
                    ));
                    out.push(g);
                }
                Ok(listed) => {
                    let migs = listed
                        .iter()
                        .find(|l| l.index == g.index && (g.uuid.is_empty() || l.uuid == g.uuid))
                        .map(|l| l.migs.as_slice())
                        .unwrap_or_default();
                    if migs.is_empty() {
                        g.failure = Some(GpuFailure::new(
                            FailureKind::MigNotEnumerable,
                            format!(
                                "GPU {} is in MIG mode but nvidia-smi -L lists no MIG instances \
                                 on it; create some (nvidia-smi mig -cgi <profiles> -C) or turn \
                                 MIG off",
                                g.index
                            ),
                        ));
                        out.push(g);
                        continue;
                    }
                    for mig in migs {
                        out.push(mig_instance(&g, mig, detail));
                    }
                }
            }
        }
        out
    }
}

/// A MIG instance of `parent` as `-L` lists it, with its memory from `-q` if there.
fn mig_instance(
    parent: &GpuInfo,
    mig: &super::smi_text::ListedMig,
    detail: Option<&GpuDetails>,
) -> GpuInfo {
    let memory = detail.and_then(|d| d.migs.iter().find(|m| m.mig_index == Some(mig.mig_index)));
    let mut unreadable: Vec<String> = parent
        .unreadable
        .iter()
        .filter(|f| *f == field::TEMPERATURE || *f == field::UTILIZATION)
        .cloned()
        .collect();
    let (total, used, free) = match memory {
        Some(m) => (m.total_mb, m.used_mb, m.free_mb),
        None => (None, None, None),
    };
    for (value, name) in [
        (total, field::MEMORY_TOTAL),
        (used, field::MEMORY_USED),
        (free, field::MEMORY_FREE),
    ] {
        if value.is_none() {
            unreadable.push(name.to_string());
        }
    }
    GpuInfo {
        index: mig_device_index(parent.index, mig.mig_index),
        uuid: mig.uuid.clone(),
        name: format!("{} MIG {}", parent.name, mig.profile),
        memory_total_mb: total,
        memory_used_mb: used,
        memory_free_mb: free,
        temperature_c: parent.temperature_c,
        utilization_pct: parent.utilization_pct,
        unreadable,
        device_id: mig.uuid.clone(),
        parent_index: Some(parent.index),
        parent_uuid: Some(parent.uuid.clone()).filter(|u| !u.is_empty()),
        mig_index: Some(mig.mig_index),
        mig_mode: Some(true),
        compute_mode: parent.compute_mode,
        failure: None,
        slowdown_temp_c: parent.slowdown_temp_c,
    }
}

/// One finished call.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    /// Real nvidia-smi exits 6 with this when the driver sees no GPU.
    fn no_devices(&self) -> bool {
        self.stdout.trim() == NO_DEVICES
    }

    fn says(&self, text: &str) -> bool {
        self.stdout.contains(text) || self.stderr.contains(text)
    }
}

impl GpuProbe for NvidiaSmiProbe {
    fn kind(&self) -> ProbeKind {
        ProbeKind::NvidiaSmi
    }

    fn read(&mut self) -> Result<GpuReading, ProbeError> {
        let gpus = self.query_gpus()?;
        let gpus = self.complete(gpus);
        let processes = self.query_apps()?;
        Ok(GpuReading {
            gpus,
            processes,
            notes: Vec::new(),
        })
    }

    fn read_bound(&self) -> Option<Duration> {
        Some(self.timeout * MAX_CALLS_PER_READ + Duration::from_secs(1))
    }
}

fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// Whether `program` (a bare name, or a path) can be found now on `search_path`
/// (None = `$PATH`).
pub fn nvidia_smi_available(program: &OsStr, search_path: Option<&OsStr>) -> bool {
    let mut p = NvidiaSmiProbe::new(DEFAULT_TIMEOUT).with_program(program);
    if let Some(sp) = search_path {
        p = p.with_search_path(sp);
    }
    p.locate().is_ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gpu::types::{ComputeMode, field};
    use std::fs;
    use std::path::PathBuf;
    use std::time::Instant;

    pub(crate) fn fake_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fake_gpu")
    }

    pub(crate) fn fake_path() -> PathBuf {
        fake_dir().join("nvidia-smi")
    }

    /// A temporary directory with a state file for the fake.
    pub(crate) struct FakeState {
        pub dir: tempfile::TempDir,
    }

    impl FakeState {
        pub(crate) fn new(state: serde_json::Value) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let s = FakeState { dir };
            s.set(state);
            s
        }

        pub(crate) fn state_file(&self) -> PathBuf {
            self.dir.path().join("state.json")
        }

        pub(crate) fn log_file(&self) -> PathBuf {
            self.dir.path().join("calls.log")
        }

        pub(crate) fn set(&self, state: serde_json::Value) {
            let tmp = self.dir.path().join("state.json.tmp");
            fs::write(&tmp, serde_json::to_vec(&state).unwrap()).unwrap();
            fs::rename(&tmp, self.state_file()).unwrap();
        }

        pub(crate) fn calls(&self) -> usize {
            fs::read_to_string(self.log_file())
                .map(|s| s.lines().count())
                .unwrap_or(0)
        }

        /// A probe running the fake by its path, with this state.
        pub(crate) fn probe(&self, timeout: Duration) -> NvidiaSmiProbe {
            self.configure(NvidiaSmiProbe::new(timeout).with_program(fake_path()))
        }

        pub(crate) fn configure(&self, p: NvidiaSmiProbe) -> NvidiaSmiProbe {
            p.with_env("FAKE_NVIDIA_SMI_STATE", self.state_file())
                .with_env("FAKE_NVIDIA_SMI_LOG", self.log_file())
        }
    }

    fn two_gpus() -> serde_json::Value {
        serde_json::json!({
            "mode": "ok",
            "gpus": [
                {"name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-aaaa", "totalMb": 40960,
                 "usedMb": 1000, "tempC": 40, "utilPct": 3},
                {"name": "NVIDIA GeForce RTX 4090", "uuid": "GPU-bbbb", "totalMb": 24564,
                 "usedMb": 20000, "freeMb": 4000, "tempC": 86, "utilPct": 100}
            ],
            "apps": [
                {"pid": 1234, "gpuUuid": "GPU-aaaa", "usedMb": 500},
                {"pid": 4321, "gpuUuid": "GPU-bbbb", "usedMb": "[N/A]"}
            ]
        })
    }

    // Generous: a loaded 2-core machine may take a while to start Python.
    const OK_TIMEOUT: Duration = Duration::from_secs(30);

    #[test]
    fn reads_gpus_and_processes_from_the_fake() {
        let fake = FakeState::new(two_gpus());
        let mut probe = fake.probe(OK_TIMEOUT);
        assert_eq!(probe.kind(), ProbeKind::NvidiaSmi);
        let r = probe.read().unwrap();
        assert_eq!(r.gpus.len(), 2);
        assert_eq!(r.gpus[0].index, 0);
        assert_eq!(r.gpus[0].uuid, "GPU-aaaa");
        assert_eq!(r.gpus[0].name, "NVIDIA A100-SXM4-40GB");
        assert_eq!(r.gpus[0].memory_free_mb, Some(39960));
        assert_eq!(r.gpus[1].index, 1);
        assert_eq!(r.gpus[1].memory_free_mb, Some(4000));
        assert_eq!(r.gpus[1].temperature_c, Some(86.0));
        assert_eq!(r.gpus[1].utilization_pct, Some(100.0));
        assert_eq!(
            r.processes,
            vec![
                GpuProcess {
                    pid: 1234,
                    gpu_uuid: "GPU-aaaa".into(),
                    used_mb: Some(500)
                },
                GpuProcess {
                    pid: 4321,
                    gpu_uuid: "GPU-bbbb".into(),
                    used_mb: None
                },
            ]
        );
        // The GPUs, their slowdown temperatures (first sight only), the apps.
        assert_eq!(fake.calls(), 3);

        // The state is read on every call.
        let mut s = two_gpus();
        s["gpus"][0]["tempC"] = 91.into();
        s["apps"] = serde_json::json!([]);
        fake.set(s);
        let r = probe.read().unwrap();
        assert_eq!(r.gpus[0].temperature_c, Some(91.0));
        assert!(r.processes.is_empty());
        assert_eq!(fake.calls(), 5);
    }

    #[test]
    fn na_fields_are_none_and_listed() {
        let fake = FakeState::new(serde_json::json!({
            "gpus": [{"name": "NVIDIA GB10", "uuid": "GPU-cccc", "totalMb": "[N/A]",
                      "usedMb": "[N/A]", "tempC": "[N/A]", "utilPct": "[Not Supported]"}],
            "apps": []
        }));
        let r = fake.probe(OK_TIMEOUT).read().unwrap();
        let g = &r.gpus[0];
        assert_eq!(g.memory_total_mb, None);
        assert_eq!(g.memory_free_mb, None);
        assert_eq!(g.temperature_c, None);
        assert_eq!(g.utilization_pct, None);
        assert_eq!(
            g.unreadable,
            vec![
                field::MEMORY_TOTAL,
                field::MEMORY_USED,
                field::MEMORY_FREE,
                field::TEMPERATURE,
                field::UTILIZATION
            ]
        );
    }

    #[test]
    fn zero_gpus() {
        let fake = FakeState::new(serde_json::json!({"gpus": [], "apps": []}));
        let r = fake.probe(OK_TIMEOUT).read().unwrap();
        assert_eq!(r, GpuReading::default());
        fake.set(serde_json::json!({"mode": "nodevices"}));
        let r = fake.probe(OK_TIMEOUT).read().unwrap();
        assert_eq!(r, GpuReading::default());
    }

    #[test]
    fn many_gpus_and_a_noisy_stderr_do_not_deadlock() {
        let gpus: Vec<_> = (0..3000)
            .map(|i| serde_json::json!({"name": format!("NVIDIA Fake GPU number {i}"), "totalMb": 1000}))
            .collect();
        let fake = FakeState::new(serde_json::json!({"gpus": gpus, "stderrLines": 5000}));
        let r = fake.probe(OK_TIMEOUT).read().unwrap();
        assert_eq!(r.gpus.len(), 3000);
        assert_eq!(r.gpus[2999].index, 2999);
        assert_eq!(r.gpus[2999].memory_free_mb, Some(1000));
    }

    #[test]
    fn garbage_is_a_parse_error() {
        let fake = FakeState::new(serde_json::json!({"mode": "garbage"}));
        let e = fake.probe(OK_TIMEOUT).read().unwrap_err();
        match &e {
            ProbeError::Parse { query, line, .. } => {
                assert_eq!(query, "--query-gpu");
                assert!(line.contains("junk"), "{line}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!e.to_string().contains('\n'));
        // The apps query is not attempted after the GPU query failed.
        assert_eq!(fake.calls(), 1);
    }

    #[test]
    fn failure_quotes_the_first_line_and_the_status() {
        let fake = FakeState::new(serde_json::json!({"mode": "fail", "exitCode": 9}));
        let e = fake.probe(OK_TIMEOUT).read().unwrap_err();
        match &e {
            ProbeError::Failed {
                status, message, ..
            } => {
                assert_eq!(status, "exit status 9");
                assert_eq!(
                    message,
                    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. \
                     Make sure that the latest NVIDIA driver is installed and running."
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(!e.is_not_found());
    }

    #[test]
    fn missing_binary_is_not_found() {
        let e = NvidiaSmiProbe::new(OK_TIMEOUT)
            .with_program("/nonexistent/backprop-test/nvidia-smi")
            .read()
            .unwrap_err();
        assert!(e.is_not_found(), "{e:?}");

        let empty = tempfile::tempdir().unwrap();
        let mut p = NvidiaSmiProbe::new(OK_TIMEOUT).with_search_path(empty.path());
        let e = p.read().unwrap_err();
        assert!(e.is_not_found(), "{e:?}");
        assert!(
            e.to_string().starts_with("nvidia-smi not found on PATH;"),
            "{e}"
        );
        assert!(!nvidia_smi_available(
            OsStr::new("nvidia-smi"),
            Some(empty.path().as_os_str())
        ));
    }

    #[test]
    fn found_through_an_explicit_search_path() {
        let fake = FakeState::new(two_gpus());
        let path = std::env::join_paths([PathBuf::from("/nonexistent"), fake_dir()]).unwrap();
        let mut p = fake.configure(NvidiaSmiProbe::new(OK_TIMEOUT).with_search_path(&path));
        assert_eq!(p.locate().unwrap(), fake_path());
        assert_eq!(p.read().unwrap().gpus.len(), 2);
        assert!(nvidia_smi_available(OsStr::new("nvidia-smi"), Some(&path)));
    }

    /// Field 22 of /proc/<pid>/stat: tells a reused pid apart.
    fn start_ticks(pid: u32) -> Option<u64> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after_comm = &stat[stat.rfind(')')? + 1..];
        after_comm.split_whitespace().nth(19)?.parse().ok()
    }

    /// Processes whose environment holds `needle` (the fake's unique state path).
    fn processes_with_env(needle: &[u8]) -> Vec<u32> {
        let mut found = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Ok(env) = fs::read(format!("/proc/{pid}/environ"))
                && env.windows(needle.len()).any(|w| w == needle)
            {
                found.push(pid);
            }
        }
        found
    }

    #[test]
    fn a_hang_times_out_and_leaves_nothing_behind() {
        let fake = FakeState::new(serde_json::json!({"mode": "hang", "hangSeconds": 60}));
        let mut probe = fake.probe(Duration::from_secs(1));
        let t0 = Instant::now();
        let reading = std::thread::spawn(move || probe.read());
        // While it hangs, note the fake's processes (pid and start time, which tells a
        // reused pid apart).
        let needle = format!("FAKE_NVIDIA_SMI_STATE={}", fake.state_file().display());
        let mut seen = Vec::new();
        while !reading.is_finished() {
            for pid in processes_with_env(needle.as_bytes()) {
                if let Some(start) = start_ticks(pid)
                    && !seen.contains(&(pid, start))
                {
                    seen.push((pid, start));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let e = reading.join().unwrap().unwrap_err();
        let took = t0.elapsed();
        assert_eq!(
            e,
            ProbeError::Timeout {
                program: fake_path().display().to_string(),
                timeout: Duration::from_secs(1)
            }
        );
        assert!(
            e.to_string().contains("did not answer within 1s (killed)"),
            "{e}"
        );
        // 1 s timeout + reaping; generous for a loaded machine.
        assert!(took < Duration::from_secs(4), "took {took:?}");
        assert!(took >= Duration::from_millis(950), "took {took:?}");
        assert_eq!(
            fake.calls(),
            1,
            "the apps query is not attempted after a timeout"
        );

        // The fake was seen running, and is now gone: killed and reaped, not a zombie.
        assert!(!seen.is_empty(), "never saw the fake running");
        for (pid, start) in seen {
            assert_ne!(start_ticks(pid), Some(start), "pid {pid} left behind");
        }
        assert!(processes_with_env(needle.as_bytes()).is_empty());
    }

    #[test]
    fn unsupported_arguments_fail_in_the_fake() {
        // Guards the fake itself: it answers only the queries above.
        let fake = FakeState::new(two_gpus());
        let out = Command::new(fake_path())
            .args(["-q", "-d", "POWER"])
            .env("FAKE_NVIDIA_SMI_STATE", fake.state_file())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let out = Command::new(fake_path())
            .arg("-L")
            .env("FAKE_NVIDIA_SMI_STATE", fake.state_file())
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaa)\nGPU 1: NVIDIA GeForce RTX 4090 (UUID: GPU-bbbb)\n"
        );
    }

    fn mig_state() -> serde_json::Value {
        serde_json::json!({
            "gpus": [
                {"name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-a100", "totalMb": 40960,
                 "usedMb": 5000, "tempC": 55, "utilPct": "[N/A]", "migMode": "Enabled",
                 "slowdownTempC": 89, "computeMode": "Default",
                 "mig": [
                    {"uuid": "MIG-1111", "profile": "3g.20gb", "totalMb": 19968, "usedMb": 4000},
                    {"uuid": "MIG-2222", "profile": "2g.10gb", "totalMb": 9856, "usedMb": 0}
                 ]},
                {"name": "NVIDIA GeForce RTX 4090", "uuid": "GPU-4090", "totalMb": 24564,
                 "usedMb": 0, "migMode": "[N/A]", "computeMode": "Exclusive_Process",
                 "slowdownTempC": 92}
            ],
            "apps": [{"pid": 77, "gpuUuid": "GPU-a100", "usedMb": "[N/A]"}]
        })
    }

    #[test]
    fn mig_instances_come_from_the_listing_with_their_memory() {
        let fake = FakeState::new(mig_state());
        let mut probe = fake.probe(OK_TIMEOUT);
        let r = probe.read().unwrap();
        let ids: Vec<_> = r
            .gpus
            .iter()
            .map(|g| (g.index, g.device_id.as_str()))
            .collect();
        assert_eq!(ids, [(1000, "MIG-1111"), (1001, "MIG-2222"), (1, "1")]);
        let a = &r.gpus[0];
        assert_eq!(a.uuid, "MIG-1111");
        assert_eq!(a.name, "NVIDIA A100-SXM4-40GB MIG 3g.20gb");
        assert_eq!(a.parent_index, Some(0));
        assert_eq!(a.parent_uuid.as_deref(), Some("GPU-a100"));
        assert_eq!(a.mig_index, Some(0));
        assert_eq!(a.mig_mode, Some(true));
        assert_eq!(a.memory_total_mb, Some(19968));
        assert_eq!(a.memory_used_mb, Some(4000));
        assert_eq!(a.memory_free_mb, Some(15968));
        assert_eq!(a.temperature_c, Some(55.0));
        assert_eq!(a.slowdown_temp_c, Some(89.0));
        assert_eq!(a.utilization_pct, None);
        assert_eq!(a.unreadable, vec![field::UTILIZATION]);
        assert_eq!(a.failure, None);
        assert_eq!(r.gpus[1].memory_free_mb, Some(9856));
        let plain = &r.gpus[2];
        assert_eq!(plain.compute_mode, ComputeMode::ExclusiveProcess);
        assert_eq!(plain.mig_mode, None);
        assert_eq!(plain.slowdown_temp_c, Some(92.0));
        // Under MIG nvidia-smi lists processes under the parent's uuid.
        assert_eq!(r.processes[0].gpu_uuid, "GPU-a100");
        // gpus, details, list, apps.
        assert_eq!(fake.calls(), 4);
        // While MIG is on, details and the listing are read every time.
        probe.read().unwrap();
        assert_eq!(fake.calls(), 8);

        // The old uuid spelling.
        let mut state = mig_state();
        state["listFormat"] = "old".into();
        state["gpus"][0]["mig"][0]
            .as_object_mut()
            .unwrap()
            .remove("uuid");
        fake.set(state);
        let r = probe.read().unwrap();
        assert_eq!(r.gpus[0].device_id, "MIG-GPU-a100/1/0");
        assert_eq!(r.gpus[1].device_id, "MIG-2222");
    }

    #[test]
    fn a_mig_gpu_whose_instances_cannot_be_listed_is_failed() {
        let mut state = mig_state();
        state["queryModes"] = serde_json::json!({"list": "fail"});
        let fake = FakeState::new(state);
        let r = fake.probe(OK_TIMEOUT).read().unwrap();
        assert_eq!(r.gpus.len(), 2);
        let g = &r.gpus[0];
        assert_eq!((g.index, g.device_id.as_str()), (0, "0"));
        let f = g.failure.as_ref().unwrap();
        assert_eq!(f.kind, FailureKind::MigNotEnumerable);
        assert!(f.message.contains("cannot be listed"), "{}", f.message);
        assert!(r.gpus[1].failure.is_none());

        // MIG on, no instance created.
        let mut state = mig_state();
        state["gpus"][0]["mig"] = serde_json::json!([]);
        fake.set(state);
        let r = fake.probe(OK_TIMEOUT).read().unwrap();
        let f = r.gpus[0].failure.as_ref().unwrap();
        assert_eq!(f.kind, FailureKind::MigNotEnumerable);
        assert!(
            f.message.contains("lists no MIG instances"),
            "{}",
            f.message
        );

        // No details: the instances are listed, their memory unreadable.
        let mut state = mig_state();
        state["queryModes"] = serde_json::json!({"details": "fail"});
        fake.set(state);
        let r = fake.probe(OK_TIMEOUT).read().unwrap();
        assert_eq!(r.gpus[0].device_id, "MIG-1111");
        assert_eq!(r.gpus[0].memory_free_mb, None);
        assert!(
            r.gpus[0]
                .unreadable
                .contains(&field::MEMORY_FREE.to_string())
        );
        assert_eq!(r.gpus[0].slowdown_temp_c, None);
    }

    #[test]
    fn fields_an_old_driver_refuses_are_dropped_once() {
        let mut state = two_gpus();
        state["invalidFields"] = serde_json::json!(["mig.mode.current"]);
        state["gpus"][0]["computeMode"] = "Prohibited".into();
        let fake = FakeState::new(state.clone());
        let mut probe = fake.probe(OK_TIMEOUT);
        let r = probe.read().unwrap();
        assert_eq!(r.gpus.len(), 2);
        assert_eq!(r.gpus[0].compute_mode, ComputeMode::Prohibited);
        assert_eq!(r.gpus[0].mig_mode, None);
        // Refused query, simpler query, details, apps; then two calls a read.
        assert_eq!(fake.calls(), 4);
        probe.read().unwrap();
        assert_eq!(fake.calls(), 6);

        state["invalidFields"] = serde_json::json!(["mig.mode.current", "compute_mode"]);
        fake.set(state);
        let r = fake.probe(OK_TIMEOUT).read().unwrap();
        assert_eq!(r.gpus[0].compute_mode, ComputeMode::Unknown);
        assert_eq!(r.gpus[0].memory_free_mb, Some(39960));
    }

    #[test]
    fn a_gpu_nvidia_smi_cannot_open_does_not_hide_the_others() {
        let mut state = two_gpus();
        state["gpus"][0]["handleError"] =
            "GPU is lost. Reboot the system to recover this GPU".into();
        let fake = FakeState::new(state);
        let r = fake.probe(OK_TIMEOUT).read().unwrap();
        assert_eq!(r.gpus.len(), 2);
        let lost = &r.gpus[0];
        assert_eq!(lost.index, 0);
        assert_eq!(lost.failure.as_ref().unwrap().kind, FailureKind::Lost);
        assert!(
            lost.failure
                .as_ref()
                .unwrap()
                .message
                .contains("PCI 00000000:01:00.0"),
            "{:?}",
            lost.failure
        );
        assert_eq!(r.gpus[1].uuid, "GPU-bbbb");
        assert!(r.gpus[1].failure.is_none());

        // The other GPU in MIG mode: its instances are still listed, with memory.
        let mut state = mig_state();
        state["gpus"][1]["handleError"] = "Unknown Error".into();
        fake.set(state);
        let r = fake.probe(OK_TIMEOUT).read().unwrap();
        let ids: Vec<_> = r.gpus.iter().map(|g| g.device_id.as_str()).collect();
        assert_eq!(ids, ["MIG-1111", "MIG-2222", "1"]);
        assert_eq!(r.gpus[0].memory_free_mb, Some(15968));
        assert_eq!(r.gpus[0].slowdown_temp_c, Some(89.0));
        assert_eq!(r.gpus[2].failure.as_ref().unwrap().kind, FailureKind::Other);
    }

    #[test]
    fn slowdown_temperatures_are_read_once_per_gpu() {
        let mut state = two_gpus();
        state["gpus"][1]["slowdownTempC"] = 87.into();
        let fake = FakeState::new(state.clone());
        let mut probe = fake.probe(OK_TIMEOUT);
        let r = probe.read().unwrap();
        assert_eq!(r.gpus[0].slowdown_temp_c, None);
        assert_eq!(r.gpus[1].slowdown_temp_c, Some(87.0));
        assert_eq!(fake.calls(), 3);
        let r = probe.read().unwrap();
        assert_eq!(r.gpus[1].slowdown_temp_c, Some(87.0));
        assert_eq!(fake.calls(), 5);
        // A failing -q costs the slowdown temperature only.
        state["queryModes"] = serde_json::json!({"details": "hang"});
        state["hangSeconds"] = 30.into();
        fake.set(state);
        let r = fake.probe(Duration::from_secs(1)).read().unwrap();
        assert_eq!(r.gpus.len(), 2);
        assert_eq!(r.gpus[1].slowdown_temp_c, None);
    }

    #[test]
    fn the_read_bound_covers_every_call_of_a_read() {
        let p = NvidiaSmiProbe::new(Duration::from_secs(5));
        assert_eq!(p.read_bound(), Some(Duration::from_secs(31)));
    }
}
