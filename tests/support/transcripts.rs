//! Recorded model answers: a recording proxy in front of a real llama-server that keeps every streamed
//! chat answer as it came (the SSE events, byte for byte in their JSON), and a loopback
//! OpenAI-compatible server that replays such answers in order. The replays drive the fix loop in CI
//! without a model: what the loop sees is what a real small model really sent.
#![expect(
    clippy::print_stderr,
    reason = "a failed relay is reported in the test log; the client sees a closed connection"
)]

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::faults::read_request;

/// One recorded answer: its SSE `data:` payloads in order (the last is `[DONE]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub events: Vec<String>,
}

impl Answer {
    /// The answer's text: its deltas joined.
    pub fn text(&self) -> String {
        self.events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .filter_map(|v| v.pointer("/choices/0/delta/content").and_then(Value::as_str).map(str::to_string))
            .collect()
    }

    /// An answer streamed as `pieces`, one SSE event each, the way llama-server frames its chunks.
    pub fn streamed(pieces: &[String]) -> Self {
        let chunk = |delta: Value, finish: Value| {
            serde_json::json!({
                "choices": [{"finish_reason": finish, "index": 0, "delta": delta}],
                "created": 0, "id": "chatcmpl-synthetic", "model": "synthetic", "object": "chat.completion.chunk",
            })
            .to_string()
        };
        let mut events = vec![chunk(serde_json::json!({"role": "assistant", "content": null}), Value::Null)];
        events.extend(pieces.iter().map(|piece| chunk(serde_json::json!({ "content": piece }), Value::Null)));
        events.push(chunk(serde_json::json!({}), "stop".into()));
        events.push("[DONE]".into());
        Self { events }
    }

    pub fn to_json(&self) -> Value {
        Value::from(self.events.clone())
    }

    pub fn from_json(value: &Value) -> Result<Self> {
        let events = value.as_array().context("an answer is a list of SSE events")?;
        Ok(Self { events: events.iter().filter_map(|e| e.as_str().map(str::to_string)).collect() })
    }
}

/// Reads a transcript file (`tests/fixtures/transcripts/*.json`): `{"answers": {"name": [events]}}`.
pub fn load(path: &Path) -> Result<std::collections::BTreeMap<String, Answer>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: Value = serde_json::from_str(&text)?;
    let answers = value.get("answers").and_then(Value::as_object).context("the transcript has no answers")?;
    answers.iter().map(|(name, events)| Ok((name.clone(), Answer::from_json(events)?))).collect()
}

/// How the replay server paces an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Each event after this pause.
    Every(Duration),
    /// Sends this many events (one per 100 ms), then holds the connection open without a word.
    StallAfter(usize),
    /// This many events a second, on a schedule kept from the first event (late events do not slow
    /// the ones after them down).
    PerSecond(u32),
}

/// A loopback OpenAI-compatible `/v1/chat/completions` that answers each request with the next
/// answer of its script, and keeps the requests it got. A `GET` (`/v1/models`, as clients ask
/// whether the server is up) gets an empty model list, as from llama-server, and uses no answer.
#[derive(Debug, Clone)]
pub struct ReplayServer {
    pub url: String,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl ReplayServer {
    pub async fn start(script: Vec<Answer>, pace: Pace) -> Result<Self> {
        Self::start_on(0, script, pace).await
    }

    /// On a given loopback port (0: any free one).
    pub async fn start_on(port: u16, script: Vec<Answer>, pace: Pace) -> Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let server = Self { url: format!("http://{}", listener.local_addr()?), requests: Arc::default() };
        let requests = server.requests.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Ok(request) = read_request(&mut client).await else { continue };
                if request.starts_with(b"GET ") {
                    let body = r#"{"object":"list","data":[]}"#;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = client.write_all(format!("{head}{body}").as_bytes()).await;
                    continue;
                }
                let body = body_json(&request);
                let answer = {
                    let mut seen = requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    seen.push(body);
                    script.get(seen.len() - 1).cloned()
                };
                tokio::spawn(replay(client, answer, pace));
            }
        });
        Ok(server)
    }

    /// The chat requests received so far, as JSON bodies.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

async fn replay(mut client: TcpStream, answer: Option<Answer>, pace: Pace) -> Result<()> {
    let Some(answer) = answer else {
        let body = r#"{"error":{"code":500,"message":"the replay script has no more answers"}}"#;
        let head = format!(
            "HTTP/1.1 500 Script Over\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        client.write_all(head.as_bytes()).await?;
        client.write_all(body.as_bytes()).await?;
        return Ok(());
    };
    client.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n").await?;
    let start = tokio::time::Instant::now();
    for (i, event) in answer.events.iter().enumerate() {
        let pause = match pace {
            Pace::Every(pause) => pause,
            Pace::PerSecond(rate) => {
                let due = start + Duration::from_secs_f64(i as f64 / f64::from(rate.max(1)));
                due.saturating_duration_since(tokio::time::Instant::now())
            }
            Pace::StallAfter(n) if i >= n => {
                // Hold the connection: the client must give up (or be cancelled).
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return Ok(());
            }
            Pace::StallAfter(_) => Duration::from_millis(100),
        };
        tokio::time::sleep(pause).await;
        client.write_all(format!("data: {event}\n\n").as_bytes()).await?;
    }
    client.shutdown().await?;
    Ok(())
}

fn body_json(request: &[u8]) -> Value {
    let at = request.windows(4).position(|w| w == b"\r\n\r\n").map_or(request.len(), |at| at + 4);
    serde_json::from_slice(&request[at..]).unwrap_or(Value::Null)
}

/// A loopback proxy in front of a real OpenAI-compatible server (llama-server) that keeps each
/// streamed chat answer it relays.
#[derive(Debug, Clone)]
pub struct RecordingProxy {
    pub url: String,
    answers: Arc<Mutex<Vec<(Value, Answer)>>>,
}

impl RecordingProxy {
    pub async fn start(upstream: &str) -> Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let proxy = Self { url: format!("http://{}", listener.local_addr()?), answers: Arc::default() };
        let (answers, upstream) = (proxy.answers.clone(), upstream.trim_end_matches('/').to_string());
        let http = fixbox_models::http_client_builder().build()?;
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (answers, upstream, http) = (answers.clone(), upstream.clone(), http.clone());
                tokio::spawn(async move {
                    if let Err(err) = record(client, &upstream, &http, &answers).await {
                        eprintln!("[recording proxy] {err:#}");
                    }
                });
            }
        });
        Ok(proxy)
    }

    /// The (request, answer) pairs recorded so far.
    pub fn answers(&self) -> Vec<(Value, Answer)> {
        self.answers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

async fn record(
    mut client: TcpStream,
    upstream: &str,
    http: &reqwest::Client,
    answers: &Mutex<Vec<(Value, Answer)>>,
) -> Result<()> {
    let request = read_request(&mut client).await?;
    let head =
        String::from_utf8_lossy(&request[..request.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0)]).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let body = body_json(&request);
    let response = http
        .post(format!("{upstream}{path}"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body)?)
        .send()
        .await?;
    let status = response.status();
    client
        .write_all(
            format!(
                "HTTP/1.1 {} Relayed\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
                status.as_u16()
            )
            .as_bytes(),
        )
        .await?;
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        client.write_all(&chunk).await?;
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if let Some(data) = event.trim().strip_prefix("data:") {
                events.push(data.trim().to_string());
            }
        }
    }
    client.shutdown().await?;
    if path.ends_with("/chat/completions") && status.is_success() {
        answers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((body, Answer { events }));
    }
    Ok(())
}
