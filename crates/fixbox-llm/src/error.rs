//! What can go wrong with a call, by kind: the kind decides whether the router retries the same route,
//! moves to the next one, or stops.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::budget::BudgetExceeded;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("{provider} rejected the API key (HTTP {status}): {message}. Store a valid key for it in the keychain")]
    Auth { provider: String, status: u16, message: String },
    #[error("{provider} has no model {model}: {message}. Check the model name in the routes")]
    ModelNotFound { provider: String, model: String, message: String },
    #[error("the request does not fit {provider}'s context window: {message}")]
    ContextTooLong { provider: String, message: String },
    #[error("{provider} refused the request (HTTP {status}): {message}")]
    BadRequest { provider: String, status: u16, message: String },
    #[error("{provider} is rate limiting (HTTP 429{}): {message}", retry_after_text(*.retry_after))]
    RateLimited { provider: String, retry_after: Option<Duration>, message: String },
    #[error("{provider} had a server error (HTTP {status}): {message}")]
    Server { provider: String, status: u16, message: String },
    #[error("cannot reach {provider} at {url}: {reason}. Is the server running?")]
    Connection { provider: String, url: String, reason: String },
    #[error("{provider} sent nothing for {}s while {stage}; it may be overloaded or hung", .waited.as_secs_f32())]
    Timeout { provider: String, stage: &'static str, waited: Duration },
    #[error("{provider}'s answer broke off after {deltas} pieces of text: {reason}")]
    StreamBroken { provider: String, deltas: u64, reason: String },
    #[error("{provider} answered something unexpected: {reason}")]
    Protocol { provider: String, reason: String },
    #[error("stopped before the call: {0}")]
    Budget(BudgetExceeded),
    #[error("no route could answer ({}); the last: {}", attempts.len(), attempts.last().map(|a| a.message.as_str()).unwrap_or("none tried"))]
    AllRoutesFailed { attempts: Vec<Attempt> },
    #[error("no route for task `{0}` and no `default` route; add one under [routes] in the routes")]
    NoRoute(String),
    #[error("the API key `{name}` cannot be read from the keychain: {reason}")]
    Key { name: String, reason: String },
    #[error("the routes are invalid: {0}")]
    Config(String),
}

fn retry_after_text(after: Option<Duration>) -> String {
    after.map(|d| format!(", retry after {}s", d.as_secs_f32())).unwrap_or_default()
}

/// The kind of a failure, as recorded in attempts and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Auth,
    ModelNotFound,
    ContextTooLong,
    BadRequest,
    RateLimited,
    Server,
    Connection,
    Timeout,
    StreamBroken,
    Protocol,
    Budget,
    AllRoutesFailed,
    Config,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::ModelNotFound => "model_not_found",
            Self::ContextTooLong => "context_too_long",
            Self::BadRequest => "bad_request",
            Self::RateLimited => "rate_limited",
            Self::Server => "server",
            Self::Connection => "connection",
            Self::Timeout => "timeout",
            Self::StreamBroken => "stream_broken",
            Self::Protocol => "protocol",
            Self::Budget => "budget",
            Self::AllRoutesFailed => "all_routes_failed",
            Self::Config => "config",
        }
    }
}

impl LlmError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Auth { .. } => ErrorKind::Auth,
            Self::ModelNotFound { .. } => ErrorKind::ModelNotFound,
            Self::ContextTooLong { .. } => ErrorKind::ContextTooLong,
            Self::BadRequest { .. } => ErrorKind::BadRequest,
            Self::RateLimited { .. } => ErrorKind::RateLimited,
            Self::Server { .. } => ErrorKind::Server,
            Self::Connection { .. } => ErrorKind::Connection,
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::StreamBroken { .. } => ErrorKind::StreamBroken,
            Self::Protocol { .. } => ErrorKind::Protocol,
            Self::Budget(_) => ErrorKind::Budget,
            Self::AllRoutesFailed { .. } => ErrorKind::AllRoutesFailed,
            Self::NoRoute(_) | Self::Key { .. } | Self::Config(_) => ErrorKind::Config,
        }
    }

    /// Whether the same request to the same server may succeed later: rate limits, server errors,
    /// resets, hangs and broken streams. Anything else moves to the next route at once.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::RateLimited
                | ErrorKind::Server
                | ErrorKind::Connection
                | ErrorKind::Timeout
                | ErrorKind::StreamBroken
        )
    }
}

/// The error for an HTTP answer other than 2xx, from its status and (already redacted) body.
pub(crate) fn from_status(
    provider: &str,
    model: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
) -> LlmError {
    let message = error_message(body);
    let lower = message.to_lowercase();
    let provider = provider.to_string();
    if is_context_error(&lower) {
        return LlmError::ContextTooLong { provider, message };
    }
    let model_missing = lower.contains("model")
        && (lower.contains("not found") || lower.contains("does not exist") || lower.contains("invalid model"));
    match status {
        401 | 403 => LlmError::Auth { provider, status, message },
        429 => LlmError::RateLimited { provider, retry_after, message },
        _ if status == 404 || model_missing => LlmError::ModelNotFound { provider, model: model.to_string(), message },
        408 | 409 | 425 | 500.. => LlmError::Server { provider, status, message },
        _ => LlmError::BadRequest { provider, status, message },
    }
}

/// What servers say when a prompt does not fit: OpenAI, vLLM, llama-server, Ollama, Mistral.
fn is_context_error(lower: &str) -> bool {
    [
        "context length",
        "context_length",
        "context size",
        "context window",
        "maximum context",
        "exceed_context",
        "exceeds the available context",
        "prompt is too long",
        "too large for model",
        "too many tokens",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// The human part of an error body: `error.message`, `message`, `detail` or `error` as a string,
/// else the body itself; at most 300 characters.
pub(crate) fn error_message(body: &str) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(json) => [&json["error"]["message"], &json["message"], &json["detail"], &json["error"]]
            .into_iter()
            .find_map(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| body.to_string()),
        Err(_) => body.to_string(),
    };
    let text = text.trim();
    if text.is_empty() { "no details given".into() } else { text.chars().take(300).collect() }
}

/// A try that failed, and what the router did next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Attempt {
    pub route: String,
    pub model: String,
    pub kind: ErrorKind,
    pub message: String,
    /// The wait before trying the same route again; `None`: it moved on to the next route.
    pub retry_in_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(status: u16, body: &str) -> ErrorKind {
        from_status("p", "m", status, None, body).kind()
    }

    #[test]
    fn answers_are_classified_by_what_retrying_can_fix() {
        // Bodies as the servers send them.
        assert_eq!(
            kind(
                401,
                r#"{"error":{"message":"Incorrect API key provided: sk-***","type":"invalid_request_error","code":"invalid_api_key"}}"#
            ),
            ErrorKind::Auth
        );
        assert_eq!(kind(401, r#"{"message":"Unauthorized","request_id":"abc"}"#), ErrorKind::Auth);
        assert_eq!(kind(404, r#"{"error":"model 'qwen9:1b' not found"}"#), ErrorKind::ModelNotFound);
        assert_eq!(
            kind(
                400,
                r#"{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError","code":404}"#
            ),
            ErrorKind::ModelNotFound
        );
        assert_eq!(
            kind(
                400,
                r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":9000,"n_ctx":4096}}"#
            ),
            ErrorKind::ContextTooLong
        );
        assert_eq!(
            kind(
                400,
                r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","code":"context_length_exceeded"}}"#
            ),
            ErrorKind::ContextTooLong
        );
        assert_eq!(kind(400, r#"{"error":{"message":"temperature must be at most 2"}}"#), ErrorKind::BadRequest);
        assert_eq!(kind(429, r#"{"error":{"message":"Rate limit reached"}}"#), ErrorKind::RateLimited);
        assert_eq!(
            kind(503, r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#),
            ErrorKind::Server
        );
        assert_eq!(kind(502, "<html>Bad Gateway</html>"), ErrorKind::Server);
        for retryable in [429, 500, 502, 503, 504] {
            assert!(from_status("p", "m", retryable, None, "").is_retryable(), "{retryable}");
        }
        for final_ in [400, 401, 403, 404, 422] {
            assert!(!from_status("p", "m", final_, None, "").is_retryable(), "{final_}");
        }
    }

    #[test]
    fn the_message_is_the_human_part_and_bounded() {
        assert_eq!(error_message(r#"{"error":{"message":"no"}}"#), "no");
        assert_eq!(error_message(r#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(error_message(""), "no details given");
        assert_eq!(error_message(&"x".repeat(1000)).len(), 300);
    }
}
