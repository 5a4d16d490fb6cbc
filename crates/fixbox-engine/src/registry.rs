//! The engines Fixbox has started and supervises, as their supervisors describe them: one JSON file per
//! engine under `<data dir>/engines/`, rewritten (atomically) as the engine's status changes. Anything
//! that needs a running engine (the CLI, the desktop app, the route loader) reads it here.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::EngineKind;

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
    /// starting, ready, restarting, failed, gave-up.
    pub status: String,
    pub message: Option<String>,
}

/// An engine that is running and ready, as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub kind: EngineKind,
    pub url: String,
    pub model: String,
    pub context: Option<u32>,
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
        std::fs::write(&tmp, serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, &path)
    }

    pub fn remove(&self, kind: EngineKind) -> std::io::Result<()> {
        match std::fs::remove_file(self.state_path(kind)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The engines whose supervisor is alive and says they are ready.
    pub fn running(&self) -> Vec<Running> {
        EngineKind::ALL
            .into_iter()
            .filter_map(|kind| self.read(kind).ok().flatten())
            .filter(|state| is_alive(state.supervisor_pid) && state.status == "ready")
            .filter_map(|state| {
                Some(Running { kind: state.engine, url: state.url?, model: state.model, context: state.context })
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

/// Whether a process with this pid exists (a signal-0 probe).
pub fn is_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        i32::try_from(pid).is_ok_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok())
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(kind: EngineKind, pid: u32, status: &str) -> EngineState {
        EngineState {
            engine: kind,
            supervisor_pid: pid,
            engine_pid: None,
            url: Some("http://127.0.0.1:8080".into()),
            model: "m".into(),
            context: Some(4096),
            log: PathBuf::from("x.log"),
            status: status.into(),
            message: None,
        }
    }

    #[test]
    fn only_ready_engines_with_a_live_supervisor_are_running() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(dir.path());
        assert_eq!(registry.running(), vec![]);
        registry.write(&state(EngineKind::LlamaServer, std::process::id(), "ready")).unwrap();
        registry.write(&state(EngineKind::Ollama, std::process::id(), "starting")).unwrap();
        // A pid no process has (Linux's pid_max is at most 2^22).
        registry.write(&state(EngineKind::Vllm, 1 << 30, "ready")).unwrap();
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
}
