//! Wake-ups across processes: the file `wake` in the home is written whenever a slot or a
//! GPU frees (a run ends, a lease is released, a queued run leaves the queue), and processes
//! with runs waiting to start watch it, so they decide again at once instead of on a timer.
//! Only that file is watched: progress writes to the store wake nobody.

use notify::{EventKind, RecursiveMode, Watcher};
use std::io;
use std::path::{Path, PathBuf};

pub const WAKE_FILE: &str = "wake";

fn path(home: &Path) -> PathBuf {
    home.join(WAKE_FILE)
}

/// Tells every waiting process of the home that something freed.
pub fn touch(home: &Path) -> io::Result<()> {
    crate::file_writer::replace_in_place(&path(home), crate::clock::now_ms().to_string().as_bytes())
}

/// Watching the wake file; dropping it stops the watch.
pub struct WakeWatch {
    _watcher: notify::RecommendedWatcher,
}

/// Calls `on_wake` (on the watcher's thread) each time the home's wake file is written.
pub fn watch(home: &Path, on_wake: impl Fn() + Send + 'static) -> io::Result<WakeWatch> {
    let file = path(home);
    if !file.exists() {
        touch(home)?;
    }
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && matches!(event.kind, EventKind::Modify(_) | EventKind::Create(_))
        {
            on_wake();
        }
    })
    .map_err(io::Error::other)?;
    watcher
        .watch(&file, RecursiveMode::NonRecursive)
        .map_err(io::Error::other)?;
    Ok(WakeWatch { _watcher: watcher })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_touch_wakes_the_watcher() {
        let home = tempfile::tempdir().unwrap();
        let woken = Arc::new(AtomicUsize::new(0));
        let seen = woken.clone();
        let _watch = watch(home.path(), move || {
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        touch(home.path()).unwrap();
        assert!(crate::tests_support::wait_until(|| woken
            .load(Ordering::SeqCst)
            > 0));
    }
}
