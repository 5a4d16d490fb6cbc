use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

use crate::migrations::{MIGRATIONS, migrate};
use crate::{DB_FILE_NAME, StoreError, data_dir};

/// The Fixbox database: one SQLite file, shared by the desktop app and the CLI.
///
/// Cheap to share behind an `Arc`; calls are serialised on one connection. Other processes may open the
/// same file at the same time: SQLite's locking orders their writes and `busy_timeout` waits them out.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// How long a write waits for another process's write before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens (creating if needed) the database in [`data_dir`] and migrates it to the current schema.
    pub fn open_default() -> Result<Self, StoreError> {
        Self::open_in(&data_dir()?)
    }

    /// Opens (creating both if needed) the database file in the data directory `dir`.
    pub fn open_in(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDataDir { path: dir.to_path_buf(), source })?;
        Self::open_at(&dir.join(DB_FILE_NAME))
    }

    /// Opens (creating if needed) the database at `path` and migrates it to the current schema.
    pub fn open_at(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
        // Switching a new file to WAL takes it whole, and SQLite answers another opener "locked" at
        // once rather than through the busy handler: processes started together wait their turn here.
        let started = std::time::Instant::now();
        let mut conn = loop {
            match connect(path) {
                Err(err) if is_locked(&err) && started.elapsed() < BUSY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                result => break result.map_err(open_err)?,
            }
        };
        migrate(&mut conn, MIGRATIONS)?;
        Ok(Self { conn: Mutex::new(conn), path: path.to_path_buf() })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the file's structure (`PRAGMA integrity_check`); returns SQLite's findings, empty when sound.
    pub fn integrity_problems(&self) -> Result<Vec<String>, StoreError> {
        use crate::error::QueryContext;
        let conn = self.conn();
        let mut stmt = conn.prepare("PRAGMA integrity_check").op("integrity check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).op("integrity check")?;
        let found = rows.collect::<Result<Vec<_>, _>>().op("integrity check")?;
        Ok(found.into_iter().filter(|line| line != "ok").collect())
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written: an open transaction is rolled
        // back when dropped. So a poisoned lock is safe to keep using.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Milliseconds since the Unix epoch, the store's timestamp unit.
pub(crate) fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// A connection to `path` in WAL mode, set as the store uses it.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: readers never block the writer, and a commit is one append to the log. With
    // synchronous=NORMAL a commit survives the process dying at any point (the kernel has the
    // pages); only a power loss can drop the last few commits, never corrupt the file.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, path = %path.display(), "SQLite refused WAL mode; the event log falls back to a rollback journal");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(conn)
}

fn is_locked(err: &rusqlite::Error) -> bool {
    matches!(err.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}
