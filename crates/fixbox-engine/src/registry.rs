//! The engines Fixbox has started and supervises, as their supervisors describe them: one JSON file per
//! engine under `<data dir>/engines/`, rewritten (atomically) as the engine's status changes. Anything
//! that needs a running engine (the CLI, the desktop app, the route loader) reads it here.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::{EngineError, EngineEvent, EngineKind};

/// What a running supervisor says about its engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineState {
    pub engine: EngineKind,
    pub supervisor_pid: u32,
    pub engine_pid: Option<u32>,
    pub url: Option<String>,
    pub model: String,
    /// The context length it was started with (absent in state files of older versions).
    #[serde(default)]
    pub context: Option<u32>,
    pub log: PathBuf,
    pub status: EngineStatus,
    pub message: Option<String>,
    /// The key clients send (see [`LaunchSpec::lock_to_clients`](crate::LaunchSpec::lock_to_clients));
    /// the file is readable by its owner only.
    #[serde(with = "fixbox_secret::exposed", default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<fixbox_secret::Secret>,
}

/// Where a supervised engine is in its life, as its state file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "kebab-case")]
pub enum EngineStatus {
    /// Launched; the model is loading.
    Starting,
    /// Answering requests.
    Ready,
    /// It exited or stopped answering, and the supervisor starts it again.
    Restarting,
    /// It could not start; `message` says why.
    Failed,
    /// It kept failing, and the supervisor stopped restarting it.
    GaveUp,
}

impl std::fmt::Display for EngineStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Restarting => "restarting",
            Self::Failed => "failed",
            Self::GaveUp => "gave up",
        })
    }
}

/// An engine that is running and ready, as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub kind: EngineKind,
    pub url: String,
    pub model: String,
    pub context: Option<u32>,
    pub api_key: Option<fixbox_secret::Secret>,
}

/// The state files under one data folder.
#[derive(Debug, Clone)]
pub struct Registry {
    data_dir: PathBuf,
}

impl Registry {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self { data_dir: data_dir.into() }
    }

    pub fn state_path(&self, kind: EngineKind) -> PathBuf {
        self.data_dir.join("engines").join(format!("{kind}.json"))
    }

    /// The file that asks `kind`'s supervisor to stop: how `fixbox engine stop` reaches it on every OS
    /// (Unix also has SIGTERM; Windows has no signal one process can send another's console).
    pub fn stop_request_path(&self, kind: EngineKind) -> PathBuf {
        self.data_dir.join("engines").join(format!("{kind}.stop"))
    }

    /// Asks `kind`'s supervisor to stop.
    pub fn request_stop(&self, kind: EngineKind) -> std::io::Result<()> {
        let path = self.stop_request_path(kind);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, b"")
    }

    /// Waits until someone asks `kind`'s supervisor to stop (the request is taken: the file goes).
    pub async fn stop_requested(&self, kind: EngineKind) {
        let path = self.stop_request_path(kind);
        loop {
            if std::fs::remove_file(&path).is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    pub fn log_path(&self, kind: EngineKind) -> PathBuf {
        self.data_dir.join("logs/engines").join(format!("{kind}.log"))
    }

    /// The state `kind`'s supervisor last wrote; `None` when there is none or it is unreadable (a file
    /// from an older version, or one cut short).
    pub fn read(&self, kind: EngineKind) -> std::io::Result<Option<EngineState>> {
        match std::fs::read(self.state_path(kind)) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the state file in one rename, so a reader never sees half of it.
    pub fn write(&self, state: &EngineState) -> std::io::Result<()> {
        let path = self.state_path(state.engine);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::OpenOptions::new();
        file.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
        let mut file = file.open(&tmp)?;
        std::io::Write::write_all(&mut file, &serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?)?;
        drop(file);
        std::fs::rename(&tmp, &path)
    }

    pub fn remove(&self, kind: EngineKind) -> std::io::Result<()> {
        match std::fs::remove_file(self.state_path(kind)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// `kind`'s state, when its supervisor is alive (a dead one's file is stale).
    pub fn supervised(&self, kind: EngineKind) -> Option<EngineState> {
        self.read(kind).ok().flatten().filter(|state| is_alive(state.supervisor_pid))
    }

    /// [`Registry::supervised`] for every engine kind, in [`EngineKind::ALL`]'s order.
    pub fn all_supervised(&self) -> Vec<EngineState> {
        EngineKind::ALL.into_iter().filter_map(|kind| self.supervised(kind)).collect()
    }

    /// The engines whose supervisor is alive and says they are ready.
    pub fn running(&self) -> Vec<Running> {
        self.all_supervised()
            .into_iter()
            .filter(|state| state.status == EngineStatus::Ready)
            .filter_map(|state| {
                Some(Running {
                    kind: state.engine,
                    url: state.url?,
                    model: state.model,
                    context: state.context,
                    api_key: state.api_key,
                })
            })
            .collect()
    }
}

impl Registry {
    /// Cleans up after supervisors that died without stopping their engine (killed, crashed): an engine
    /// still listening at the address its state file gives is sent SIGTERM, and the stale state file is
    /// removed. Returns what was done, one line each.
    pub fn sweep_orphans(&self) -> Vec<String> {
        let mut done = Vec::new();
        for kind in EngineKind::ALL {
            let Ok(Some(state)) = self.read(kind) else { continue };
            if is_alive(state.supervisor_pid) {
                continue;
            }
            // Only the process that still listens where the engine did: a reused pid is left alone.
            let port = state.url.as_deref().and_then(|u| u.rsplit(':').next()).and_then(|p| p.parse().ok());
            let listener = port.and_then(crate::holder_of).map(|holder| holder.pid);
            match (state.engine_pid, listener) {
                (Some(pid), Some(holder)) if pid == holder => {
                    terminate(pid);
                    done.push(format!("stopped {kind} (pid {pid}), left running by a supervisor that died"));
                }
                _ => done.push(format!("removed the state of {kind}, whose supervisor died")),
            }
            if let Err(err) = self.remove(kind) {
                tracing::warn!(%err, "cannot remove a stale engine state file");
            }
        }
        done
    }
}

fn terminate(pid: u32) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
    #[cfg(not(unix))]
    let _ = pid;
}

/// An engine's state file, rewritten at each event so other processes (`fixbox engine status`, the
/// route loader) see what runs; removed when it is stopped.
#[derive(Debug)]
pub(crate) struct Record {
    registry: Registry,
    state: Mutex<EngineState>,
    /// Said with "ready": the port it moved to, how clients authenticate.
    notes: Mutex<Vec<String>>,
}

impl Record {
    /// Writes `state` ("starting") at once, then keeps it in step.
    pub(crate) fn new(registry: Registry, state: EngineState, notes: Vec<String>) -> Self {
        let record = Self { registry, state: Mutex::new(state), notes: Mutex::new(notes) };
        if let Ok(state) = record.state.lock() {
            record.write(&state);
        }
        record
    }

    pub(crate) fn follow(&self, event: &EngineEvent) {
        let Ok(mut state) = self.state.lock() else { return };
        match event {
            EngineEvent::PortTaken { message, .. } => {
                if let Ok(mut notes) = self.notes.lock() {
                    notes.insert(0, message.clone());
                }
                return;
            }
            EngineEvent::Starting { pid, .. } => state.engine_pid = Some(*pid),
            EngineEvent::Ready { url, pid, .. } => {
                state.engine_pid = Some(*pid);
                state.url = Some(url.clone());
                state.status = EngineStatus::Ready;
                state.message = self.notes.lock().ok().filter(|n| !n.is_empty()).map(|n| n.join("\n"));
            }
            EngineEvent::Exited { .. } | EngineEvent::Unresponsive { .. } => state.engine_pid = None,
            EngineEvent::Restarting { attempt, .. } => {
                state.engine_pid = None;
                state.status = EngineStatus::Restarting;
                state.message = Some(format!("restart {attempt}"));
            }
            EngineEvent::GaveUp { reason } => {
                state.status = EngineStatus::GaveUp;
                state.message = Some(reason.clone());
            }
            EngineEvent::Stopped => {
                if let Err(err) = self.registry.remove(state.engine) {
                    tracing::warn!(%err, "cannot remove the engine's state file");
                }
                return;
            }
        }
        self.write(&state);
    }

    /// Start failed: the reason stays in the state file for whoever waits on it.
    pub(crate) fn failed(&self, err: &EngineError) {
        let Ok(mut state) = self.state.lock() else { return };
        state.status = EngineStatus::Failed;
        state.engine_pid = None;
        state.message = Some(err.to_string());
        self.write(&state);
    }

    fn write(&self, state: &EngineState) {
        if let Err(err) = self.registry.write(state) {
            tracing::warn!(%err, path = %self.registry.state_path(state.engine).display(), "cannot write the engine's state");
        }
    }
}

/// Whether a process with this pid runs (not a zombie: killed, not yet reaped by its parent), on any OS.
pub fn is_alive(pid: u32) -> bool {
    fixbox_hardware::process_alive(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(kind: EngineKind, pid: u32, status: EngineStatus) -> EngineState {
        EngineState {
            engine: kind,
            supervisor_pid: pid,
            engine_pid: None,
            url: Some("http://127.0.0.1:8080".into()),
            model: "m".into(),
            context: Some(4096),
            log: PathBuf::from("x.log"),
            status,
            message: None,
            api_key: None,
        }
    }

    #[test]
    fn only_ready_engines_with_a_live_supervisor_are_running() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(dir.path());
        assert_eq!(registry.running(), vec![]);
        registry.write(&state(EngineKind::LlamaServer, std::process::id(), EngineStatus::Ready)).unwrap();
        registry.write(&state(EngineKind::Ollama, std::process::id(), EngineStatus::Starting)).unwrap();
        // A pid no process has (Linux's pid_max is at most 2^22).
        registry.write(&state(EngineKind::Vllm, 1 << 30, EngineStatus::Ready)).unwrap();
        let running = registry.running();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].kind, EngineKind::LlamaServer);
        assert_eq!(running[0].context, Some(4096));
        registry.remove(EngineKind::LlamaServer).unwrap();
        registry.remove(EngineKind::LlamaServer).unwrap();
        assert_eq!(registry.running(), vec![]);
    }

    #[test]
    fn a_torn_state_file_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(dir.path());
        std::fs::create_dir_all(dir.path().join("engines")).unwrap();
        std::fs::write(registry.state_path(EngineKind::Ollama), "{\"engine\":").unwrap();
        assert!(registry.read(EngineKind::Ollama).unwrap().is_none());
    }

    #[tokio::test]
    async fn a_stop_request_reaches_the_supervisor_once() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(dir.path());
        let kind = EngineKind::LlamaServer;
        let waiting = tokio::spawn({
            let registry = registry.clone();
            async move { registry.stop_requested(kind).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "stopped without a request");
        registry.request_stop(kind).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.unwrap().unwrap();
        assert!(!registry.stop_request_path(kind).exists(), "the request was not taken");
    }
}
