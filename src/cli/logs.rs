//! `backprop logs <run-id> [-f] [--stderr]`: the run's captured output, byte for byte, with a
//! marker line where each attempt after the first begins.

use super::Global;
use super::common::{CliError, find_run, open_store_refreshed};
use super::out;
use crate::record::RunRecord;
use clap::Args;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

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
    let mut rec = find_run(&store, &args.run_id)?;
    let path = store.run_dir(&rec.id).join(if args.stderr {
        "stderr.log"
    } else {
        "stdout.log"
    });
    let mut copy = Copy::default();
    let mut unplaced_since: Option<Instant> = None;
    loop {
        // The file first, then the record: an attempt that wrote any of these bytes was
        // admitted before this read, so the record read after it knows the attempt.
        let bytes = copy.read_new(&path)?;
        rec = store.get(&rec.id).unwrap_or(rec);
        let active = rec.status().is_active();
        if args.follow && active && start_unplaced(&rec) {
            // Its Worker records where it starts a moment after starting it: wait for that
            // (not forever: a record that never gets it is shown without the marker).
            if unplaced_since.get_or_insert_with(Instant::now).elapsed() < PLACING_WAIT {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        } else {
            unplaced_since = None;
        }
        copy.print(&bytes, &markers(&rec, args.stderr));
        if !args.follow || out::is_gone() {
            return Ok(0);
        }
        if !active {
            // One last read: the run may have written its final lines just before ending.
            let bytes = copy.read_new(&path)?;
            copy.print(&bytes, &markers(&rec, args.stderr));
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// How long `-f` waits for a new attempt's start in the logs to be recorded.
const PLACING_WAIT: Duration = Duration::from_secs(2);

/// The run's latest attempt is a later one under way whose start in the logs is not recorded
/// yet.
fn start_unplaced(rec: &RunRecord) -> bool {
    rec.current_attempt().is_some_and(|a| {
        a.number > 1 && a.is_open() && a.stdout_offset == 0 && a.stderr_offset == 0
    })
}

/// Where an attempt after the first begins in a log file, and the line that says so.
#[derive(Clone, Debug, PartialEq)]
struct Marker {
    attempt: u32,
    offset: u64,
    line: String,
}

/// The markers of a run's attempts in its stdout (or stderr) log. An attempt with offset 0
/// after the first is from a store that did not record offsets: it gets no marker.
fn markers(rec: &RunRecord, stderr: bool) -> Vec<Marker> {
    let mut markers: Vec<Marker> = rec
        .attempts
        .iter()
        .filter(|a| a.number > 1)
        .filter_map(|a| {
            let offset = if stderr {
                a.stderr_offset
            } else {
                a.stdout_offset
            };
            (offset > 0).then(|| Marker {
                attempt: a.number,
                offset,
                line: marker_line(a.number, a.resumed_from.as_deref()),
            })
        })
        .collect();
    markers.sort_by_key(|m| m.offset);
    markers
}

fn marker_line(attempt: u32, resumed_from: Option<&str>) -> String {
    match resumed_from {
        Some(path) => format!("── attempt {attempt} (resumed from {path}) ──\n"),
        None => format!("── attempt {attempt} ──\n"),
    }
}

/// One piece of what is printed: bytes of the file, or a marker.
#[derive(Debug, PartialEq)]
enum Piece<'m> {
    Bytes(u64, u64),
    Marker(&'m Marker),
}

/// Bytes `from..to` of the file with the markers not shown yet that fall in it (a marker at
/// `to` too: its attempt may not have written anything yet).
fn pieces<'m>(from: u64, to: u64, markers: &'m [Marker], shown: &BTreeSet<u32>) -> Vec<Piece<'m>> {
    let mut pieces = Vec::new();
    let mut at = from;
    for marker in markers {
        if shown.contains(&marker.attempt) || marker.offset < from || marker.offset > to {
            continue;
        }
        if marker.offset > at {
            pieces.push(Piece::Bytes(at, marker.offset));
            at = marker.offset;
        }
        pieces.push(Piece::Marker(marker));
    }
    if to > at {
        pieces.push(Piece::Bytes(at, to));
    }
    pieces
}

/// Copies a growing log to stdout, remembering how far it got and which markers it printed.
#[derive(Default)]
struct Copy {
    offset: u64,
    shown: BTreeSet<u32>,
}

impl Copy {
    /// What the file holds past what was printed.
    fn read_new(&self, path: &Path) -> Result<Vec<u8>, CliError> {
        let unreadable =
            |e: std::io::Error| CliError::usage(format!("cannot read {}: {e}", path.display()));
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(unreadable(e)),
        };
        file.seek(SeekFrom::Start(self.offset))
            .map_err(unreadable)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(unreadable)?;
        Ok(buf)
    }

    /// Prints `bytes` (read at the current offset) with the markers that fall in them.
    fn print(&mut self, bytes: &[u8], markers: &[Marker]) {
        let start = self.offset;
        let end = start + bytes.len() as u64;
        for piece in pieces(start, end, markers, &self.shown) {
            let written = match piece {
                Piece::Bytes(a, b) => {
                    out::write_bytes(&bytes[(a - start) as usize..(b - start) as usize])
                }
                Piece::Marker(m) => {
                    self.shown.insert(m.attempt);
                    out::print(&m.line)
                }
            };
            if !written {
                break; // stdout closed (e.g. piped into head): nothing more to do
            }
        }
        self.offset = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(attempt: u32, offset: u64) -> Marker {
        Marker {
            attempt,
            offset,
            line: marker_line(attempt, None),
        }
    }

    #[test]
    fn markers_split_the_bytes_where_attempts_begin() {
        let markers = [marker(2, 10), marker(3, 25)];
        let none = BTreeSet::new();
        assert_eq!(
            pieces(0, 30, &markers, &none),
            [
                Piece::Bytes(0, 10),
                Piece::Marker(&markers[0]),
                Piece::Bytes(10, 25),
                Piece::Marker(&markers[1]),
                Piece::Bytes(25, 30),
            ]
        );
        // Following: a later read starts past the first marker, which was shown.
        let shown = BTreeSet::from([2]);
        assert_eq!(
            pieces(20, 25, &markers, &shown),
            [Piece::Bytes(20, 25), Piece::Marker(&markers[1])]
        );
        // Nothing new: only a marker not shown yet at the end of the file.
        assert_eq!(pieces(30, 30, &markers, &BTreeSet::from([2, 3])), []);
    }

    #[test]
    fn a_later_attempt_without_its_start_recorded_is_unplaced() {
        use crate::record::{Attempt, RunSpec};
        let mut rec = RunRecord::new(
            crate::runid::RunId::parse("r").unwrap(),
            "r".into(),
            RunSpec::default(),
            1,
        );
        let open = |number: u32, offset: u64| {
            let mut attempt = Attempt::default();
            attempt.number = number;
            attempt.start_time = Some(1);
            attempt.stdout_offset = offset;
            attempt
        };
        rec.attempts.push(open(1, 0));
        assert!(!start_unplaced(&rec), "the first attempt starts at 0");
        rec.attempts.push(open(2, 0));
        assert!(start_unplaced(&rec));
        rec.attempts[1].stdout_offset = 120;
        assert!(!start_unplaced(&rec));
    }

    #[test]
    fn marker_lines_say_where_the_attempt_resumed_from() {
        assert_eq!(
            marker_line(2, Some("/ck/c-10.pt")),
            "── attempt 2 (resumed from /ck/c-10.pt) ──\n"
        );
        assert_eq!(marker_line(3, None), "── attempt 3 ──\n");
    }
}
