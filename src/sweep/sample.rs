//! `random`: `{"n": 8, "seed": 1, "params": {"lr": {"logUniform": [1e-4, 1e-1]}, ...}}`.
//!
//! Draws come from ChaCha8 seeded with `seed_from_u64(seed)`, turned into values by our own
//! arithmetic on its 64-bit words (not `rand`'s distributions, whose algorithms may change
//! between versions), run after run and param after param in the order written.
//! Floats are rounded to 6 significant digits.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Number;

use super::MAX_RUNS;
use super::errors::{Ctx, SweepError, did_you_mean, key_at};
use super::json::{self, Json, Params};

const KEYS: &[&str] = &["n", "seed", "params"];
const DISTRIBUTIONS: &[&str] = &["uniform", "logUniform", "choice", "int"];
const EXAMPLE: &str =
    "{\"n\": 8, \"seed\": 1, \"params\": {\"lr\": {\"logUniform\": [1e-4, 1e-1]}}}";

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Dist {
    /// `[low, high)`.
    Uniform(f64, f64),
    /// `[low, high)`, uniform in the logarithm.
    LogUniform(f64, f64),
    Choice(Vec<Json>),
    /// `[low, high]`, both included.
    Int(i64, i64),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RandomSpec {
    pub n: usize,
    pub seed: u64,
    /// Each param, where it is written (`random.params.lr`), and its distribution.
    pub params: Vec<(String, String, Dist)>,
}

/// Reads `random` (at `at`); `check_name` vets each param's name.
pub(crate) fn parse(
    ctx: Ctx,
    value: &Json,
    at: &str,
    check_name: &dyn Fn(&str, &str) -> Result<(), SweepError>,
) -> Result<RandomSpec, SweepError> {
    let entries = json::object(ctx, value, at, EXAMPLE)?;
    let (mut n, mut seed, mut params) = (None, 0, None);
    for (key, value) in entries {
        let here = key_at(at, key);
        match key.as_str() {
            "n" => {
                n = Some(json::whole(
                    ctx,
                    value,
                    &here,
                    1,
                    MAX_RUNS as u64,
                    "the number of runs",
                )?)
            }
            "seed" => seed = json::whole(ctx, value, &here, 0, u64::MAX, "a seed")?,
            "params" => params = Some((here, value)),
            _ => {
                return Err(ctx.err(
                    &here,
                    format!(
                        "unknown key{}; random takes n, seed and params",
                        did_you_mean(key, KEYS)
                    ),
                ));
            }
        }
    }
    let Some(n) = n else {
        return Err(ctx.err(
            at,
            format!("no \"n\": say how many runs to sample, like {EXAMPLE}"),
        ));
    };
    let Some((params_at, params)) = params else {
        return Err(ctx.err(
            at,
            format!("no \"params\": give each param a distribution, like {EXAMPLE}"),
        ));
    };
    let entries = json::object(
        ctx,
        params,
        &params_at,
        "{\"lr\": {\"logUniform\": [1e-4, 1e-1]}}",
    )?;
    if entries.is_empty() {
        return Err(ctx.err(
            &params_at,
            "no params; give at least one, like {\"lr\": {\"logUniform\": [1e-4, 1e-1]}}",
        ));
    }
    let mut out = Vec::new();
    for (name, spec) in entries {
        let here = key_at(&params_at, name);
        check_name(name, &here)?;
        out.push((name.clone(), here.clone(), distribution(ctx, spec, &here)?));
    }
    Ok(RandomSpec {
        n: n as usize,
        seed,
        params: out,
    })
}

fn distribution(ctx: Ctx, value: &Json, at: &str) -> Result<Dist, SweepError> {
    let choose = "give one of uniform, logUniform, choice or int, like {\"uniform\": [0, 0.5]}";
    let Json::Object(entries) = value else {
        let also = if matches!(value, Json::Array(_)) {
            " (to pick from a list, use {\"choice\": [...]})"
        } else {
            " (for a fixed value, use the top-level \"params\")"
        };
        return Err(ctx.err(
            at,
            format!("expected a distribution; {choose}, {}{also}", value.got()),
        ));
    };
    let [(kind, bounds)] = entries.as_slice() else {
        let names: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        return Err(ctx.err(
            at,
            format!(
                "needs exactly one distribution, got {} ({}); {choose}",
                entries.len(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        ));
    };
    let here = key_at(at, kind);
    let numbers = |what: &str| -> Result<(f64, f64), SweepError> {
        if let Json::Array(items) = bounds
            && let [Json::Number(low), Json::Number(high)] = items.as_slice()
            && let (Some(low), Some(high)) = (low.as_f64(), high.as_f64())
        {
            return Ok((low, high));
        }
        Err(ctx.err(at, format!("{kind} needs {what}, got {bounds}")))
    };
    match kind.as_str() {
        "uniform" => {
            let what = "[low, high] with low < high";
            let (low, high) = numbers(what)?;
            if low < high && (high - low).is_finite() {
                Ok(Dist::Uniform(low, high))
            } else {
                Err(ctx.err(at, format!("uniform needs {what}, got {bounds}")))
            }
        }
        "logUniform" => {
            let what = "0 < low < high";
            let (low, high) = numbers(what)?;
            if 0.0 < low && low < high {
                Ok(Dist::LogUniform(low, high))
            } else {
                Err(ctx.err(at, format!("logUniform needs {what}, got {bounds}")))
            }
        }
        "int" => {
            let what = "whole numbers [low, high] with low <= high (both included)";
            if let Json::Array(items) = bounds
                && let [Json::Number(low), Json::Number(high)] = items.as_slice()
                && let (Some(low), Some(high)) = (low.as_i64(), high.as_i64())
                && low <= high
            {
                return Ok(Dist::Int(low, high));
            }
            Err(ctx.err(at, format!("int needs {what}, got {bounds}")))
        }
        "choice" => {
            let items = json::list(ctx, bounds, &here, "[32, 64]")?;
            if items.is_empty() {
                return Err(ctx.err(&here, "empty list; give at least one value to choose from"));
            }
            for (i, item) in items.iter().enumerate() {
                json::scalar(ctx, item, &format!("{here}[{i}]"))?;
            }
            Ok(Dist::Choice(items.to_vec()))
        }
        _ => Err(ctx.err(
            &here,
            format!(
                "unknown distribution{}; {choose}",
                did_you_mean(kind, DISTRIBUTIONS)
            ),
        )),
    }
}

/// The params of each of the `n` runs, in order.
pub(crate) fn sample(spec: &RandomSpec) -> Vec<Params> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    (0..spec.n)
        .map(|_| {
            spec.params
                .iter()
                .map(|(name, _, dist)| (name.clone(), draw(&mut rng, dist)))
                .collect()
        })
        .collect()
}

fn draw(rng: &mut ChaCha8Rng, dist: &Dist) -> Json {
    match dist {
        Dist::Uniform(low, high) => {
            let x = low + (high - low) * unit(rng);
            float(round6(x).clamp(*low, *high))
        }
        Dist::LogUniform(low, high) => {
            let (a, b) = (low.ln(), high.ln());
            let x = (a + (b - a) * unit(rng)).exp();
            float(round6(x).clamp(*low, *high))
        }
        Dist::Int(low, high) => {
            let span = (*high as i128 - *low as i128 + 1) as u128;
            let value = *low as i128 + below(rng, span) as i128;
            Json::Number(i64::try_from(value).unwrap_or(*high).into())
        }
        Dist::Choice(items) => items[below(rng, items.len() as u128) as usize].clone(),
    }
}

fn float(x: f64) -> Json {
    Number::from_f64(x).map_or(Json::Null, Json::Number)
}

/// Uniform in [0, 1): the top 53 bits of one word.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Uniform in [0, span) for 1 <= span <= 2^64, without bias (rejection).
fn below(rng: &mut ChaCha8Rng, span: u128) -> u128 {
    let Ok(span) = u64::try_from(span) else {
        return rng.next_u64() as u128;
    };
    // 2^64 mod span: words at or above 2^64 - that would favour the low values.
    let excess = (u64::MAX % span + 1) % span;
    loop {
        let word = rng.next_u64();
        if word <= u64::MAX - excess {
            return (word % span) as u128;
        }
    }
}

/// Rounded to 6 significant digits.
fn round6(x: f64) -> f64 {
    format!("{x:.5e}").parse().unwrap_or(x)
}
