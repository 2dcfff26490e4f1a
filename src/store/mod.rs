//! The durable store: `$BACKPROP_HOME/backprop.db` (SQLite) plus `runs/<id>/`.
//!
//! One row per run holds the fields that are searched (status, name, batch, queue order,
//! times) beside the whole record as JSON, so unknown fields survive. Writes are `BEGIN
//! IMMEDIATE` transactions, which also serialise admission and GPU placement across every
//! backprop process of the home; reads never wait for writers (WAL). On a network filesystem
//! the store uses a rollback journal instead. `experiments.json` is kept as an export for
//! tools that read it (see [`export`]); an existing one (this tool's or the original
//! TypeScript tool's) is imported the first time the store is opened.

pub mod export;
mod fs_kind;
pub mod holder;
mod home;
pub mod import;
pub mod legacy_json;
pub mod query;
mod tx;

pub use home::{default_home, ensure_private_dir, private_file};
pub use query::{ListQuery, ListRow};
pub use tx::Tx;

use crate::record::RunRecord;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const DB_FILE: &str = "backprop.db";
pub const EXPERIMENTS_FILE: &str = "experiments.json";

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
    #[error("the record of run {id:?} cannot be read ({message}); it is kept as it is")]
    Unreadable { id: String, message: String },
    #[error("the store cannot {action}: {source}")]
    Sql {
        action: &'static str,
        source: rusqlite::Error,
    },
    #[error(
        "the store in {home} was written by a newer backprop (format {found}; this one reads up to {supported}); upgrade backprop, or point BACKPROP_HOME at another directory"
    )]
    NewerFormat {
        home: PathBuf,
        found: i64,
        supported: i64,
    },
}

impl StoreError {
    /// The database file is damaged or is not a database any more.
    pub fn is_damage(&self) -> bool {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        matches!(self, StoreError::Sql { source: rusqlite::Error::SqliteFailure(e, _), .. }
            if matches!(e.code, DatabaseCorrupt | NotADatabase))
    }

    /// An I/O error from SQLite itself (not a full disk): seen when the database's files are
    /// removed while it is being opened; opening again succeeds.
    pub fn is_io(&self) -> bool {
        matches!(self, StoreError::Sql { source: rusqlite::Error::SqliteFailure(e, _), .. }
            if e.code == rusqlite::ErrorCode::SystemIoFailure)
    }

    /// The database lost its tables (emptied under us, or being created right now): opened
    /// again, it is set up afresh.
    pub fn is_emptied(&self) -> bool {
        matches!(self, StoreError::Sql { source: rusqlite::Error::SqliteFailure(_, Some(m)), .. }
            if m.contains("no such table"))
    }
}

pub(crate) fn sql(action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { action, source }
}

pub(crate) fn parse_record(id: &str, raw: &str) -> Result<RunRecord, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Unreadable {
        id: id.to_string(),
        message: e.to_string(),
    })
}

/// A handle on one home. Cheap to clone; each use opens its own connection.
#[derive(Clone, Debug)]
pub struct Store {
    home: PathBuf,
    /// The records this process wrote through [`Store::update`], as written: a supervisor
    /// starting its runs takes them from here when the database lost them meanwhile.
    written: Arc<Mutex<HashMap<String, RunRecord>>>,
}

impl Store {
    /// Opens (creating if needed, mode 0700) the home and its database, imports an existing
    /// `experiments.json` on first use, and checks that the store can be written.
    pub fn open(home: &Path) -> Result<Store, StoreError> {
        ensure_private_dir(home)
            .and_then(|_| {
                nix::unistd::access(home, nix::unistd::AccessFlags::W_OK)
                    .map_err(|e| io::Error::from_raw_os_error(e as i32))
            })
            .map_err(|source| StoreError::Unwritable {
                path: home.to_path_buf(),
                source,
            })?;
        let store = Store {
            written: Default::default(),
            home: home.to_path_buf(),
        };
        store.connect()?;
        Ok(store)
    }

    /// A handle for reading only: nothing is created, so a read-only home can still be listed.
    pub fn open_for_reading(home: &Path) -> Store {
        Store {
            written: Default::default(),
            home: home.to_path_buf(),
        }
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn db_path(&self) -> PathBuf {
        self.home.join(DB_FILE)
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

    /// A connection to the store (created and imported on first use).
    pub fn connect(&self) -> Result<Db, StoreError> {
        let mut tries = 0;
        loop {
            let before = inode_of(&self.db_path());
            match Db::open(&self.home) {
                // Its files removed or replaced while this process opened it: again. (A file
                // that stayed the same is judged as it is, never touched by a second try.)
                Err(e) if e.is_io() && tries < 3 && inode_of(&self.db_path()) != before => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other.map_err(|e| explain(e, &self.home)),
            }
        }
    }

    /// Whether this store was started over run directories it may lack records of (a new
    /// database after damage); true once, for the caller that then checks them.
    pub fn take_run_dir_check(&self) -> Result<bool, StoreError> {
        let mut db = self.connect()?;
        let marked: Option<String> = db
            .conn()
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [RUN_DIRS_TO_CHECK],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("read the store's notes"))?;
        if marked.is_none() {
            return Ok(false);
        }
        // Taken in a write: of two processes at once, one checks.
        db.update(|tx| tx.take_meta(RUN_DIRS_TO_CHECK).is_some())
    }

    /// A write transaction; `change` sees the latest contents and its writes are committed
    /// together (or not at all). A database found damaged (or emptied) on the way is set
    /// aside and the change made in a fresh one.
    pub fn update<R>(&self, mut change: impl FnMut(&mut Tx) -> R) -> Result<R, StoreError> {
        let (result, written) = self.update_inner(&mut change)?;
        if let Ok(mut mine) = self.written.lock() {
            for rec in written {
                mine.insert(rec.id.to_string(), rec);
            }
        }
        Ok(result)
    }

    /// The record of `id` as this process last wrote it through [`Store::update`], if it did.
    pub fn written_here(&self, id: &str) -> Option<RunRecord> {
        self.written.lock().ok()?.get(id).cloned()
    }

    /// Forgets what [`Store::written_here`] holds (once a supervisor keeps its own copies).
    pub fn forget_written(&self) {
        if let Ok(mut mine) = self.written.lock() {
            mine.clear();
        }
    }

    fn update_inner<R>(
        &self,
        mut change: impl FnMut(&mut Tx) -> R,
    ) -> Result<(R, Vec<RunRecord>), StoreError> {
        let mut db = self.connect()?;
        match db.update_written(&mut change) {
            Err(e) if e.is_damage() || e.is_emptied() => {
                let judged = db.inode();
                drop(db);
                if e.is_damage()
                    && let Some(aside) = move_aside(&self.home, judged)?
                {
                    crate::ui::warn(&format!(
                        "the store was damaged; moved it aside unchanged to {} and started a new one",
                        aside.display()
                    ));
                }
                self.connect()?
                    .update_written(change)
                    .map_err(|e| explain(e, &self.home))
            }
            other => other.map_err(|e| explain(e, &self.home)),
        }
    }

    /// Changes one record in a transaction; fails if it does not exist or cannot be parsed.
    pub fn update_record<R>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut RunRecord) -> R,
    ) -> Result<R, StoreError> {
        self.update(|tx| {
            let mut rec = tx.record(id)?;
            let result = change(&mut rec);
            tx.put(&rec);
            Ok(result)
        })?
    }

    /// One record, parsed.
    pub fn get(&self, id: &str) -> Result<RunRecord, StoreError> {
        query::get(self.connect()?.conn(), id)
    }

    /// The queued, running and paused runs.
    pub fn active(&self) -> Result<Vec<RunRecord>, StoreError> {
        query::active(self.connect()?.conn())
    }
}

/// Noted in a new database created over existing run directories: they are checked once
/// for runs whose only record is there (Slurm runs, written by their nodes).
const RUN_DIRS_TO_CHECK: &str = "run_dirs_to_check";

/// One connection to a home's database.
pub struct Db {
    conn: Connection,
    home: PathBuf,
    /// (device, inode) of the file opened.
    inode: Option<(u64, u64)>,
    /// The largest size the file was seen with after a transaction.
    size_seen: std::cell::Cell<u64>,
    /// The journal mode in use and, on a network filesystem, its type.
    pub journal: Journal,
}

/// How the database keeps its transactions durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Journal {
    Wal,
    /// A rollback journal, on a network filesystem (named) where WAL is unsafe.
    Rollback(&'static str),
    /// An old JSON store in a home this process may not write, read into memory.
    InMemory,
}

impl Db {
    fn open(home: &Path) -> Result<Db, StoreError> {
        let path = home.join(DB_FILE);
        let writable =
            fs::metadata(home).is_ok_and(|m| !m.permissions().readonly()) && access_ok(home);
        if !writable {
            return Db::open_read_only(home, &path);
        }
        if !path.exists() {
            // Created here so it is the user's only; SQLite then finds an empty database.
            private_file(OpenOptions::new().write(true).create(true).truncate(false))
                .open(&path)
                .map_err(|source| StoreError::Unwritable {
                    path: home.to_path_buf(),
                    source,
                })?;
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql("open the database"))?;
        let mut db = Db {
            conn,
            home: home.to_path_buf(),
            inode: inode_of(&path),
            size_seen: Default::default(),
            journal: Journal::Wal,
        };
        let prepared = db.configure().and_then(|_| db.prepare());
        if let Err(e) = &prepared
            && !e.is_damage()
            && disk_full(e, home).is_some()
            && path.metadata().is_ok_and(|m| m.len() > 0)
        {
            // A full disk: the journal files cannot be created, but the store can be read.
            return Db::open_read_only(home, &path);
        }
        match prepared {
            Err(e) if e.is_damage() => {
                let judged = db.inode;
                drop(db);
                // Another process may have moved it aside first: then its new one is used.
                if let Some(aside) = move_aside(home, judged)? {
                    crate::ui::warn(&format!(
                        "the store {} was damaged; moved it aside unchanged to {} (`backprop \
                         doctor` shows what it holds) and started a new one",
                        path.display(),
                        aside.display()
                    ));
                }
                Db::open(home)
            }
            Err(e) => Err(e),
            Ok(()) => Ok(db),
        }
    }

    /// A home this process cannot write: the database as it is, or an old JSON store read
    /// into memory.
    fn open_read_only(home: &Path, path: &Path) -> Result<Db, StoreError> {
        if path.exists() {
            let conn = open_read_only(path)?;
            let db = Db {
                conn,
                home: home.to_path_buf(),
                inode: None,
                size_seen: Default::default(),
                journal: Journal::Wal,
            };
            if let schema::Found::Newer(found) =
                schema::version_of(&db.conn).map_err(sql("read the version"))?
            {
                return Err(db.newer(found));
            }
            return Ok(db);
        }
        let conn = Connection::open_in_memory().map_err(sql("open the database"))?;
        let mut db = Db {
            conn,
            home: home.to_path_buf(),
            inode: None,
            size_seen: Default::default(),
            journal: Journal::InMemory,
        };
        schema::create(&db.conn).map_err(sql("create the tables"))?;
        import::import_if_present(&mut db)?;
        Ok(db)
    }

    fn configure(&mut self) -> Result<(), StoreError> {
        self.conn
            .busy_handler(Some(holder::busy_handler(self.home.clone())))
            .map_err(sql("configure the database"))?;
        // A store of a newer format is refused before anything in it is changed.
        if let schema::Found::Newer(found) =
            schema::version_of(&self.conn).map_err(sql("read the version"))?
        {
            return Err(self.newer(found));
        }
        let (mode, synchronous) = match fs_kind::network_filesystem(&self.home) {
            Some(kind) => {
                self.journal = Journal::Rollback(kind);
                ("DELETE", "FULL")
            }
            None => ("WAL", "NORMAL"),
        };
        // Changing the journal mode needs the database to itself, and SQLite answers "busy"
        // at once (no busy handler) while another connection reads: ask again a while.
        let current: String = self
            .conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .map_err(sql("read the journal mode"))?;
        let started = std::time::Instant::now();
        while !current.eq_ignore_ascii_case(mode) {
            match self.conn.pragma_update(None, "journal_mode", mode) {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        && started.elapsed() < std::time::Duration::from_secs(30) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => return Err(sql("set the journal mode")(e)),
            }
        }
        self.conn
            .pragma_update(None, "synchronous", synchronous)
            .map_err(sql("set the journal mode"))
    }

    /// Creates the tables and imports the old JSON store the first time; refuses a store
    /// of a newer format.
    fn prepare(&mut self) -> Result<(), StoreError> {
        match schema::version_of(&self.conn).map_err(sql("read the version"))? {
            schema::Found::Current => {
                if schema::needs_upgrade(&self.conn).map_err(sql("read the layout"))? {
                    self.update(|tx| schema::upgrade(tx.connection()))?
                        .map_err(sql("add the update stamp"))?;
                }
                Ok(())
            }
            schema::Found::Newer(found) => Err(self.newer(found)),
            schema::Found::Empty => {
                self.update(|tx| schema::create(tx.connection()))?
                    .map_err(sql("create the tables"))?;
                import::import_if_present(self)?;
                if self.home.join("runs").is_dir() {
                    // A new database over old run directories: it replaced a lost or
                    // damaged one, and runs on Slurm nodes may hold their only record there.
                    self.update(|tx| tx.set_meta(RUN_DIRS_TO_CHECK, "1"))?;
                }
                Ok(())
            }
        }
    }

    fn newer(&self, found: i64) -> StoreError {
        StoreError::NewerFormat {
            home: self.home.clone(),
            found,
            supported: schema::VERSION,
        }
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// (device, inode) of the database file this connection opened.
    pub fn inode(&self) -> Option<(u64, u64)> {
        self.inode
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// A write transaction; see [`Store::update`]. Waiting processes are woken when it frees
    /// a slot or a GPU.
    pub fn update<R>(&mut self, change: impl FnOnce(&mut Tx) -> R) -> Result<R, StoreError> {
        self.update_written(change).map(|(result, _)| result)
    }

    /// Like [`Db::update`], also returning the records written, as written.
    pub fn update_written<R>(
        &mut self,
        change: impl FnOnce(&mut Tx) -> R,
    ) -> Result<(R, Vec<RunRecord>), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("start a transaction"))?;
        holder::note_me(&self.home);
        let mut tx = Tx::new(tx);
        let result = change(&mut tx);
        let outcome = tx.finish()?;
        if outcome.changed {
            export::note_change(&self.home);
        }
        if let Ok(meta) = fs::metadata(self.home.join(DB_FILE)) {
            self.size_seen.set(self.size_seen.get().max(meta.len()));
        }
        if outcome.freed
            && let Err(e) = crate::wake::touch(&self.home)
        {
            tracing::warn!("cannot wake waiting processes: {e}");
        }
        Ok((result, outcome.written))
    }

    /// Whether the database file is still the one this connection opened (another process
    /// may have replaced or removed it).
    /// The same file, but smaller than it was: the database never gets smaller (no vacuum),
    /// so it was truncated under us.
    pub fn shrunk(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(self.home.join(DB_FILE))
            .is_ok_and(|m| Some((m.dev(), m.ino())) == self.inode && m.len() < self.size_seen.get())
    }

    /// Also false when the file shrank: the database never gets smaller (no vacuum), so it
    /// was truncated under us.
    pub fn is_current(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Some(opened) = self.inode else {
            return true;
        };
        fs::metadata(self.home.join(DB_FILE))
            .is_ok_and(|m| (m.dev(), m.ino()) == opened && m.len() >= self.size_seen.get())
    }
}

/// What `e` is when the disk holding the home is full (SQLite reports that as a generic I/O
/// or read-only error in places): the plain "No space left on device".
fn disk_full(e: &StoreError, home: &Path) -> Option<StoreError> {
    use rusqlite::ErrorCode::{DiskFull, ReadOnly, SystemIoFailure};
    let io_like = matches!(e, StoreError::Sql { source: rusqlite::Error::SqliteFailure(f, _), .. }
        if matches!(f.code, DiskFull | SystemIoFailure | ReadOnly));
    let full = nix::sys::statvfs::statvfs(home)
        .is_ok_and(|s| s.blocks_available() * s.fragment_size() < 64 * 1024);
    (io_like && full).then(|| StoreError::Io {
        action: "write to",
        path: home.to_path_buf(),
        source: io::Error::from_raw_os_error(nix::libc::ENOSPC),
    })
}

pub fn explain(e: StoreError, home: &Path) -> StoreError {
    disk_full(&e, home).unwrap_or(e)
}

/// A database this process may not write: read-only, or (a read-only filesystem, where
/// WAL's shared-memory file cannot be created) as an immutable file.
fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let plain = Connection::open_with_flags(path, flags).and_then(|c| {
        c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .map(|_| c)
    });
    match plain {
        Ok(conn) => Ok(conn),
        Err(_) => {
            let uri = format!("file:{}?immutable=1", path.display());
            Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
                .map_err(sql("open the database"))
        }
    }
}

fn inode_of(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Whether this process may create files in `dir` (root ignores permission bits).
fn access_ok(dir: &Path) -> bool {
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_ok()
}

/// Renames the damaged database `judged` ((device, inode) of the file found damaged) and its
/// journal files to `backprop.db.damaged-<ms>`, byte for byte, never over another file. None
/// when that file is not there any more (another process moved it aside and may already have
/// started a new store, which must not be moved in its turn).
pub fn move_aside(home: &Path, judged: Option<(u64, u64)>) -> Result<Option<PathBuf>, StoreError> {
    // One repair at a time: the check and the rename must not interleave with another's.
    let lock = private_file(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    )
    .open(home.join("store.repair.lock"))
    .map_err(|source| StoreError::Io {
        action: "open",
        path: home.join("store.repair.lock"),
        source,
    })?;
    lock.lock().map_err(|source| StoreError::Io {
        action: "lock",
        path: home.join("store.repair.lock"),
        source,
    })?;
    if judged.is_some() && inode_of(&home.join(DB_FILE)) != judged {
        return Ok(None);
    }
    let stamp = crate::clock::now_ms();
    let path = home.join(DB_FILE);
    let aside = (0..)
        .map(|n| {
            let suffix = if n == 0 {
                String::new()
            } else {
                format!("-{n}")
            };
            home.join(format!("{DB_FILE}.damaged-{stamp}{suffix}"))
        })
        .find(|p| !p.exists())
        .expect("an unused name exists");
    match fs::rename(&path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                action: "move aside the damaged",
                path: path.clone(),
                source,
            });
        }
    }
    for journal in ["-wal", "-shm", "-journal"] {
        let from = home.join(format!("{DB_FILE}{journal}"));
        if from.exists() {
            let _ = fs::rename(
                &from,
                aside.with_file_name(format!(
                    "{}{journal}",
                    aside.file_name().unwrap_or_default().to_string_lossy()
                )),
            );
        }
    }
    Ok(Some(aside))
}

mod schema;

#[cfg(test)]
mod tests;
