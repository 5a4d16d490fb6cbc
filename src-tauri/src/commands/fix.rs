//! A new fix session started from the window: what the folder's tests are, which routes can answer,
//! then the session itself, its events streamed to the window over a channel as they are recorded;
//! Stop; and at the end, accept (write the fix into the folder) or export the patch.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use fixbox_agent::setup::Sandboxed;
use fixbox_agent::{EventLog, Fix, FixRequest, Limits, ModelSettings, Outcome, Preferences, Recorded, SessionReport};
use fixbox_llm::Metrics;
use fixbox_store::{SessionId, Store};
use serde::{Deserialize, Serialize};
use tauri::ipc::Channel;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::sessions::LoggedEvent;
use super::{Jobs, blocking, load_routes, open_store, parse_id};

/// The number `fix_start` gives the next session it starts (its job is `fix:<number>`).
static NEXT_RUN: AtomicU32 = AtomicU32::new(1);

fn run_job(run: u32) -> String {
    format!("fix:{run}")
}

/// What the form shows for a folder.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct FolderTests {
    /// The detected test command.
    pub command: String,
    /// The sandbox image recipe that runs it.
    pub recipe: String,
}

/// The routes a session can use, and where they come from.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct RouteChoices {
    pub from: String,
    pub tasks: Vec<RouteTask>,
}

#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct RouteTask {
    pub task: String,
    /// Provider names, in the order they are tried.
    pub providers: Vec<String>,
}

/// A session to start, as the form fills it.
#[derive(Debug, Clone, Deserialize, specta::Type)]
pub struct NewFix {
    pub folder: String,
    pub task: String,
    /// `None`: the detected one.
    pub test: Option<String>,
    /// The routing task whose routes answer.
    pub route: String,
    pub max_iterations: u32,
    pub budget_usd: Option<f64>,
    pub timeout_minutes: u32,
}

/// What a running session sends the window.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FixUpdate {
    /// A line from getting the sandbox ready (an image build takes minutes the first time).
    Setup {
        line: String,
    },
    /// The session exists in the history from now on.
    Started {
        session: String,
    },
    Event {
        logged: LoggedEvent,
    },
    /// The session is over; `error` when it could not run at all.
    Ended {
        error: Option<String>,
    },
}

/// The test command and sandbox image for the repository in `folder`.
#[tauri::command]
#[specta::specta]
pub async fn fix_detect(folder: String) -> Result<FolderTests, String> {
    blocking(move || {
        let plan = fixbox_agent::detect(&PathBuf::from(&folder)).map_err(|e| e.to_string())?;
        Ok(FolderTests { command: plan.command, recipe: plan.recipe })
    })
    .await
}

/// The routing tasks a session can be answered by.
#[tauri::command]
#[specta::specta]
pub async fn fix_routes() -> Result<RouteChoices, String> {
    blocking(move || {
        let routes = load_routes(&open_store()?)?;
        let tasks = routes.tasks().into_iter().map(|(task, providers)| RouteTask { task, providers }).collect();
        Ok(RouteChoices { from: routes.from, tasks })
    })
    .await
}

/// Starts a fix session and returns its run number (for `fix_stop`) once the request is checked: the
/// folder, its tests, the routes. The sandbox's setup, the session's events and its end come on
/// `on_update`.
#[tauri::command]
#[specta::specta]
pub async fn fix_start(
    request: NewFix,
    on_update: Channel<FixUpdate>,
    jobs: tauri::State<'_, Arc<Jobs>>,
    app: tauri::AppHandle,
) -> Result<u32, String> {
    let task = request.task.trim().to_string();
    if task.is_empty() {
        return Err("say what is wrong: the task is empty".into());
    }
    let fix_request = FixRequest {
        repo: PathBuf::from(request.folder.trim()),
        task: task.clone(),
        test: request.test.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()),
        model: ModelSettings { task: request.route.clone(), ..ModelSettings::default() },
        limits: Limits {
            max_iterations: request.max_iterations.max(1),
            budget_usd: request.budget_usd.filter(|b| *b > 0.0),
            wall_time_s: u64::from(request.timeout_minutes.max(1)) * 60,
            ..Limits::default()
        },
        allow_test_edits: false,
    };
    let (fix, store, router, sandbox_limits) = blocking(move || {
        let fix = Fix::prepare(fix_request).map_err(|e| e.to_string())?;
        let store = open_store()?;
        let router = load_routes(&store)?.router(Arc::new(Metrics::default())).map_err(|e| e.to_string())?;
        let sandbox_limits = Preferences::load(&store).map_err(|e| e.to_string())?.sandbox_limits();
        Ok((fix, Arc::new(store), router, sandbox_limits))
    })
    .await?;
    let run = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
    let (cancel, job) = jobs.start(&run_job(run))?;
    tauri::async_runtime::spawn(async move {
        let stopped = cancel.clone();
        let ended = session(fix, sandbox_limits, store, router, &on_update, cancel).await;
        if !stopped.is_cancelled() {
            notify_ended(&app, &task, &ended);
        }
        let error = ended.err();
        if let Some(error) = &error {
            tracing::warn!(%error, "a fix session could not run");
        }
        drop(job);
        let _ = on_update.send(FixUpdate::Ended { error });
    });
    Ok(run)
}

async fn session(
    fix: Fix,
    sandbox_limits: fixbox_sandbox::Limits,
    store: Arc<Store>,
    router: fixbox_llm::Router,
    on_update: &Channel<FixUpdate>,
    cancel: CancellationToken,
) -> Result<Outcome, String> {
    let setup_channel = on_update.clone();
    let on_line = move |line: &str| {
        let _ = setup_channel.send(FixUpdate::Setup { line: line.to_string() });
    };
    let Sandboxed { sandbox, image, took } = tokio::select! {
        sandboxed = fixbox_agent::setup::sandbox(&fix.plan().recipe, sandbox_limits, &on_line) => sandboxed.map_err(|e| e.to_string())?,
        () = cancel.cancelled() => return Err("stopped before the sandbox was ready".into()),
    };
    let id = store.create_session(&fix.title()).map_err(|e| e.to_string())?;
    let _ = on_update.send(FixUpdate::Started { session: id.to_string() });
    let log = EventLog::new(Arc::clone(&store), id.clone());
    let forwarder = forward(log.subscribe(), store, id, on_update.clone());
    let finished = fix.run(sandbox, &image, took, &router, &log, cancel).await;
    drop(log);
    let _ = forwarder.await;
    finished.map(|f| f.outcome).map_err(|e| e.to_string())
}

/// Tells the desktop how a session ended, as the user may be working elsewhere by then (a session
/// the user stopped is not news to them).
fn notify_ended(app: &tauri::AppHandle, task: &str, ended: &Result<Outcome, String>) {
    use tauri_plugin_notification::NotificationExt as _;
    let (title, why) = match ended {
        Ok(Outcome::Fixed) => ("Fixed: the tests pass", None),
        Ok(Outcome::AlreadyPassing) => ("Nothing to fix: the tests already pass", None),
        Ok(Outcome::MaxIterations) => ("Not fixed", Some("The iteration limit was reached.".to_string())),
        Ok(Outcome::WallTime) => ("Not fixed", Some("The time limit was reached.".to_string())),
        Ok(Outcome::Budget { message }) => ("Not fixed", Some(format!("The budget stopped it: {message}"))),
        Ok(Outcome::Stuck { failure }) => ("Not fixed", Some(format!("The same failure kept coming back: {failure}"))),
        Ok(Outcome::GaveUp { reason }) => ("Not fixed", Some(format!("The model gave up: {reason}"))),
        Ok(Outcome::Error { message }) => ("Not fixed", Some(message.clone())),
        Ok(Outcome::Cancelled) => return,
        Err(error) => ("The fix session could not run", Some(error.clone())),
    };
    let cut: String = task.chars().take(120).collect();
    let task = if cut.len() < task.len() { format!("{cut}…") } else { cut };
    let body = why.map_or(task.clone(), |why| format!("{task}\n{why}"));
    if let Err(err) = app.notification().builder().title(title).body(body).show() {
        tracing::debug!(%err, "no desktop notification for the session's end");
    }
}

/// Sends the log's events to the window as they are recorded, until the log is dropped. Events the
/// broadcast dropped (the window fell behind) are read back from the store, so the window misses none.
fn forward(
    mut events: tokio::sync::broadcast::Receiver<Recorded>,
    store: Arc<Store>,
    id: SessionId,
    on_update: Channel<FixUpdate>,
) -> tauri::async_runtime::JoinHandle<()> {
    tauri::async_runtime::spawn(async move {
        let mut sent = 0;
        let send = |seq: u64, at_ms: i64, event| {
            on_update.send(FixUpdate::Event { logged: LoggedEvent { seq, at_ms, event } })
        };
        loop {
            let recorded = match events.recv().await {
                Ok(recorded) => recorded,
                Err(RecvError::Lagged(_)) => {
                    sent = backfill(&store, &id, sent, &send);
                    continue;
                }
                Err(RecvError::Closed) => {
                    backfill(&store, &id, sent, &send);
                    break;
                }
            };
            if recorded.seq <= sent {
                continue; // a backfill sent it already
            }
            if recorded.seq > sent + 1 {
                // Committed before it was broadcast, so the store has it and everything before it.
                sent = backfill(&store, &id, sent, &send);
                continue;
            }
            sent = recorded.seq;
            if send(recorded.seq, now_ms(), recorded.event).is_err() {
                break;
            }
        }
    })
}

/// Sends the events after `sent` from the store; returns the last one sent.
fn backfill(
    store: &Store,
    id: &SessionId,
    mut sent: u64,
    send: &impl Fn(u64, i64, fixbox_agent::Event) -> tauri::Result<()>,
) -> u64 {
    let Ok(stored) = store.events_from(id, sent + 1) else { return sent };
    for entry in stored {
        if let Some(event) = fixbox_agent::Event::from_stored(&entry) {
            let _ = send(entry.seq, entry.at_ms, event);
        }
        sent = entry.seq;
    }
    sent
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Stops a running session: the loop ends at its next step and the session is kept.
#[tauri::command]
#[specta::specta]
pub fn fix_stop(run: u32, jobs: tauri::State<'_, Arc<Jobs>>) -> Result<(), String> {
    if jobs.cancel(&run_job(run)) { Ok(()) } else { Err(format!("session run {run} is not running (it has ended)")) }
}

fn report(id: &str) -> Result<SessionReport, String> {
    let id = parse_id(id)?;
    let store = open_store()?;
    let events = store.events_from(&id, 1).map_err(|e| e.to_string())?;
    SessionReport::from_events(&events).ok_or_else(|| format!("session {id} is not a fix session"))
}

/// Writes the session's fix into the folder it was made from; returns the files written.
#[tauri::command]
#[specta::specta]
pub async fn fix_accept(session: String) -> Result<Vec<String>, String> {
    blocking(move || {
        let report = report(&session)?;
        if report.diff.is_empty() {
            return Err("the session changed nothing: there is nothing to accept".into());
        }
        fixbox_agent::accept(&PathBuf::from(&report.repo), &report.diff).map_err(|e| e.to_string())
    })
    .await
}

/// Writes the session's fix as a `git apply`-able patch to `path`.
#[tauri::command]
#[specta::specta]
pub async fn fix_export(session: String, path: String) -> Result<(), String> {
    blocking(move || {
        let report = report(&session)?;
        std::fs::write(&path, &report.diff).map_err(|e| format!("cannot write {path}: {e}"))
    })
    .await
}
