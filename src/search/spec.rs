//! What a sweep's `search` block asks for: the method, the metric to rank by, the budgets and
//! the reduction factor; its rungs; and the rules a valid one follows.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A sweep's adaptive search, in the sweep file's form:
/// `{"method": "asha", "metric": "val_loss", "mode": "min", "minBudget": {"steps": 100},
///   "maxBudget": {"steps": 2700}, "reductionFactor": 3, "seed": 7}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchSpec {
    pub method: Method,
    /// The reported metric runs are ranked by at each rung.
    pub metric: String,
    pub mode: Mode,
    pub min_budget: Budget,
    pub max_budget: Budget,
    /// η: a rung keeps the best 1/η of the runs that finished it.
    #[serde(default = "default_reduction_factor")]
    pub reduction_factor: u32,
    /// Starts the configurations in a seeded random order; without it, in the sweep's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// The reduction factor when a search does not give one (the paper's usual choice).
pub const DEFAULT_REDUCTION_FACTOR: u32 = 3;

fn default_reduction_factor() -> u32 {
    DEFAULT_REDUCTION_FACTOR
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Asynchronous successive halving.
    Asha,
}

/// Whether a lower or a higher metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Min,
    Max,
}

/// How far a run trains, counted from its very start over all its attempts: reported steps
/// (the protocol's `step`) or active time (paused time does not count).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Budget {
    Steps(u64),
    /// Whole milliseconds, the resolution of a run's `activeMs`.
    Active(Duration),
}

impl Budget {
    /// `minutes` of active time, rounded to the millisecond; `None` unless it is at least 1 ms
    /// and finite.
    pub fn minutes(minutes: f64) -> Option<Budget> {
        let ms = (minutes * 60_000.0).round();
        (ms.is_finite() && ms >= 1.0 && ms <= u64::MAX as f64)
            .then(|| Budget::Active(Duration::from_millis(ms as u64)))
    }

    /// Whether a run at `step` (its last reported step, if any) after `active` time has used
    /// this budget: for steps the first reported step at or past it, for time the moment its
    /// active time gets there.
    pub fn is_reached(&self, step: Option<u64>, active: Duration) -> bool {
        match self {
            Budget::Steps(budget) => step.is_some_and(|s| s >= *budget),
            Budget::Active(budget) => active >= *budget,
        }
    }

    /// `steps` or `minutes`, the unit's key in the sweep file.
    pub fn unit(&self) -> &'static str {
        match self {
            Budget::Steps(_) => "steps",
            Budget::Active(_) => "minutes",
        }
    }

    /// The unit after an amount: `steps` (`step` for 1), `min`.
    pub fn unit_text(&self) -> &'static str {
        match self {
            Budget::Steps(1) => "step",
            Budget::Steps(_) => "steps",
            Budget::Active(_) => "min",
        }
    }

    /// The number alone: `100`, `2`, `0.5`.
    pub fn amount_text(&self) -> String {
        match self {
            Budget::Steps(n) => n.to_string(),
            Budget::Active(d) => minutes_text(*d),
        }
    }

    fn scaled(&self, factor: u64) -> Option<Budget> {
        match self {
            Budget::Steps(n) => n.checked_mul(factor).map(Budget::Steps),
            Budget::Active(d) => {
                let ms = u64::try_from(d.as_millis()).ok()?.checked_mul(factor)?;
                Some(Budget::Active(Duration::from_millis(ms)))
            }
        }
    }
}

/// Minutes with at most 3 decimals and no trailing zeros (`2`, `0.5`, `0.017`).
fn minutes_text(d: Duration) -> String {
    let text = format!("{:.3}", d.as_millis() as f64 / 60_000.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `100 steps`, `1 step`, `2 min`.
impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount_text(), self.unit_text())
    }
}

/// `{"steps": 100}` or `{"minutes": 2}`.
impl Serialize for Budget {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Budget::Steps(n) => map.serialize_entry("steps", n)?,
            Budget::Active(d) => {
                map.serialize_entry("minutes", &(d.as_millis() as f64 / 60_000.0))?
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Budget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Budget, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        enum Form {
            #[serde(rename = "steps")]
            Steps(u64),
            #[serde(rename = "minutes")]
            Minutes(f64),
        }
        match Form::deserialize(deserializer)? {
            Form::Steps(0) => Err(serde::de::Error::custom("steps must be at least 1")),
            Form::Steps(n) => Ok(Budget::Steps(n)),
            Form::Minutes(m) => Budget::minutes(m).ok_or_else(|| {
                serde::de::Error::custom("minutes must be a number of at least 1 ms")
            }),
        }
    }
}

/// A rule a search block breaks: the camelCase key it is about (`reductionFactor`, empty for
/// the block as a whole) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    pub key: &'static str,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for SpecError {}

impl SearchSpec {
    /// The first rule this spec breaks, if any. Deserializing does not check these; call it
    /// on a spec read from anywhere.
    pub fn validate(&self) -> Result<(), SpecError> {
        let err = |key, message: String| Err(SpecError { key, message });
        if self.metric.trim().is_empty() {
            return err(
                "metric",
                "empty; name a metric the script reports, like \"val_loss\"".into(),
            );
        }
        if self.reduction_factor < 2 {
            return err(
                "reductionFactor",
                format!("must be at least 2, got {}", self.reduction_factor),
            );
        }
        for (key, budget) in [
            ("minBudget", self.min_budget),
            ("maxBudget", self.max_budget),
        ] {
            if budget == Budget::Steps(0) || budget == Budget::Active(Duration::ZERO) {
                return err(key, format!("must be above 0, got {budget}"));
            }
        }
        if self.min_budget.unit() != self.max_budget.unit() {
            return err(
                "maxBudget",
                format!(
                    "is in {} while minBudget is in {}; give both budgets in the same unit",
                    self.max_budget.unit(),
                    self.min_budget.unit()
                ),
            );
        }
        if self.min_budget > self.max_budget {
            return err(
                "minBudget",
                format!(
                    "{} is more than maxBudget ({})",
                    self.min_budget, self.max_budget
                ),
            );
        }
        Ok(())
    }

    /// The rung budgets, smallest first: minBudget × η^k while below maxBudget, then maxBudget
    /// itself (`100, 300, 900, 2700`; `100, 300, 900, 1000` for a maxBudget of 1000).
    /// Meant for a valid spec; one with mismatched units gives only its two budgets.
    pub fn rungs(&self) -> Vec<Budget> {
        let mut rungs = Vec::new();
        let mut factor: u64 = 1;
        let eta = u64::from(self.reduction_factor.max(2));
        while let Some(budget) = self.min_budget.scaled(factor) {
            if budget >= self.max_budget || budget.unit() != self.max_budget.unit() {
                break;
            }
            rungs.push(budget);
            let Some(next) = factor.checked_mul(eta) else {
                break;
            };
            factor = next;
        }
        rungs.push(self.max_budget);
        rungs
    }

    /// How many runs are sure to reach maxBudget with `configurations` configurations:
    /// ⌊n / η^(rungs − 1)⌋ (asynchrony can promote more, never fewer, unless runs fail).
    pub fn sure_to_finish(&self, configurations: usize) -> u64 {
        let eta = u64::from(self.reduction_factor.max(2));
        let steps = self.rungs().len() - 1;
        let mut n = configurations as u64;
        for _ in 0..steps {
            n /= eta;
        }
        n
    }

    /// `asha on val_loss (min), rungs 100, 300, 900, 2700 steps`.
    pub fn summary(&self) -> String {
        let rungs = self.rungs();
        let amounts: Vec<String> = rungs.iter().map(Budget::amount_text).collect();
        format!(
            "{} on {} ({}), rungs {} {}",
            match self.method {
                Method::Asha => "asha",
            },
            self.metric,
            match self.mode {
                Mode::Min => "min",
                Mode::Max => "max",
            },
            amounts.join(", "),
            match self.max_budget {
                Budget::Steps(_) => "steps",
                Budget::Active(_) => "min",
            }
        )
    }
}
