use std::path::PathBuf;

use crate::StoreError;

/// Overrides the data directory (tests, CI, portable installs).
pub const DATA_DIR_ENV: &str = "FIXBOX_DATA_DIR";

/// The database's file name inside the data directory.
pub const DB_FILE_NAME: &str = "fixbox.db";

/// Where Fixbox keeps its database and logs: `$FIXBOX_DATA_DIR` when set, else the platform's data
/// directory (`~/.local/share/fixbox` on Linux, `~/Library/Application Support/dev.fixbox.Fixbox` on macOS,
/// `%APPDATA%\fixbox\Fixbox\data` on Windows). Does not create it.
pub fn data_dir() -> Result<PathBuf, StoreError> {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("dev", "fixbox", "Fixbox")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .ok_or(StoreError::NoDataDir)
}
