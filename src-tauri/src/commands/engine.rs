//! The wizard's engine step: which engines are installed and which run; installing llama-server;
//! starting it on a downloaded model with its log streamed line by line, stopping it; and a one-line
//! test prompt that measures it. The engine this window starts stops with the app.

use std::sync::Arc;

use fixbox_agent::setup::Routes;
use fixbox_engine::{
    EngineEvent, EngineKind, EngineOptions, EngineStatus, InstallEvent, InstalledEngine, Installer, LaunchSpec,
    Launcher, ModelRef, SearchPaths, SuperviseOptions,
};
use fixbox_llm::{CallEvent, ChatRequest, Message, Meter, Metrics};
use fixbox_models::{Catalog, Downloader, RetryPolicy};
use futures::StreamExt as _;
use serde::Serialize;
use tauri::ipc::Channel;

use super::models::{Progress, model_store};
use super::{JobId, Jobs, blocking, open_store};
use crate::error::{ErrorCode, IpcError};
use crate::serving::{Serving, engine_registry};
use crate::tray::{self, TrayLine};

/// Each engine: where it is installed, and what runs.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct EngineRow {
    pub kind: EngineKind,
    pub installed: Option<InstalledEngine>,
    pub running: Option<EngineRunning>,
    /// Whether Fixbox can install it here (llama-server); the others come from their own installers.
    pub installable: bool,
}

/// A running engine as its supervisor describes it.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct EngineRunning {
    pub url: Option<String>,
    pub model: String,
    pub context: Option<u32>,
    pub status: EngineStatus,
    pub message: Option<String>,
    pub engine_pid: Option<u32>,
    /// Started by this window (else by `fixbox engine start`, which stops it too).
    pub ours: bool,
    pub log: String,
}

/// What a starting or running engine sends the window.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EngineUpdate {
    /// A line of its output.
    Line {
        text: String,
    },
    Event {
        event: EngineEvent,
    },
}

/// What the test prompt measured.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct TryResult {
    pub model: String,
    pub text: String,
    pub completion_tokens: u64,
    pub tokens_per_second: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub latency_ms: f64,
}

/// The engines, installed or not, and what runs.
#[tauri::command]
#[specta::specta]
pub async fn engine_overview(app: tauri::AppHandle) -> Result<Vec<EngineRow>, IpcError> {
    let found = fixbox_engine::discover(&SearchPaths::from_env()).await;
    blocking(move || {
        let registry = engine_registry()?;
        let supervised = registry.all_supervised();
        // An engine `fixbox engine start` started or stopped shows in the tray too.
        tray::show(&app, &TrayLine::from_states(&supervised));
        let me = std::process::id();
        let rows = EngineKind::ALL
            .into_iter()
            .map(|kind| {
                let running = supervised.iter().find(|s| s.engine == kind).cloned().map(|s| EngineRunning {
                    url: s.url,
                    model: s.model,
                    context: s.context,
                    status: s.status,
                    message: s.message,
                    engine_pid: s.engine_pid,
                    ours: s.supervisor_pid == me,
                    log: s.log.display().to_string(),
                });
                EngineRow {
                    kind,
                    installed: found.iter().find(|e| e.kind == kind).cloned(),
                    running,
                    installable: kind == EngineKind::LlamaServer,
                }
            })
            .collect();
        Ok(rows)
    })
    .await
}

/// Installs llama-server (the prebuilt release, or built from source where none fits or GitHub does
/// not answer), its progress on `on_progress`; `jobs_cancel({ kind: "install" })` stops it.
#[tauri::command]
#[specta::specta]
pub async fn engine_install(
    on_progress: Channel<Progress>,
    jobs: tauri::State<'_, Arc<Jobs>>,
) -> Result<String, IpcError> {
    let dir = fixbox_engine::engines_dir().ok_or_else(|| {
        IpcError::internal("no cache folder for engines on this system; set FIXBOX_ENGINES_DIR to one")
    })?;
    let installer = Installer::new(dir, Downloader::new(RetryPolicy::default())?);
    let (cancel, _job) = jobs.start(JobId::Install)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let forward = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            let _ = on_progress.send(match event {
                InstallEvent::Cached { path } => Progress::note(format!("already installed at {}", path.display())),
                InstallEvent::Note(note) => Progress::note(note),
                InstallEvent::Download(event) => Progress::from(event),
                InstallEvent::Extracting => Progress::note("unpacking"),
                InstallEvent::Configuring { .. } => Progress::note("configuring the build (this takes minutes)"),
                InstallEvent::Building { percent } => Progress::Percent { what: "building".into(), percent },
                InstallEvent::Installed { path } => Progress::note(format!("installed at {}", path.display())),
            });
        }
    });
    let installed = fixbox_engine::engine(EngineKind::LlamaServer).install(&installer, &tx, &cancel).await;
    drop(tx);
    let _ = forward.await;
    Ok(installed?.display().to_string())
}

/// The options the engine was last started with.
#[tauri::command]
#[specta::specta]
pub async fn engine_options() -> Result<EngineOptions, IpcError> {
    blocking(|| EngineOptions::load(&open_store()?).map_err(IpcError::from)).await
}

/// Starts llama-server serving the downloaded `model` on 127.0.0.1, and returns once it answers (or
/// why it did not, with the end of its log). Its output and events come on `on_update` from the first
/// line until it stops. `jobs_cancel({ kind: "engine_start" })` stops it while it loads.
#[tauri::command]
#[specta::specta]
pub async fn engine_start(
    model: String,
    options: EngineOptions,
    on_update: Channel<EngineUpdate>,
    serving: tauri::State<'_, Arc<Serving>>,
    jobs: tauri::State<'_, Arc<Jobs>>,
    app: tauri::AppHandle,
) -> Result<String, IpcError> {
    options.check()?;
    let kind = EngineKind::LlamaServer;
    let mut current = serving.0.lock().await;
    if let Some(running) = current.as_ref() {
        return Err(IpcError::busy(format!("{kind} already serves a model at {}; stop it first", running.url)));
    }
    let registry = engine_registry()?;
    if let Some(state) = registry.supervised(kind) {
        return Err(IpcError::busy(format!(
            "{kind} was started outside this window (supervisor pid {}, serving {}); stop it with `fixbox engine stop` first",
            state.supervisor_pid, state.model
        )));
    }
    let binary = fixbox_engine::installed(kind).await.map_err(|_| {
        IpcError::new(ErrorCode::EngineNotInstalled, format!("{kind} is not installed: install it above first"))
    })?;
    let (file, plan) = {
        let (model, options) = (model.clone(), options.clone());
        blocking(move || {
            options.save(&open_store()?)?;
            let installed = model_store()?.find(&model, None)?.ok_or_else(|| {
                IpcError::not_found(format!("{model} is not downloaded yet: download it below first"))
            })?;
            let recommended =
                Catalog::embedded().ok().and_then(|c| c.model(&model).ok().map(|m| m.context_recommended));
            let plan = options.launch_here(&installed.path, recommended.unwrap_or(8192))?;
            Ok((installed.path, plan))
        })
        .await?
    };
    let _ = on_update.send(EngineUpdate::Line { text: format!("placing the model: {}", plan.why) });
    let mut spec = LaunchSpec::new(kind, ModelRef::File(file), model.clone(), plan.context);
    plan.apply(&mut spec);
    spec.lock_to_clients(kind);
    let (cancel, _job) = jobs.start(JobId::EngineStart)?;
    let launcher = Launcher::new(
        Arc::from(fixbox_engine::engine(kind)),
        &binary,
        spec,
        registry.log_path(kind),
        SuperviseOptions::default(),
    )
    .registered(&registry, &model, Vec::new())
    .stopped_by(cancel.clone());
    let listed = model.clone();
    forward(launcher.subscribe(), launcher.output(), on_update, move |event| {
        if let Some(status) = TrayLine::from_event(kind, &listed, event) {
            tray::show(&app, &status);
        }
    });
    let stopped =
        || IpcError::new(ErrorCode::Cancelled, format!("{kind} was stopped before it finished loading {model}"));
    let running = launcher.start().await.map_err(|e| if cancel.is_cancelled() { stopped() } else { e.into() })?;
    if cancel.is_cancelled() {
        // Stopped just as it became ready.
        running.stop().await;
        return Err(stopped());
    }
    let url = running.url.clone();
    *current = Some(running);
    Ok(url)
}

/// Sends the engine's events and output to the window until the engine is gone, and its events to
/// `on_event` (the tray) too.
fn forward(
    mut events: tokio::sync::broadcast::Receiver<EngineEvent>,
    mut output: tokio::sync::broadcast::Receiver<String>,
    on_update: Channel<EngineUpdate>,
    on_event: impl Fn(&EngineEvent) + Send + 'static,
) {
    use tokio::sync::broadcast::error::RecvError;
    tauri::async_runtime::spawn(async move {
        let (mut events_open, mut output_open) = (true, true);
        while events_open || output_open {
            let update = tokio::select! {
                event = events.recv(), if events_open => match event {
                    Ok(event) => {
                        on_event(&event);
                        EngineUpdate::Event { event }
                    }
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => { events_open = false; continue }
                },
                line = output.recv(), if output_open => match line {
                    Ok(text) => EngineUpdate::Line { text },
                    Err(RecvError::Lagged(n)) => EngineUpdate::Line { text: format!("[{n} lines skipped: see the log file]") },
                    Err(RecvError::Closed) => { output_open = false; continue }
                },
            };
            // A window that went away (reloaded) no longer listens; the tray still does.
            let _ = on_update.send(update);
        }
    });
}

/// Stops the engine this window started.
#[tauri::command]
#[specta::specta]
pub async fn engine_stop(serving: tauri::State<'_, Arc<Serving>>) -> Result<(), IpcError> {
    match serving.0.lock().await.take() {
        Some(engine) => {
            engine.stop().await;
            Ok(())
        }
        None => Err(IpcError::not_found(
            "this window runs no engine; one started with `fixbox engine start` stops with `fixbox engine stop`",
        )),
    }
}

/// Asks the running local engine `prompt` and measures the answer.
#[tauri::command]
#[specta::specta]
pub async fn engine_try(prompt: String) -> Result<TryResult, IpcError> {
    let engine = engine_registry()?
        .running()
        .into_iter()
        .next()
        .ok_or_else(|| IpcError::new(ErrorCode::NoModel, "no engine is ready: start one above first"))?;
    let model = engine.model.clone();
    let router = Routes::engine(engine).router(Arc::new(Metrics::default()))?;
    let mut request = ChatRequest::new(vec![Message::user(prompt.trim())]);
    request.sampling.max_tokens = Some(64);
    let mut stream = router.call("default", request, Arc::new(Meter::default()));
    while let Some(event) = stream.next().await {
        if let CallEvent::Done(record) = event? {
            return Ok(TryResult {
                model,
                text: record.text,
                completion_tokens: record.usage.completion,
                tokens_per_second: record.tokens_per_second,
                ttft_ms: record.ttft_ms,
                latency_ms: record.latency_ms,
            });
        }
    }
    Err(IpcError::new(ErrorCode::Model, "the engine ended the answer without finishing it; see its log above"))
}
