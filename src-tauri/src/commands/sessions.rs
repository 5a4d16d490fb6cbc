//! History: past sessions read back from the event log, searched, deleted, and replayed over a channel
//! at the pace they were recorded (or faster).

use std::time::Duration;

use fixbox_agent::{Event, Outcome, SessionReport};
use fixbox_store::{SessionSummary, Store};
use serde::Serialize;
use tauri::ipc::Channel;

use super::{blocking, open_store, parse_id};
use crate::error::IpcError;

/// A session as the history lists it.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct SessionListing {
    pub id: String,
    pub title: String,
    pub created_at_ms: i64,
    /// `None` for a session that is not a fix session (`fixbox ask`).
    pub repo: Option<String>,
    pub task: Option<String>,
    /// `None` while it runs, or when its process died before it ended.
    pub outcome: Option<Outcome>,
    pub iterations: u32,
    pub events: u64,
    pub tokens: u64,
    pub cost_usd: f64,
}

/// One event of a replay, with its place and time in the log.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct LoggedEvent {
    pub seq: u64,
    pub at_ms: i64,
    pub event: Event,
}

fn listing(store: &Store, session: SessionSummary) -> Result<SessionListing, IpcError> {
    let events = store.events_from(&session.id, 1)?;
    let report = SessionReport::from_events(&events);
    let totals = report.as_ref().and_then(|r| r.totals.clone()).unwrap_or_default();
    Ok(SessionListing {
        id: session.id.to_string(),
        title: session.title,
        created_at_ms: session.created_at_ms,
        repo: report.as_ref().map(|r| r.repo.clone()),
        task: report.as_ref().map(|r| r.task.clone()),
        iterations: report.as_ref().map_or(0, |r| r.iterations),
        outcome: report.and_then(|r| r.outcome),
        events: session.last_seq,
        tokens: totals.usage.total(),
        cost_usd: totals.cost_usd,
    })
}

/// Every session, newest first. The history reads them once and searches them in the window, so a
/// keystroke never reads the event log again.
#[tauri::command]
#[specta::specta]
pub async fn sessions_list() -> Result<Vec<SessionListing>, IpcError> {
    blocking(move || {
        let store = open_store()?;
        let sessions = store.list_sessions()?;
        sessions.into_iter().map(|session| listing(&store, session)).collect()
    })
    .await
}

/// Deletes a session and its whole event log.
#[tauri::command]
#[specta::specta]
pub async fn sessions_delete(id: String) -> Result<(), IpcError> {
    blocking(move || {
        let id = parse_id(&id)?;
        match open_store()?.delete_session(&id) {
            Ok(true) => Ok(()),
            Ok(false) => Err(IpcError::not_found(format!("session {id} is not in the history (already deleted?)"))),
            Err(e) => Err(IpcError { message: format!("cannot delete session {id}: {e}"), ..e.into() }),
        }
    })
    .await
}

/// A pause in a replay never lasts longer than this, whatever the recording's: a session that waited
/// minutes on a slow model replays without the wait.
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

/// Sends a session's events to `on_event` in order, spaced as they were recorded divided by `speed`
/// (2 = twice as fast; 0 = all at once). Returns when every event is sent, or when the window stops
/// listening.
#[tauri::command]
#[specta::specta]
pub async fn sessions_replay(id: String, speed: f64, on_event: Channel<LoggedEvent>) -> Result<(), IpcError> {
    let events = blocking(move || {
        let id = parse_id(&id)?;
        let store = open_store()?;
        if store.session(&id)?.is_none() {
            return Err(IpcError::not_found(format!("session {id} is not in the history")));
        }
        store.events_from(&id, 1).map_err(IpcError::from)
    })
    .await?;
    let mut previous_at = None;
    for stored in events {
        // Entries that are not fix-session events (an `ask` session's) have nothing to show.
        let Some(event) = Event::from_stored(&stored) else { continue };
        if let Some(previous) = previous_at.filter(|_| speed > 0.0 && speed.is_finite()) {
            let gap = Duration::from_millis(u64::try_from(stored.at_ms - previous).unwrap_or(0));
            tokio::time::sleep(gap.div_f64(speed).min(LONGEST_PAUSE)).await;
        }
        previous_at = Some(stored.at_ms);
        if on_event.send(LoggedEvent { seq: stored.seq, at_ms: stored.at_ms, event }).is_err() {
            break;
        }
    }
    Ok(())
}
