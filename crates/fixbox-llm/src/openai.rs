//! OpenAI's chat-completions API, which llama-server, vLLM, OpenAI, OpenRouter and many others speak,
//! and Mistral's variant of it.

use fixbox_store::Secret;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::chat::{ChatRequest, Chunk, Finish, FinishReason};
use crate::client::{ChunkStream, ModelClient, Timeouts};
use crate::error::{LlmError, from_status};
use crate::http::{self, Endpoint, StreamParser};
use crate::usage::{ServerTimings, TokenUsage};

/// The few places where a server's API differs from OpenAI's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI and servers that follow it: usage is asked for with `stream_options.include_usage`.
    OpenAi,
    /// Mistral: usage comes in the last chunk unasked, unknown fields are refused, the seed is
    /// `random_seed`.
    Mistral,
}

#[derive(Debug, Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    endpoint: Endpoint,
    /// The server's root, for llama-server's `/tokenize`.
    root: String,
    timeouts: Timeouts,
    dialect: Dialect,
}

impl OpenAiClient {
    /// A client for `model` at `base_url` (`http://127.0.0.1:8080/v1`; a bare host gets `/v1`).
    pub fn new(base_url: &str, model: impl Into<String>) -> Self {
        let base = base_url.trim_end_matches('/');
        let has_path = base.split("://").nth(1).is_some_and(|rest| rest.contains('/'));
        let base = if has_path { base.to_string() } else { format!("{base}/v1") };
        let root = base.strip_suffix("/v1").unwrap_or(&base).to_string();
        let timeouts = Timeouts::default();
        Self {
            http: http::client(&timeouts),
            endpoint: Endpoint {
                provider: host_of(&base),
                model: model.into(),
                url: format!("{base}/chat/completions"),
                key: None,
            },
            root,
            timeouts,
            dialect: Dialect::OpenAi,
        }
    }

    /// Names the server in errors and records (a route's name).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.endpoint.provider = name.into();
        self
    }

    pub fn with_key(mut self, key: Option<Secret>) -> Self {
        self.endpoint.key = key;
        self
    }

    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.http = http::client(&timeouts);
        self.timeouts = timeouts;
        self
    }

    pub fn with_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let mut body = json!({ "model": self.endpoint.model, "messages": request.messages, "stream": true });
        let sampling = &request.sampling;
        if let Some(t) = sampling.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(p) = sampling.top_p {
            body["top_p"] = json!(p);
        }
        if let Some(n) = sampling.max_tokens {
            body["max_tokens"] = json!(n);
        }
        if !sampling.stop.is_empty() {
            body["stop"] = json!(sampling.stop);
        }
        for (key, value) in &sampling.extra {
            body[key] = value.clone();
        }
        match self.dialect {
            Dialect::OpenAi => {
                body["stream_options"] = json!({ "include_usage": true });
                if let Some(seed) = sampling.seed {
                    body["seed"] = json!(seed);
                }
            }
            Dialect::Mistral => {
                if let Some(seed) = sampling.seed {
                    body["random_seed"] = json!(seed);
                }
            }
        }
        body
    }
}

pub(crate) fn host_of(url: &str) -> String {
    url.split("://").nth(1).and_then(|rest| rest.split('/').next()).unwrap_or(url).to_string()
}

impl ModelClient for OpenAiClient {
    fn model(&self) -> &str {
        &self.endpoint.model
    }

    fn stream(&self, request: &ChatRequest) -> ChunkStream {
        let body = self.body(request).to_string();
        http::post_stream(self.http.clone(), self.endpoint.clone(), body, self.timeouts, OpenAiStream::default())
    }

    /// llama-server's `/tokenize`; other servers have none and answer `None`.
    fn count_tokens<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Option<u64>> {
        Box::pin(async move {
            let response = self
                .http
                .post(format!("{}/tokenize", self.root))
                .header("content-type", "application/json")
                .body(json!({ "content": text }).to_string())
                .timeout(self.timeouts.idle)
                .send()
                .await
                .ok()?;
            if !response.status().is_success() {
                return None;
            }
            let json: Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
            json["tokens"].as_array().map(|tokens| tokens.len() as u64)
        })
    }

    /// A GET of the API's `/models`, which llama-server, vLLM, Ollama and the cloud APIs all serve.
    fn reachable(&self) -> BoxFuture<'_, bool> {
        let base = self.endpoint.url.strip_suffix("/chat/completions").unwrap_or(&self.endpoint.url);
        let url = format!("{base}/models");
        Box::pin(async move { http::answers(&self.http, &url, &self.timeouts).await })
    }
}

/// Reads `chat.completion.chunk`s: content deltas, the finish reason, then (asked for, or Mistral's
/// habit) a chunk with `usage`, and llama-server's `timings`; `[DONE]` closes the stream.
#[derive(Debug, Default)]
pub(crate) struct OpenAiStream {
    finish: Option<FinishReason>,
    usage: Option<TokenUsage>,
    timings: Option<ServerTimings>,
}

impl OpenAiStream {
    fn done(&mut self) -> Chunk {
        Chunk::Done(Finish {
            reason: self.finish.unwrap_or(FinishReason::Stop),
            usage: self.usage.take(),
            timings: self.timings.take(),
        })
    }
}

impl StreamParser for OpenAiStream {
    const SSE: bool = true;

    fn payload(&mut self, endpoint: &Endpoint, payload: &str) -> Result<Vec<Chunk>, LlmError> {
        if payload == "[DONE]" {
            return Ok(vec![self.done()]);
        }
        let json: Value = serde_json::from_str(payload).map_err(|e| LlmError::Protocol {
            provider: endpoint.provider.clone(),
            reason: format!("a stream event is not JSON ({e}): {}", payload.chars().take(120).collect::<String>()),
        })?;
        if let Some(error) = json.get("error").filter(|e| !e.is_null()) {
            let status = error["code"].as_u64().and_then(|c| u16::try_from(c).ok()).unwrap_or(500);
            let body = endpoint.redact(&json.to_string());
            return Err(from_status(&endpoint.provider, &endpoint.model, status, None, &body));
        }
        let mut chunks = Vec::new();
        if let Some(choice) = json["choices"].as_array().and_then(|c| c.first()) {
            if let Some(text) = choice["delta"]["content"].as_str().filter(|t| !t.is_empty()) {
                chunks.push(Chunk::Delta(text.to_string()));
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.finish = Some(FinishReason::parse(reason));
            }
        }
        if let Some(usage) = parse_usage(&json["usage"]) {
            self.usage = Some(usage);
        }
        if let Some(timings) = json.get("timings").and_then(|t| serde_json::from_value(t.clone()).ok()) {
            self.timings = Some(timings);
        }
        Ok(chunks)
    }

    fn end(&mut self) -> Option<Chunk> {
        // Some servers close after the finish reason without `[DONE]`: the answer is whole all the same.
        self.finish.is_some().then(|| self.done())
    }
}

/// `usage` as OpenAI, vLLM, llama-server, Mistral, DeepSeek and OpenRouter report it.
fn parse_usage(usage: &Value) -> Option<TokenUsage> {
    let prompt = usage["prompt_tokens"].as_u64()?;
    let first = |paths: &[&[&str]]| {
        paths.iter().find_map(|path| path.iter().fold(usage, |v, key| &v[*key]).as_u64()).unwrap_or(0)
    };
    Some(TokenUsage {
        prompt,
        completion: usage["completion_tokens"].as_u64().unwrap_or(0),
        cache_read: first(&[
            &["prompt_tokens_details", "cached_tokens"],
            &["prompt_cache_hit_tokens"],
            &["cache_read_input_tokens"],
        ]),
        cache_write: first(&[&["prompt_tokens_details", "cache_write_tokens"], &["cache_creation_input_tokens"]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint { provider: "p".into(), model: "m".into(), url: "u".into(), key: None }
    }

    #[tokio::test]
    async fn a_server_is_reachable_whatever_it_answers_but_loading_and_a_closed_port_is_not() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let asked = tokio::spawn(async move {
            let mut first_lines = Vec::new();
            for status in ["404 Not Found", "503 Service Unavailable"] {
                let (mut client, _) = listener.accept().await.unwrap();
                let mut request = vec![0; 4096];
                let read = client.read(&mut request).await.unwrap();
                let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                client.write_all(answer.as_bytes()).await.unwrap();
                first_lines
                    .push(String::from_utf8_lossy(&request[..read]).lines().next().unwrap_or_default().to_string());
            }
            first_lines
        });
        let client = OpenAiClient::new(&url, "m");
        assert!(client.reachable().await, "any answer but 503 is up");
        assert!(!client.reachable().await, "503: still loading its model");
        assert_eq!(asked.await.unwrap(), ["GET /v1/models HTTP/1.1", "GET /v1/models HTTP/1.1"]);
        // The listener is gone with its task: nothing answers there now.
        assert!(!client.reachable().await);
    }

    fn feed(lines: &[&str]) -> Vec<Result<Vec<Chunk>, LlmError>> {
        let mut parser = OpenAiStream::default();
        lines.iter().map(|l| parser.payload(&endpoint(), l)).collect()
    }

    #[test]
    fn an_openai_stream_gives_deltas_then_usage_at_done() {
        // As OpenAI streams with include_usage (abridged ids).
        let got = feed(&[
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#,
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}"#,
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"length"}],"usage":null}"#,
            r#"{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":2,"total_tokens":1202,"prompt_tokens_details":{"cached_tokens":1024}}}"#,
            "[DONE]",
        ]);
        let chunks: Vec<Chunk> = got.into_iter().flat_map(Result::unwrap).collect();
        assert_eq!(chunks[0], Chunk::Delta("Hi".into()));
        let Chunk::Done(finish) = &chunks[1] else { panic!("{chunks:?}") };
        assert_eq!(finish.reason, FinishReason::Length);
        assert_eq!(finish.usage, Some(TokenUsage { prompt: 1200, completion: 2, cache_read: 1024, cache_write: 0 }));
    }

    #[test]
    fn mistral_and_deepseek_usage_shapes_are_read() {
        let mistral = parse_usage(&serde_json::json!({"prompt_tokens":10,"total_tokens":25,"completion_tokens":15}));
        assert_eq!(mistral, Some(TokenUsage { prompt: 10, completion: 15, cache_read: 0, cache_write: 0 }));
        let deepseek = parse_usage(
            &serde_json::json!({"prompt_tokens":100,"completion_tokens":5,"prompt_cache_hit_tokens":64,"prompt_cache_miss_tokens":36}),
        );
        assert_eq!(deepseek.unwrap().cache_read, 64);
        assert_eq!(parse_usage(&Value::Null), None);
    }

    #[test]
    fn an_error_inside_the_stream_is_classified() {
        let got = feed(&[r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#]);
        assert!(matches!(got[0], Err(LlmError::Server { status: 503, .. })), "{got:?}");
        let got = feed(&["not json"]);
        assert!(matches!(got[0], Err(LlmError::Protocol { .. })), "{got:?}");
    }

    #[test]
    fn the_request_carries_sampling_and_each_dialect_its_own_fields() {
        let mut request = ChatRequest::new(vec![crate::Message::user("hi")]);
        request.sampling = crate::Sampling {
            temperature: Some(0.0),
            top_p: Some(0.9),
            max_tokens: Some(64),
            stop: vec!["\n\n".into()],
            seed: Some(7),
            extra: serde_json::json!({"top_k": 20}).as_object().unwrap().clone(),
        };
        let openai = OpenAiClient::new("http://127.0.0.1:8080", "m").body(&request);
        assert_eq!(openai["stream_options"]["include_usage"], true);
        assert_eq!((openai["seed"].as_u64(), openai["max_tokens"].as_u64()), (Some(7), Some(64)));
        assert_eq!(openai["stop"], serde_json::json!(["\n\n"]));
        assert_eq!(openai["top_k"], 20);
        let mistral = OpenAiClient::new("https://api.mistral.ai/v1", "m").with_dialect(Dialect::Mistral).body(&request);
        assert!(mistral.get("stream_options").is_none() && mistral.get("seed").is_none());
        assert_eq!(mistral["random_seed"], 7);
        assert_eq!(
            OpenAiClient::new("http://127.0.0.1:8080", "m").endpoint.url,
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        assert_eq!(
            OpenAiClient::new("https://openrouter.ai/api/v1/", "m").endpoint.url,
            "https://openrouter.ai/api/v1/chat/completions"
        );
    }
}
