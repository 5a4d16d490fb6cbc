//! Ollama's native chat API (`POST /api/chat`): newline-delimited JSON, sampling under `options`, and
//! token counts and durations in the last line.

use fixbox_store::Secret;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::chat::{ChatRequest, Chunk, Finish, FinishReason};
use crate::client::{ChunkStream, ModelClient, Timeouts};
use crate::error::{LlmError, from_status};
use crate::http::{self, Endpoint, StreamParser};
use crate::openai::host_of;
use crate::usage::ServerTimings;

#[derive(Debug, Clone)]
pub struct OllamaClient {
    http: reqwest::Client,
    endpoint: Endpoint,
    timeouts: Timeouts,
    /// `num_ctx`: Ollama otherwise loads the model with its own small default context.
    context_window: Option<u32>,
}

impl OllamaClient {
    /// A client for `model` (`qwen2.5-coder:7b`) at `base_url` (`http://127.0.0.1:11434`).
    pub fn new(base_url: &str, model: impl Into<String>) -> Self {
        let base = base_url.trim_end_matches('/');
        let timeouts = Timeouts::default();
        Self {
            http: http::client(&timeouts),
            endpoint: Endpoint {
                provider: host_of(base),
                model: model.into(),
                url: format!("{base}/api/chat"),
                key: None,
            },
            timeouts,
            context_window: None,
        }
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.endpoint.provider = name.into();
        self
    }

    /// For an Ollama behind a proxy that wants a bearer token.
    pub fn with_key(mut self, key: Option<Secret>) -> Self {
        self.endpoint.key = key;
        self
    }

    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.http = http::client(&timeouts);
        self.timeouts = timeouts;
        self
    }

    pub fn with_context_window(mut self, tokens: Option<u32>) -> Self {
        self.context_window = tokens;
        self
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let sampling = &request.sampling;
        let mut options = json!({});
        if let Some(t) = sampling.temperature {
            options["temperature"] = json!(t);
        }
        if let Some(p) = sampling.top_p {
            options["top_p"] = json!(p);
        }
        if let Some(n) = sampling.max_tokens {
            options["num_predict"] = json!(n);
        }
        if !sampling.stop.is_empty() {
            options["stop"] = json!(sampling.stop);
        }
        if let Some(seed) = sampling.seed {
            options["seed"] = json!(seed);
        }
        for (key, value) in &sampling.extra {
            options[key] = value.clone();
        }
        if let Some(n) = self.context_window {
            options["num_ctx"] = json!(n);
        }
        json!({ "model": self.endpoint.model, "messages": request.messages, "stream": true, "options": options })
    }
}

impl ModelClient for OllamaClient {
    fn model(&self) -> &str {
        &self.endpoint.model
    }

    fn stream(&self, request: &ChatRequest) -> ChunkStream {
        let body = self.body(request).to_string();
        http::post_stream(self.http.clone(), self.endpoint.clone(), body, self.timeouts, OllamaStream)
    }

    fn reachable(&self) -> BoxFuture<'_, bool> {
        let base = self.endpoint.url.strip_suffix("/api/chat").unwrap_or(&self.endpoint.url);
        let url = format!("{base}/api/version");
        Box::pin(async move { http::answers(&self.http, &url, &self.timeouts).await })
    }
}

#[derive(Debug, Default)]
struct OllamaStream;

impl StreamParser for OllamaStream {
    const SSE: bool = false;

    fn payload(&mut self, endpoint: &Endpoint, line: &str) -> Result<Vec<Chunk>, LlmError> {
        let json: Value = serde_json::from_str(line).map_err(|e| LlmError::Protocol {
            provider: endpoint.provider.clone(),
            reason: format!("a stream line is not JSON ({e}): {}", line.chars().take(120).collect::<String>()),
        })?;
        if let Some(error) = json["error"].as_str() {
            return Err(from_status(&endpoint.provider, &endpoint.model, 500, None, &endpoint.redact(error)));
        }
        let mut chunks = Vec::new();
        if let Some(text) = json["message"]["content"].as_str().filter(|t| !t.is_empty()) {
            chunks.push(Chunk::Delta(text.to_string()));
        }
        if json["done"].as_bool() == Some(true) {
            let ms = |key: &str| json[key].as_u64().unwrap_or(0) as f64 / 1e6;
            let timings = ServerTimings {
                cache_n: 0,
                prompt_n: json["prompt_eval_count"].as_u64().unwrap_or(0),
                prompt_ms: ms("prompt_eval_duration"),
                predicted_n: json["eval_count"].as_u64().unwrap_or(0),
                predicted_ms: ms("eval_duration"),
            };
            chunks.push(Chunk::Done(Finish {
                reason: json["done_reason"].as_str().map_or(FinishReason::Stop, FinishReason::parse),
                usage: Some(timings.usage()),
                timings: Some(timings),
            }));
        }
        Ok(chunks)
    }

    fn end(&mut self) -> Option<Chunk> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::TokenUsage;

    #[test]
    fn an_ollama_stream_gives_deltas_then_counts_and_durations() {
        // Lines as Ollama 0.12 streams them (abridged).
        let endpoint =
            Endpoint { provider: "ollama".into(), model: "qwen2.5-coder:7b".into(), url: "u".into(), key: None };
        let mut parser = OllamaStream;
        let lines = [
            r#"{"model":"qwen2.5-coder:7b","created_at":"2025-10-01T10:00:00Z","message":{"role":"assistant","content":"Hel"},"done":false}"#,
            r#"{"model":"qwen2.5-coder:7b","created_at":"2025-10-01T10:00:00Z","message":{"role":"assistant","content":"lo"},"done":false}"#,
            r#"{"model":"qwen2.5-coder:7b","created_at":"2025-10-01T10:00:01Z","message":{"role":"assistant","content":""},"done_reason":"length","done":true,"total_duration":1200000000,"load_duration":1000000,"prompt_eval_count":26,"prompt_eval_duration":200000000,"eval_count":40,"eval_duration":1000000000}"#,
        ];
        let chunks: Vec<Chunk> = lines.iter().flat_map(|l| parser.payload(&endpoint, l).unwrap()).collect();
        assert_eq!(chunks[..2], [Chunk::Delta("Hel".into()), Chunk::Delta("lo".into())]);
        let Chunk::Done(finish) = &chunks[2] else { panic!("{chunks:?}") };
        assert_eq!(finish.reason, FinishReason::Length);
        assert_eq!(finish.usage, Some(TokenUsage { prompt: 26, completion: 40, cache_read: 0, cache_write: 0 }));
        assert_eq!(finish.timings.unwrap().tokens_per_second(), Some(40.0));
        let err = parser.payload(&endpoint, r#"{"error":"model 'qwen9' not found"}"#).unwrap_err();
        assert!(matches!(err, LlmError::ModelNotFound { .. }), "{err:?}");
    }

    #[test]
    fn sampling_goes_under_options_with_the_context_window() {
        let mut request = ChatRequest::new(vec![crate::Message::user("hi")]);
        request.sampling.max_tokens = Some(32);
        request.sampling.stop = vec!["```".into()];
        let body = OllamaClient::new("http://127.0.0.1:11434", "m").with_context_window(Some(16384)).body(&request);
        assert_eq!(body["options"], serde_json::json!({"num_predict": 32, "stop": ["```"], "num_ctx": 16384}));
    }
}
