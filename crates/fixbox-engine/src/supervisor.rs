//! Running an engine: on a free port, its output appended to a log file and streamed line by line,
//! ready when its health path answers 200; restarted with backoff when it dies or stops answering, each
//! step an [`EngineEvent`] (and, for an engine started through a [`Registry`], its state file rewritten);
//! stopped with SIGTERM, then SIGKILL if it does not go.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWriteExt as _, BufReader};
use tokio::process::Child;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, LaunchCommand, LaunchSpec};
use crate::port::choose_port;
use crate::registry::Record;
use crate::{EngineError, EngineEvent, EngineKind, EngineState, Registry};

/// How patient the supervisor is.
#[derive(Debug, Clone)]
pub struct SuperviseOptions {
    /// From launch to a healthy answer (a 32B model takes minutes to load).
    pub startup_timeout: Duration,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// More restarts than this within `restart_window` and the supervisor gives up.
    pub max_restarts: usize,
    pub restart_window: Duration,
    /// How often a running engine's health is checked, and how many failures in a row mean it hangs.
    pub liveness_interval: Duration,
    pub liveness_failures: u32,
}

impl Default for SuperviseOptions {
    fn default() -> Self {
        Self {
            startup_timeout: Duration::from_secs(600),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_restarts: 5,
            restart_window: Duration::from_secs(600),
            liveness_interval: Duration::from_secs(5),
            liveness_failures: 3,
        }
    }
}

/// A running, supervised engine. Dropping it stops the engine.
#[derive(Debug)]
pub struct RunningEngine {
    pub kind: EngineKind,
    /// `http://127.0.0.1:<port>` (the address clients on this machine use).
    pub url: String,
    pub port: u16,
    pub log: PathBuf,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    events: broadcast::Sender<EngineEvent>,
    /// The engine's output, a line at a time, as it is written to the log.
    output: broadcast::Sender<String>,
    history: Mutex<Vec<EngineEvent>>,
    pid: AtomicU32,
    /// The state file kept in step with the events, for an engine started through a registry.
    record: Option<Record>,
}

impl Shared {
    fn emit(&self, event: EngineEvent) {
        tracing::info!(?event, "engine");
        if let Some(record) = &self.record {
            record.follow(&event);
        }
        if let Ok(mut history) = self.history.lock() {
            history.push(event.clone());
        }
        let _ = self.events.send(event);
    }
}

impl RunningEngine {
    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.shared.events.subscribe()
    }

    /// The engine's output from now on, a line at a time.
    pub fn output(&self) -> broadcast::Receiver<String> {
        self.shared.output.subscribe()
    }

    /// Every event so far.
    pub fn history(&self) -> Vec<EngineEvent> {
        self.shared.history.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// The engine process's pid now (it changes with each restart); `None` while none runs.
    pub fn pid(&self) -> Option<u32> {
        Some(self.shared.pid.load(Ordering::SeqCst)).filter(|&pid| pid != 0)
    }

    /// Stops the engine and waits until it is gone.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Waits until supervision ends: stopped, or given up.
    pub async fn wait(&mut self) {
        if let Some(task) = self.task.as_mut() {
            let _ = task.await;
            self.task = None;
        }
    }

    /// A token that stops the engine when cancelled (for signal handlers).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }
}

impl Drop for RunningEngine {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Everything a (re)start needs.
struct Launch {
    engine: Arc<dyn Engine>,
    command: LaunchCommand,
    /// Where clients reach it, and its health URL below that.
    url: String,
    health: String,
    client: reqwest::Client,
    log: PathBuf,
    options: SuperviseOptions,
    shared: Arc<Shared>,
    stop: CancellationToken,
    /// The tasks copying the current process's output; done soon after it exits.
    copiers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// Starts `engine` serving `spec` and returns once it answers its health check; keeps it running
/// until stopped.
pub async fn start(
    engine: Arc<dyn Engine>,
    binary: &Path,
    spec: LaunchSpec,
    log: PathBuf,
    options: SuperviseOptions,
) -> Result<RunningEngine, EngineError> {
    Launcher::new(engine, binary, spec, log, options).start().await
}

/// An engine about to be started: subscribe to its events and output first to see its startup too.
#[derive(Debug)]
pub struct Launcher {
    engine: Arc<dyn Engine>,
    binary: PathBuf,
    spec: LaunchSpec,
    log: PathBuf,
    options: SuperviseOptions,
    events: broadcast::Sender<EngineEvent>,
    output: broadcast::Sender<String>,
    record: Option<Record>,
    stop: CancellationToken,
}

impl Launcher {
    pub fn new(
        engine: Arc<dyn Engine>,
        binary: &Path,
        spec: LaunchSpec,
        log: PathBuf,
        options: SuperviseOptions,
    ) -> Self {
        Self {
            engine,
            binary: binary.to_path_buf(),
            spec,
            log,
            options,
            events: broadcast::channel(256).0,
            output: broadcast::channel(1024).0,
            record: None,
            stop: CancellationToken::new(),
        }
    }

    /// Stops the engine when `stop` is cancelled: while it loads, `start` then ends with
    /// [`EngineError::StartFailed`] ("stopped during startup") and [`EngineEvent::Stopped`]; once it
    /// runs, as [`RunningEngine::stop`] does.
    pub fn stopped_by(mut self, stop: CancellationToken) -> Self {
        self.stop = stop;
        self
    }

    /// Keeps the engine's state file in `registry` current from "starting" until it is stopped (then
    /// the file is removed), with this process as its supervisor. `model` is the name it is listed
    /// under; `notes` are said once it is ready.
    pub fn registered(mut self, registry: &Registry, model: &str, notes: Vec<String>) -> Self {
        let state = EngineState {
            engine: self.engine.kind(),
            supervisor_pid: std::process::id(),
            engine_pid: None,
            url: None,
            model: model.to_string(),
            context: Some(self.spec.context),
            log: self.log.clone(),
            status: crate::EngineStatus::Starting,
            message: None,
            api_key: self.spec.api_key.clone(),
        };
        self.record = Some(Record::new(registry.clone(), state, notes));
        self
    }

    /// Its events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.events.subscribe()
    }

    /// Its output from now on, a line at a time.
    pub fn output(&self) -> broadcast::Receiver<String> {
        self.output.subscribe()
    }

    /// Launches the engine; returns once it answers its health check, and keeps it running until stopped.
    pub async fn start(self) -> Result<RunningEngine, EngineError> {
        let Self { engine, binary, spec, log, options, events, output, record, stop } = self;
        let shared = Arc::new(Shared { events, output, history: Mutex::default(), pid: AtomicU32::new(0), record });
        let started = launch(engine, &binary, spec, log, options, shared.clone(), stop.clone()).await;
        if let Err(err) = &started {
            if stop.is_cancelled() {
                shared.emit(EngineEvent::Stopped);
            } else if let Some(record) = &shared.record {
                record.failed(err);
            }
        }
        started
    }
}

async fn launch(
    engine: Arc<dyn Engine>,
    binary: &Path,
    mut spec: LaunchSpec,
    log: PathBuf,
    options: SuperviseOptions,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> Result<RunningEngine, EngineError> {
    let kind = engine.kind();
    spec.check(kind)?;
    let choice = choose_port(spec.host, spec.port).ok_or(EngineError::PortsExhausted {
        host: spec.host,
        from: spec.port,
        to: spec.port.saturating_add(100),
    })?;
    if let Some(taken) = &choice.taken {
        let message = format!("{taken}; using {}", choice.port);
        tracing::warn!("{message}");
        shared.emit(EngineEvent::PortTaken { message, port: choice.port });
    }
    spec.port = choice.port;
    if let Some(dir) = log.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(|e| EngineError::io(dir, e))?;
    }
    let url = format!("http://{}:{}", local_host(spec.host), spec.port);
    let launch = Launch {
        command: engine.command(binary, &spec)?,
        health: format!("{url}{}", engine.health_path()),
        url: url.clone(),
        engine,
        client: fixbox_models::http_client_builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| EngineError::io(binary, std::io::Error::other(e.to_string())))?,
        log: log.clone(),
        options,
        shared: shared.clone(),
        stop,
        copiers: Mutex::default(),
    };
    let child = launch.start_once(1).await?;
    let stop = launch.stop.clone();
    let task = tokio::spawn(launch.supervise(child));
    Ok(RunningEngine { kind, url, port: spec.port, log, shared, stop, task: Some(task) })
}

/// Where a client on this machine reaches an engine bound to `host`.
fn local_host(host: IpAddr) -> String {
    match host {
        IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".into(),
        IpAddr::V6(v6) if v6.is_unspecified() => "[::1]".into(),
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

impl Launch {
    fn kind(&self) -> EngineKind {
        self.engine.kind()
    }

    /// Launches the process and waits for its health check; on failure it is killed and the error
    /// carries the end of its log.
    async fn start_once(&self, attempt: u32) -> Result<Child, EngineError> {
        let started = Instant::now();
        let mut child = self.spawn(attempt).await?;
        let pid = child.id().unwrap_or_default();
        self.shared.pid.store(pid, Ordering::SeqCst);
        self.shared.emit(EngineEvent::Starting { attempt, pid });
        let failure = loop {
            if started.elapsed() > self.options.startup_timeout {
                break format!("it did not answer {} within {:?}", self.health, self.options.startup_timeout);
            }
            tokio::select! {
                status = child.wait() => {
                    break format!("it exited during startup ({})", describe(status));
                }
                () = self.stop.cancelled() => break "it was stopped during startup".to_string(),
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if self.healthy().await {
                        let startup_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                        self.shared.emit(EngineEvent::Ready { url: self.url.clone(), pid, startup_ms });
                        return Ok(child);
                    }
                }
            }
        };
        terminate(&mut child).await;
        self.drained().await;
        self.shared.pid.store(0, Ordering::SeqCst);
        Err(EngineError::StartFailed {
            kind: self.kind(),
            reason: failure,
            log: self.log.clone(),
            tail: log_tail(&self.log),
        })
    }

    async fn spawn(&self, attempt: u32) -> Result<Child, EngineError> {
        use std::io::Write;
        let log = &self.log;
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| EngineError::io(log, e))?;
        let header = format!("--- fixbox: starting {} (attempt {attempt}): {:?}", self.kind(), self.command);
        let _ = writeln!(file, "{header}");
        let _ = self.shared.output.send(header);
        let mut command = tokio::process::Command::new(&self.command.program);
        command
            .args(&self.command.args)
            .envs(self.command.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Its own process group: a Ctrl+C meant for the front end reaches the supervisor, which stops
        // the engine in order, rather than the engine directly.
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command.spawn().map_err(|e| EngineError::StartFailed {
            kind: self.kind(),
            reason: format!("cannot run {}: {e}", self.command.program.display()),
            log: log.clone(),
            tail: String::new(),
        })?;
        let file = Arc::new(tokio::sync::Mutex::new(tokio::fs::File::from_std(file)));
        let copiers = [
            child.stdout.take().map(|out| tokio::spawn(copy_lines(out, file.clone(), self.shared.output.clone()))),
            child.stderr.take().map(|err| tokio::spawn(copy_lines(err, file.clone(), self.shared.output.clone()))),
        ];
        if let Ok(mut current) = self.copiers.lock() {
            *current = copiers.into_iter().flatten().collect();
        }
        Ok(child)
    }

    /// Waits until the exited process's last output is in the log (a second at most: a child of its
    /// own may hold the pipes open), so the log's tail says why it exited.
    async fn drained(&self) {
        let copiers = self.copiers.lock().map(|mut c| std::mem::take(&mut *c)).unwrap_or_default();
        let _ = tokio::time::timeout(Duration::from_secs(1), futures::future::join_all(copiers)).await;
    }

    async fn healthy(&self) -> bool {
        matches!(self.client.get(&self.health).send().await, Ok(r) if r.status().is_success())
    }

    /// Watches `child`; restarts it with backoff when it dies or hangs, until stopped or given up.
    async fn supervise(self, mut child: Child) {
        let mut restarts: VecDeque<Instant> = VecDeque::new();
        let mut attempt = 1;
        loop {
            let pid = child.id().unwrap_or_default();
            let mut failures = 0;
            let status = loop {
                tokio::select! {
                    status = child.wait() => break describe(status),
                    () = self.stop.cancelled() => {
                        terminate(&mut child).await;
                        self.shared.pid.store(0, Ordering::SeqCst);
                        self.shared.emit(EngineEvent::Stopped);
                        return;
                    }
                    () = tokio::time::sleep(self.options.liveness_interval) => {
                        if self.healthy().await {
                            failures = 0;
                        } else {
                            failures += 1;
                            if failures >= self.options.liveness_failures {
                                self.shared.emit(EngineEvent::Unresponsive { pid, failures });
                                let _ = child.start_kill();
                            }
                        }
                    }
                }
            };
            self.shared.pid.store(0, Ordering::SeqCst);
            self.drained().await;
            self.shared.emit(EngineEvent::Exited { pid, status, log_tail: log_tail(&self.log) });
            // Restart until one comes up healthy, or too many tries in the window.
            child = loop {
                let now = Instant::now();
                restarts.retain(|t| now.duration_since(*t) < self.options.restart_window);
                if restarts.len() >= self.options.max_restarts {
                    let reason = format!(
                        "{} restarts within {:?}; see the log {}",
                        restarts.len(),
                        self.options.restart_window,
                        self.log.display()
                    );
                    self.shared.emit(EngineEvent::GaveUp { reason });
                    return;
                }
                restarts.push_back(now);
                attempt += 1;
                let exponent = u32::try_from(restarts.len().saturating_sub(1)).unwrap_or(16).min(16);
                let wait = self.options.first_backoff.saturating_mul(1 << exponent).min(self.options.max_backoff);
                let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                self.shared.emit(EngineEvent::Restarting { attempt, wait_ms });
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = self.stop.cancelled() => {
                        self.shared.emit(EngineEvent::Stopped);
                        return;
                    }
                }
                match self.start_once(attempt).await {
                    Ok(child) => break child,
                    Err(_) if self.stop.is_cancelled() => {
                        self.shared.emit(EngineEvent::Stopped);
                        return;
                    }
                    Err(err) => {
                        let tail = log_tail(&self.log);
                        self.shared.emit(EngineEvent::Exited { pid: 0, status: err.to_string(), log_tail: tail });
                    }
                }
            };
        }
    }
}

/// Copies the engine's output, a line at a time, to its log file and to whoever listens, until the
/// engine closes it. Bytes that are not UTF-8 reach listeners replaced, and the log as they were.
async fn copy_lines(
    output: impl AsyncRead + Unpin,
    log: Arc<tokio::sync::Mutex<tokio::fs::File>>,
    lines: broadcast::Sender<String>,
) {
    let mut output = BufReader::new(output);
    let mut line = Vec::new();
    loop {
        line.clear();
        match output.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        // tokio's File hands a write to a blocking thread; the flush waits until it is on disk, so a
        // reader of the log (its tail in an error) sees the line.
        let mut file = log.lock().await;
        if let Err(err) = async {
            file.write_all(&line).await?;
            file.flush().await
        }
        .await
        {
            tracing::warn!(%err, "cannot append to the engine's log");
        }
        drop(file);
        let text = String::from_utf8_lossy(&line);
        let _ = lines.send(text.trim_end_matches(['\r', '\n']).to_string());
    }
}

/// SIGTERM, up to 10 s to go, then SIGKILL.
async fn terminate(child: &mut Child) {
    #[cfg(unix)]
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => {
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt;
                if let Some(signal) = status.signal() {
                    let name = nix::sys::signal::Signal::try_from(signal).map(|s| s.as_str()).unwrap_or("unknown");
                    return format!("killed by signal {signal} ({name})");
                }
            }
            match status.code() {
                Some(code) => format!("exit code {code}"),
                None => status.to_string(),
            }
        }
        Err(e) => format!("cannot wait for it: {e}"),
    }
}

/// The last dozen lines of `log`.
pub fn log_tail(log: &Path) -> String {
    let Ok(text) = std::fs::read(log) else { return String::new() };
    let start = text.len().saturating_sub(4096);
    let text = String::from_utf8_lossy(&text[start..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}
