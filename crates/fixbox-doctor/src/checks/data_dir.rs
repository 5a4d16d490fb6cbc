use std::path::PathBuf;

use fixbox_store::Store;

use crate::{Check, CheckId};

/// The data dir exists or can be made, and the database in it opens and migrates.
pub(crate) async fn data_dir(dir: Option<PathBuf>) -> Check {
    match tokio::task::spawn_blocking(move || open_store(dir)).await {
        Ok(Ok((path, sessions))) => Check::ok(CheckId::DataDir, format!("database at {path}"))
            .with_details([format!("{sessions} session(s) recorded")]),
        Ok(Err(err)) => Check::failed(CheckId::DataDir, "the data directory is not usable", Some(err.to_string())),
        Err(panicked) => crate::crashed(CheckId::DataDir, &panicked),
    }
}

fn open_store(dir: Option<PathBuf>) -> Result<(String, usize), fixbox_store::StoreError> {
    let store = match dir {
        Some(dir) => Store::open_in(&dir)?,
        None => Store::open_default()?,
    };
    let sessions = store.list_sessions()?.len();
    Ok((store.path().display().to_string(), sessions))
}
