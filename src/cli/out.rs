//! Command output on stdout. A reader that went away (`backprop list | head -1`) ends the
//! output quietly: the rest is skipped, with no panic and no message, and the command goes on
//! to its own end (a run keeps running and is recorded; only what it prints is lost).

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout could not be written; nothing more is tried.
static GONE: AtomicBool = AtomicBool::new(false);

/// Writes `bytes` to stdout; false when stdout is gone (now or before).
pub fn write_bytes(bytes: &[u8]) -> bool {
    if GONE.load(Ordering::Relaxed) {
        return false;
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => true,
        Err(e) => {
            GONE.store(true, Ordering::Relaxed);
            // A closed pipe is the reader's choice; anything else (a full disk) is worth a word.
            if e.kind() != ErrorKind::BrokenPipe {
                crate::ui::warn(&format!("cannot write to stdout: {e}"));
            }
            false
        }
    }
}

/// `text` as it is.
pub fn print(text: &str) -> bool {
    write_bytes(text.as_bytes())
}

/// `text` and a newline.
pub fn line(text: &str) -> bool {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(b'\n');
    write_bytes(&bytes)
}

/// Whether stdout went away.
pub fn is_gone() -> bool {
    GONE.load(Ordering::Relaxed)
}
