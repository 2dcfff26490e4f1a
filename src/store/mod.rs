//! The durable store: `$BACKPROP_HOME/experiments.json` plus `runs/<id>/`.
//!
//! Every change is a read-modify-write under an exclusive `flock` on `experiments.json.lock`,
//! shared by every backprop process of the home. The new file is written to a temporary
//! file, fsynced and renamed over the old one, so a reader (or a crash) only ever sees a
//! whole file. Records are kept as raw JSON until someone asks for one, so an update of
//! one run among thousands does not re-parse or re-serialise the others.

mod experiments;
mod home;

pub use experiments::Experiments;
pub use home::{default_home, ensure_private_dir, private_file};

use crate::record::RunRecord;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub const EXPERIMENTS_FILE: &str = "experiments.json";
const LOCK_FILE: &str = "experiments.json.lock";
const TEMP_FILE: &str = "experiments.json.tmp";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot write to the backprop home {path}: {source}; make it writable or point BACKPROP_HOME at a directory you own"
    )]
    Unwritable { path: PathBuf, source: io::Error },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("no run {0:?} in the store; `backprop list` shows the runs")]
    NotFound(String),
    #[error(
        "the record of run {id:?} cannot be read ({message}); it is kept as it is in experiments.json"
    )]
    Unreadable { id: String, message: String },
}

/// A handle on one home. Cheap to clone; holds no open files between calls.
#[derive(Clone, Debug)]
pub struct Store {
    home: PathBuf,
}

impl Store {
    /// Opens (creating if needed, mode 0700) the home and checks that it can be written.
    pub fn open(home: &Path) -> Result<Store, StoreError> {
        ensure_private_dir(home).map_err(|source| StoreError::Unwritable {
            path: home.to_path_buf(),
            source,
        })?;
        let store = Store {
            home: home.to_path_buf(),
        };
        store.lock_file()?;
        Ok(store)
    }

    /// A handle for reading only: nothing is created, so a read-only home can still be listed.
    pub fn open_for_reading(home: &Path) -> Store {
        Store {
            home: home.to_path_buf(),
        }
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn experiments_path(&self) -> PathBuf {
        self.home.join(EXPERIMENTS_FILE)
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.home.join("runs").join(id)
    }

    /// Creates `runs/<id>/` (0700) and returns it.
    pub fn ensure_run_dir(&self, id: &str) -> Result<PathBuf, StoreError> {
        let dir = self.run_dir(id);
        ensure_private_dir(&self.home.join("runs"))
            .and_then(|_| ensure_private_dir(&dir))
            .map_err(|source| StoreError::Unwritable {
                path: dir.clone(),
                source,
            })?;
        Ok(dir)
    }

    /// The current contents, without taking the lock (renames are atomic, so this is always
    /// a whole file). A corrupt file is moved aside under the lock and an empty store returned.
    pub fn read(&self) -> Result<Experiments, StoreError> {
        let path = self.experiments_path();
        match fs::read(&path) {
            Ok(bytes) => match Experiments::parse(&bytes) {
                Ok(ex) => Ok(ex),
                // Moving aside needs the lock; `update` re-reads and decides under it.
                Err(_) => self.update(|ex| ex.clone()),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Experiments::default()),
            Err(source) => Err(StoreError::Io {
                action: "read",
                path,
                source,
            }),
        }
    }

    /// One record, parsed.
    pub fn get(&self, id: &str) -> Result<RunRecord, StoreError> {
        self.read()?.record(id)
    }

    /// Locked read-modify-write. `change` sees the latest contents; the file is rewritten
    /// only if it changed anything.
    pub fn update<R>(&self, change: impl FnOnce(&mut Experiments) -> R) -> Result<R, StoreError> {
        let lock = self.lock_file()?;
        lock.lock().map_err(|source| StoreError::Io {
            action: "lock",
            path: self.home.join(LOCK_FILE),
            source,
        })?;
        let mut ex = self.load_locked()?;
        let result = change(&mut ex);
        if ex.is_dirty() {
            self.write_locked(&ex)?;
        }
        drop(lock); // closing the file releases the flock
        if ex.frees_something()
            && let Err(e) = crate::wake::touch(&self.home)
        {
            tracing::warn!("cannot wake waiting processes: {e}");
        }
        Ok(result)
    }

    /// Changes one record under the lock; fails if it does not exist or cannot be parsed.
    pub fn update_record<R>(
        &self,
        id: &str,
        change: impl FnOnce(&mut RunRecord) -> R,
    ) -> Result<R, StoreError> {
        self.update(|ex| {
            let mut rec = ex.record(id)?;
            let result = change(&mut rec);
            ex.put(&rec);
            Ok(result)
        })?
    }

    fn lock_file(&self) -> Result<File, StoreError> {
        let path = self.home.join(LOCK_FILE);
        private_file(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
        )
        .open(&path)
        .map_err(|source| StoreError::Unwritable {
            path: self.home.clone(),
            source,
        })
    }

    fn load_locked(&self) -> Result<Experiments, StoreError> {
        let path = self.experiments_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Experiments::default()),
            Err(source) => {
                return Err(StoreError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        match Experiments::parse(&bytes) {
            Ok(ex) => Ok(ex),
            Err(problem) => {
                let aside = self.move_aside(&path)?;
                crate::ui::warn(&format!(
                    "{} was corrupt ({problem}); moved it aside unchanged to {}; starting a new store",
                    path.display(),
                    aside.display()
                ));
                let mut fresh = Experiments::default();
                fresh.mark_dirty();
                Ok(fresh)
            }
        }
    }

    /// Renames a corrupt file to `experiments.json.corrupt-<ms>` (byte for byte, never over
    /// another file).
    fn move_aside(&self, path: &Path) -> Result<PathBuf, StoreError> {
        let stamp = crate::clock::now_ms();
        for n in 0.. {
            let suffix = if n == 0 {
                String::new()
            } else {
                format!("-{n}")
            };
            let aside = self
                .home
                .join(format!("{EXPERIMENTS_FILE}.corrupt-{stamp}{suffix}"));
            if aside.exists() {
                continue;
            }
            fs::rename(path, &aside).map_err(|source| StoreError::Io {
                action: "move aside the corrupt",
                path: path.to_path_buf(),
                source,
            })?;
            return Ok(aside);
        }
        unreachable!("an unused name always exists")
    }

    fn write_locked(&self, ex: &Experiments) -> Result<(), StoreError> {
        let temp = self.home.join(TEMP_FILE);
        let target = self.experiments_path();
        let written = (|| -> io::Result<()> {
            let mut file = private_file(OpenOptions::new().write(true).create(true).truncate(true))
                .open(&temp)?;
            file.write_all(&ex.to_bytes())?;
            file.sync_all()?;
            fs::rename(&temp, &target)?;
            // The rename itself is durable only once the directory is synced.
            File::open(&self.home)?.sync_all()
        })();
        written.map_err(|source| {
            let _ = fs::remove_file(&temp);
            StoreError::Io {
                action: "write",
                path: target,
                source,
            }
        })
    }
}

#[cfg(test)]
mod tests;
