//! `import backprop_helper` in every run: the helper module (`python/backprop_helper.py` in the
//! repository) is built into the binary, written to `<home>/python/` when it is missing or
//! differs, and that directory goes first on the script's PYTHONPATH.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The module's source, as this binary ships it.
pub const SOURCE: &str = include_str!("../python/backprop_helper.py");

const FILE_NAME: &str = "backprop_helper.py";

/// The directory under the home that holds the module.
pub fn dir_in(home: &Path) -> PathBuf {
    home.join("python")
}

/// Makes `dir/backprop_helper.py` this binary's helper (0600): written only when missing or
/// different, through a temporary file renamed into place, so a script importing it at the
/// same moment sees the old file or the new one, never half of one.
pub fn install(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(FILE_NAME);
    if std::fs::read(&path).is_ok_and(|current| current == SOURCE.as_bytes()) {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // Unique per process and call: processes (and Workers) may install at the same time.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let temporary = dir.join(format!(
        ".{FILE_NAME}.{}-{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(SOURCE.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// PYTHONPATH with `dir` first and the existing value (if any) after it. An empty existing
/// value adds nothing: a trailing `:` would put the working directory on the path.
pub fn pythonpath(dir: &Path, existing: Option<&str>) -> String {
    match existing.filter(|v| !v.is_empty()) {
        Some(rest) => format!("{}:{rest}", dir.display()),
        None => dir.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn installs_once_private_and_replaces_a_stale_copy() {
        let home = tempfile::tempdir().unwrap();
        let dir = dir_in(home.path());
        install(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), SOURCE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        // The same content is left alone (its modification time does not move).
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        install(&dir).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );

        std::fs::write(&path, "old helper").unwrap();
        install(&dir).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), SOURCE);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary files left behind");
    }

    #[test]
    fn the_helper_goes_first_and_keeps_what_was_there() {
        let dir = Path::new("/h/python");
        assert_eq!(pythonpath(dir, None), "/h/python");
        assert_eq!(pythonpath(dir, Some("")), "/h/python");
        assert_eq!(pythonpath(dir, Some("/a:/b")), "/h/python:/a:/b");
    }

    #[test]
    fn the_shipped_source_is_the_module() {
        assert!(SOURCE.contains("def report("));
        assert!(SOURCE.contains("def checkpoint_saved("));
    }
}
