//! Where the store lives and how its files are created: the user's only (0700 / 0600).

use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// `$BACKPROP_HOME`, else `~/.backprop`; always absolute, since scripts running in other
/// directories get paths inside it (BACKPROP_RUN_DIR).
pub fn default_home() -> PathBuf {
    if let Some(home) = std::env::var_os("BACKPROP_HOME").filter(|h| !h.is_empty()) {
        let home = PathBuf::from(home);
        return match std::env::current_dir() {
            Ok(here) if home.is_relative() => here.join(home),
            _ => home,
        };
    }
    let user_home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    user_home.join(".backprop")
}

/// Creates `dir` (and parents) if needed; a directory we create is 0700.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    match DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(e) => return Err(e),
    }
    if !fs::metadata(dir)?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    Ok(())
}

/// Open options that create files readable by the user only.
pub fn private_file(options: &mut OpenOptions) -> &mut OpenOptions {
    options.mode(0o600)
}
