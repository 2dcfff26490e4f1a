//! `backprop export [--format json|jsonl|csv] [--out FILE]`: the store's records for other
//! tools, streamed.

use super::Global;
use super::common::{CliError, open_store_refreshed};
use crate::store::export::{self, Format};
use clap::{Args, ValueEnum};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    /// One object keyed by run id (the shape of experiments.json)
    Json,
    /// One record per line
    Jsonl,
    /// One line per run with its main fields
    Csv,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  backprop export > runs.json\n  backprop export --format csv --out runs.csv\n  backprop export --format jsonl | jq .lastLoss"
)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value = "json")]
    pub format: FormatArg,
    /// Write to this file instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn execute(global: &Global, args: ExportArgs) -> Result<i32, CliError> {
    let format = match args.format {
        FormatArg::Json => Format::Json,
        FormatArg::Jsonl => Format::Jsonl,
        FormatArg::Csv => Format::Csv,
    };
    let db = open_store_refreshed()?.connect()?;
    let records = match &args.out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| CliError::usage(format!("cannot write {}: {e}", path.display())))?;
            let mut out = BufWriter::new(file);
            let n = export::write(&db, format, &mut out)?;
            out.flush()
                .map_err(|e| CliError::usage(format!("cannot write {}: {e}", path.display())))?;
            n
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            let n = export::write(&db, format, &mut out)?;
            let _ = out.flush();
            n
        }
    };
    if let Some(path) = &args.out
        && !global.quiet
    {
        crate::ui::info(&format!("wrote {records} run(s) to {}", path.display()));
    }
    Ok(0)
}
