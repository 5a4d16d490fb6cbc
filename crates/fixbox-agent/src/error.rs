use std::path::PathBuf;

/// What stopped a fix session from running (as opposed to a session that ran and did not fix the bug,
/// which is an [`Outcome`](crate::Outcome)).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{path} is not a directory: give the path of a repository (a folder with its code and tests)")]
    NotARepo { path: PathBuf },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "no test command found in {path}: it has no pytest tests, Cargo.toml, package.json with a test script, go.mod or Makefile with a test target; give the command that runs its tests"
    )]
    NoTestCommand { path: PathBuf },
    #[error("the sandbox failed to {op}: {source}")]
    Sandbox { op: &'static str, source: fixbox_sandbox::SandboxError },
    #[error("recording the session's events failed: {0}")]
    Store(#[from] fixbox_store::StoreError),
    /// The session's event log stopped (its writer could not append); the reason says why.
    #[error("{0}; the session stopped, as nothing it did would be kept")]
    EventLog(String),
    #[error("the model call failed: {0}")]
    Model(#[from] fixbox_llm::LlmError),
    #[error("stopped before {before}")]
    Stopped { before: &'static str },
    /// No route is set, no local engine runs, and no Ollama with a coding model was found.
    #[error("no model to call: start a local engine or set routes{}", .ollama.as_ref().map(|o| format!("; {o}")).unwrap_or_default())]
    NoModel { ollama: Option<String> },
    #[error("{0}")]
    Config(String),
}

impl AgentError {
    /// A short name of what went wrong, for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotARepo { .. } => "not_a_repo",
            Self::Read { .. } => "read",
            Self::NoTestCommand { .. } => "no_test_command",
            Self::Sandbox { .. } => "sandbox",
            Self::Store(_) | Self::EventLog(_) => "store",
            Self::Model(_) => "model",
            Self::Stopped { .. } => "stopped",
            Self::NoModel { .. } => "no_model",
            Self::Config(_) => "config",
        }
    }

    pub(crate) fn sandbox(op: &'static str) -> impl FnOnce(fixbox_sandbox::SandboxError) -> Self {
        move |source| Self::Sandbox { op, source }
    }
}
