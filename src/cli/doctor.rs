//! `backprop doctor [--reimport FILE]`: checks the store (SQLite's integrity check), lists
//! what damaged files moved aside still hold, and imports the runs of one of them.

use super::Global;
use super::common::{CliError, home};
use crate::store::legacy_json::JsonStore;
use crate::store::{DB_FILE, EXPERIMENTS_FILE, Store, query};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  backprop doctor\n  backprop doctor --reimport ~/.backprop/backprop.db.damaged-1796090000000"
)]
pub struct DoctorArgs {
    /// Import the runs this damaged database or JSON store still holds (ones the store lacks)
    #[arg(long, value_name = "FILE")]
    pub reimport: Option<PathBuf>,
}

pub fn execute(global: &Global, args: DoctorArgs) -> Result<i32, CliError> {
    let home = home();
    let store = Store::open(&home)?;
    if let Some(file) = &args.reimport {
        let entries = salvage(file)?;
        let json = JsonStore::parse(&entries_to_json(&entries))
            .map_err(|e| CliError::usage(format!("{}: {e}", file.display())))?;
        let done = store.update(|tx| crate::store::import::import(tx, &json))?;
        println!(
            "imported {} run(s) from {} ({} already in the store, {} unreadable kept aside)",
            done.records,
            file.display(),
            done.known,
            done.unreadable
        );
        return Ok(0);
    }
    let db = store.connect()?;
    let check: Vec<String> = {
        let mut statement = db
            .conn()
            .prepare("PRAGMA integrity_check")
            .map_err(|e| CliError::usage(e.to_string()))?;
        statement
            .query_map([], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| CliError::usage(e.to_string()))?
    };
    let healthy = check == ["ok"];
    let runs = query::count(db.conn())?;
    println!(
        "store     {} ({runs} runs, {}): {}",
        home.join(DB_FILE).display(),
        super::status::journal_text(&db.journal),
        if healthy {
            "ok".to_string()
        } else {
            check.join("; ")
        }
    );
    let unreadable = query::unreadable(db.conn())?;
    if !unreadable.is_empty() {
        println!(
            "          {} imported entries are not readable records, kept as they were:",
            unreadable.len()
        );
        for (id, _, why) in unreadable.iter().take(10) {
            println!("            {id}: {why}");
        }
    }
    let mut found_aside = false;
    for file in aside_files(&home) {
        found_aside = true;
        match salvage(&file) {
            Ok(entries) => {
                let missing = entries
                    .iter()
                    .filter(|(id, _)| store.get(id).is_err())
                    .count();
                println!(
                    "aside     {}: {} run(s), {missing} not in the store{}",
                    file.display(),
                    entries.len(),
                    if missing > 0 {
                        format!(
                            "; bring them back with: backprop doctor --reimport {}",
                            file.display()
                        )
                    } else {
                        String::new()
                    }
                );
            }
            Err(e) => println!("aside     {}: {}", file.display(), e.message),
        }
    }
    if !found_aside && !global.quiet {
        println!("aside     no damaged files in {}", home.display());
    }
    Ok(if healthy { 0 } else { 1 })
}

fn aside_files(home: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(home)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name.starts_with(&format!("{DB_FILE}.damaged-"))
                && !name.ends_with("-wal")
                && !name.ends_with("-shm"))
                || name.starts_with(&format!("{EXPERIMENTS_FILE}.corrupt-"))
        })
        .collect();
    files.sort();
    files
}

/// (id, record JSON) of every entry still readable in a damaged database or JSON store.
fn salvage(file: &Path) -> Result<Vec<(String, String)>, CliError> {
    let bytes = std::fs::read(file)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?;
    if bytes.starts_with(b"SQLite format 3\0") {
        return salvage_database(file);
    }
    salvage_json(&bytes).ok_or_else(|| {
        CliError::usage(format!(
            "{} is neither a backprop database nor a JSON store with readable runs",
            file.display()
        ))
    })
}

fn salvage_database(file: &Path) -> Result<Vec<(String, String)>, CliError> {
    let conn =
        rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| CliError::usage(format!("cannot open {}: {e}", file.display())))?;
    let mut entries = Vec::new();
    let statement = conn.prepare("SELECT id, record FROM runs");
    let Ok(mut statement) = statement else {
        return Ok(entries);
    };
    let Ok(mut rows) = statement.query([]) else {
        return Ok(entries);
    };
    // Read row by row: a damaged page ends the scan, the rows before it are kept.
    while let Ok(Some(row)) = rows.next() {
        if let (Ok(id), Ok(raw)) = (row.get::<_, String>(0), row.get::<_, String>(1)) {
            entries.push((id, raw));
        }
    }
    Ok(entries)
}

/// A JSON store, or as much of a truncated one as ends with a whole entry.
fn salvage_json(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let whole = |json: &JsonStore| {
        json.entries()
            .map(|(id, raw)| (id.to_string(), raw.to_string()))
            .collect::<Vec<_>>()
    };
    if let Ok(json) = JsonStore::parse(bytes) {
        return Some(whole(&json));
    }
    // Entries are separated by ",\n" at the top level in files backprop writes: cut at the
    // last separator after which the rest is damaged.
    let text = String::from_utf8_lossy(bytes);
    let cuts: Vec<usize> = text.match_indices(",\n\"").map(|(i, _)| i).collect();
    cuts.iter().rev().find_map(|cut| {
        let mut candidate = text[..*cut].to_string();
        candidate.push_str("\n}");
        JsonStore::parse(candidate.as_bytes())
            .ok()
            .map(|j| whole(&j))
    })
}

fn entries_to_json(entries: &[(String, String)]) -> Vec<u8> {
    let mut out = String::from("{");
    for (i, (id, raw)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(id).unwrap_or_default());
        out.push(':');
        out.push_str(raw);
    }
    out.push('}');
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_json_store_gives_back_its_whole_entries() {
        let text = "{\n\"a\": {\"id\":\"a\"},\n\"b\": {\"id\":\"b\"},\n\"c\": {\"id\":";
        let entries = salvage_json(text.as_bytes()).unwrap();
        let ids: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(salvage_json(b"garbage").is_none());
    }
}
