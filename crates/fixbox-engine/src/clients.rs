//! The engine-management side of Ollama's and vLLM's HTTP APIs: what is loaded or installed, and (for
//! Ollama) pulling a model with progress. Chat completions belong to the model client.

use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use fixbox_secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {reason}; is the engine running?")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("{url} answered something unexpected: {reason}")]
    Unexpected { url: String, reason: String },
    #[error("Ollama could not pull {model}: {reason}")]
    PullFailed { model: String, reason: String },
}

fn http() -> reqwest::Client {
    // Engines are local: never through a proxy. A client without TLS roots cannot fail to build.
    fixbox_models::http_client_builder().no_proxy().connect_timeout(Duration::from_secs(5)).build().unwrap_or_default()
}

async fn get_json<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
    url: &str,
) -> Result<T, ClientError> {
    let response =
        request.send().await.map_err(|e| ClientError::Unreachable { url: url.into(), reason: e.to_string() })?;
    let status = response.status();
    let body =
        response.bytes().await.map_err(|e| ClientError::Unreachable { url: url.into(), reason: e.to_string() })?;
    if !status.is_success() {
        let body = String::from_utf8_lossy(&body).chars().take(300).collect();
        return Err(ClientError::Status { url: url.into(), status: status.as_u16(), body });
    }
    serde_json::from_slice(&body).map_err(|e| ClientError::Unexpected { url: url.into(), reason: e.to_string() })
}

/// Ollama's native API at `base` (`http://127.0.0.1:11434`).
#[derive(Debug, Clone)]
pub struct OllamaClient {
    base: String,
    http: reqwest::Client,
}

/// A model Ollama has (`GET /api/tags`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct OllamaModel {
    pub name: String,
    pub size: u64,
    pub digest: String,
    #[serde(default)]
    pub details: OllamaDetails,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct OllamaDetails {
    #[serde(default)]
    pub family: String,
    #[serde(default)]
    pub parameter_size: String,
    #[serde(default)]
    pub quantization_level: String,
}

/// One line of `POST /api/pull`'s stream.
/// Ollama's `POST /api/pull` request.
#[derive(Serialize)]
struct PullRequest<'a> {
    model: &'a str,
    stream: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct OllamaPullProgress {
    pub status: String,
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(default)]
    pub completed: Option<u64>,
}

impl OllamaClient {
    pub fn new(base: impl Into<String>) -> Self {
        Self { base: base.into().trim_end_matches('/').to_string(), http: http() }
    }

    /// The server's version (`GET /api/version`).
    pub async fn version(&self) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct Version {
            version: String,
        }
        let url = format!("{}/api/version", self.base);
        Ok(get_json::<Version>(self.http.get(&url), &url).await?.version)
    }

    /// The models it has (`GET /api/tags`).
    pub async fn models(&self) -> Result<Vec<OllamaModel>, ClientError> {
        #[derive(Deserialize)]
        struct Tags {
            models: Vec<OllamaModel>,
        }
        let url = format!("{}/api/tags", self.base);
        Ok(get_json::<Tags>(self.http.get(&url), &url).await?.models)
    }

    /// Pulls `model` (`POST /api/pull`), sending each progress line on; ends at `success`, or with the
    /// error Ollama reports.
    pub async fn pull(
        &self,
        model: &str,
        progress: &mpsc::UnboundedSender<OllamaPullProgress>,
    ) -> Result<(), ClientError> {
        let url = format!("{}/api/pull", self.base);
        let unreachable = |e: reqwest::Error| ClientError::Unreachable { url: url.clone(), reason: e.to_string() };
        let response = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_string(&PullRequest { model, stream: true }).unwrap_or_default())
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default().chars().take(300).collect();
            return Err(ClientError::Status { url, status: status.as_u16(), body });
        }
        let mut body = response.bytes_stream();
        let mut pending = Vec::new();
        let mut succeeded = false;
        while let Some(chunk) = body.next().await {
            pending.extend_from_slice(&chunk.map_err(unreachable)?);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                succeeded |= self.pull_line(model, &line, progress)?;
            }
        }
        if !pending.is_empty() {
            succeeded |= self.pull_line(model, &pending, progress)?;
        }
        if succeeded {
            Ok(())
        } else {
            Err(ClientError::PullFailed { model: model.into(), reason: "the stream ended before \"success\"".into() })
        }
    }

    /// One line of the pull stream; `true` at `success`.
    fn pull_line(
        &self,
        model: &str,
        line: &[u8],
        progress: &mpsc::UnboundedSender<OllamaPullProgress>,
    ) -> Result<bool, ClientError> {
        #[derive(Deserialize)]
        struct Failure {
            error: String,
        }
        let line = line.trim_ascii();
        if line.is_empty() {
            return Ok(false);
        }
        if let Ok(failure) = serde_json::from_slice::<Failure>(line) {
            return Err(ClientError::PullFailed { model: model.into(), reason: failure.error });
        }
        let update: OllamaPullProgress = serde_json::from_slice(line)
            .map_err(|e| ClientError::Unexpected { url: format!("{}/api/pull", self.base), reason: e.to_string() })?;
        let done = update.status == "success";
        let _ = progress.send(update);
        Ok(done)
    }
}

/// vLLM's OpenAI-compatible server at `base` (`http://127.0.0.1:8000`).
#[derive(Debug, Clone)]
pub struct VllmClient {
    base: String,
    api_key: Option<Secret>,
    http: reqwest::Client,
}

/// A model vLLM serves (`GET /v1/models`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct VllmModel {
    pub id: String,
    #[serde(default)]
    pub root: Option<String>,
    #[serde(default)]
    pub max_model_len: Option<u32>,
}

impl VllmClient {
    pub fn new(base: impl Into<String>, api_key: Option<Secret>) -> Self {
        Self { base: base.into().trim_end_matches('/').to_string(), api_key, http: http() }
    }

    /// Whether the engine is up (`GET /health` answers 200, with an empty body).
    pub async fn healthy(&self) -> bool {
        let url = format!("{}/health", self.base);
        matches!(self.http.get(&url).send().await, Ok(r) if r.status().is_success())
    }

    /// The models it serves, with their context length.
    pub async fn models(&self) -> Result<Vec<VllmModel>, ClientError> {
        #[derive(Deserialize)]
        struct List {
            data: Vec<VllmModel>,
        }
        let url = format!("{}/v1/models", self.base);
        let mut request = self.http.get(&url);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        Ok(get_json::<List>(request, &url).await?.data)
    }
}
