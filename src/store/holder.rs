//! Who holds the store's write lock. SQLite cannot say, so each writer notes itself in a
//! small file right after taking the lock; a process that waits more than a second names the
//! holder (pid, command, and whether it is stopped, e.g. by Ctrl-Z), and so does `status`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const HOLDER_FILE: &str = "store.holder";

fn path(home: &Path) -> PathBuf {
    home.join(HOLDER_FILE)
}

/// Notes this process as the holder (called with the lock held; best effort, no fsync).
pub fn note_me(home: &Path) {
    let me = format!("{}\n{}\n", std::process::id(), own_command());
    let _ = crate::file_writer::replace_in_place(&path(home), me.as_bytes());
}

/// The process that last took the write lock, as `status` and waiters describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub command: String,
    /// Stopped by a signal (SIGSTOP, Ctrl-Z): it holds the lock until continued.
    pub stopped: bool,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.command)?;
        if self.stopped {
            write!(
                f,
                ", which is stopped (Ctrl-Z or SIGSTOP): continue it with `kill -CONT {}` or `fg`",
                self.pid
            )?;
        }
        Ok(())
    }
}

/// The noted holder, if that process still exists.
pub fn read(home: &Path) -> Option<Holder> {
    let text = std::fs::read_to_string(path(home)).ok()?;
    let mut lines = text.lines();
    let pid: u32 = lines.next()?.trim().parse().ok()?;
    let state = process_state(pid)?;
    Some(Holder {
        pid,
        command: lines.next().unwrap_or("?").to_string(),
        stopped: matches!(state, 'T' | 't'),
    })
}

/// The state letter of `pid` in /proc (R, S, T, Z, ...), None when it is gone.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat[stat.rfind(')')? + 1..].split_whitespace().next()?;
    state.chars().next().filter(|c| *c != 'Z' && *c != 'X')
}

fn own_command() -> String {
    let args: Vec<String> = std::env::args().collect();
    let mut text = args.join(" ");
    if text.len() > 200 {
        text.truncate(200);
        text.push('…');
    }
    text
}

/// Who holds the write lock right now (None when nobody does, or it cannot be told).
pub fn current(home: &Path) -> Option<Holder> {
    let conn = rusqlite::Connection::open_with_flags(
        home.join(super::DB_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
    )
    .ok()?;
    match conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;") {
        Ok(()) => None,
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            read(home).or(Some(Holder {
                pid: 0,
                command: "an unknown process".into(),
                stopped: false,
            }))
        }
        Err(_) => None,
    }
}

/// SQLite's busy handler for a store in `home`: waits as long as it takes (backing off up to
/// 20 ms between tries), and after a second says once who holds the lock.
pub fn busy_handler(home: PathBuf) -> impl FnMut(i32) -> bool + Send + 'static {
    let mut since = Instant::now();
    let mut told = false;
    move |tries| {
        if tries == 0 {
            since = Instant::now();
            told = false;
        }
        if !told && since.elapsed() >= Duration::from_secs(1) {
            told = true;
            let holder = read(&home)
                .map(|h| format!("it is held by {h}"))
                .unwrap_or_else(|| "its holder is unknown".to_string());
            crate::ui::warn(&format!(
                "waiting for the store in {}: {holder}",
                home.display()
            ));
        }
        let pause = 1u64 << (tries.clamp(0, 4) as u32);
        std::thread::sleep(Duration::from_millis(pause.min(20)));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noted_holder_is_read_back_with_its_state() {
        let home = tempfile::tempdir().unwrap();
        note_me(home.path());
        let me = read(home.path()).unwrap();
        assert_eq!(me.pid, std::process::id());
        assert!(!me.stopped);
        std::fs::write(path(home.path()), "4000000\nghost\n").unwrap();
        assert_eq!(
            read(home.path()),
            None,
            "a holder that is gone is not named"
        );
    }

    #[test]
    fn a_stopped_holder_is_said_to_be_stopped_with_what_to_do() {
        let holder = Holder {
            pid: 42,
            command: "backprop run train.py".into(),
            stopped: true,
        };
        let text = holder.to_string();
        assert!(text.contains("pid 42 (backprop run train.py)"), "{text}");
        assert!(text.contains("kill -CONT 42"), "{text}");
    }
}
