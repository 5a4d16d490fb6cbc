//! A new fix session started from the window: what the folder's tests are, which routes can answer,
//! then the session itself, its events streamed to the window over a channel as they are recorded;
//! Stop; and at the end, accept (write the fix into the folder) or export the patch.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use fixbox_agent::{
    Fix, FixRequest, Limits, ModelSettings, Outcome, Preferences, SessionHandle, SessionReport, SessionSetup,
    SessionUpdate, Sessions, SharedFiles,
};
use fixbox_llm::Metrics;
use fixbox_sandbox::HostAddress;
use serde::{Deserialize, Serialize};
use tauri::ipc::Channel;

use super::sessions::LoggedEvent;
use super::{JobId, Jobs, blocking, load_routes, open_store, parse_id};
use crate::error::IpcError;

/// The number `fix_start` gives the next session it starts (its job is [`JobId::Fix`]).
static NEXT_RUN: AtomicU32 = AtomicU32::new(1);

/// What the form shows for a folder.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct FolderTests {
    /// The detected test command.
    pub command: String,
    /// The sandbox image recipe that runs it.
    pub recipe: String,
    /// The command that installs the dependencies its manifests declare; `None` where they declare none.
    pub setup: Option<String>,
    /// The files remembered as shared with the sandbox for this folder although their names look like
    /// credentials (see [`SharedFiles`]).
    pub shared: Vec<String>,
    /// When the folder is a GitHub issue (`github:owner/repo#123`): what it says; its repository is
    /// cloned, and the tests above are the clone's.
    pub issue: Option<IssueText>,
}

/// A GitHub issue, as the form shows it.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct IssueText {
    pub title: String,
    pub url: String,
    /// The task a session gets: the title, the body and the latest comments.
    pub task: String,
}

/// A pull request drafted from a session on a GitHub issue, waiting for the user's yes.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct ReadyPull {
    pub branch: String,
    /// Whether the tests show the fix works (the pull request says so either way).
    pub verified: bool,
    /// Files the change touches that run in CI or at build time.
    pub sensitive: Vec<String>,
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
    /// The command that installs the dependencies; `None`: the detected one.
    pub setup: Option<String>,
    /// The routing task whose routes answer.
    pub route: String,
    pub max_iterations: u32,
    pub budget_usd: Option<f64>,
    pub timeout_minutes: u32,
    /// Files the sandbox gets although their names look like credentials; remembered for the folder.
    pub share: Vec<String>,
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
    /// The session is over; `error` when it could not run at all; `pull_request` when it was on a
    /// GitHub issue and changed something (opened with `github_open_pr`).
    Ended {
        error: Option<IpcError>,
        pull_request: Option<ReadyPull>,
    },
}

/// The test command and sandbox image for the repository in `folder`.
#[tauri::command]
#[specta::specta]
pub async fn fix_detect(folder: String) -> Result<FolderTests, IpcError> {
    let checkout = match github_issue(&folder)? {
        Some(reference) => Some(super::github::checkout(&reference).await?),
        None => None,
    };
    blocking(move || {
        let folder = checkout.as_ref().map_or_else(|| PathBuf::from(&folder), |c| c.clone.clone());
        let plan = fixbox_agent::detect(&folder)?;
        let shared = SharedFiles::load(&open_store()?, &folder)?;
        let issue =
            checkout.map(|c| IssueText { title: c.issue.title.clone(), url: c.issue.html_url.clone(), task: c.task() });
        let setup = fixbox_agent::install_command(&folder, &plan.recipe);
        Ok(FolderTests { command: plan.command, recipe: plan.recipe, setup, shared, issue })
    })
    .await
}

/// The routing tasks a session can be answered by.
#[tauri::command]
#[specta::specta]
pub async fn fix_routes() -> Result<RouteChoices, IpcError> {
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
    sessions: tauri::State<'_, Sessions>,
    app: tauri::AppHandle,
) -> Result<u32, IpcError> {
    let task = request.task.trim().to_string();
    if task.is_empty() {
        return Err(IpcError::invalid("say what is wrong: the task is empty"));
    }
    let checkout = match github_issue(&request.folder)? {
        Some(reference) => Some(super::github::checkout(&reference).await?),
        None => None,
    };
    let fix_request = FixRequest {
        repo: checkout.as_ref().map_or_else(|| PathBuf::from(request.folder.trim()), |c| c.clone.clone()),
        task: task.clone(),
        test: request.test.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()),
        setup: request
            .setup
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .map_or(fixbox_agent::Setup::Detect, fixbox_agent::Setup::Command),
        model: ModelSettings { task: request.route.clone(), ..ModelSettings::default() },
        limits: Limits {
            max_iterations: request.max_iterations.max(1),
            budget_usd: request.budget_usd.filter(|b| *b > 0.0),
            wall_time_s: u64::from(request.timeout_minutes.max(1)) * 60,
            ..Limits::default()
        },
        allow_test_edits: false,
        bug_tests: Vec::new(),
        share: request.share,
    };
    let (folder, share) = (fix_request.repo.clone(), fix_request.share.clone());
    let (fix, store, router, sandbox_limits) = blocking(move || {
        let fix = Fix::prepare(fix_request)?;
        let store = open_store()?;
        SharedFiles::save(&store, &folder, &share)?;
        let router = load_routes(&store)?.router(Arc::new(Metrics::default()))?;
        let sandbox_limits = Preferences::load(&store)?.sandbox_limits();
        Ok((fix, Arc::new(store), router, sandbox_limits))
    })
    .await?;
    let run = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
    let (stop, job) = jobs.start(JobId::Fix { run })?;
    let setup = SessionSetup { store: Arc::clone(&store), router, limits: sandbox_limits, docker: HostAddress::Local };
    let session = sessions.start(fix, setup, stop.clone());
    tauri::async_runtime::spawn(async move {
        let (id, ended) = forward(session, &on_update).await;
        if !stop.is_cancelled() {
            notify_ended(&app, &task, &ended);
        }
        let mut error = ended.err();
        if let Some(error) = &error {
            tracing::warn!(%error, "a fix session could not run");
        }
        // On a GitHub issue: the pull request drafted and kept, for the user to open.
        let mut pull_request = None;
        if let (Some(checkout), Some(id), None) = (&checkout, &id, &error) {
            match fixbox_github::Pending::draft(&store, checkout, id).await {
                Ok(pending) => {
                    pull_request = pending.map(|p| ReadyPull {
                        branch: p.draft.branch,
                        verified: p.draft.verified,
                        sensitive: p.draft.sensitive,
                    });
                }
                Err(err) => {
                    let message = format!("the pull request could not be drafted: {err}");
                    error = Some(IpcError { message, ..err.into() });
                }
            }
        }
        drop(job);
        let _ = on_update.send(FixUpdate::Ended { error, pull_request });
    });
    Ok(run)
}

/// Sends the session's updates to the window until it ends; returns its id (once it has one) and how
/// it ended.
async fn forward(
    mut session: SessionHandle,
    on_update: &Channel<FixUpdate>,
) -> (Option<String>, Result<Outcome, IpcError>) {
    let mut id = None;
    while let Some(update) = session.next().await {
        let update = match update {
            SessionUpdate::Queued => FixUpdate::Setup {
                line: "queued: waiting for a running session to end (this machine runs as many as it holds)".into(),
            },
            SessionUpdate::Setup { line } => FixUpdate::Setup { line },
            SessionUpdate::Started { session } => {
                id = Some(session.to_string());
                FixUpdate::Started { session: session.to_string() }
            }
            SessionUpdate::Event { seq, at_ms, event } => {
                FixUpdate::Event { logged: LoggedEvent { seq, at_ms, event } }
            }
        };
        let _ = on_update.send(update);
    }
    (id, session.finish().await.map(|finished| finished.outcome).map_err(IpcError::from))
}

/// The GitHub issue a form's folder names (`github:owner/repo#123` or the issue's URL), if it names one.
fn github_issue(folder: &str) -> Result<Option<fixbox_github::IssueRef>, IpcError> {
    let folder = folder.trim();
    if fixbox_github::IssueRef::is_issue(folder) {
        folder.parse().map(Some).map_err(|e: fixbox_github::GitHubError| e.into())
    } else {
        Ok(None)
    }
}

/// Tells the desktop how a session ended, as the user may be working elsewhere by then (a session
/// the user stopped is not news to them).
fn notify_ended(app: &tauri::AppHandle, task: &str, ended: &Result<Outcome, IpcError>) {
    use tauri_plugin_notification::NotificationExt as _;
    let (title, why) = match ended {
        Ok(Outcome::Fixed) => ("Fixed: the tests pass", None),
        Ok(Outcome::AlreadyPassing) => ("Nothing to fix: the tests already pass", None),
        Ok(Outcome::NotReproduced { reason }) => {
            ("Not fixed", Some(format!("No test written for the issue showed the bug: {reason}")))
        }
        Ok(Outcome::MaxIterations) => ("Not fixed", Some("The iteration limit was reached.".to_string())),
        Ok(Outcome::WallTime) => ("Not fixed", Some("The time limit was reached.".to_string())),
        Ok(Outcome::Budget { message }) => ("Not fixed", Some(format!("The budget stopped it: {message}"))),
        Ok(Outcome::Stuck { failure }) => ("Not fixed", Some(format!("The same failure kept coming back: {failure}"))),
        Ok(Outcome::GaveUp { reason }) => ("Not fixed", Some(format!("The model gave up: {reason}"))),
        Ok(Outcome::SetupFailed { command, .. }) => {
            ("Not fixed", Some(format!("The setup command `{command}` failed; its output is in the session.")))
        }
        Ok(Outcome::Error { message }) => ("Not fixed", Some(message.clone())),
        Ok(Outcome::Cancelled) => return,
        Err(error) => ("The fix session could not run", Some(error.message.clone())),
    };
    let cut: String = task.chars().take(120).collect();
    let task = if cut.len() < task.len() { format!("{cut}…") } else { cut };
    let body = why.map_or(task.clone(), |why| format!("{task}\n{why}"));
    if let Err(err) = app.notification().builder().title(title).body(body).show() {
        tracing::debug!(%err, "no desktop notification for the session's end");
    }
}

/// Stops a running session: the loop ends at its next step and the session is kept.
#[tauri::command]
#[specta::specta]
pub fn fix_stop(run: u32, jobs: tauri::State<'_, Arc<Jobs>>) -> Result<(), IpcError> {
    if jobs.cancel(&JobId::Fix { run }) {
        Ok(())
    } else {
        Err(IpcError::not_found(format!("session run {run} is not running (it has ended)")))
    }
}

fn report(id: &str) -> Result<SessionReport, IpcError> {
    let id = parse_id(id)?;
    let store = open_store()?;
    let events = store.events_from(&id, 1)?;
    SessionReport::from_events(&events).ok_or_else(|| IpcError::not_found(format!("session {id} is not a fix session")))
}

/// A fix written into its folder.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct Accepted {
    /// The files written, relative to the folder.
    pub files: Vec<String>,
}

/// Writes the session's fix into the folder it was made from; returns the files written.
#[tauri::command]
#[specta::specta]
pub async fn fix_accept(session: String) -> Result<Accepted, IpcError> {
    blocking(move || {
        let report = report(&session)?;
        if report.diff.is_empty() {
            return Err(IpcError::invalid("the session changed nothing: there is nothing to accept"));
        }
        let files = fixbox_agent::accept(&PathBuf::from(&report.repo), &report.diff)?;
        Ok(Accepted { files })
    })
    .await
}

/// Writes the session's fix as a `git apply`-able patch to `path`.
#[tauri::command]
#[specta::specta]
pub async fn fix_export(session: String, path: String) -> Result<(), IpcError> {
    blocking(move || {
        let report = report(&session)?;
        std::fs::write(&path, &report.diff).map_err(|e| IpcError::invalid(format!("cannot write {path}: {e}")))
    })
    .await
}
