//! Templates: `{param}` replaced by the param's value, `{{`/`}}` literal braces, and `{args}`
//! (a whole element of `args`) standing for `--param value` for every param.

use super::errors::quote;
use super::json::{Json, Params};

/// The template that stands for every param as `--name value`.
pub(crate) const ARGS: &str = "args";

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Param(String),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `source`; the error says what is wrong with it (no location).
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        while let Some(c) = rest.chars().next() {
            match c {
                '{' if rest.starts_with("{{") => {
                    text.push('{');
                    rest = &rest[2..];
                }
                '}' if rest.starts_with("}}") => {
                    text.push('}');
                    rest = &rest[2..];
                }
                '{' => {
                    let inner = &rest[1..];
                    let end = match inner.find(['{', '}']) {
                        Some(end) if inner[end..].starts_with('}') => end,
                        _ => {
                            return Err(format!(
                                "unclosed {{ in {} (write {{{{ for a literal brace)",
                                quote(source)
                            ));
                        }
                    };
                    let name = &inner[..end];
                    if name.is_empty() {
                        return Err(format!(
                            "empty template {{}} in {} (write {{{{}}}} for literal braces)",
                            quote(source)
                        ));
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Param(name.to_string()));
                    rest = &inner[end + 1..];
                }
                '}' => {
                    return Err(format!(
                        "unmatched }} in {} (write }}}} for a literal brace)",
                        quote(source)
                    ));
                }
                _ => {
                    text.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template { pieces })
    }

    /// Exactly `{args}`.
    pub fn is_args(&self) -> bool {
        matches!(self.pieces.as_slice(), [Piece::Param(p)] if p == ARGS)
    }

    /// Uses `{args}` anywhere.
    pub fn mentions_args(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Param(name) if name == ARGS))
    }

    /// Fills in the params; the error is the first template that is not a param.
    pub fn render(&self, params: &Params) -> Result<String, String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Param(name) => match params.iter().find(|(k, _)| k == name) {
                    Some((_, value)) => out.push_str(&value_text(value)),
                    None => return Err(name.clone()),
                },
            }
        }
        Ok(out)
    }
}

/// `{args}`: `--name value` for every param, in order, as separate elements.
pub(crate) fn args_pairs(params: &Params) -> Vec<String> {
    params
        .iter()
        .flat_map(|(name, value)| [format!("--{name}"), value_text(value)])
        .collect()
}

/// A param's value as text: strings raw, booleans `true`/`false`, whole numbers as they are,
/// other numbers as Python prints a float ([`float_text`]).
pub(crate) fn value_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        Json::Number(n) => n.as_f64().map(float_text).unwrap_or_else(|| n.to_string()),
        other => other.to_string(),
    }
}

/// A float as Python's `repr`/`json.dumps` prints it: the shortest digits that read back as
/// the same number, positional from 1e-4 up to 1e16 (`0.0001`, `32.0`), else with a signed
/// two-digit exponent (`1e-05`, `1.5e+16`).
pub(crate) fn float_text(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let shortest = format!("{value:e}");
    let (mantissa, exponent) = shortest.split_once('e').unwrap_or((&shortest, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exponent) {
        if exponent < 0 {
            let zeros = "0".repeat((-exponent - 1) as usize);
            format!("{sign}0.{zeros}{digits}")
        } else {
            let point = exponent as usize + 1;
            if digits.len() > point {
                format!("{sign}{}.{}", &digits[..point], &digits[point..])
            } else {
                let zeros = "0".repeat(point - digits.len());
                format!("{sign}{digits}{zeros}.0")
            }
        }
    } else {
        let (first, others) = digits.split_at(1);
        let fraction = if others.is_empty() {
            String::new()
        } else {
            format!(".{others}")
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{sign}{first}{fraction}e{exponent_sign}{:02}",
            exponent.abs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python() {
        let cases = [
            (0.1, "0.1"),
            (0.01, "0.01"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (0.000123457, "0.000123457"),
            (32.0, "32.0"),
            (100.0, "100.0"),
            (123.456, "123.456"),
            (0.0, "0.0"),
            (-0.5, "-0.5"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e20, "1.2345e+20"),
            (-2.5e-10, "-2.5e-10"),
            (1e100, "1e+100"),
        ];
        for (value, text) in cases {
            assert_eq!(float_text(value), text, "{value}");
        }
    }

    #[test]
    fn values_as_text() {
        assert_eq!(value_text(&Json::Number(32.into())), "32");
        assert_eq!(value_text(&Json::Number((-3).into())), "-3");
        assert_eq!(value_text(&Json::String("adam".into())), "adam");
        assert_eq!(value_text(&Json::Bool(true)), "true");
        let f = Json::Number(serde_json::Number::from_f64(1e-5).unwrap());
        assert_eq!(value_text(&f), "1e-05");
    }

    #[test]
    fn templates_parse_and_render() {
        let params: Params = vec![
            (
                "lr".into(),
                Json::Number(serde_json::Number::from_f64(0.1).unwrap()),
            ),
            ("bs".into(), Json::Number(32.into())),
        ];
        let t = Template::parse("lr{lr}-bs{bs}").unwrap();
        assert_eq!(t.render(&params).unwrap(), "lr0.1-bs32");
        let t = Template::parse("{{\"lr\": {lr}}}").unwrap();
        assert_eq!(t.render(&params).unwrap(), "{\"lr\": 0.1}");
        assert_eq!(
            Template::parse("{{}}").unwrap().render(&params).unwrap(),
            "{}"
        );
        assert_eq!(Template::parse("").unwrap().render(&params).unwrap(), "");
        assert_eq!(
            Template::parse("é{lr}ü").unwrap().render(&params).unwrap(),
            "é0.1ü"
        );
        assert_eq!(
            Template::parse("{bz}").unwrap().render(&params),
            Err("bz".to_string())
        );
        assert!(Template::parse("{args}").unwrap().is_args());
        let inside = Template::parse("x{args}").unwrap();
        assert!(!inside.is_args() && inside.mentions_args());
        assert_eq!(args_pairs(&params), ["--lr", "0.1", "--bs", "32"]);
    }

    #[test]
    fn template_syntax_errors() {
        let err = Template::parse("lr{lr").unwrap_err();
        assert!(err.starts_with("unclosed { in \"lr{lr\""), "{err}");
        let err = Template::parse("{a{b}").unwrap_err();
        assert!(err.starts_with("unclosed {"), "{err}");
        let err = Template::parse("a}b").unwrap_err();
        assert!(err.starts_with("unmatched } in \"a}b\""), "{err}");
        let err = Template::parse("x{}").unwrap_err();
        assert!(err.starts_with("empty template {}"), "{err}");
    }
}
