//! `backprop logs <run-id> [-f] [--stderr]`: the run's captured output, byte for byte.

use super::Global;
use super::common::{CliError, find_run, open_store_refreshed};
use clap::Args;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  backprop logs <run-id> -f")]
pub struct LogsArgs {
    pub run_id: crate::runid::RunId,
    /// Keep printing new output until the run ends
    #[arg(short, long)]
    pub follow: bool,
    /// The script's stderr instead of its stdout
    #[arg(long)]
    pub stderr: bool,
}

pub fn execute(_global: &Global, args: LogsArgs) -> Result<i32, CliError> {
    let store = open_store_refreshed()?;
    let rec = find_run(&store, &args.run_id)?;
    let path = store.run_dir(&rec.id).join(if args.stderr {
        "stderr.log"
    } else {
        "stdout.log"
    });
    let mut out = std::io::stdout().lock();
    let mut offset = 0u64;
    loop {
        offset += copy_from(&path, offset, &mut out)?;
        if !args.follow {
            return Ok(0);
        }
        let active = store
            .get(&rec.id)
            .map(|r| r.status().is_active())
            .unwrap_or(false);
        if !active {
            // One last read: the run may have written its final lines just before ending.
            copy_from(&path, offset, &mut out)?;
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Copies whatever `path` holds after `offset`; returns how many bytes.
fn copy_from(path: &std::path::Path, offset: u64, out: &mut impl Write) -> Result<u64, CliError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(CliError::usage(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| CliError::usage(e.to_string()))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)
        .map_err(|e| CliError::usage(e.to_string()))?;
    if out.write_all(&buf).and_then(|_| out.flush()).is_err() {
        // stdout closed (e.g. piped into head): nothing more to do.
        std::process::exit(0);
    }
    Ok(buf.len() as u64)
}
