//! `fixbox serve`: an OpenAI-compatible chat-completions endpoint in front of Fixbox's routes (so any
//! OpenAI client gets the fallbacks, retries, budgets and accounting), and with `--metrics` a
//! Prometheus endpoint counting every call. It answers as OpenAI's clients expect: `GET /v1/models`
//! lists the tasks a request's `model` can name, and errors come as `{error: {message, type, param,
//! code}}` with OpenAI's status and code where there is one (a prompt no route's context holds is a
//! 400 `context_length_exceeded`).
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "printing is what a command does")]

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use fixbox_llm::{CallEvent, CallRecord, ChatRequest, ErrorKind, LlmError, Message, Meter, Metrics, Router};
use fixbox_secret::Secret;
use fixbox_store::Keychain;
use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{AUTHORIZATION, HOST, ORIGIN};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the OpenAI-compatible endpoint listens (`/v1/chat/completions`). The request's `model`
    /// picks the task whose route to take; any other name takes `default`'s.
    #[arg(long, default_value = "127.0.0.1:8585")]
    listen: SocketAddr,
    /// Also serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// A routes file to use instead of the stored routes.
    #[arg(long, alias = "routing", value_name = "FILE")]
    routes: Option<PathBuf>,
    /// The keychain entry holding the bearer token clients must send; required to listen beyond
    /// loopback.
    #[arg(long, value_name = "NAME")]
    token_key: Option<String>,
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

struct Api {
    router: Router,
    gate: Gate,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if !args.listen.ip().is_loopback() && args.token_key.is_none() {
        bail!(
            "--listen {} would let other machines call your models: store a token (`fixbox keys set serve-token`) and add `--token-key serve-token`, or listen on 127.0.0.1",
            args.listen
        );
    }
    let token = match args.token_key.clone() {
        Some(name) => Some(
            tokio::task::spawn_blocking(move || Keychain.get(&name).map(|t| (name, t)))
                .await??
                .1
                .context("no such key in the keychain; store it with `fixbox keys set NAME`")?,
        ),
        None => None,
    };
    let metrics = Arc::new(Metrics::default());
    let (router, from) = crate::routes::router(args.routes.clone(), metrics.clone()).await?;
    let api = Arc::new(Api { router, gate: Gate::new(args.listen, token.clone()) });

    let listener = bind(args.listen, "--listen").await?;
    eprintln!("serving the routes from {from} at http://{}/v1", listener.local_addr()?);
    tokio::spawn(serve(listener, move |req| handle_api(req, api.clone())));
    if let Some(addr) = args.metrics {
        spawn_metrics(addr, metrics, token).await?;
    }
    shutdown_signal().await;
    Ok(ExitCode::SUCCESS)
}

/// Serves `metrics` at http://ADDR/metrics from now on (`--metrics ADDR` of a command), and says where.
/// Beyond loopback it needs `token`: call counts name every model and provider in use.
pub(crate) async fn spawn_metrics(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    token: Option<Secret>,
) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() && token.is_none() {
        bail!(
            "--metrics {addr} would let other machines read which models you call: listen on 127.0.0.1, or with `fixbox serve` add `--token-key NAME` and scrape with that bearer token"
        );
    }
    let listener = bind(addr, "--metrics").await?;
    eprintln!("metrics at http://{}/metrics", listener.local_addr()?);
    let gate = Arc::new(Gate::new(addr, token));
    tokio::spawn(serve(listener, move |req| handle_metrics(req, metrics.clone(), gate.clone())));
    Ok(())
}

/// Who may call an endpoint of ours. A web page can reach 127.0.0.1 by rebinding its own name to it,
/// but then sends its own name as `Host`; a page's request from elsewhere carries its `Origin`. So on
/// loopback the `Host` must be a loopback name, any `Origin` must be a loopback page, and where a token
/// is set the request must carry it.
struct Gate {
    loopback: bool,
    token: Option<Secret>,
}

impl Gate {
    fn new(listen: SocketAddr, token: Option<Secret>) -> Self {
        Self { loopback: listen.ip().is_loopback(), token }
    }

    /// The answer refusing `req`, or `None` to serve it.
    fn refusal(&self, req: &Request<Incoming>, needs_token: bool) -> Option<Response<Body>> {
        let header = |name| req.headers().get(name).map(|v| v.to_str().unwrap_or("?"));
        if self.loopback && !header(HOST).is_some_and(is_loopback_name) {
            return Some(error(
                StatusCode::FORBIDDEN,
                Some("forbidden"),
                "this server answers requests to 127.0.0.1 or localhost only (the Host header names another)",
            ));
        }
        if let Some(origin) = header(ORIGIN)
            && !origin.split_once("://").is_some_and(|(_, authority)| is_loopback_name(authority))
        {
            return Some(error(StatusCode::FORBIDDEN, Some("forbidden"), "requests from web pages are refused"));
        }
        if let Some(token) = self.token.as_ref().filter(|_| needs_token) {
            let sent = header(AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default();
            if !same_secret(sent.as_bytes(), token.expose().as_bytes()) {
                return Some(error(
                    StatusCode::UNAUTHORIZED,
                    Some("invalid_api_key"),
                    "send the token as `Authorization: Bearer …`",
                ));
            }
        }
        None
    }
}

/// Whether `authority` (`host`, `host:port`, `[v6]:port`) names this machine's loopback.
fn is_loopback_name(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(host, _)| host),
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Compares in time that depends on the lengths only, so a caller cannot find a token byte by byte.
fn same_secret(sent: &[u8], token: &[u8]) -> bool {
    let differ = sent.iter().zip(token).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(differ) == 0 && sent.len() == token.len()
}

async fn bind(addr: SocketAddr, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}; pick another address with {flag}"))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Serves HTTP/1.1 connections from `listener` with `handler`, one task per connection.
async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!(%err, "accepting a connection failed");
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(req).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(err) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                tracing::debug!(%err, "connection ended with an error");
            }
        });
    }
}

async fn handle_metrics(req: Request<Incoming>, metrics: Arc<Metrics>, gate: Arc<Gate>) -> Response<Body> {
    if let Some(refused) = gate.refusal(&req, true) {
        return refused;
    }
    if req.method() != Method::GET || req.uri().path() != "/metrics" {
        return error(StatusCode::NOT_FOUND, Some("not_found"), "metrics are at GET /metrics");
    }
    response(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        Full::new(Bytes::from(metrics.render())).boxed_unsync(),
    )
}

async fn handle_api(req: Request<Incoming>, api: Arc<Api>) -> Response<Body> {
    let is_health = req.method() == Method::GET && req.uri().path() == "/health";
    if let Some(refused) = api.gate.refusal(&req, !is_health) {
        return refused;
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => json_response(StatusCode::OK, &json!({ "status": "ok" })),
        (&Method::GET, "/v1/models") => {
            let data: Vec<Value> = api.router.tasks().map(|task| model(&api.router, task)).collect();
            json_response(StatusCode::OK, &json!({ "object": "list", "data": data }))
        }
        (&Method::GET, path) if path.starts_with("/v1/models/") => {
            let task = &path["/v1/models/".len()..];
            match api.router.tasks().find(|t| *t == task) {
                Some(task) => json_response(StatusCode::OK, &model(&api.router, task)),
                None => error(
                    StatusCode::NOT_FOUND,
                    Some("model_not_found"),
                    &format!("no task {task:?}; GET /v1/models lists them (any other name takes `default`'s routes)"),
                ),
            }
        }
        (&Method::POST, "/v1/chat/completions") => {
            // A chat request is text: 16 MiB is far past any context window.
            let body = match Limited::new(req.into_body(), 16 << 20).collect().await {
                Ok(body) => body.to_bytes(),
                Err(err) => return error(StatusCode::PAYLOAD_TOO_LARGE, Some("request_too_large"), &err.to_string()),
            };
            match parse_request(&body) {
                Ok((task, stream, request)) => complete(&api.router, &task, stream, request).await,
                Err(message) => error(StatusCode::BAD_REQUEST, None, &message),
            }
        }
        (method, path) => error(
            StatusCode::NOT_FOUND,
            Some("unknown_url"),
            &format!("no {method} {path}: this server has POST /v1/chat/completions, GET /v1/models and GET /health"),
        ),
    }
}

/// The part of OpenAI's chat request this server reads; the rest is ignored, as OpenAI's own
/// compatible servers do.
#[derive(Debug, serde::Deserialize)]
struct ChatBody {
    messages: Vec<Message>,
    model: Option<String>,
    stream: Option<bool>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    seed: Option<u64>,
    stop: Option<Stop>,
}

/// `stop`: one sequence or several.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

/// The task (from `model`), whether to stream, and the request.
fn parse_request(body: &[u8]) -> Result<(String, bool, ChatRequest), String> {
    let body: ChatBody = serde_json::from_slice(body).map_err(|e| {
        format!("the body is not a chat request (`messages` a list of {{role, content}} with text content): {e}")
    })?;
    if body.messages.is_empty() {
        return Err("`messages` is empty".into());
    }
    let mut request = ChatRequest::new(body.messages);
    let s = &mut request.sampling;
    (s.temperature, s.top_p, s.seed) = (body.temperature, body.top_p, body.seed);
    s.max_tokens = body.max_tokens.or(body.max_completion_tokens);
    s.stop = match body.stop {
        Some(Stop::One(stop)) => vec![stop],
        Some(Stop::Many(stops)) => stops,
        None => Vec::new(),
    };
    Ok((body.model.unwrap_or_else(|| "default".into()), body.stream.unwrap_or(false), request))
}

async fn complete(router: &Router, task: &str, stream: bool, request: ChatRequest) -> Response<Body> {
    let mut events = router.call(task, request, Arc::new(Meter::default()));
    if !stream {
        return match fixbox_llm::finish(events).await {
            Ok(record) => json_response(StatusCode::OK, &completion(&record)),
            Err(err) => llm_error(&err),
        };
    }
    // The first event decides the status: a call that fails before any text gets an error status.
    let first = loop {
        match events.next().await {
            Some(Ok(CallEvent::Attempt(_))) => continue,
            Some(Ok(event)) => break event,
            Some(Err(err)) => return llm_error(&err),
            None => return error(StatusCode::BAD_GATEWAY, None, "the call ended without an answer"),
        }
    };
    let id = format!(
        "chatcmpl-{}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
    );
    let sse = async_stream::stream! {
        let mut next: Option<Result<CallEvent, LlmError>> = Some(Ok(first));
        while let Some(event) = next.take() {
            match event {
                Ok(CallEvent::Delta { text }) => yield data(&json!({
                    "id": id, "object": "chat.completion.chunk",
                    "choices": [{ "index": 0, "delta": { "content": text }, "finish_reason": null }],
                })),
                // A retry is announced as an SSE comment, which clients ignore.
                Ok(CallEvent::Attempt(a)) => yield Bytes::from(format!(": {} failed ({}), {}\n\n", a.route, a.kind.as_str(), if a.retry_in_ms.is_some() { "retrying" } else { "next route" })),
                Ok(CallEvent::Discard { route, reason }) => {
                    // Text already sent cannot be taken back: end with an error rather than splice.
                    yield data(&error_body(StatusCode::BAD_GATEWAY, Some(ErrorKind::StreamBroken.as_str()), &format!("{route}: {reason}")));
                    return;
                }
                Ok(CallEvent::Done(record)) => {
                    let mut last = completion(&record);
                    last["object"] = json!("chat.completion.chunk");
                    last["choices"] = json!([{ "index": 0, "delta": {}, "finish_reason": record.finish_reason }]);
                    yield data(&last);
                    yield Bytes::from_static(b"data: [DONE]\n\n");
                    return;
                }
                Err(err) => {
                    let (status, code) = status_of(&err);
                    yield data(&error_body(status, Some(code), &err.to_string()));
                    return;
                }
            }
            next = events.next().await;
        }
    };
    let body = StreamBody::new(sse.map(|bytes| Ok::<_, Infallible>(Frame::data(bytes))));
    response(StatusCode::OK, "text/event-stream", BodyExt::boxed_unsync(body))
}

fn data(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// An OpenAI `chat.completion` for a record, with Fixbox's accounting under `fixbox`.
fn completion(r: &CallRecord) -> Value {
    json!({
        "object": "chat.completion",
        "model": r.model,
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": r.text }, "finish_reason": r.finish_reason }],
        "usage": {
            "prompt_tokens": r.usage.prompt,
            "completion_tokens": r.usage.completion,
            "total_tokens": r.usage.total(),
            "prompt_tokens_details": { "cached_tokens": r.usage.cache_read },
        },
        "fixbox": {
            "route": r.route, "ttft_ms": r.ttft_ms, "latency_ms": r.latency_ms, "tokens_per_second": r.tokens_per_second,
            "cost_usd": r.cost_usd, "equivalent_cost_usd": r.equivalent_cost_usd, "attempts": r.attempts,
        },
    })
}

/// A task as OpenAI's model list shows a model, with the routes it takes.
fn model(router: &Router, task: &str) -> Value {
    let routes: Vec<&str> =
        router.routes(task).map(|r| r.iter().map(|r| r.name.as_str()).collect()).unwrap_or_default();
    json!({ "id": task, "object": "model", "created": 0, "owned_by": "fixbox", "fixbox": { "routes": routes } })
}

/// The status and OpenAI-style code for a call that failed.
fn status_of(err: &LlmError) -> (StatusCode, &'static str) {
    // A call every route turned down for one reason failed for that reason.
    let all = |kind| match err {
        LlmError::AllRoutesFailed { attempts } => !attempts.is_empty() && attempts.iter().all(|a| a.kind == kind),
        _ => err.kind() == kind,
    };
    if all(ErrorKind::ContextTooLong) {
        (StatusCode::BAD_REQUEST, "context_length_exceeded")
    } else if all(ErrorKind::RateLimited) {
        (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded")
    } else {
        match err.kind() {
            ErrorKind::Budget => (StatusCode::PAYMENT_REQUIRED, "budget_exceeded"),
            ErrorKind::Config => (StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Config.as_str()),
            kind => (StatusCode::BAD_GATEWAY, kind.as_str()),
        }
    }
}

fn llm_error(err: &LlmError) -> Response<Body> {
    let (status, code) = status_of(err);
    error(status, Some(code), &err.to_string())
}

fn error(status: StatusCode, code: Option<&str>, message: &str) -> Response<Body> {
    json_response(status, &error_body(status, code, message))
}

/// OpenAI's error object: its `type` from the status as OpenAI's API gives it, and `code` where one
/// says more (`context_length_exceeded`, `invalid_api_key`, …).
fn error_body(status: StatusCode, code: Option<&str>, message: &str) -> Value {
    let kind = match status.as_u16() {
        400 | 404 | 413 => "invalid_request_error",
        401 => "authentication_error",
        402 => "insufficient_quota",
        403 => "permission_error",
        429 => "rate_limit_error",
        _ => "server_error",
    };
    json!({ "error": { "message": message, "type": kind, "param": null, "code": code } })
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    response(status, "application/json", Full::new(Bytes::from(value.to_string())).boxed_unsync())
}

fn response(status: StatusCode, content_type: &str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert("content-type", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_request_is_read_by_its_fields_and_a_wrong_one_is_said_so() {
        let body = br#"{"model": "fix", "stream": true, "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2, "max_completion_tokens": 9, "stop": "END", "seed": null, "n": 1}"#;
        let (task, stream, request) = parse_request(body).unwrap();
        assert_eq!((task.as_str(), stream), ("fix", true));
        let s = &request.sampling;
        assert_eq!(
            (s.temperature, s.max_tokens, s.seed, s.stop.clone()),
            (Some(0.2), Some(9), None, vec!["END".into()])
        );
        let (task, stream, request) =
            parse_request(br#"{"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b"]}"#).unwrap();
        assert_eq!((task.as_str(), stream, request.sampling.stop.len()), ("default", false, 2));
        for (body, says) in [
            (&br#"{"messages": []}"#[..], "`messages` is empty"),
            (br#"{"messages": "hi"}"#, "not a chat request"),
            (br#"{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}"#, "not a chat request"),
            (b"hi", "not a chat request"),
        ] {
            let err = parse_request(body).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn loopback_names_are_told_from_rebound_ones() {
        for name in ["127.0.0.1:8585", "localhost", "LOCALHOST:1", "[::1]:8585", "[::1]", "127.1.2.3"] {
            assert!(is_loopback_name(name), "{name}");
        }
        for name in ["rebind.example:8585", "localhost.evil.example", "10.0.0.1:8585", "", "[::1", "::1", "null"] {
            assert!(!is_loopback_name(name), "{name}");
        }
    }

    #[test]
    fn a_token_matches_only_itself() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        for sent in [&b"s3creT"[..], b"s3cre", b"s3cret!", b""] {
            assert!(!same_secret(sent, b"s3cret"), "{sent:?}");
        }
    }
}
