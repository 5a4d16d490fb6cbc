use std::path::PathBuf;

/// What went wrong in the store, named after the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "no data directory could be determined for this user (no home directory?); set {env} to a writable folder",
        env = crate::DATA_DIR_ENV
    )]
    NoDataDir,

    #[error("cannot create the data directory {path}: {source}; check its permissions or set {env} to a writable folder", env = crate::DATA_DIR_ENV)]
    CreateDataDir { path: PathBuf, source: std::io::Error },

    #[error("cannot open the database {path}: {source}; check that the file is readable and the disk is not full")]
    Open { path: PathBuf, source: rusqlite::Error },

    #[error(
        "cannot migrate the database to schema version {version}: {source}; the file was left at the previous version"
    )]
    Migrate { version: u32, source: rusqlite::Error },

    #[error(
        "the database is at schema version {found}, newer than this Fixbox knows ({known}); update Fixbox, or point {env} elsewhere",
        env = crate::DATA_DIR_ENV
    )]
    NewerSchema { found: u32, known: u32 },

    #[error("no session {0} in the store")]
    UnknownSession(String),

    #[error("the event payload is not valid JSON: {0}")]
    Payload(#[source] serde_json::Error),

    #[error(
        "no usable OS keychain (could not {op} it: {reason}); on Linux run a Secret Service such as \
         gnome-keyring or KeePassXC in your desktop session, on macOS/Windows check the login keychain"
    )]
    NoKeychain { op: &'static str, reason: String },

    #[error(
        "the OS keychain is locked (could not {op} it: {reason}): unlock it (log in to your desktop session, \
         or unlock the login keyring in your keyring manager) and run again"
    )]
    KeychainLocked { op: &'static str, reason: String },

    #[error("could not {op} the OS keychain: {reason}")]
    Keychain { op: &'static str, reason: String },

    #[error(
        "`{0}` is not a usable key name: use 1 to 64 lowercase letters, digits, `.`, `_` or `-`, starting with a letter or digit"
    )]
    SecretName(String),

    #[error("database {op} failed: {source}")]
    Query { op: &'static str, source: rusqlite::Error },

    #[error(
        "the disk of the data folder is full (database {op} failed): free space and run again; what was recorded \
         before is kept"
    )]
    DiskFull { op: &'static str },
}

/// Attaches the failed operation's name to a rusqlite error.
pub(crate) trait QueryContext<T> {
    fn op(self, op: &'static str) -> Result<T, StoreError>;
}

impl<T> QueryContext<T> for Result<T, rusqlite::Error> {
    fn op(self, op: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::DiskFull { op },
            _ => StoreError::Query { op, source },
        })
    }
}
