use std::net::IpAddr;
use std::path::{Path, PathBuf};

use fixbox_models::DownloadError;

use crate::EngineKind;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "binding {host} exposes the engine to the network, so it needs an API key; pass one (or let Fixbox make one), or bind 127.0.0.1"
    )]
    NeedsApiKey { host: IpAddr },
    #[error(
        "{kind} has no API keys, so Fixbox binds it to 127.0.0.1 only; use llama-server or vLLM to serve other machines"
    )]
    NoApiKeySupport { kind: EngineKind },
    #[error("{kind} serves a model file, and {name:?} is a name; download the model first")]
    NeedsModelFile { kind: EngineKind, name: String },
    #[error("{kind} is not installed; install it first")]
    NotInstalled { kind: EngineKind },
    #[error(
        "{path} is too old for Fixbox (it says {found:?}; Fixbox needs {needed} or later): install a current one, or update it"
    )]
    TooOld { kind: EngineKind, path: PathBuf, found: String, needed: String },
    #[error("there is no prebuilt {what}")]
    NoPrebuilt { what: String },
    #[error("{what} has no SHA-256 digest in its release, so it cannot be verified; not installing it")]
    Unverifiable { what: String },
    #[error("{tool} is missing: {hint}")]
    MissingTool { tool: String, hint: String },
    #[error("the {step} step failed; the full log is {log}. Its last lines:\n{tail}")]
    Build { step: String, log: PathBuf, tail: String },
    #[error("{path} is damaged ({reason}); delete it and try again")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cancelled")]
    Cancelled,
    #[error("ports {from} to {to} are all taken at {host}; stop what holds them or choose another port")]
    PortsExhausted { host: IpAddr, from: u16, to: u16 },
    #[error("{kind} did not start: {reason}. Its log is {log}; the last lines:\n{tail}")]
    StartFailed { kind: EngineKind, reason: String, log: PathBuf, tail: String },
    #[error("cannot use {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// A launch's settings: out of range, unreadable, or a model that fits nowhere.
    #[error("{0}")]
    Config(String),
}

impl EngineError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}
