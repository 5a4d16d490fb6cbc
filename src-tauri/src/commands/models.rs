//! The wizard's model step: the catalog beside what is downloaded (and what a cancelled download left),
//! and downloads with their progress streamed to the window; cancelling keeps what arrived, and the
//! next download of the same model resumes from it.

use std::sync::Arc;

use fixbox_models::{Catalog, DownloadEvent, Downloader, Endpoints, ModelStore, PullRequest, RetryPolicy, Token};
use serde::Serialize;
use tauri::ipc::Channel;

use super::{JobId, Jobs, blocking};
use crate::error::IpcError;

/// Where models are kept: `<data dir>/models`, as the CLI keeps them.
pub fn model_store() -> Result<ModelStore, IpcError> {
    Ok(ModelStore::new(fixbox_store::data_dir()?.join("models")))
}

/// A catalog model (its first, recommended quantization) or a file imported by hand.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct ModelRow {
    pub id: String,
    pub name: String,
    pub quant: String,
    /// Bytes to download; `None` when the catalog does not say.
    pub size: Option<u64>,
    pub context: u32,
    /// What it is good for: code, chat, ...
    pub role: String,
    /// Where the downloaded file came from; `None` while it is not here.
    pub downloaded_from: Option<String>,
    /// Bytes an interrupted download left, which the next one resumes from.
    pub partial: u64,
}

/// How long work is going, for a progress bar and the lines under it.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Progress {
    /// A step, a retry, a source that failed and the one tried next.
    Note { text: String },
    /// Bytes arriving; `resumed_from` were there from an earlier try.
    Bytes { done: u64, total: Option<u64>, resumed_from: u64, bytes_per_second: f64, eta_seconds: Option<f64> },
    /// A step that counts in percent (building from source).
    Percent { what: String, percent: u8 },
}

impl Progress {
    pub fn note(text: impl Into<String>) -> Self {
        Self::Note { text: text.into() }
    }
}

impl From<DownloadEvent> for Progress {
    fn from(event: DownloadEvent) -> Self {
        match event {
            DownloadEvent::Started { total, resumed_from } => {
                Self::Bytes { done: resumed_from, total, resumed_from, bytes_per_second: 0.0, eta_seconds: None }
            }
            DownloadEvent::Progress { done, total, bytes_per_second, eta } => Self::Bytes {
                done,
                total,
                resumed_from: 0,
                bytes_per_second,
                eta_seconds: eta.map(|d| d.as_secs_f64()),
            },
            DownloadEvent::Retrying { attempt, wait, reason } => {
                Self::note(format!("{reason}; retry {attempt} in {} s", wait.as_secs_f32().ceil()))
            }
            DownloadEvent::Source { source } => Self::note(format!("downloading from {source}")),
            DownloadEvent::SourceFailed { source, reason } => Self::note(format!("{source} failed: {reason}")),
            DownloadEvent::Verifying => Self::note("checking the SHA-256"),
            DownloadEvent::Finished { path, .. } => Self::note(format!("verified; saved as {}", path.display())),
        }
    }
}

/// The catalog's models beside what this machine has.
#[tauri::command]
#[specta::specta]
pub async fn models_list() -> Result<Vec<ModelRow>, IpcError> {
    blocking(|| {
        let catalog = Catalog::embedded()?;
        let store = model_store()?;
        let installed = store.installed()?;
        let mut rows: Vec<ModelRow> = catalog
            .models
            .iter()
            .filter_map(|model| {
                let quant = model.quants.first()?;
                let here = installed.iter().find(|m| m.id == model.id);
                Some(ModelRow {
                    id: model.id.clone(),
                    name: model.name.clone(),
                    quant: here.map_or_else(|| quant.name.clone(), |m| m.quant.clone()),
                    size: here.map(|m| m.size).or(quant.size),
                    context: model.context_recommended,
                    role: format!("{:?}", model.role).to_lowercase(),
                    downloaded_from: here.map(|m| m.source.clone()),
                    partial: if here.is_some() { 0 } else { store.partial_bytes(&model.id) },
                })
            })
            .collect();
        rows.extend(installed.iter().filter(|m| catalog.model(&m.id).is_err()).map(|m| ModelRow {
            id: m.id.clone(),
            name: m.file.clone(),
            quant: m.quant.clone(),
            size: Some(m.size),
            context: 8192,
            role: "imported".into(),
            downloaded_from: Some(m.source.clone()),
            partial: 0,
        }));
        Ok(rows)
    })
    .await
}

/// Downloads catalog model `id` (its recommended quantization), resuming what an earlier try left, and
/// checks its SHA-256; progress on `on_progress`. `jobs_cancel({ kind: "pull", model })` stops it, keeping what
/// arrived.
#[tauri::command]
#[specta::specta]
pub async fn models_pull(
    id: String,
    on_progress: Channel<Progress>,
    jobs: tauri::State<'_, Arc<Jobs>>,
) -> Result<String, IpcError> {
    let catalog = Catalog::embedded()?;
    let model = catalog.model(&id)?;
    let quant = model.quant(None)?;
    let store = model_store()?;
    let endpoints = Endpoints::from_env();
    let token = hugging_face_token().await;
    let downloader = Downloader::new(RetryPolicy::default())?;
    let (cancel, _job) = jobs.start(JobId::Pull { model: id.clone() })?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let forward = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            let _ = on_progress.send(Progress::from(event));
        }
    });
    let request = PullRequest { model, quant, only: None, endpoints: &endpoints, token: token.as_ref() };
    let pulled = store.pull(&downloader, &request, &tx, &cancel).await;
    drop(tx);
    let _ = forward.await;
    Ok(pulled?.path.display().to_string())
}

/// The Hugging Face token the user saved in the settings as `huggingface`, for gated models.
async fn hugging_face_token() -> Option<Token> {
    let secret = blocking(|| fixbox_store::Keychain.get("huggingface").map_err(IpcError::from)).await;
    secret.ok().flatten().map(|s| Token::new(s.expose()))
}
