//! What n-gram drafts (llama-server's speculative decoding by lookup in the context, on by default:
//! `LaunchSpec::ngram_drafts`) gain on the answers a fix session asks for: Qwen2.5-Coder-1.5B rewriting
//! the buggy file of each sample project, in the rewrite edit format with its grammar, greedy. The
//! baseline is the same engine without drafts, measured in the same run, the two asked in turns. The
//! ratio is generation speed. Drafted tokens are verified in a batch, whose rounding can differ from
//! one-token steps on a quantized model, so a greedy answer may part from the plain one at a near tie
//! (llama.cpp issue 25618): the table says where, and the run fails only when most answers differ.
//!
//! Run: `cargo bench -p fixbox-e2e --bench drafts [-- NAME...]` (the sample projects named, else all).
//! Target: ≥ 1.3× generation tokens/s.
#![expect(clippy::print_stdout, reason = "a benchmark prints its report")]

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fixbox_e2e::fixtures;
use fixbox_engine::{EngineKind, LaunchSpec, LlamaServer, ModelRef, RunningEngine, SuperviseOptions};
use fixbox_patch::EditFormat;
use serde_json::{Value, json};

const MODEL: &str = "qwen2.5-coder-1.5b-instruct";
const SMOKE_PROJECT: &str = "py-cache-evict-during-iteration";

#[tokio::main]
async fn main() -> Result<()> {
    let mut wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` (CI) runs this without it, and then one
    // project checks that the benchmark works without taking CI's time.
    if !std::env::args().any(|a| a == "--bench") {
        println!("test mode (no --bench): {SMOKE_PROJECT} only; `cargo bench` runs every project");
        wanted = vec![SMOKE_PROJECT.to_string()];
    }
    let binary = fixbox_e2e::models::llama_server().await?;
    let model = fixbox_e2e::models::offline_model(MODEL).await?;
    let threads = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(2);
    let mut engines = Vec::new();
    for drafts in [false, true] {
        let mut spec = LaunchSpec::new(EngineKind::LlamaServer, ModelRef::File(model.clone()), MODEL, 8192);
        spec.threads = Some(threads);
        spec.port = fixbox_e2e::free_port()?;
        spec.ngram_drafts = drafts;
        let log = tempfile::NamedTempFile::new()?.into_temp_path().to_path_buf();
        let options = SuperviseOptions { startup_timeout: Duration::from_secs(300), ..SuperviseOptions::default() };
        engines.push(fixbox_engine::start(Arc::new(LlamaServer), &binary, spec, log, options).await?);
    }
    let client = reqwest::Client::builder().no_proxy().build()?;
    println!("{MODEL} (Q4_K_M) on llama-server, {threads} threads; a rewrite of each sample's buggy file, greedy\n");
    println!("| project | tokens | tokens/s plain | tokens/s drafts | ratio | drafted | accepted | same answer |");
    println!("|---|---|---|---|---|---|---|---|");
    let (mut plain_s, mut drafts_s, mut tokens) = (0.0, 0.0, 0u64);
    let (mut answers, mut parted) = (0, 0);
    for fixture in fixtures::all()?.into_iter().filter(|f| wanted.is_empty() || wanted.contains(&f.name)) {
        let path = fixture.fix_patch.lines().find_map(|l| l.strip_prefix("--- a/")).context("a fix with no file")?;
        let code = std::fs::read_to_string(fixture.repo.join(path))?;
        let prompt = rewrite_prompt(&fixture.task, path, &code);
        let plain = answer(&client, &engines[0], &prompt).await?;
        let drafted = answer(&client, &engines[1], &prompt).await?;
        let parts_at = first_difference(&plain.text, &drafted.text);
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.2}x | {} | {} | {} |",
            fixture.name,
            plain.tokens,
            plain.tokens as f64 / plain.seconds,
            drafted.tokens as f64 / drafted.seconds,
            plain.seconds / drafted.seconds,
            drafted.drafted,
            drafted.accepted,
            parts_at.map_or("yes".to_string(), |at| format!("no, from character {at}")),
        );
        answers += 1;
        parted += usize::from(parts_at.is_some());
        (plain_s, drafts_s, tokens) = (plain_s + plain.seconds, drafts_s + drafted.seconds, tokens + plain.tokens);
    }
    println!(
        "\nall: {tokens} tokens, {:.1} tokens/s plain, {:.1} with drafts: {:.2}x (target ≥ 1.3x)",
        tokens as f64 / plain_s,
        tokens as f64 / drafts_s,
        plain_s / drafts_s
    );
    println!("{} of {answers} answers are the plain answer, character for character", answers - parted);
    for engine in engines {
        engine.stop().await;
    }
    ensure!(parted * 2 <= answers, "drafts changed {parted} of {answers} greedy answers: more than rounding would");
    Ok(())
}

/// Where two answers part, in characters; `None` when they are the same.
fn first_difference(a: &str, b: &str) -> Option<usize> {
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    (a != b).then_some(common)
}

/// A fix session's rewrite request, in short: the issue, the code, the format's instructions.
fn rewrite_prompt(task: &str, path: &str, code: &str) -> Value {
    let format = EditFormat::Rewrite;
    let system = format!("You are an expert software engineer fixing a bug.\n\n{}", format.instructions());
    let user = format!(
        "# Issue\n{task}\n\n# Code\n{path}:\n```\n{code}```\n\nRewrite these lines of {path} so the bug is fixed. {}",
        format.reminder(path)
    );
    json!({
        "model": MODEL,
        "messages": [{ "role": "system", "content": system }, { "role": "user", "content": user }],
        "temperature": 0,
        "max_tokens": 1024,
        "grammar": format.grammar(),
    })
}

struct Answer {
    text: String,
    tokens: u64,
    /// Generation time, as the engine counted it (the prompt's prefill left out).
    seconds: f64,
    drafted: u64,
    accepted: u64,
}

async fn answer(client: &reqwest::Client, engine: &RunningEngine, body: &Value) -> Result<Answer> {
    let response = fixbox_e2e::models::chat_completion(client, &engine.url, body).await?;
    let answer: Value = serde_json::from_slice(&response.bytes().await?)?;
    let timings = &answer["timings"];
    let number = |key: &str| timings[key].as_f64().unwrap_or(0.0);
    Ok(Answer {
        text: answer["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string(),
        tokens: number("predicted_n") as u64,
        seconds: number("predicted_ms") / 1e3,
        drafted: number("draft_n") as u64,
        accepted: number("draft_n_accepted") as u64,
    })
}
