//! What a command that failed tells the window: a code the UI switches on (to offer the button that
//! mends it), the message a person reads, and what to do next where the app knows it. Each domain
//! error maps to its code here, in one place.

use serde::Serialize;

/// A failed command, as the window receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct IpcError {
    pub code: ErrorCode,
    pub message: String,
    /// What to do next, in the app's words, where the message's own advice is a command line's.
    pub hint: Option<String>,
}

/// The kinds of failure the window tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// What was given cannot be used: a folder that is not one, a malformed value or setting.
    InvalidInput,
    /// What was asked for is not there: a session, a downloaded model, a job under way.
    NotFound,
    /// The same work is already under way, or an engine already serves.
    Busy,
    /// The engine is not installed.
    EngineNotInstalled,
    /// The engine could not start, or no port was free for it.
    EngineFailed,
    /// The OS keychain is locked or missing.
    KeychainUnavailable,
    /// Docker cannot be reached.
    DockerUnavailable,
    /// Fixbox's own data cannot be read or written (the disk, the database).
    Storage,
    /// No model to call, or the routes are invalid.
    NoModel,
    /// A model call failed.
    Model,
    /// GitHub refused or could not be reached.
    Github,
    /// A download failed.
    Download,
    /// Stopped on request.
    Cancelled,
    /// Anything else: a failure of the system or a bug.
    Internal,
}

impl IpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), hint: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Busy, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

impl std::fmt::Display for IpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<fixbox_store::StoreError> for IpcError {
    fn from(err: fixbox_store::StoreError) -> Self {
        use fixbox_store::StoreError as E;
        let code = match &err {
            E::NoKeychain { .. } | E::KeychainLocked { .. } | E::Keychain { .. } => ErrorCode::KeychainUnavailable,
            E::UnknownSession(_) => ErrorCode::NotFound,
            E::SecretName(_) => ErrorCode::InvalidInput,
            _ => ErrorCode::Storage,
        };
        let hint = matches!(err, E::KeychainLocked { .. })
            .then_some("unlock the login keyring (your desktop's Passwords and Keys), then try again");
        Self { code, message: err.to_string(), hint: hint.map(String::from) }
    }
}

impl From<fixbox_engine::EngineError> for IpcError {
    fn from(err: fixbox_engine::EngineError) -> Self {
        use fixbox_engine::EngineError as E;
        let code = match &err {
            E::NotInstalled { .. } | E::TooOld { .. } => ErrorCode::EngineNotInstalled,
            E::StartFailed { .. } | E::PortsExhausted { .. } => ErrorCode::EngineFailed,
            E::Cancelled => ErrorCode::Cancelled,
            E::Download(_) | E::NoPrebuilt { .. } | E::Unverifiable { .. } => ErrorCode::Download,
            E::Config(_) | E::NeedsApiKey { .. } | E::NoApiKeySupport { .. } | E::NeedsModelFile { .. } => {
                ErrorCode::InvalidInput
            }
            _ => ErrorCode::Internal,
        };
        let hint = match &err {
            _ if code == ErrorCode::EngineNotInstalled => Some("install it under Engines"),
            E::NeedsModelFile { .. } => Some("download it under Models first"),
            _ => None,
        };
        Self { code, message: err.to_string(), hint: hint.map(String::from) }
    }
}

impl From<fixbox_agent::AgentError> for IpcError {
    fn from(err: fixbox_agent::AgentError) -> Self {
        use fixbox_agent::AgentError as E;
        match err {
            E::Store(store) => store.into(),
            E::Model(model) => model.into(),
            err => {
                let hint = matches!(err, E::NoTestCommand { .. }).then_some("fill in the Test command");
                let code = match &err {
                    E::NotARepo { .. } | E::NoTestCommand { .. } => ErrorCode::InvalidInput,
                    E::Sandbox { .. } => ErrorCode::DockerUnavailable,
                    E::EventLog(_) => ErrorCode::Storage,
                    E::Stopped { .. } => ErrorCode::Cancelled,
                    E::Config(_) | E::NoModel { .. } => ErrorCode::NoModel,
                    _ => ErrorCode::Internal,
                };
                Self { code, message: err.to_string(), hint: hint.map(String::from) }.with_hint_for_no_model()
            }
        }
    }
}

impl From<fixbox_llm::LlmError> for IpcError {
    fn from(err: fixbox_llm::LlmError) -> Self {
        let code = match err.kind() {
            fixbox_llm::ErrorKind::Config => ErrorCode::NoModel,
            _ => ErrorCode::Model,
        };
        let hint = matches!(err, fixbox_llm::LlmError::Auth { .. } | fixbox_llm::LlmError::Key { .. })
            .then_some("add the key under Settings → API keys");
        Self { code, message: err.to_string(), hint: hint.map(String::from) }.with_hint_for_no_model()
    }
}

impl From<fixbox_github::GitHubError> for IpcError {
    fn from(err: fixbox_github::GitHubError) -> Self {
        use fixbox_github::GitHubError as E;
        let code = match &err {
            E::NotAnIssue(_) => ErrorCode::InvalidInput,
            E::NoSession(_) => ErrorCode::NotFound,
            E::Keychain(_) => ErrorCode::KeychainUnavailable,
            E::Store(_) => ErrorCode::Storage,
            _ => ErrorCode::Github,
        };
        let hint = matches!(err, E::Unauthorized { .. }).then_some("add a GitHub token under Settings → API keys");
        Self { code, message: err.to_string(), hint: hint.map(String::from) }
    }
}

impl From<fixbox_models::DownloadError> for IpcError {
    fn from(err: fixbox_models::DownloadError) -> Self {
        Self::new(ErrorCode::Download, err.to_string())
    }
}

impl From<fixbox_models::CatalogError> for IpcError {
    fn from(err: fixbox_models::CatalogError) -> Self {
        let code = match err {
            fixbox_models::CatalogError::Invalid(_) => ErrorCode::Internal,
            _ => ErrorCode::NotFound,
        };
        Self::new(code, err.to_string())
    }
}

impl From<fixbox_eval::EvalError> for IpcError {
    fn from(err: fixbox_eval::EvalError) -> Self {
        use fixbox_eval::EvalError as E;
        let code = match &err {
            E::Read { .. } | E::NoRepo { .. } => ErrorCode::InvalidInput,
            E::Write { .. } => ErrorCode::Storage,
            E::Sandbox(_) => ErrorCode::DockerUnavailable,
            E::Stopped => ErrorCode::Cancelled,
            _ => ErrorCode::Internal,
        };
        Self::new(code, err.to_string())
    }
}

impl IpcError {
    /// Routes that name no model say so in the app's words.
    fn with_hint_for_no_model(self) -> Self {
        if self.code == ErrorCode::NoModel {
            return self.with_hint("start an engine under Engines, or set routes in Settings");
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_domain_failure_reaches_the_window_with_its_own_code() {
        let locked = fixbox_store::StoreError::KeychainLocked { op: "read", reason: "locked".into() };
        let locked = IpcError::from(locked);
        assert_eq!(locked.code, ErrorCode::KeychainUnavailable);
        assert!(locked.hint.is_some_and(|h| h.contains("unlock")));
        let engine = fixbox_engine::EngineKind::LlamaServer;
        let missing = IpcError::from(fixbox_engine::EngineError::NotInstalled { kind: engine });
        assert_eq!(
            (missing.code, missing.hint.as_deref()),
            (ErrorCode::EngineNotInstalled, Some("install it under Engines"))
        );
        let ports = fixbox_engine::EngineError::PortsExhausted { host: [127, 0, 0, 1].into(), from: 8080, to: 8090 };
        assert_eq!(IpcError::from(ports).code, ErrorCode::EngineFailed);
        let json = serde_json::to_value(IpcError::not_found("no session x")).unwrap();
        assert_eq!(json, serde_json::json!({ "code": "not_found", "message": "no session x", "hint": null }));
    }
}
