//! Value types of the config: durations, memory limits, signals and the small enums.
//!
//! Each type parses from the forms a user would type (numbers and strings) and serialises
//! back to a form that parses again, so `Serialized::defaults` round-trips.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration given in minutes: a number (fractional allowed, `0.1` = 6 s) or a humantime
/// string (`"90s"`, `"2h"`, `"1h 30m"`). Serialised as a number of minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minutes(pub Duration);

/// A duration given in seconds: a number (fractional allowed) or a humantime string.
/// Serialised as a humantime string (`"30s"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seconds(pub Duration);

fn duration_of(amount: f64, unit_secs: f64) -> Result<Duration, String> {
    if !amount.is_finite() {
        return Err(format!("{amount} is not a finite number"));
    }
    if amount < 0.0 {
        return Err(format!("{amount} is negative"));
    }
    Duration::try_from_secs_f64(amount * unit_secs).map_err(|_| format!("{amount} is too large"))
}

/// A number in `unit_secs`, or a humantime duration.
fn parse_duration_text(text: &str, unit_secs: f64) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(amount) = text.parse::<f64>() {
        return duration_of(amount, unit_secs);
    }
    humantime::parse_duration(text).map_err(|e| format!("{text:?} is not a duration ({e})"))
}

/// The longest timebox or checkpoint interval accepted: anything longer is a typo (`1e9`),
/// not a plan.
pub const LONGEST_MINUTES: u64 = 365 * 24 * 60;

impl Minutes {
    /// What is wrong with a zero (or negative) duration.
    pub const NOT_POSITIVE: &'static str = "must be a positive duration";

    /// Why this cannot be a timebox or checkpoint interval: zero, or over a year.
    pub fn out_of_range(&self) -> Option<String> {
        if self.0.is_zero() {
            Some(Self::NOT_POSITIVE.to_string())
        } else if self.0 > Duration::from_secs(LONGEST_MINUTES * 60) {
            Some(format!("at most 1 year ({LONGEST_MINUTES} minutes)"))
        } else {
            None
        }
    }

    pub fn from_minutes(minutes: f64) -> Result<Self, String> {
        duration_of(minutes, 60.0).map(Minutes)
    }
    pub fn duration(&self) -> Duration {
        self.0
    }
    pub fn as_minutes(&self) -> f64 {
        self.0.as_secs_f64() / 60.0
    }
}

impl Seconds {
    pub fn from_secs(seconds: u64) -> Self {
        Seconds(Duration::from_secs(seconds))
    }
    pub fn duration(&self) -> Duration {
        self.0
    }
}

impl From<Duration> for Minutes {
    fn from(d: Duration) -> Self {
        Minutes(d)
    }
}

impl From<Duration> for Seconds {
    fn from(d: Duration) -> Self {
        Seconds(d)
    }
}

impl FromStr for Minutes {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration_text(s, 60.0).map(Minutes)
    }
}

impl FromStr for Seconds {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration_text(s, 1.0).map(Seconds)
    }
}

impl fmt::Display for Minutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Minutes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_minutes())
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(self.0))
    }
}

/// A visitor for values written as a number (in some unit) or as text.
struct NumberOrText<T> {
    expecting: &'static str,
    from_number: fn(f64) -> Result<T, String>,
    from_text: fn(&str) -> Result<T, String>,
}

impl<T> Visitor<'_> for NumberOrText<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        (self.from_number)(v as f64).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        (self.from_number)(v as f64).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        (self.from_number)(v).map_err(|_| E::invalid_value(Unexpected::Float(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.from_text)(v).map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
    }
}

impl<'de> Deserialize<'de> for Minutes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberOrText {
            expecting: "minutes as a number or a duration like \"90s\"",
            from_number: Minutes::from_minutes,
            from_text: |t| t.parse(),
        })
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberOrText {
            expecting: "seconds as a number or a duration like \"30s\"",
            from_number: |n| duration_of(n, 1.0).map(Seconds),
            from_text: |t| t.parse(),
        })
    }
}

/// A GPU memory limit per run: a share of the GPU or an absolute size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MemoryLimit {
    /// Percent of the GPU's total memory, 0 < p ≤ 100.
    Percent(f64),
    /// Gigabytes (1 GB = 1024 MB here, as GPU tools report).
    Gigabytes(f64),
}

impl MemoryLimit {
    /// The limit in MB on a GPU with `total_mb` of memory.
    pub fn megabytes(&self, total_mb: u64) -> u64 {
        let mb = match *self {
            MemoryLimit::Percent(p) => total_mb as f64 * p / 100.0,
            MemoryLimit::Gigabytes(gb) => gb * 1024.0,
        };
        mb.max(0.0).round() as u64
    }

    /// The limit as a fraction of a GPU with `total_mb` of memory, at most 1.
    pub fn fraction(&self, total_mb: u64) -> f64 {
        match *self {
            MemoryLimit::Percent(p) => p / 100.0,
            MemoryLimit::Gigabytes(_) if total_mb == 0 => 1.0,
            MemoryLimit::Gigabytes(gb) => (gb * 1024.0 / total_mb as f64).min(1.0),
        }
    }

    /// `Err` with the reason when the value is out of range.
    pub fn check(&self) -> Result<(), String> {
        match *self {
            MemoryLimit::Percent(p) if !(p.is_finite() && p > 0.0 && p <= 100.0) => {
                Err(format!("{p}% is not between 0% (excluded) and 100%"))
            }
            MemoryLimit::Gigabytes(gb) if !(gb.is_finite() && gb > 0.0) => {
                Err(format!("{gb} GB is not above 0"))
            }
            _ => Ok(()),
        }
    }

    fn from_gigabytes(gb: f64) -> Result<Self, String> {
        let limit = MemoryLimit::Gigabytes(gb);
        limit.check().map(|_| limit)
    }
}

impl FromStr for MemoryLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        let number = |t: &str| {
            t.trim()
                .parse::<f64>()
                .map_err(|_| format!("{s:?} is not a memory limit"))
        };
        let limit = if let Some(p) = text.strip_suffix('%') {
            MemoryLimit::Percent(number(p)?)
        } else {
            let upper = text.to_ascii_uppercase();
            let units: [(&str, f64); 6] = [
                ("GIB", 1.0),
                ("GB", 1.0),
                ("G", 1.0),
                ("MIB", 1.0 / 1024.0),
                ("MB", 1.0 / 1024.0),
                ("M", 1.0 / 1024.0),
            ];
            let (digits, scale) = units
                .iter()
                .find_map(|(unit, scale)| upper.strip_suffix(unit).map(|d| (d.to_string(), *scale)))
                .unwrap_or((upper.clone(), 1.0));
            MemoryLimit::Gigabytes(number(&digits)? * scale)
        };
        limit.check().map(|_| limit)
    }
}

impl fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryLimit::Percent(p) => write!(f, "{p}%"),
            MemoryLimit::Gigabytes(gb) => write!(f, "{gb}GB"),
        }
    }
}

impl Serialize for MemoryLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MemoryLimit::Percent(_) => s.collect_str(self),
            MemoryLimit::Gigabytes(gb) => s.serialize_f64(*gb),
        }
    }
}

impl<'de> Deserialize<'de> for MemoryLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberOrText {
            expecting: "a percentage like \"80%\" or a size in GB like 8 or \"8GB\"",
            from_number: MemoryLimit::from_gigabytes,
            from_text: |t| t.parse(),
        })
    }
}

/// A POSIX signal by name (`"SIGUSR1"`, `"USR1"`, `"sigusr1"`) or number. Serialised as `"SIGUSR1"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignalName(pub Signal);

impl SignalName {
    pub fn signal(&self) -> Signal {
        self.0
    }
    pub fn as_str(&self) -> &'static str {
        self.0.as_str()
    }
}

impl From<Signal> for SignalName {
    fn from(s: Signal) -> Self {
        SignalName(s)
    }
}

impl FromStr for SignalName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        if let Ok(n) = text.parse::<i32>() {
            return Signal::try_from(n)
                .map(SignalName)
                .map_err(|_| format!("{n} is not a signal number"));
        }
        let upper = text.to_ascii_uppercase();
        let name = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        Signal::from_str(&name)
            .map(SignalName)
            .map_err(|_| format!("{s:?} is not a signal name"))
    }
}

impl fmt::Display for SignalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl Serialize for SignalName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for SignalName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberOrText {
            expecting: "a signal name like \"SIGUSR1\" or its number",
            from_number: |n| {
                if n.fract() != 0.0 || n < 1.0 || n > i32::MAX as f64 {
                    return Err(format!("{n} is not a signal number"));
                }
                (n as i32).to_string().parse()
            },
            from_text: |t| t.parse(),
        })
    }
}

/// Enums written as lowercase strings (case-insensitive on input, with aliases).
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $expecting:literal, { $($variant:ident => $text:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text $(| $alias)* => Ok($name::$variant),)+
                    _ => Err(format!("{s:?} is not {}", $expecting)),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

text_enum!(
    /// The ML framework of a run's script; `auto` detects it from the imports.
    Framework, "one of \"auto\", \"pytorch\", \"tensorflow\", \"jax\", \"none\"", {
        Auto => "auto",
        Pytorch => "pytorch" | "torch",
        Tensorflow => "tensorflow" | "tf",
        Jax => "jax",
        None => "none",
    }
);

text_enum!(
    /// Where runs execute.
    Executor, "one of \"local\", \"slurm\"", {
        Local => "local",
        Slurm => "slurm",
    }
);

text_enum!(
    /// How GPUs are observed: `auto` tries NVML, then `nvidia-smi`, then none.
    GpuProbeKind, "one of \"auto\", \"nvml\", \"nvidia-smi\", \"none\"", {
        Auto => "auto",
        Nvml => "nvml",
        NvidiaSmi => "nvidia-smi" | "nvidia_smi" | "nvidiasmi",
        None => "none",
    }
);

text_enum!(
    /// What the script gets on its command line besides its own arguments: nothing
    /// (`none`), or the original tool's `--run-id ID --max-minutes N ...` (`legacy`).
    ScriptArgs, "one of \"none\", \"legacy\"", {
        None => "none",
        Legacy => "legacy",
    }
);

text_enum!(
    /// What happens when a run uses more GPU memory than its `gpuMemoryLimit`.
    MemoryLimitAction, "one of \"warn\", \"stop\"", {
        Warn => "warn",
        Stop => "stop",
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: for<'de> Deserialize<'de>>(v: serde_json::Value) -> Result<T, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn minutes_take_numbers_and_durations() {
        assert_eq!(
            from::<Minutes>(json!(10)).unwrap().duration(),
            Duration::from_secs(600)
        );
        assert_eq!(
            from::<Minutes>(json!(0.1)).unwrap().duration(),
            Duration::from_secs(6)
        );
        assert_eq!(
            from::<Minutes>(json!("90s")).unwrap().duration(),
            Duration::from_secs(90)
        );
        assert_eq!(
            from::<Minutes>(json!("1h 30m")).unwrap().duration(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            from::<Minutes>(json!("2.5")).unwrap().duration(),
            Duration::from_secs(150)
        );
        assert!(from::<Minutes>(json!(-1)).is_err());
        assert!(from::<Minutes>(json!("soon")).is_err());
        assert_eq!(
            Minutes::from_minutes(525600.0).unwrap().out_of_range(),
            None
        );
        assert_eq!(
            Minutes::from_minutes(525601.0).unwrap().out_of_range(),
            Some("at most 1 year (525600 minutes)".to_string())
        );
        assert_eq!(
            Minutes::from_minutes(0.0).unwrap().out_of_range(),
            Some("must be a positive duration".to_string())
        );
        assert_eq!(
            serde_json::to_value(Minutes(Duration::from_secs(6))).unwrap(),
            json!(0.1)
        );
    }

    #[test]
    fn seconds_take_numbers_and_durations_and_print_as_durations() {
        assert_eq!(
            from::<Seconds>(json!(30)).unwrap().duration(),
            Duration::from_secs(30)
        );
        assert_eq!(
            from::<Seconds>(json!("2m")).unwrap().duration(),
            Duration::from_secs(120)
        );
        assert_eq!(
            from::<Seconds>(json!(0.5)).unwrap().duration(),
            Duration::from_millis(500)
        );
        assert_eq!(
            serde_json::to_value(Seconds::from_secs(30)).unwrap(),
            json!("30s")
        );
        assert_eq!(
            serde_json::to_value(Seconds::from_secs(300)).unwrap(),
            json!("5m")
        );
    }

    #[test]
    fn memory_limits_in_every_form() {
        assert_eq!(
            from::<MemoryLimit>(json!("80%")).unwrap(),
            MemoryLimit::Percent(80.0)
        );
        assert_eq!(
            from::<MemoryLimit>(json!(8)).unwrap(),
            MemoryLimit::Gigabytes(8.0)
        );
        for text in ["8", "8GB", "8G", "8192MB", "8 gb", "8GiB"] {
            assert_eq!(
                from::<MemoryLimit>(json!(text)).unwrap(),
                MemoryLimit::Gigabytes(8.0),
                "{text}"
            );
        }
        for bad in [
            json!("150%"),
            json!("0%"),
            json!(-2),
            json!("lots"),
            json!(0),
        ] {
            assert!(from::<MemoryLimit>(bad.clone()).is_err(), "{bad}");
        }
        assert_eq!(
            serde_json::to_value(MemoryLimit::Percent(80.0)).unwrap(),
            json!("80%")
        );
        assert_eq!(
            serde_json::to_value(MemoryLimit::Gigabytes(8.0)).unwrap(),
            json!(8.0)
        );
        assert_eq!(MemoryLimit::Percent(50.0).megabytes(16000), 8000);
        assert_eq!(MemoryLimit::Gigabytes(8.0).megabytes(16000), 8192);
    }

    #[test]
    fn signals_by_name_short_name_or_number() {
        for v in [json!("SIGUSR1"), json!("USR1"), json!("sigusr1"), json!(10)] {
            assert_eq!(from::<SignalName>(v).unwrap().signal(), Signal::SIGUSR1);
        }
        assert!(from::<SignalName>(json!("SIGNOPE")).is_err());
        assert!(from::<SignalName>(json!(1000)).is_err());
        assert_eq!(
            serde_json::to_value(SignalName(Signal::SIGINT)).unwrap(),
            json!("SIGINT")
        );
    }

    #[test]
    fn enums_are_lowercase_with_aliases() {
        assert_eq!(
            from::<Framework>(json!("torch")).unwrap(),
            Framework::Pytorch
        );
        assert_eq!(
            from::<Framework>(json!("PyTorch")).unwrap(),
            Framework::Pytorch
        );
        assert_eq!(
            from::<GpuProbeKind>(json!("nvidia-smi")).unwrap(),
            GpuProbeKind::NvidiaSmi
        );
        assert_eq!(GpuProbeKind::NvidiaSmi.to_string(), "nvidia-smi");
        assert!(from::<Executor>(json!("kubernetes")).is_err());
        assert_eq!(
            serde_json::to_value(MemoryLimitAction::Stop).unwrap(),
            json!("stop")
        );
    }
}
