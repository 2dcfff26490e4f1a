//! Reading a store in the JSON form: `experiments.json` as this tool wrote it before the
//! database, as the original TypeScript tool writes it, and as the export writes it: one
//! object keyed by run id. Entries stay raw JSON until they are imported.

use indexmap::IndexMap;
use serde_json::value::RawValue;

pub struct JsonStore {
    entries: IndexMap<String, Box<RawValue>>,
}

/// Why a file is not a JSON store.
#[derive(Debug)]
pub struct Corrupt(String);

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonStore {
    pub fn parse(bytes: &[u8]) -> Result<JsonStore, Corrupt> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Corrupt("the file is empty".into()));
        }
        let entries: IndexMap<String, Box<RawValue>> =
            serde_json::from_slice(bytes).map_err(|e| Corrupt(describe(&e)))?;
        Ok(JsonStore { entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// (id, raw JSON) in file order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|(id, raw)| (id.as_str(), raw.get()))
    }
}

fn describe(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Eof => "it ends early (truncated?)".to_string(),
        Category::Data => "it is JSON but not an object of runs".to_string(),
        _ => format!("not valid JSON: {e}"),
    };
    format!("{what}, at line {} column {}", e.line(), e.column())
}
