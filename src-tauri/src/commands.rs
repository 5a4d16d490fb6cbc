//! The Tauri commands, one module per domain, each named `domain_verb`.

pub mod doctor;
pub mod fix;
pub mod hardware;
pub mod metrics;
pub mod sessions;
pub mod settings;

use fixbox_agent::setup::Routes;
use fixbox_engine::Registry;
use fixbox_store::{SessionId, Store};

/// Runs blocking work (SQLite, the file system, a repository read) off the async runtime.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tauri::async_runtime::spawn_blocking(work).await.map_err(|e| format!("the work stopped unexpectedly: {e}"))?
}

/// Fixbox's store in its data folder.
fn open_store() -> Result<Store, String> {
    Store::open_default().map_err(|e| format!("cannot open Fixbox's data: {e}"))
}

fn parse_id(id: &str) -> Result<SessionId, String> {
    id.parse().map_err(|_| format!("{id:?} is not a session id"))
}

/// The routes a session uses now: the saved ones, else the local engine Fixbox runs.
fn load_routes(store: &Store) -> Result<Routes, String> {
    let engines = Registry::new(fixbox_store::data_dir().map_err(|e| e.to_string())?);
    Routes::load(None, store, &engines).map_err(|e| e.to_string())
}
