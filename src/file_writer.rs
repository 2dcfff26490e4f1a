//! Small writes of a run's files off the actor thread (resource samples, the timebox file),
//! and whole-line appends: a line torn by an earlier crash or a full disk is ended before
//! anything new is appended, so two lines are never glued together.

use crate::store::private_file;
use crossbeam_channel::{Sender, unbounded};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

enum Op {
    AppendLine(PathBuf, String),
    Replace(PathBuf, Vec<u8>),
}

/// A thread that writes a run's small files, in order. It ends when the writer is dropped.
pub struct FileWriter {
    ops: Sender<Op>,
}

impl FileWriter {
    pub fn start(name: &str) -> io::Result<FileWriter> {
        let (ops, queue) = unbounded::<Op>();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                for op in queue {
                    let (path, result) = match op {
                        Op::AppendLine(path, line) => {
                            let r = append_line(&path, &line);
                            (path, r)
                        }
                        Op::Replace(path, bytes) => {
                            let r = replace(&path, &bytes);
                            (path, r)
                        }
                    };
                    if let Err(e) = result {
                        tracing::warn!("cannot write {}: {e}", path.display());
                    }
                }
            })?;
        Ok(FileWriter { ops })
    }

    pub fn append_line(&self, path: PathBuf, line: String) {
        let _ = self.ops.send(Op::AppendLine(path, line));
    }

    pub fn replace(&self, path: PathBuf, bytes: Vec<u8>) {
        let _ = self.ops.send(Op::Replace(path, bytes));
    }
}

/// Opens `path` (0600) for appending whole lines: if it ends inside a line (a crash, a full
/// disk), that line is ended first.
pub fn open_for_lines(path: &Path) -> io::Result<AppendFile> {
    let mut file =
        private_file(OpenOptions::new().create(true).append(true).read(true)).open(path)?;
    end_torn_line(&mut file)?;
    let len = file.metadata()?.len();
    Ok(AppendFile { file, len })
}

/// A file appended to by whole writes: a write that fails part way (a full disk) is taken
/// back, so the file never keeps half of what was written.
pub struct AppendFile {
    file: File,
    len: u64,
}

impl AppendFile {
    /// The file's length: where the next write lands.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Write for AppendFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.file.write_all(buf) {
            Ok(()) => {
                self.len += buf.len() as u64;
                Ok(buf.len())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn end_torn_line(file: &mut File) -> io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last[0] != b'\n' {
        file.write_all(b"\n")?;
    }
    Ok(())
}

/// Appends `line` and a newline in one write.
pub fn append_line(path: &Path, line: &str) -> io::Result<()> {
    let mut file = open_for_lines(path)?;
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    file.write_all(&bytes)
}

/// Replaces `path` atomically (a temporary file renamed over it).
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = path.with_extension("tmp");
    let mut file =
        private_file(OpenOptions::new().create(true).write(true).truncate(true)).open(&temp)?;
    file.write_all(bytes)?;
    std::fs::rename(&temp, path)
}

/// Rewrites `path` in place (no rename, so a watch on the file keeps working).
pub fn replace_in_place(path: &Path, bytes: &[u8]) -> io::Result<()> {
    private_file(OpenOptions::new().create(true).write(true).truncate(true))
        .open(path)?
        .write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_ended_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, b"{\"step\": 1}\n{\"step\": 2, \"lo").unwrap();
        append_line(&path, "{\"step\": 3}").unwrap();
        append_line(&path, "{\"step\": 4}").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"step\": 1}\n{\"step\": 2, \"lo\n{\"step\": 3}\n{\"step\": 4}\n"
        );
    }

    #[test]
    fn the_writer_thread_writes_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let writer = FileWriter::start("test-writer").unwrap();
        let lines = dir.path().join("r.jsonl");
        for i in 0..50 {
            writer.append_line(lines.clone(), format!("{i}"));
        }
        writer.replace(dir.path().join("t.json"), b"{}".to_vec());
        drop(writer);
        // The thread drains its queue after the sender is gone.
        let done = crate::tests_support::wait_until(|| {
            std::fs::read_to_string(&lines).is_ok_and(|t| t.lines().count() == 50)
                && dir.path().join("t.json").exists()
        });
        assert!(done);
        let text = std::fs::read_to_string(&lines).unwrap();
        assert!(text.lines().enumerate().all(|(i, l)| l == i.to_string()));
    }
}
