//! Parsing `nvidia-smi --format=csv,noheader,nounits` output (pure functions).
//!
//! Real nvidia-smi prints one line per row, fields separated by ", ", no quoting,
//! no units (MiB, °C and % are implied), and a bracketed marker for a value it
//! cannot give: `[N/A]`, `[Not Supported]`, `[Unknown Error]`,
//! `[Insufficient Permissions]`, `[GPU is lost]`, ...
//!
//! GPU names are not quoted and may contain spaces (and, in principle, commas), so a
//! `--query-gpu` line is split from both ends: index and uuid from the left, the five
//! numeric fields and the one-word fields (`compute_mode`, `mig.mode.current`) from the
//! right; the name is everything in between, commas included. This is why the name must
//! stay the only free-text field of the query.
//!
//! A GPU nvidia-smi cannot open is printed as a line of its own in place of its row
//! ("Unable to determine the device handle for GPU0000:3B:00.0: GPU is lost. ..."); it
//! becomes a GPU with a [`GpuInfo::failure`], so one lost GPU does not hide the others.

use super::types::{ComputeMode, FailureKind, GpuFailure, GpuInfo, GpuProcess, ProbeError, field};

/// Which `--query-gpu` field list is asked for. Older drivers reject fields they do
/// not know, so the probe steps down [`GpuQuery::simpler`] when one is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuQuery {
    /// The base fields, `compute_mode` and `mig.mode.current` (R450 and later).
    Full,
    /// Without `mig.mode.current`.
    NoMig,
    /// The base fields only.
    Basic,
}

impl GpuQuery {
    pub fn fields(self) -> &'static str {
        match self {
            GpuQuery::Full => GPU_QUERY_FIELDS,
            GpuQuery::NoMig => concat!(
                "index,uuid,name,memory.total,memory.used,memory.free,temperature.gpu,",
                "utilization.gpu,compute_mode"
            ),
            GpuQuery::Basic => {
                "index,uuid,name,memory.total,memory.used,memory.free,temperature.gpu,utilization.gpu"
            }
        }
    }

    /// The next list to try when this one is refused.
    pub fn simpler(self) -> Option<GpuQuery> {
        match self {
            GpuQuery::Full => Some(GpuQuery::NoMig),
            GpuQuery::NoMig => Some(GpuQuery::Basic),
            GpuQuery::Basic => None,
        }
    }

    /// One-word fields after the five numbers.
    fn words(self) -> usize {
        match self {
            GpuQuery::Full => 2,
            GpuQuery::NoMig => 1,
            GpuQuery::Basic => 0,
        }
    }
}

/// The `--query-gpu` fields, in order (must match [`parse_gpu_csv`]).
pub const GPU_QUERY_FIELDS: &str = concat!(
    "index,uuid,name,memory.total,memory.used,memory.free,temperature.gpu,utilization.gpu,",
    "compute_mode,mig.mode.current"
);
/// The `--query-compute-apps` fields, in order (must match [`parse_apps_csv`]).
pub const APPS_QUERY_FIELDS: &str = "pid,gpu_uuid,used_memory";

/// What nvidia-smi prints (and exits 6 with) when the driver sees no GPU.
pub const NO_DEVICES: &str = "No devices were found";

const MAX_QUOTE_CHARS: usize = 80;

/// Parse `--query-gpu=`[`GPU_QUERY_FIELDS`] output. Blank output (or "No devices were
/// found") is zero GPUs. A numeric field holding a marker such as `[N/A]` becomes None
/// and is named in `unreadable`; a row whose numbers are all markers, or that says the
/// GPU is lost, gets a `failure`; anything else that does not fit is an error quoting
/// the line.
pub fn parse_gpu_csv(text: &str) -> Result<Vec<GpuInfo>, ProbeError> {
    parse_gpu_csv_as(text, GpuQuery::Full)
}

/// [`parse_gpu_csv`] for the field list `query`.
pub fn parse_gpu_csv_as(text: &str, query: GpuQuery) -> Result<Vec<GpuInfo>, ProbeError> {
    if text.trim() == NO_DEVICES {
        return Ok(Vec::new());
    }
    let mut gpus: Vec<GpuInfo> = Vec::new();
    for line in lines(text) {
        let next_index = gpus.last().map(|g| g.index + 1).unwrap_or(0);
        let gpu = match unopenable_gpu(line, next_index) {
            Some(gpu) => gpu,
            None => parse_gpu_line(line, query)?,
        };
        gpus.push(gpu);
    }
    Ok(gpus)
}

/// Whether `text` holds a line nvidia-smi prints for a GPU it cannot open.
pub(crate) fn has_unopenable_gpu(text: &str) -> bool {
    lines(text).any(|l| unopenable_gpu(l, 0).is_some())
}

/// "Unable to determine the device handle for GPU0000:3B:00.0: GPU is lost. Reboot
/// the system to recover this GPU": a failed GPU at `index` (its position).
fn unopenable_gpu(line: &str, index: u32) -> Option<GpuInfo> {
    const PREFIX: &str = "unable to determine the device handle for";
    let head = line.get(..PREFIX.len())?;
    if !head.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let rest = line[PREFIX.len()..].trim();
    let (bus, reason) = rest.split_once(": ").unwrap_or((rest, "unknown error"));
    let bus = bus
        .trim_start_matches(|c: char| c.is_ascii_alphabetic())
        .trim();
    let reason = quote(reason.trim());
    let kind = failure_kind_of_text(&reason).unwrap_or(FailureKind::Other);
    let failure = GpuFailure::new(
        kind,
        format!(
            "GPU {index} (PCI {}): nvidia-smi cannot open it: {reason}",
            quote(bus)
        ),
    );
    let mut gpu = GpuInfo::new(index, "", "").without_readings(failure);
    gpu.unreadable
        .extend([field::UUID, field::NAME].map(String::from));
    Some(gpu)
}

/// The failure a driver message or marker names, if it names one.
fn failure_kind_of_text(text: &str) -> Option<FailureKind> {
    let t = text.to_ascii_lowercase();
    if t.contains("lost") {
        Some(FailureKind::Lost)
    } else if t.contains("permission") {
        Some(FailureKind::NoPermission)
    } else if t.contains("not supported") || t.contains("n/a") {
        Some(FailureKind::NotSupported)
    } else if t.contains("timeout") || t.contains("timed out") {
        Some(FailureKind::Timeout)
    } else {
        None
    }
}

/// Parse `--query-compute-apps=pid,gpu_uuid,used_memory` output. Blank output is no
/// processes. `used_memory` may be a marker (→ None). A row whose pid is a marker
/// (seen in containers) names no process and is skipped.
pub fn parse_apps_csv(text: &str) -> Result<Vec<GpuProcess>, ProbeError> {
    let mut out = Vec::new();
    for line in lines(text) {
        if line.starts_with("No running") {
            // Not printed by the csv format of current drivers; harmless to accept.
            continue;
        }
        if let Some(p) = parse_app_line(line)? {
            out.push(p);
        }
    }
    Ok(out)
}

/// Non-blank lines, without their line ends ("\n" or "\r\n").
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
}

fn parse_gpu_line(line: &str, query: GpuQuery) -> Result<GpuInfo, ProbeError> {
    let err = |reason: String| parse_error("--query-gpu", reason, line);
    let words = query.words();
    let expected = 8 + words;
    let count = line.split(',').count();
    if count < expected {
        return Err(err(format!("expected {expected} fields, got {count}")));
    }
    let mut left = line.splitn(3, ',');
    let (index, uuid, rest) = match (left.next(), left.next(), left.next()) {
        (Some(i), Some(u), Some(r)) => (i.trim(), u.trim(), r),
        _ => return Err(err(format!("expected {expected} fields"))),
    };
    // rest = "name, total, used, free, temp, util[, words]": the rest from the right.
    let mut right: Vec<&str> = rest.rsplitn(6 + words, ',').collect();
    if right.len() != 6 + words {
        return Err(err(format!("expected {expected} fields")));
    }
    right.reverse();
    let name = right[0].trim();
    let nums = &right[1..6];
    let word = |i: usize| right.get(6 + i).map(|w| w.trim());

    let index: u32 = index
        .parse()
        .map_err(|_| err(format!("index is '{}', not a number", quote(index))))?;
    let mut unreadable = Vec::new();
    let uuid = if is_marker(uuid) {
        unreadable.push(field::UUID.to_string());
        ""
    } else if is_token(uuid) {
        uuid
    } else {
        return Err(err(format!("uuid is '{}'", quote(uuid))));
    };
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(err(format!("name is '{}'", quote(name))));
    }

    let mut markers = Vec::new();
    let mut mem = |i: usize, name: &str| -> Result<Option<u64>, ProbeError> {
        match number(nums[i]) {
            Num::Value(v) if v >= 0.0 && v < u64::MAX as f64 => Ok(Some(v.round() as u64)),
            Num::Value(_) | Num::Bad => Err(err(format!("{name} is '{}'", quote(nums[i].trim())))),
            Num::Marker => {
                unreadable.push(name.to_string());
                markers.push(nums[i].trim());
                Ok(None)
            }
        }
    };
    let memory_total_mb = mem(0, field::MEMORY_TOTAL)?;
    let memory_used_mb = mem(1, field::MEMORY_USED)?;
    let memory_free_mb = mem(2, field::MEMORY_FREE)?;
    let mut float = |i: usize, name: &str| -> Result<Option<f64>, ProbeError> {
        match number(nums[i]) {
            Num::Value(v) => Ok(Some(v)),
            Num::Bad => Err(err(format!("{name} is '{}'", quote(nums[i].trim())))),
            Num::Marker => {
                unreadable.push(name.to_string());
                markers.push(nums[i].trim());
                Ok(None)
            }
        }
    };
    let temperature_c = float(3, field::TEMPERATURE)?;
    let utilization_pct = float(4, field::UTILIZATION)?;

    let lost = markers
        .iter()
        .find(|m| failure_kind_of_text(m) == Some(FailureKind::Lost));
    let failure = if let Some(marker) = lost {
        Some(GpuFailure::new(
            FailureKind::Lost,
            format!(
                "GPU {index} has fallen off the bus (nvidia-smi: {marker}); a reboot recovers it"
            ),
        ))
    } else if markers.len() == nums.len() {
        let kind = failure_kind_of_text(markers[0]).unwrap_or(FailureKind::Other);
        Some(GpuFailure::new(
            kind,
            format!(
                "GPU {index}: nvidia-smi reads nothing from it ({})",
                markers[0]
            ),
        ))
    } else {
        None
    };
    let compute_mode = word(0).map_or(ComputeMode::Unknown, ComputeMode::from_nvidia_smi);
    let mig_mode = match word(1).map(str::to_ascii_lowercase).as_deref() {
        Some("enabled") => Some(true),
        Some("disabled") => Some(false),
        _ => None,
    };

    Ok(GpuInfo {
        memory_total_mb,
        memory_used_mb,
        memory_free_mb,
        temperature_c,
        utilization_pct,
        unreadable,
        compute_mode,
        mig_mode,
        failure,
        ..GpuInfo::new(index, uuid, name)
    })
}

fn parse_app_line(line: &str) -> Result<Option<GpuProcess>, ProbeError> {
    let err = |reason: String| parse_error("--query-compute-apps", reason, line);
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() != 3 {
        return Err(err(format!("expected 3 fields, got {}", fields.len())));
    }
    let (pid, uuid, used) = (fields[0], fields[1], fields[2]);
    if !is_token(uuid) {
        return Err(err(format!("gpu_uuid is '{}'", quote(uuid))));
    }
    let used_mb = match number(used) {
        Num::Value(v) if v >= 0.0 && v < u64::MAX as f64 => Some(v.round() as u64),
        Num::Marker => None,
        _ => return Err(err(format!("used_memory is '{}'", quote(used)))),
    };
    if is_marker(pid) {
        tracing::debug!(
            line,
            "nvidia-smi listed a compute app without a pid; skipped"
        );
        return Ok(None);
    }
    let pid: u32 = pid
        .parse()
        .map_err(|_| err(format!("pid is '{}', not a number", quote(pid))))?;
    Ok(Some(GpuProcess {
        pid,
        gpu_uuid: uuid.to_string(),
        used_mb,
    }))
}

enum Num {
    Value(f64),
    Marker,
    Bad,
}

fn number(s: &str) -> Num {
    let s = s.trim();
    if is_marker(s) {
        return Num::Marker;
    }
    // Plain decimal digits only: no "inf", "NaN", "1e3" or signs but a leading '-'.
    let digits = s.strip_prefix('-').unwrap_or(s);
    let plain = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.chars().filter(|&c| c == '.').count() <= 1
        && digits.chars().any(|c| c.is_ascii_digit());
    match s.parse::<f64>() {
        Ok(v) if plain && v.is_finite() => Num::Value(v),
        _ => Num::Bad,
    }
}

/// `[N/A]`, `[Not Supported]`, `[Unknown Error]`, `[Insufficient Permissions]`, ...,
/// and the bare spellings `N/A` and `Not Supported`.
pub(crate) fn is_marker(s: &str) -> bool {
    let s = s.trim();
    if s.eq_ignore_ascii_case("N/A") || s.eq_ignore_ascii_case("Not Supported") {
        return true;
    }
    match s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(inner) => {
            !inner.is_empty()
                && inner.len() <= 64
                && inner
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || " /_-.:'".contains(c))
        }
        None => false,
    }
}

/// A uuid-like token: printable ASCII without spaces.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic())
}

fn parse_error(query: &str, reason: String, line: &str) -> ProbeError {
    ProbeError::Parse {
        query: query.to_string(),
        reason,
        line: quote(line),
    }
}

/// A line fit to quote in a one-line message: control characters escaped,
/// at most about 80 characters.
pub(crate) fn quote(line: &str) -> String {
    quote_max(line, MAX_QUOTE_CHARS)
}

/// [`quote`] with another length limit.
pub(crate) fn quote_max(line: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (count, c) in line.chars().enumerate() {
        if count >= max_chars {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(text: &str) -> Result<Vec<GpuInfo>, ProbeError> {
        parse_gpu_csv_as(text, GpuQuery::Basic)
    }

    const TWO: &str = "0, GPU-5d5b9ac3-36f5-3b1c-3c36-31d5d4c1dc05, NVIDIA A100-SXM4-40GB, 40960, 1000, 39960, 40, 3\n\
                       1, GPU-0e8e0b7c-4a43-5e14-0f8a-c2b4c9b8f0a1, NVIDIA GeForce RTX 4090, 24564, 23000, 1564, 83, 100\n";

    #[test]
    fn several_gpus() {
        let g = basic(TWO).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].index, 0);
        assert_eq!(g[0].uuid, "GPU-5d5b9ac3-36f5-3b1c-3c36-31d5d4c1dc05");
        assert_eq!(g[0].name, "NVIDIA A100-SXM4-40GB");
        assert_eq!(g[0].memory_total_mb, Some(40960));
        assert_eq!(g[0].memory_used_mb, Some(1000));
        assert_eq!(g[0].memory_free_mb, Some(39960));
        assert_eq!(g[0].temperature_c, Some(40.0));
        assert_eq!(g[0].utilization_pct, Some(3.0));
        assert!(g[0].unreadable.is_empty());
        assert_eq!(g[1].index, 1);
        assert_eq!(g[1].name, "NVIDIA GeForce RTX 4090");
        assert_eq!(g[1].memory_free_mb, Some(1564));
        assert_eq!(g[1].temperature_c, Some(83.0));
    }

    #[test]
    fn crlf_blank_lines_and_missing_spaces_are_tolerated() {
        let text = "\r\n0,GPU-a,Tesla T4,15360,0,15360,35,0\r\n\r\n";
        let g = basic(text).unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].name, "Tesla T4");
        assert_eq!(g[0].memory_total_mb, Some(15360));
    }

    #[test]
    fn names_with_spaces_and_commas_are_what_lies_between() {
        let g =
            basic("3, GPU-x, NVIDIA RTX A6000, Ada, edition, 49140, 1, 49139, 30, 0\n").unwrap();
        assert_eq!(g[0].index, 3);
        assert_eq!(g[0].uuid, "GPU-x");
        assert_eq!(g[0].name, "NVIDIA RTX A6000, Ada, edition");
        assert_eq!(g[0].memory_total_mb, Some(49140));
        assert_eq!(g[0].utilization_pct, Some(0.0));
    }

    #[test]
    fn markers_in_each_numeric_field() {
        let names = [
            field::MEMORY_TOTAL,
            field::MEMORY_USED,
            field::MEMORY_FREE,
            field::TEMPERATURE,
            field::UTILIZATION,
        ];
        let markers = ["[N/A]", "N/A", "[Not Supported]", "[Unknown Error]"];
        for (i, name) in names.iter().enumerate() {
            for marker in markers {
                let mut nums = ["100", "40", "60", "50", "7"];
                nums[i] = marker;
                let line = format!("0, GPU-a, Tesla V100-SXM2-16GB, {}", nums.join(", "));
                let g = &basic(&line).unwrap()[0];
                assert_eq!(g.unreadable, vec![name.to_string()], "{line}");
                let values = [
                    g.memory_total_mb.map(|v| v as f64),
                    g.memory_used_mb.map(|v| v as f64),
                    g.memory_free_mb.map(|v| v as f64),
                    g.temperature_c,
                    g.utilization_pct,
                ];
                for (j, v) in values.iter().enumerate() {
                    assert_eq!(v.is_none(), i == j, "{line}: field {j}");
                }
            }
        }
    }

    #[test]
    fn all_markers_at_once() {
        let g = &basic(
            "0, GPU-a, NVIDIA GB10, [N/A], [N/A], [N/A], [Insufficient Permissions], [GPU is lost]",
        )
        .unwrap()[0];
        assert_eq!(
            g.unreadable,
            vec![
                "memory.total",
                "memory.used",
                "memory.free",
                "temperature",
                "utilization"
            ]
        );
        assert_eq!(g.memory_total_mb, None);
        assert_eq!(g.temperature_c, None);
    }

    #[test]
    fn empty_output_is_zero_gpus() {
        assert_eq!(basic("").unwrap(), vec![]);
        assert_eq!(basic("\n  \n").unwrap(), vec![]);
        assert_eq!(basic("No devices were found\n").unwrap(), vec![]);
    }

    fn parse_err(text: &str) -> (String, String) {
        match basic(text) {
            Err(ProbeError::Parse { reason, line, .. }) => (reason, line),
            other => panic!("expected a parse error for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn garbage_is_an_error_that_quotes_the_line() {
        let (reason, line) = parse_err("0, GPU-only-three, fields\n");
        assert_eq!(reason, "expected 8 fields, got 3");
        assert_eq!(line, "0, GPU-only-three, fields");

        let (reason, _) = parse_err("x, GPU-a, Tesla T4, 15360, 0, 15360, 35, 0\n");
        assert!(reason.contains("index"), "{reason}");

        let (reason, _) = parse_err("0, GPU-a, Tesla T4, lots, 0, 15360, 35, 0\n");
        assert!(reason.contains("memory.total"), "{reason}");

        let (reason, _) = parse_err("0, GPU-a, Tesla T4, 15360, 0, 15360, hot, 0\n");
        assert!(reason.contains("temperature"), "{reason}");

        let (reason, _) = parse_err("0, GPU-a, Tesla T4, -5, 0, 15360, 35, 0\n");
        assert!(reason.contains("memory.total"), "{reason}");

        let (reason, _) = parse_err("0, GPU-a, Tesla T4, 15360, 0, 15360, inf, 0\n");
        assert!(reason.contains("temperature"), "{reason}");

        let (reason, _) = parse_err("0, , Tesla T4, 15360, 0, 15360, 35, 0\n");
        assert!(reason.contains("uuid"), "{reason}");

        // One good line does not excuse a bad one.
        let text = format!("{TWO}Segmentation fault\n");
        let (_, line) = parse_err(&text);
        assert_eq!(line, "Segmentation fault");
    }

    #[test]
    fn the_full_query_reads_compute_and_mig_modes() {
        let text = "0, GPU-a, NVIDIA A100-SXM4-40GB, 40960, 0, 40960, 30, 0, Default, Enabled\n\
                    1, GPU-b, NVIDIA A100, PCIe, 40960, 0, 40960, 30, 0, Exclusive_Process, Disabled\n\
                    2, GPU-c, Tesla T4, 15360, 0, 15360, 30, 0, Prohibited, [N/A]\n\
                    3, GPU-d, Tesla K80, 12000, 0, 12000, 30, 0, [N/A], [N/A]\n";
        let g = parse_gpu_csv(text).unwrap();
        let modes: Vec<_> = g.iter().map(|g| (g.compute_mode, g.mig_mode)).collect();
        assert_eq!(
            modes,
            [
                (ComputeMode::Default, Some(true)),
                (ComputeMode::ExclusiveProcess, Some(false)),
                (ComputeMode::Prohibited, None),
                (ComputeMode::Unknown, None)
            ]
        );
        assert_eq!(g[1].name, "NVIDIA A100, PCIe");
        assert_eq!(g[1].device_id, "1");
        assert!(
            g.iter()
                .all(|g| g.failure.is_none() && g.unreadable.is_empty())
        );
        let g = parse_gpu_csv_as(
            "0, GPU-a, T4, 1, 0, 1, 30, 0, Exclusive_Thread\n",
            GpuQuery::NoMig,
        )
        .unwrap();
        assert_eq!(g[0].compute_mode, ComputeMode::ExclusiveProcess);
        assert_eq!(g[0].mig_mode, None);
        match parse_gpu_csv("0, GPU-a, T4, 1, 0, 1, 30, 0\n") {
            Err(ProbeError::Parse { reason, .. }) => {
                assert_eq!(reason, "expected 10 fields, got 8")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(GpuQuery::Full.fields(), GPU_QUERY_FIELDS);
        assert!(
            GpuQuery::Full
                .fields()
                .ends_with(",compute_mode,mig.mode.current")
        );
        assert!(
            GpuQuery::NoMig
                .fields()
                .ends_with("utilization.gpu,compute_mode")
        );
        assert_eq!(GpuQuery::Basic.simpler(), None);
    }

    #[test]
    fn a_gpu_nvidia_smi_cannot_open_is_a_failed_gpu_in_its_place() {
        let text = "0, GPU-a, Tesla T4, 15360, 0, 15360, 35, 0, Default, Disabled\n\
                    Unable to determine the device handle for GPU0000:3B:00.0: GPU is lost.  Reboot the system to recover this GPU\n\
                    2, GPU-c, Tesla T4, 15360, 0, 15360, 35, 0, Default, Disabled\n\
                    Unable to determine the device handle for gpu 0000:5E:00.0: Unknown Error\n";
        assert!(has_unopenable_gpu(text));
        let g = parse_gpu_csv(text).unwrap();
        assert_eq!(g.len(), 4);
        assert_eq!(g[1].index, 1);
        assert_eq!(g[1].uuid, "");
        let f = g[1].failure.as_ref().unwrap();
        assert_eq!(f.kind, FailureKind::Lost);
        assert!(
            f.message
                .starts_with("GPU 1 (PCI 0000:3B:00.0): nvidia-smi cannot open it: GPU is lost"),
            "{}",
            f.message
        );
        assert_eq!(g[1].memory_free_mb, None);
        assert_eq!(g[2].index, 2);
        assert!(g[2].failure.is_none());
        assert_eq!(g[3].index, 3);
        assert_eq!(g[3].failure.as_ref().unwrap().kind, FailureKind::Other);
        assert!(!has_unopenable_gpu(TWO));
    }

    #[test]
    fn markers_that_mean_the_gpu_is_unusable_are_failures() {
        let g = &basic("0, GPU-a, Tesla T4, [GPU is lost], [GPU is lost], [GPU is lost], [GPU is lost], [GPU is lost]\n")
            .unwrap()[0];
        assert_eq!(g.failure.as_ref().unwrap().kind, FailureKind::Lost);
        let g = &basic("0, GPU-a, Tesla T4, 100, 0, 100, [GPU is lost], 5\n").unwrap()[0];
        assert_eq!(g.failure.as_ref().unwrap().kind, FailureKind::Lost);
        let g = &basic("0, [N/A], Tesla T4, [Insufficient Permissions], [Insufficient Permissions], [Insufficient Permissions], [Insufficient Permissions], [Insufficient Permissions]\n")
            .unwrap()[0];
        assert_eq!(g.failure.as_ref().unwrap().kind, FailureKind::NoPermission);
        assert_eq!(g.uuid, "");
        assert!(g.unreadable.contains(&field::UUID.to_string()));
        // Unified memory: no memory, but a temperature: not a failure.
        let g = &basic("0, GPU-a, NVIDIA GB10, [N/A], [N/A], [N/A], 45, 3\n").unwrap()[0];
        assert_eq!(g.failure, None);
        assert!(!g.memory_reported());
    }

    #[test]
    fn binary_junk_is_quoted_escaped_and_truncated() {
        let junk =
            String::from_utf8_lossy(b"\x00\x01\xff\xfe GPU \x1b[31mjunk\x1b[0m, , , , , , , , ,");
        let (_, line) = parse_err(&junk);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.contains("\\u{0}"), "{line:?}");

        let long = format!("{}\n", "z".repeat(500));
        let (_, line) = parse_err(&long);
        assert_eq!(line.chars().count(), MAX_QUOTE_CHARS + 1);
        assert!(line.ends_with('…'));
        let msg = basic(&long).unwrap_err().to_string();
        assert!(!msg.contains('\n'));
        assert!(msg.len() < 300, "{msg}");
    }

    #[test]
    fn compute_apps() {
        let text = "1234, GPU-5d5b9ac3-36f5-3b1c-3c36-31d5d4c1dc05, 500\n\
                    99, GPU-0e8e0b7c-4a43-5e14-0f8a-c2b4c9b8f0a1, [N/A]\n\
                    [Not Supported], GPU-0e8e0b7c-4a43-5e14-0f8a-c2b4c9b8f0a1, [Not Supported]\n";
        let p = parse_apps_csv(text).unwrap();
        assert_eq!(
            p,
            vec![
                GpuProcess {
                    pid: 1234,
                    gpu_uuid: "GPU-5d5b9ac3-36f5-3b1c-3c36-31d5d4c1dc05".into(),
                    used_mb: Some(500)
                },
                GpuProcess {
                    pid: 99,
                    gpu_uuid: "GPU-0e8e0b7c-4a43-5e14-0f8a-c2b4c9b8f0a1".into(),
                    used_mb: None
                },
            ]
        );
        assert_eq!(parse_apps_csv("").unwrap(), vec![]);
        assert_eq!(parse_apps_csv("\n").unwrap(), vec![]);
    }

    #[test]
    fn compute_apps_garbage() {
        for bad in [
            "1234, GPU-a\n",
            "1234, GPU-a, 5, 6\n",
            "abc, GPU-a, 5\n",
            "1234, GPU-a, lots\n",
            "-1, GPU-a, 5\n",
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n",
        ] {
            match parse_apps_csv(bad) {
                Err(ProbeError::Parse { line, .. }) => assert_eq!(line, bad.trim_end()),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn markers() {
        for m in [
            "[N/A]",
            "N/A",
            "[Not Supported]",
            "[Unknown Error]",
            " [N/A] ",
        ] {
            assert!(is_marker(m), "{m}");
        }
        for m in ["", "[]", "12", "[\u{0}]", "NA"] {
            assert!(!is_marker(m), "{m}");
        }
    }
}
