//! Where fix sessions run: the one lifecycle every front end (the CLI, the app, eval) calls.
//!
//! [`Sessions::start`] queues a prepared [`Fix`] behind a cap on how many run at once (in this
//! process, and on this machine across every Fixbox process: [`machine_cap`]), makes its sandbox, records the session in the store, runs it, and hands back a [`SessionHandle`]: the
//! session's updates in order with none missed (setup lines, its id, every event), Stop, and its end.
//! Front ends only render the updates. Each session is counted on its router's metrics registry.

use std::sync::Arc;

use fixbox_llm::Router;
use fixbox_sandbox::{HostAddress, Limits};
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
use crate::setup::{Sandboxed, WarmPools};

/// Runs fix sessions, at most `max_running` at once; the others wait their turn. Cloning shares the
/// cap and the warm pools.
#[derive(Debug, Clone)]
pub struct Sessions {
    slots: Arc<Semaphore>,
    warm: WarmPools,
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
    /// The sandbox host its sandbox runs on.
    pub docker: HostAddress,
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
    /// At most `max_running` at once, each in a sandbox made when it starts.
    pub fn new(max_running: usize) -> Self {
        Self { slots: Arc::new(Semaphore::new(max_running.max(1))), warm: WarmPools::new(0) }
    }

    /// Keeps `size` sandboxes ready for each kind of sandbox a session ran in, so the next session
    /// without network (a setup restored, or none) starts in one at once. For a process that runs
    /// more than one session; [`Sessions::shutdown`] removes them.
    pub fn with_warm_pools(self, size: usize) -> Self {
        Self { warm: WarmPools::new(size), ..self }
    }

    /// The warm pools.
    pub fn warm(&self) -> &WarmPools {
        &self.warm
    }

    /// Removes the sandboxes kept ready. Sessions started later make their sandboxes cold.
    pub async fn shutdown(&self) {
        self.warm.shutdown().await;
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
        mut fix: Fix,
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
        let _machine_slot = match setup.docker {
            HostAddress::Local => {
                let dir = setup.store.path().parent().map(|d| d.join("slots")).unwrap_or_else(|| "slots".into());
                let cap = machine_cap(setup.limits.memory_bytes);
                Some(machine_slot(&dir, cap, &updates, &cancel, metrics).await?)
            }
            // Another machine's Engine: that machine's memory bounds it, and eval spreads over several.
            HostAddress::At { .. } => None,
        };
        if let Some(data) = setup.store.path().parent() {
            fix.keep_environment_in(&data.join("environments"));
        }
        let _running = metrics.running();
        let on_line = {
            let updates = updates.clone();
            move |line: &str| {
                let _ = updates.send(SessionUpdate::Setup { line: line.to_string() });
            }
        };
        let getting = self.warm.sandbox(
            &setup.docker,
            &fix.plan().recipe,
            setup.limits,
            fix.needs_network(),
            fix.restores(),
            &on_line,
        );
        let sandboxed = tokio::select! {
            sandboxed = getting => sandboxed,
            () = cancel.cancelled() => Err(AgentError::Stopped { before: "its sandbox was ready" }),
        };
        let Sandboxed { sandbox, image, took, warm, restored } = sandboxed?;
        if warm {
            let with = if restored { " with what an earlier session installed" } else { "" };
            on_line(&format!("a sandbox from the warm pool{with}, ready in {} ms", took.as_millis()));
        }
        if restored {
            fix.restored_ahead();
        }
        metrics.sandbox_started(took, warm);
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

/// Sessions at once on this machine, across every Fixbox process: one per two cores (a session's tests
/// and its judge's each take cores), and as many sandboxes of `sandbox_memory` as memory holds with a
/// GiB to spare each. `FIXBOX_MAX_SESSIONS` sets it instead.
pub fn machine_cap(sandbox_memory: u64) -> usize {
    if let Some(set) = std::env::var("FIXBOX_MAX_SESSIONS").ok().and_then(|v| v.trim().parse::<usize>().ok()) {
        return set.max(1);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let by_memory = fixbox_hardware::usable_total_bytes()
        .map_or(usize::MAX, |memory| usize::try_from(memory / (sandbox_memory + (1 << 30))).unwrap_or(usize::MAX));
    (cores / 2).min(by_memory).max(1)
}

/// A place among this machine's `cap` sessions: a lock on one of the files `dir/0.lock`…, held until the
/// file is dropped, and released by the kernel when its process dies, however it dies. Waits, saying
/// it is queued, while all are taken.
async fn machine_slot(
    dir: &std::path::Path,
    cap: usize,
    updates: &mpsc::UnboundedSender<SessionUpdate>,
    cancel: &CancellationToken,
    metrics: &SessionMetrics,
) -> Result<std::fs::File, AgentError> {
    std::fs::create_dir_all(dir).map_err(|source| AgentError::Read { path: dir.to_path_buf(), source })?;
    let mut queued = None;
    loop {
        for n in 0..cap {
            let path = dir.join(format!("{n}.lock"));
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|source| AgentError::Read { path, source })?;
            if file.try_lock().is_ok() {
                return Ok(file);
            }
        }
        if queued.is_none() {
            queued = Some(metrics.queued());
            let _ = updates.send(SessionUpdate::Queued);
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
            () = cancel.cancelled() => return Err(AgentError::Stopped { before: "it could start" }),
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_machine_cap_queues_a_session_until_a_place_frees_even_when_its_holder_was_killed() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = SessionMetrics::new(Arc::new(fixbox_llm::Metrics::default()));
        let (updates, mut seen) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();

        // Another process holds the only place; SIGKILL frees it.
        std::fs::write(dir.path().join("0.lock"), "").unwrap();
        let mut holder = std::process::Command::new("flock")
            .arg("-o")
            .arg(dir.path().join("0.lock"))
            .args(["sleep", "60"])
            .spawn()
            .unwrap();
        while std::fs::OpenOptions::new().write(true).open(dir.path().join("0.lock")).unwrap().try_lock().is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let waiting = machine_slot(dir.path(), 1, &updates, &cancel, &metrics);
        tokio::pin!(waiting);
        assert!(tokio::time::timeout(Duration::from_millis(600), &mut waiting).await.is_err(), "the place is taken");
        assert_eq!(seen.try_recv().ok(), Some(SessionUpdate::Queued));
        holder.kill().unwrap();
        holder.wait().unwrap();
        let first = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();

        // Held in this process: the next waits until it is dropped, or stops when told to.
        let next = machine_slot(dir.path(), 1, &updates, &cancel, &metrics);
        tokio::pin!(next);
        assert!(tokio::time::timeout(Duration::from_millis(600), &mut next).await.is_err());
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), next).await.unwrap().unwrap();
        cancel.cancel();
        let stopped = machine_slot(dir.path(), 1, &updates, &cancel, &metrics).await.unwrap_err();
        assert!(matches!(stopped, AgentError::Stopped { .. }), "{stopped}");
        drop(second);
    }
}
