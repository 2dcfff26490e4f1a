//! The last lines of a run's log file, read backwards from its end in blocks, so a log of any
//! size costs only what is shown.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// A tail never reads more than this from the end of the file (a log with very long lines
/// shows fewer of them).
pub const MAX_BYTES: u64 = 4 << 20;
const BLOCK: u64 = 64 << 10;

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Tail {
    /// The last lines, oldest first, without their line ends; bytes that are not UTF-8 are
    /// shown as U+FFFD.
    pub lines: Vec<String>,
    /// The file's size when read.
    pub size: u64,
    /// Earlier lines exist that are not shown.
    pub truncated: bool,
}

/// The last `n` lines of `path` (a missing file is empty: the run has written nothing yet).
pub fn last_lines(path: &Path, n: usize) -> io::Result<Tail> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Tail::default()),
        Err(e) => return Err(e),
    };
    let size = file.metadata()?.len();
    let mut start = size;
    let mut bytes: Vec<u8> = Vec::new();
    // One newline more than lines asked for tells where the first of them starts; a final
    // newline ends the last line rather than starting an empty one.
    let wanted = n + 1 + usize::from(ends_with_newline(&mut file, size)?);
    while start > 0 && size - start < MAX_BYTES && count_newlines(&bytes) < wanted {
        let step = BLOCK.min(start);
        start -= step;
        let mut block = vec![0; step as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&bytes);
        bytes = block;
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    // The first piece is a whole line only when the read reached the file's start.
    let partial_first = start > 0;
    if partial_first && !lines.is_empty() {
        lines.remove(0);
    }
    let truncated = partial_first || lines.len() > n;
    let keep = lines.len().saturating_sub(n);
    Ok(Tail {
        lines: lines[keep..]
            .iter()
            .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
            .collect(),
        size,
        truncated,
    })
}

fn ends_with_newline(file: &mut File, size: u64) -> io::Result<bool> {
    if size == 0 {
        return Ok(false);
    }
    let mut last = [0u8];
    file.seek(SeekFrom::Start(size - 1))?;
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

fn count_newlines(bytes: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', bytes).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail_of(content: &[u8], n: usize) -> Tail {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout.log");
        std::fs::write(&path, content).unwrap();
        last_lines(&path, n).unwrap()
    }

    #[test]
    fn the_last_lines_oldest_first() {
        let t = tail_of(b"a\nb\nc\n", 2);
        assert_eq!(t.lines, ["b", "c"]);
        assert!(t.truncated);
        assert_eq!(t.size, 6);
        let t = tail_of(b"a\nb\nc\n", 3);
        assert_eq!(t.lines, ["a", "b", "c"]);
        assert!(!t.truncated);
        assert_eq!(tail_of(b"a\nb\nc", 2).lines, ["b", "c"], "no final newline");
        assert_eq!(tail_of(b"a\r\nb\r\n", 5).lines, ["a", "b"]);
        assert_eq!(tail_of(b"\n\n", 5).lines, ["", ""]);
        assert!(tail_of(b"", 5).lines.is_empty());
        assert_eq!(tail_of(b"x\xffy\n", 1).lines, ["x\u{fffd}y"]);
    }

    #[test]
    fn a_long_log_is_read_from_its_end_only() {
        let mut content = Vec::new();
        for i in 0..200_000 {
            content.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        let t = tail_of(&content, 3);
        assert_eq!(t.lines, ["line 199997", "line 199998", "line 199999"]);
        // Lines across a block boundary come out whole.
        let t = tail_of(&content, 10_000);
        assert_eq!(t.lines.len(), 10_000);
        assert_eq!(t.lines[0], "line 190000");
    }

    #[test]
    fn a_huge_line_is_bounded() {
        let mut content = vec![b'x'; (MAX_BYTES + BLOCK * 2) as usize];
        content.extend_from_slice(b"\nend\n");
        let t = tail_of(&content, 2);
        assert_eq!(t.lines, ["end"], "the partial giant line is not shown");
        assert!(t.truncated);
    }

    #[test]
    fn a_missing_log_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            last_lines(&dir.path().join("none"), 5).unwrap(),
            Tail::default()
        );
    }
}
