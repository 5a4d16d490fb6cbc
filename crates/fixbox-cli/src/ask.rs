//! `fixbox ask`: one question through the routes, the answer streamed to stdout, the call's usage and
//! cost to stderr, and everything recorded as a session's events.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "printing is what a command does")]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use fixbox_llm::{Budget, CallEvent, CallRecord, ChatRequest, Message, Meter, Metrics};
use fixbox_store::Store;
use futures::StreamExt;

#[derive(Debug, Args)]
pub struct AskArgs {
    prompt: String,
    /// The task whose route to take (routes not set for it take `default`'s).
    #[arg(long, default_value = "default")]
    task: String,
    /// A routes file to use instead of the stored routes.
    #[arg(long, alias = "routing", value_name = "FILE")]
    routes: Option<PathBuf>,
    #[arg(long)]
    max_tokens: Option<u32>,
    #[arg(long)]
    temperature: Option<f32>,
    /// Stop before a call that could cost more than this, in US dollars.
    #[arg(long)]
    budget_usd: Option<f64>,
    /// Stop before a call that could use more tokens than this.
    #[arg(long)]
    budget_tokens: Option<u64>,
}

pub async fn run(args: AskArgs) -> anyhow::Result<ExitCode> {
    let (router, from) = crate::routes::router(args.routes.clone(), Arc::new(Metrics::default())).await?;
    tracing::info!(routes = %from, task = %args.task, "asking");
    let store = Store::open_default()?;
    let title: String = format!("ask: {}", args.prompt.chars().take(60).collect::<String>());
    let session = store.create_session(&title)?;
    let mut request = ChatRequest::new(vec![Message::user(&args.prompt)]);
    request.sampling.max_tokens = args.max_tokens;
    request.sampling.temperature = args.temperature;
    store.append_event(&session, "llm.request", &serde_json::json!({ "task": args.task, "request": request }))?;

    let meter = Arc::new(Meter::new(Budget { max_cost_usd: args.budget_usd, max_tokens: args.budget_tokens }));
    let mut stream = router.call(&args.task, request, meter);
    let mut out = std::io::stdout().lock();
    while let Some(event) = stream.next().await {
        match event {
            Ok(CallEvent::Delta { text }) => {
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
            Ok(CallEvent::Discard { route, reason }) => {
                writeln!(out)?;
                eprintln!("[the answer from {route} broke off ({reason}); it is void, starting over]");
            }
            Ok(CallEvent::Attempt(attempt)) => {
                let then = attempt
                    .retry_in_ms
                    .map_or("trying the next route".to_string(), |ms| format!("retrying in {ms} ms"));
                eprintln!("[{}: {}; {then}]", attempt.route, attempt.message);
                store.append_event(&session, "llm.attempt", &serde_json::to_value(&attempt)?)?;
            }
            Ok(CallEvent::Done(record)) => {
                writeln!(out)?;
                store.append_event(&session, "llm.call", &serde_json::to_value(&record)?)?;
                eprintln!("{}", describe(&record));
            }
            Err(err) => {
                store.append_event(
                    &session,
                    "llm.failed",
                    &serde_json::json!({ "kind": err.kind(), "message": err.to_string() }),
                )?;
                return Err(err).context("the question got no answer");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line about a call: who answered, tokens, speed, cost.
fn describe(r: &CallRecord) -> String {
    let speed = r.tokens_per_second.map(|t| format!(", {t:.1} tokens/s")).unwrap_or_default();
    let ttft = r.ttft_ms.map(|t| format!(", first token after {t:.0} ms")).unwrap_or_default();
    let cost = match (r.cost_usd, r.equivalent_cost_usd) {
        (Some(c), Some(e)) if r.local => format!("${c:.4} (${e:.6} in the cloud)"),
        (Some(c), _) => format!("${c:.6}"),
        (None, _) => "cost unknown (not in the price table)".into(),
    };
    format!(
        "[{} {}: {} prompt tokens ({} cached), {} generated{ttft}{speed}; {cost}]",
        r.route, r.model, r.usage.prompt, r.usage.cache_read, r.usage.completion
    )
}
