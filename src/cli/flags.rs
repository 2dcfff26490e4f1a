//! Run options given on the command line, as config values (the top layer of the config).

use crate::config::FlagValue;
use serde_json::Value;

/// Collects flag values; only flags the user actually gave are layered over the config.
#[derive(Default)]
pub struct Flags(Vec<FlagValue>);

impl Flags {
    pub fn add(&mut self, flag: &str, key: &str, value: Option<Value>) {
        if let Some(value) = value {
            self.0.push(FlagValue {
                flag: flag.to_string(),
                key: key.to_string(),
                value,
            });
        }
    }

    /// A value that is a number when it looks like one ("0.1", "8"), else a string ("90s", "80%").
    pub fn add_text(&mut self, flag: &str, key: &str, value: Option<&String>) {
        self.add(flag, key, value.map(|v| number_or_string(v)));
    }

    pub fn into_vec(self) -> Vec<FlagValue> {
        self.0
    }
}

pub fn number_or_string(text: &str) -> Value {
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() => serde_json::Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or_else(|| Value::from(text)),
        _ => Value::from(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_stay_numbers_and_durations_stay_text() {
        assert_eq!(number_or_string("0.1"), serde_json::json!(0.1));
        assert_eq!(number_or_string("90s"), serde_json::json!("90s"));
        assert_eq!(number_or_string("80%"), serde_json::json!("80%"));
    }
}
