//! A session's events: what the loop did, appended to the store's log and broadcast to whoever renders
//! it (the CLI, the desktop app). Replaying a session is reading these back: nothing a front end shows
//! comes from anywhere else.

use std::sync::{Arc, Mutex};

use fixbox_llm::{Attempt, CallRecord, Totals};
use fixbox_patch::{EditFormat, HunkMatch, PatchDelta};
use fixbox_store::{SessionId, Store, StoredEvent};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::localize::Region;
use crate::testrun::TestSummary;
use crate::{AgentError, Limits, Outcome, Timings};

/// One step of a fix session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    SessionStarted {
        repo: String,
        task: String,
        test_command: String,
        /// The routing task whose routes answer (`fix`, falling back to `default`).
        model_task: String,
        edit_format: EditFormat,
        limits: Limits,
        image: String,
    },
    SandboxReady {
        sandbox: String,
        files: u64,
        bytes: u64,
    },
    /// The setup begins: its command runs in the repository's copy with network, or what it installed
    /// in an earlier session is restored (`restoring`). Its output follows as it comes
    /// ([`Event::SetupOutput`]), then [`Event::SetupRun`].
    SetupStarted {
        command: String,
        restoring: bool,
    },
    /// Output of the setup command as it arrives (stdout and stderr together), in batches.
    SetupOutput {
        text: String,
    },
    /// The setup command ran in the repository's copy, with network, which is cut after it; or what
    /// it installed in an earlier session was restored instead (`restored`), without network.
    SetupRun {
        command: String,
        exit_code: Option<i64>,
        /// The end of what it printed (stdout and stderr together).
        output: String,
        ms: f64,
        #[serde(default)]
        restored: bool,
    },
    /// Output of the test command as it arrives (stdout and stderr together), in batches: the first
    /// 64 KiB of a run, whose summary ([`Event::TestsRun`]) keeps the end of anything longer.
    TestsOutput {
        iteration: u32,
        text: String,
    },
    /// A try at a new test that shows the bug, where the project's tests passed before any change;
    /// its run is the [`Event::TestsRun`] before it.
    Reproduction {
        /// 0: the issue's own example; then the model's tries.
        attempt: u32,
        path: String,
        /// The test file; empty when the answer held none.
        test: String,
        /// It failed at base for the bug's reason: the fix loop runs it with the project's tests.
        accepted: bool,
        /// Why it was not kept.
        why: String,
    },
    /// Tests that failed before any change for another reason than the issue (its example fails
    /// with another kind of error): the project's own failures, left out of every run after, so a
    /// patch is neither asked to fix them nor judged by them.
    FailingBefore {
        tests: Vec<String>,
        why: String,
    },
    /// A run of the test command: iteration 0 is the run before any patch.
    TestsRun {
        iteration: u32,
        summary: TestSummary,
    },
    /// Where the bug likely is: the regions of code the model is asked to rewrite, most likely first.
    Localized {
        regions: Vec<Region>,
    },
    /// A model call began.
    ModelStarted {
        iteration: u32,
        prompt_tokens_estimate: u64,
        /// Earlier turns dropped to fit the context window.
        trimmed_turns: u32,
    },
    /// A try of a model call failed and was retried or moved on.
    ModelAttempt {
        iteration: u32,
        attempt: Attempt,
    },
    /// The text streamed so far for this call is void (a try broke off); the patch starts over.
    ModelDiscard {
        iteration: u32,
        reason: String,
    },
    /// A model call that answered: its usage, latency and cost (the text is in the patch events).
    ModelCall {
        iteration: u32,
        record: Box<CallRecord>,
    },
    PatchDelta {
        iteration: u32,
        delta: PatchDelta,
    },
    PatchApplied {
        iteration: u32,
        path: String,
        matches: Vec<HunkMatch>,
        /// This patch's change to the file, as a unified diff.
        diff: String,
    },
    /// The patch broke tests that passed before, so it was undone: the file is as it was before it.
    PatchUndone {
        iteration: u32,
        path: String,
        /// The tests it broke.
        broke: Vec<String>,
    },
    PatchRejected {
        iteration: u32,
        path: Option<String>,
        /// What the model is told.
        feedback: String,
    },
    /// An iteration ended: what came of it.
    Iteration {
        iteration: u32,
        result: String,
        totals: Totals,
    },
    SessionFinished {
        outcome: Outcome,
        iterations: u32,
        /// The change to the code against the original repository, `git apply`-able.
        diff: String,
        /// New tests written to show the bug, apart from `diff`.
        #[serde(default)]
        test_diff: String,
        totals: Totals,
        timings: Timings,
    },
}

impl Event {
    /// The kind it is stored under, e.g. `patch.applied`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::SessionStarted { .. } => "session.started",
            Self::SandboxReady { .. } => "sandbox.ready",
            Self::SetupStarted { .. } => "setup.started",
            Self::SetupOutput { .. } => "setup.output",
            Self::SetupRun { .. } => "setup.run",
            Self::Reproduction { .. } => "reproduction",
            Self::TestsOutput { .. } => "tests.output",
            Self::TestsRun { .. } => "tests.run",
            Self::Localized { .. } => "localized",
            Self::FailingBefore { .. } => "tests.failing_before",
            Self::ModelStarted { .. } => "model.started",
            Self::ModelAttempt { .. } => "model.attempt",
            Self::ModelDiscard { .. } => "model.discard",
            Self::ModelCall { .. } => "model.call",
            Self::PatchDelta { .. } => "patch.delta",
            Self::PatchApplied { .. } => "patch.applied",
            Self::PatchUndone { .. } => "patch.undone",
            Self::PatchRejected { .. } => "patch.rejected",
            Self::Iteration { .. } => "iteration",
            Self::SessionFinished { .. } => "session.finished",
        }
    }

    /// Reads an event back from the log; `None` for an entry that is not a fix-session event (an
    /// `fixbox ask` session's `llm.*` events, or a kind from a newer version).
    pub fn from_stored(stored: &StoredEvent) -> Option<Self> {
        serde_json::from_value(stored.payload.clone()).ok()
    }
}

/// An event with its place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub seq: u64,
    pub event: Event,
}

/// Appends a session's events to the store and broadcasts them.
///
/// The appends happen on a writer thread of the log's own, off the async threads: [`record`] queues the
/// event and returns, and the writer commits whatever is queued in one transaction, then broadcasts
/// each event. So an event a subscriber receives is committed, and one [`flush`] has answered for is
/// too. A failed append is returned by the next `record` (or `flush`); the events queued with it are
/// lost with it, and no later one is written.
///
/// [`record`]: EventLog::record
/// [`flush`]: EventLog::flush
#[derive(Debug, Clone)]
pub struct EventLog {
    store: Arc<Store>,
    session: SessionId,
    sender: broadcast::Sender<Recorded>,
    jobs: std::sync::mpsc::SyncSender<Job>,
    failed: Arc<Mutex<Option<String>>>,
}

/// Deltas arrive a line at a time; a renderer that falls this far behind misses some (and is told so).
const BROADCAST_CAPACITY: usize = 8192;
/// Events queued for the writer before `record` waits for it: backpressure on a flood of output.
const QUEUE: usize = 4096;
/// The most events one transaction commits.
const BATCH: usize = 512;

#[derive(Debug)]
enum Job {
    Append {
        kind: &'static str,
        payload: String,
        event: Box<Event>,
    },
    /// Answers once every event queued before it is committed (or could not be).
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl EventLog {
    pub fn new(store: Arc<Store>, session: SessionId) -> Self {
        let sender = broadcast::channel(BROADCAST_CAPACITY).0;
        let (jobs, queued) = std::sync::mpsc::sync_channel(QUEUE);
        let failed = Arc::new(Mutex::new(None));
        let writer = Writer {
            store: Arc::clone(&store),
            session: session.clone(),
            sender: sender.clone(),
            failed: Arc::clone(&failed),
        };
        // Ends once every clone of this log is dropped and the queue is written.
        std::thread::Builder::new()
            .name("event-log".into())
            .spawn(move || writer.run(&queued))
            .map_or_else(|err| *lock(&failed) = Some(format!("cannot start the event log's writer: {err}")), drop);
        Self { store, session, sender, jobs, failed }
    }

    pub fn session(&self) -> &SessionId {
        &self.session
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Events recorded from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Recorded> {
        self.sender.subscribe()
    }

    /// Queues `event` to be appended and then broadcast. Waits only while the writer is [`QUEUE`]
    /// events behind. An `Err` is an earlier append that failed: the log has stopped.
    pub fn record(&self, event: Event) -> Result<(), AgentError> {
        self.check()?;
        let payload = serde_json::to_string(&event).map_err(|e| AgentError::Config(e.to_string()))?;
        self.jobs.send(Job::Append { kind: event.kind(), payload, event: Box::new(event) }).map_err(|_| self.stopped())
    }

    /// Waits until every event recorded so far is committed; `Err` if one could not be.
    pub async fn flush(&self) -> Result<(), AgentError> {
        let (done, answered) = tokio::sync::oneshot::channel();
        self.jobs.send(Job::Flush(done)).map_err(|_| self.stopped())?;
        let _ = answered.await;
        self.check()
    }

    fn check(&self) -> Result<(), AgentError> {
        match lock(&self.failed).as_ref() {
            Some(reason) => Err(AgentError::EventLog(reason.clone())),
            None => Ok(()),
        }
    }

    fn stopped(&self) -> AgentError {
        let reason = lock(&self.failed).clone();
        AgentError::EventLog(reason.unwrap_or_else(|| "the event log's writer stopped".into()))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The thread that commits a log's events in batches and broadcasts them once committed.
struct Writer {
    store: Arc<Store>,
    session: SessionId,
    sender: broadcast::Sender<Recorded>,
    failed: Arc<Mutex<Option<String>>>,
}

impl Writer {
    fn run(self, queued: &std::sync::mpsc::Receiver<Job>) {
        while let Ok(first) = queued.recv() {
            let mut jobs = vec![first];
            jobs.extend(queued.try_iter().take(BATCH - 1));
            let mut events = Vec::new();
            let mut flushes = Vec::new();
            for job in jobs {
                match job {
                    Job::Append { kind, payload, event } => events.push((kind, payload, *event)),
                    Job::Flush(done) => flushes.push(done),
                }
            }
            self.commit(events);
            for done in flushes {
                let _ = done.send(());
            }
        }
    }

    fn commit(&self, events: Vec<(&'static str, String, Event)>) {
        if events.is_empty() || lock(&self.failed).is_some() {
            return;
        }
        let rows: Vec<(&str, String)> = events.iter().map(|(kind, payload, _)| (*kind, payload.clone())).collect();
        match self.store.append_events(&self.session, &rows) {
            Ok(seqs) => {
                for (seq, (_, _, event)) in seqs.into_iter().zip(events) {
                    // No subscriber is fine: the log is the record, the broadcast only a convenience.
                    let _ = self.sender.send(Recorded { seq, event });
                }
            }
            Err(err) => {
                *lock(&self.failed) = Some(format!("cannot append to session {}'s event log: {err}", self.session))
            }
        }
    }
}
