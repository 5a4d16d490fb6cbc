//! What the loop's decision tests drive it with: a model that answers from a script, and a sandbox
//! in this process whose test command answers from the files written into it. Both sit behind the
//! traits the real engine client and Docker sandbox implement, so the loop runs unchanged.

#![allow(dead_code, reason = "each test file uses its own part")]
#![expect(clippy::expect_used, reason = "test helpers: a failure stops the test with its message")]

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use fixbox_agent::{Event, EventLog, Finished, Fix, FixRequest, Limits, ModelSettings, Setup};
use fixbox_llm::{
    ChatRequest, Chunk, ChunkStream, Finish, FinishReason, LlmError, Metrics, ModelClient, RetryPolicy, Route, Router,
    TokenUsage,
};
use fixbox_patch::EditFormat;
use fixbox_sandbox::{
    CopyStats, Ending, Excludes, ExecOutput, ExecRequest, ExecStatus, FileWrite, OutputChunk, Sandbox, SandboxError,
};
use fixbox_store::Store;
use tokio_util::sync::CancellationToken;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One scripted answer: text, or a failure of the server.
pub enum Reply {
    Text(String),
    Unreachable,
}

impl Reply {
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }
}

/// A model that gives its replies in order, and keeps every request it was sent.
#[derive(Debug, Default)]
pub struct ScriptedModel {
    replies: Mutex<VecDeque<String>>,
    unreachable_from: Mutex<Option<usize>>,
    pub requests: Mutex<Vec<ChatRequest>>,
}

impl ScriptedModel {
    pub fn new(replies: impl IntoIterator<Item = Reply>) -> Arc<Self> {
        let model = Self::default();
        for (at, reply) in replies.into_iter().enumerate() {
            match reply {
                Reply::Text(text) => lock(&model.replies).push_back(text),
                Reply::Unreachable => {
                    lock(&model.unreachable_from).get_or_insert(at);
                }
            }
        }
        Arc::new(model)
    }

    pub fn requests(&self) -> Vec<ChatRequest> {
        lock(&self.requests).clone()
    }
}

impl ModelClient for ScriptedModel {
    fn model(&self) -> &str {
        "scripted"
    }

    fn stream(&self, request: &ChatRequest) -> ChunkStream {
        let asked = {
            let mut requests = lock(&self.requests);
            requests.push(request.clone());
            requests.len() - 1
        };
        if lock(&self.unreachable_from).is_some_and(|from| asked >= from) {
            let err = LlmError::Connection {
                provider: "scripted".into(),
                url: "http://127.0.0.1:1".into(),
                reason: "connection refused".into(),
            };
            return Box::pin(futures::stream::iter([Err(err)]));
        }
        let text = lock(&self.replies).pop_front().unwrap_or_else(|| "I give up: the script ran out".into());
        // Line by line, the way a stream arrives.
        let mut chunks: Vec<Result<Chunk, LlmError>> =
            text.split_inclusive('\n').map(|line| Ok(Chunk::Delta(line.to_string()))).collect();
        let usage = TokenUsage { prompt: 100, completion: 20, cache_read: 60, cache_write: 0 };
        chunks.push(Ok(Chunk::Done(Finish { reason: FinishReason::Stop, usage: Some(usage), timings: None })));
        Box::pin(futures::stream::iter(chunks))
    }
}

/// A router whose `fix` task answers from `model`, with no retries.
pub fn router(model: Arc<ScriptedModel>) -> Router {
    let retry = RetryPolicy { max_retries: 0, ..RetryPolicy::default() };
    Router::new(retry, Arc::new(Metrics::default())).with_routes("fix", vec![Route::local("scripted", model)])
}

/// What a command run in the sandbox answers: exit code and output, from the files and the command.
pub type Answerer = dyn Fn(&Files, &str) -> (i64, String) + Send + Sync;

/// A sandbox's files, by path relative to the workspace.
pub type Files = BTreeMap<String, String>;

/// The exit code an answerer gives for a command that never ends.
#[allow(dead_code, reason = "not every test binary has a command that hangs")]
pub const HANGS: i64 = i64::MIN;

/// A sandbox in this process: files in a map, commands answered by a function of them (with
/// [`HANGS`], a command that runs until it is dropped).
pub struct MemorySandbox {
    files: Arc<Mutex<Files>>,
    answer: Box<Answerer>,
    pub commands: Arc<Mutex<Vec<String>>>,
    pub network_cut: Arc<AtomicBool>,
}

impl MemorySandbox {
    pub fn new(answer: impl Fn(&Files, &str) -> (i64, String) + Send + Sync + 'static) -> Self {
        Self { files: Arc::default(), answer: Box::new(answer), commands: Arc::default(), network_cut: Arc::default() }
    }

    /// The sandbox's files, readable after the session removed it.
    pub fn files(&self) -> Arc<Mutex<Files>> {
        Arc::clone(&self.files)
    }
}

impl Sandbox for MemorySandbox {
    fn id(&self) -> &str {
        "memory"
    }

    async fn exec(&self, request: ExecRequest) -> Result<ExecStatus, SandboxError> {
        let command = request.cmd.last().cloned().unwrap_or_default();
        lock(&self.commands).push(command.clone());
        let (exit_code, output) = (self.answer)(&lock(&self.files), &command);
        if exit_code == HANGS {
            std::future::pending::<()>().await;
        }
        if let Some(sender) = &request.on_output {
            let _ = sender.send(OutputChunk::Stdout(Bytes::from(output.clone())));
        }
        Ok(ExecStatus::Finished(ExecOutput {
            exit_code: Some(exit_code),
            stdout: output,
            stderr: String::new(),
            truncated: false,
            ending: Ending::Exited,
            oom_killed: false,
            duration: Duration::from_millis(1),
        }))
    }

    async fn copy_in(&self, from: &Path, _to: &str, _excludes: &Excludes) -> Result<CopyStats, SandboxError> {
        let mut stats = CopyStats::default();
        let mut files = lock(&self.files);
        for entry in walk(from) {
            let text = std::fs::read_to_string(&entry).unwrap_or_default();
            let relative = entry.strip_prefix(from).unwrap_or(&entry).to_string_lossy().replace('\\', "/");
            stats.files += 1;
            stats.bytes += text.len() as u64;
            files.insert(relative, text);
        }
        Ok(stats)
    }

    async fn write_files(&self, _to: &str, written: &[FileWrite]) -> Result<(), SandboxError> {
        let mut files = lock(&self.files);
        for file in written {
            files.insert(file.path.clone(), String::from_utf8_lossy(&file.content).into_owned());
        }
        Ok(())
    }

    async fn copy_out(&self, _from: &str, _to: &Path) -> Result<CopyStats, SandboxError> {
        Ok(CopyStats::default())
    }

    /// Writes the paths into the archive, one a line, and records the save among the commands.
    async fn save(&self, paths: &[String], to: &Path) -> Result<u64, SandboxError> {
        let listing = paths.join("\n");
        lock(&self.commands).push(format!("save {listing}"));
        std::fs::write(to, &listing).map_err(|source| SandboxError::Copy { path: to.display().to_string(), source })?;
        Ok(listing.len() as u64)
    }

    async fn restore(&self, from: &Path) -> Result<(), SandboxError> {
        let listing = std::fs::read_to_string(from)
            .map_err(|source| SandboxError::Copy { path: from.display().to_string(), source })?;
        lock(&self.commands).push(format!("restore {listing}"));
        Ok(())
    }

    async fn cut_network(&self) -> Result<(), SandboxError> {
        self.network_cut.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn destroy(self) -> Result<(), SandboxError> {
        Ok(())
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// A repository on disk with `files`, for [`Fix::prepare`] to read.
pub fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("its folder");
        std::fs::write(path, text).expect("the file");
    }
    dir
}

/// `python -m pytest -rA`'s summary for these outcomes, and its exit code.
pub fn pytest(outcomes: &[(&str, bool)]) -> (i64, String) {
    let mut text = String::from("============ short test summary info ============\n");
    for (id, passed) in outcomes {
        text.push_str(&if *passed { format!("PASSED {id}\n") } else { format!("FAILED {id} - AssertionError\n") });
    }
    let failed = outcomes.iter().filter(|(_, passed)| !passed).count();
    text.push_str(&format!("===== {failed} failed, {} passed in 0.01s =====\n", outcomes.len() - failed));
    (i64::from(failed > 0), text)
}

/// A session over `repo` in `sandbox`, asking `model`: how it ended, and its events in order.
pub struct Ran {
    pub finished: Finished,
    pub events: Vec<Event>,
}

/// What the sessions here are asked: fix `add`, tested by `python -m pytest -rA`.
pub fn request(repo: &Path) -> FixRequest {
    FixRequest {
        repo: repo.to_path_buf(),
        task: "add() returns the wrong sum".into(),
        test: Some("python -m pytest -rA".into()),
        setup: Setup::Skip,
        model: ModelSettings { edit_format: Some(EditFormat::SearchReplace), ..ModelSettings::default() },
        limits: Limits::default(),
        allow_test_edits: false,
        bug_tests: Vec::new(),
        share: Vec::new(),
    }
}

pub async fn run(
    repo: &Path,
    setup: Option<&str>,
    limits: Limits,
    sandbox: MemorySandbox,
    model: Arc<ScriptedModel>,
) -> Ran {
    let setup = setup.map_or(Setup::Skip, |command| Setup::Command(command.to_string()));
    let request = FixRequest { setup, limits, ..request(repo) };
    run_request(request, sandbox, model).await
}

/// A session for `request` in `sandbox`, asking `model`.
pub async fn run_request(request: FixRequest, sandbox: MemorySandbox, model: Arc<ScriptedModel>) -> Ran {
    run_fix(Fix::prepare(request).expect("the request is valid"), sandbox, model).await
}

/// A prepared session in `sandbox`, asking `model`.
pub async fn run_fix(fix: Fix, sandbox: MemorySandbox, model: Arc<ScriptedModel>) -> Ran {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let store = Arc::new(Store::open_in(folder.path()).expect("a store"));
    let id = store.create_session("scripted").expect("a session");
    let log = EventLog::new(Arc::clone(&store), id.clone());
    let finished = fix
        .run(sandbox, "memory", Duration::ZERO, &router(model), &log, CancellationToken::new())
        .await
        .expect("the events are recorded");
    let events =
        store.events_from(&id, 1).expect("the events read back").iter().filter_map(Event::from_stored).collect();
    Ran { finished, events }
}

impl Ran {
    pub fn kinds(&self) -> Vec<&'static str> {
        self.events.iter().map(Event::kind).filter(|k| *k != "patch.delta" && *k != "tests.output").collect()
    }
}
