use std::path::PathBuf;

use crate::{DATA_DIR_ENV, StoreError};

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

/// Log files kept per program: a week of daily files.
const KEEP_LOG_FILES: usize = 7;

/// A daily-rotated log file `<data dir>/logs/<program>.<date>.log`, keeping a week, for a binary's
/// tracing subscriber. Creates the folder.
pub fn log_file(program: &str) -> Result<tracing_appender::rolling::RollingFileAppender, StoreError> {
    let dir = data_dir()?.join("logs");
    // The appender's clean-up of old files reads the dir before creating it, and complains on stderr.
    std::fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDataDir { path: dir.clone(), source })?;
    tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(program)
        .filename_suffix("log")
        .max_log_files(KEEP_LOG_FILES)
        .build(&dir)
        .map_err(|err| StoreError::CreateDataDir { path: dir, source: std::io::Error::other(err) })
}
