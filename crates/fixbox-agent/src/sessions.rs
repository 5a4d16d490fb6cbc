//! Where fix sessions run: the one lifecycle every front end (the CLI, the app, eval) calls.
//!
//! [`Sessions::start`] queues a prepared [`Fix`] behind a cap on how many run at once, makes its
//! sandbox, records the session in the store, runs it, and hands back a [`SessionHandle`]: the
//! session's updates in order with none missed (setup lines, its id, every event), Stop, and its end.
//! Front ends only render the updates. Each session is counted on its router's metrics registry.

use std::sync::Arc;

use fixbox_llm::Router;
use fixbox_sandbox::{DockerHost, Limits};
use fixbox_store::{SessionId, Store};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::AgentError;
use crate::event::{Event, EventLog, Recorded};
use crate::metrics::SessionMetrics;
use crate::outcome::Finished;
use crate::session::Fix;
use crate::setup::{self, Sandboxed};

/// Runs fix sessions, at most `max_running` at once; the others wait their turn.
#[derive(Debug, Clone)]
pub struct Sessions {
    slots: Arc<Semaphore>,
}

/// What a session runs with besides its request.
#[derive(Debug, Clone)]
pub struct SessionSetup {
    /// Where its events are recorded.
    pub store: Arc<Store>,
    /// The models that answer.
    pub router: Router,
    /// The sandbox's memory, CPUs and processes.
    pub limits: Limits,
    /// The Docker Engine its sandbox runs on.
    pub docker: DockerHost,
}

/// What a running session reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionUpdate {
    /// Waiting for a running session to end (the cap is reached).
    Queued,
    /// A line from getting the sandbox ready (an image build takes minutes the first time).
    Setup { line: String },
    /// The session is in the store from now on.
    Started { session: SessionId },
    /// An event of the session's log, with its place in it and when it was recorded.
    Event { seq: u64, at_ms: i64, event: Event },
}

/// A session started by [`Sessions::start`].
#[derive(Debug)]
pub struct SessionHandle {
    updates: mpsc::UnboundedReceiver<SessionUpdate>,
    ended: JoinHandle<Result<Finished, AgentError>>,
}

impl Sessions {
    pub fn new(max_running: usize) -> Self {
        Self { slots: Arc::new(Semaphore::new(max_running.max(1))) }
    }

    /// Starts `fix` on the current runtime; cancelling `stop` stops it at its next step (it is kept,
    /// ending [`Outcome::Cancelled`](crate::Outcome)), or before it began. It ends with a [`Finished`]
    /// session, or with an [`AgentError`] when it could not run (no sandbox, no store, stopped first).
    pub fn start(&self, fix: Fix, setup: SessionSetup, stop: CancellationToken) -> SessionHandle {
        let (updates, receiver) = mpsc::unbounded_channel();
        let sessions = self.clone();
        let ended = tokio::spawn(async move { sessions.run(fix, setup, updates, stop).await });
        SessionHandle { updates: receiver, ended }
    }

    async fn run(
        self,
        fix: Fix,
        setup: SessionSetup,
        updates: mpsc::UnboundedSender<SessionUpdate>,
        cancel: CancellationToken,
    ) -> Result<Finished, AgentError> {
        let metrics = SessionMetrics::new(Arc::clone(setup.router.metrics()));
        let ended = self.run_counted(fix, setup, updates, cancel, &metrics).await;
        metrics.ended(&ended);
        ended
    }

    async fn run_counted(
        self,
        fix: Fix,
        setup: SessionSetup,
        updates: mpsc::UnboundedSender<SessionUpdate>,
        cancel: CancellationToken,
        metrics: &SessionMetrics,
    ) -> Result<Finished, AgentError> {
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let _queued = metrics.queued();
                let _ = updates.send(SessionUpdate::Queued);
                tokio::select! {
                    slot = self.slots.clone().acquire_owned() => slot.map_err(|_| AgentError::Stopped { before: "it could start" })?,
                    () = cancel.cancelled() => return Err(AgentError::Stopped { before: "it could start" }),
                }
            }
        };
        let _running = metrics.running();
        let on_line = {
            let updates = updates.clone();
            move |line: &str| {
                let _ = updates.send(SessionUpdate::Setup { line: line.to_string() });
            }
        };
        let sandboxed = tokio::select! {
            sandboxed = setup::sandbox(&setup.docker, &fix.plan().recipe, setup.limits, fix.needs_network(), &on_line) => sandboxed,
            () = cancel.cancelled() => Err(AgentError::Stopped { before: "its sandbox was ready" }),
        };
        let Sandboxed { sandbox, image, took } = sandboxed?;
        metrics.sandbox_started(took);
        let id = setup.store.create_session(&fix.title())?;
        let _ = updates.send(SessionUpdate::Started { session: id.clone() });
        let log = EventLog::new(Arc::clone(&setup.store), id.clone());
        let forwarder = tokio::spawn(forward(log.subscribe(), Arc::clone(&setup.store), id, updates));
        let finished = fix.run(sandbox, &image, took, &setup.router, &log, cancel).await;
        drop(log);
        let _ = forwarder.await;
        drop(slot);
        finished
    }
}

impl SessionHandle {
    /// The next update; `None` once the session is over and every update was delivered.
    pub async fn next(&mut self) -> Option<SessionUpdate> {
        self.updates.recv().await
    }

    /// Waits for the end. Updates not read by then are dropped.
    pub async fn finish(self) -> Result<Finished, AgentError> {
        self.ended.await.map_err(|err| AgentError::Config(format!("the session's task failed: {err}")))?
    }
}

/// Sends the log's events as they are recorded, until the log is dropped. Events the broadcast
/// dropped (a slow reader) are read back from the store, so none is missed or sent twice.
async fn forward(
    mut events: broadcast::Receiver<Recorded>,
    store: Arc<Store>,
    id: SessionId,
    updates: mpsc::UnboundedSender<SessionUpdate>,
) {
    let mut sent = 0;
    loop {
        let recorded = match events.recv().await {
            Ok(recorded) => recorded,
            Err(RecvError::Lagged(_)) => {
                sent = backfill(&store, &id, sent, &updates);
                continue;
            }
            Err(RecvError::Closed) => {
                backfill(&store, &id, sent, &updates);
                break;
            }
        };
        if recorded.seq <= sent {
            continue; // a backfill sent it already
        }
        if recorded.seq > sent + 1 {
            // Committed before it was broadcast, so the store has it and everything before it.
            sent = backfill(&store, &id, sent, &updates);
            continue;
        }
        sent = recorded.seq;
        let update = SessionUpdate::Event { seq: recorded.seq, at_ms: now_ms(), event: recorded.event };
        if updates.send(update).is_err() {
            break;
        }
    }
}

/// Sends the events after `sent` from the store; returns the last one sent.
fn backfill(store: &Store, id: &SessionId, mut sent: u64, updates: &mpsc::UnboundedSender<SessionUpdate>) -> u64 {
    let Ok(stored) = store.events_from(id, sent + 1) else { return sent };
    for entry in stored {
        if let Some(event) = Event::from_stored(&entry) {
            let _ = updates.send(SessionUpdate::Event { seq: entry.seq, at_ms: entry.at_ms, event });
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
