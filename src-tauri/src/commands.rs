//! The Tauri commands, one module per domain, each named `domain_verb`.

pub mod doctor;
pub mod engine;
pub mod eval;
pub mod fix;
pub mod github;
pub mod hardware;
pub mod metrics;
pub mod models;
pub mod sessions;
pub mod settings;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fixbox_agent::setup::Routes;
use fixbox_engine::LocalOllama;
use fixbox_store::{SessionId, Store};
use serde::{Deserialize, Serialize};

use crate::error::IpcError;
use tokio_util::sync::CancellationToken;

/// Runs blocking work (SQLite, the file system, a repository read) off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IpcError> + Send + 'static,
) -> Result<T, IpcError> {
    tauri::async_runtime::spawn_blocking(work)
        .await
        .map_err(|e| IpcError::internal(format!("the work stopped unexpectedly: {e}")))?
}

/// Fixbox's store in its data folder.
fn open_store() -> Result<Store, IpcError> {
    Store::open_default().map_err(|e| IpcError { message: format!("cannot open Fixbox's data: {e}"), ..e.into() })
}

fn parse_id(id: &str) -> Result<SessionId, IpcError> {
    id.parse().map_err(|_| IpcError::invalid(format!("{id:?} is not a session id")))
}

/// The routes a session uses now: the saved ones, else the local engine Fixbox runs, else the coder
/// model of the Ollama the user runs. Blocking (it may ask Ollama): call it where the other store
/// reads are, off the async threads.
fn load_routes(store: &Store) -> Result<Routes, IpcError> {
    let find_ollama = || tauri::async_runtime::block_on(LocalOllama::find_here());
    Routes::load(None, store, &crate::serving::engine_registry()?, find_ollama).map_err(IpcError::from)
}

/// Long work under way that the window can cancel: what it is, and which one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, specta::Type)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobId {
    /// Installing llama-server.
    Install,
    /// Starting an engine, until its model has loaded.
    EngineStart,
    /// Downloading a model of the catalog.
    Pull { model: String },
    /// A fix session, by the number `fix_start` gave it.
    Fix { run: u32 },
    /// The evaluation (one runs at a time).
    Eval,
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Install => f.write_str("the install"),
            Self::EngineStart => f.write_str("the engine's start"),
            Self::Pull { model } => write!(f, "the download of {model}"),
            Self::Fix { run } => write!(f, "fix session {run}"),
            Self::Eval => f.write_str("the evaluation"),
        }
    }
}

/// The jobs under way, by id.
#[derive(Debug, Default)]
pub struct Jobs(Mutex<HashMap<JobId, CancellationToken>>);

/// A job's entry, removed when the job ends (when this is dropped).
pub struct Job {
    jobs: Arc<Jobs>,
    id: JobId,
}

impl Drop for Job {
    fn drop(&mut self) {
        self.jobs.lock().remove(&self.id);
    }
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, CancellationToken>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers job `id`; refused while it runs.
    fn start(self: &Arc<Self>, id: JobId) -> Result<(CancellationToken, Job), IpcError> {
        let mut jobs = self.lock();
        if jobs.contains_key(&id) {
            return Err(IpcError::busy(format!("{id} is already under way")));
        }
        let cancel = CancellationToken::new();
        jobs.insert(id.clone(), cancel.clone());
        Ok((cancel, Job { jobs: Arc::clone(self), id }))
    }

    /// Cancels job `id`; false when it is not under way.
    fn cancel(&self, id: &JobId) -> bool {
        self.lock().get(id).inspect(|cancel| cancel.cancel()).is_some()
    }
}

/// Cancels job `id`; what it has done so far is kept.
#[tauri::command]
#[specta::specta]
pub async fn jobs_cancel(id: JobId, jobs: tauri::State<'_, Arc<Jobs>>) -> Result<(), IpcError> {
    if jobs.cancel(&id) { Ok(()) } else { Err(IpcError::not_found(format!("{id} is not under way"))) }
}
