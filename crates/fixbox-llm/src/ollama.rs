//! Ollama's native chat API (`POST /api/chat`): newline-delimited JSON, sampling under `options`, and
//! token counts and durations in the last line.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::chat::{ChatRequest, Chunk, Finish, FinishReason, Message};
use crate::client::{ChunkStream, ModelClient};
use crate::error::{LlmError, from_status};
use crate::http::{Endpoint, HttpClient, StreamParser};
use crate::usage::ServerTimings;

/// What an [`OllamaClient`] speaks: Ollama's own chat API.
#[derive(Debug, Clone)]
pub struct OllamaApi {
    /// `num_ctx`: Ollama otherwise loads the model with its own small default context.
    context_window: Option<u32>,
}

/// A client of Ollama's native API.
pub type OllamaClient = HttpClient<OllamaApi>;

impl OllamaClient {
    /// A client for `model` (`qwen2.5-coder:7b`) at `base_url` (`http://127.0.0.1:11434`).
    pub fn new(base_url: &str, model: impl Into<String>) -> Self {
        let base = base_url.trim_end_matches('/');
        Self::with_api(format!("{base}/api/chat"), model.into(), OllamaApi { context_window: None })
    }

    pub fn with_context_window(mut self, tokens: Option<u32>) -> Self {
        self.api.context_window = tokens;
        self
    }

    fn body<'a>(&'a self, request: &'a ChatRequest) -> OllamaChatRequest<'a> {
        let sampling = &request.sampling;
        OllamaChatRequest {
            model: &self.endpoint.model,
            messages: &request.messages,
            stream: true,
            options: Options {
                temperature: sampling.temperature,
                top_p: sampling.top_p,
                num_predict: sampling.max_tokens,
                stop: &sampling.stop,
                seed: sampling.seed,
                num_ctx: self.api.context_window,
                extra: &sampling.extra,
            },
        }
    }
}

impl ModelClient for OllamaClient {
    fn model(&self) -> &str {
        &self.endpoint.model
    }

    fn stream(&self, request: &ChatRequest) -> ChunkStream {
        self.post_stream(&self.body(request), OllamaStream)
    }

    fn reachable(&self) -> BoxFuture<'_, bool> {
        let base = self.endpoint.url.strip_suffix("/api/chat").unwrap_or(&self.endpoint.url);
        self.answers_at(format!("{base}/api/version"))
    }
}

/// `POST /api/chat`, streamed.
#[derive(Debug, Serialize)]
struct OllamaChatRequest<'a> {
    model: &'a str,
    messages: &'a [Message],
    stream: bool,
    options: Options<'a>,
}

/// Sampling, as Ollama names it.
#[derive(Debug, Serialize)]
struct Options<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_predict: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_ctx: Option<u32>,
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, serde_json::Value>,
}

/// One line of the stream: a piece of the message, or (`done`) the last with the counts, or an error.
#[derive(Debug, Deserialize)]
struct ChatLine {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<LineMessage>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: u64,
    /// Nanoseconds, as are the other durations.
    #[serde(default)]
    prompt_eval_duration: u64,
    #[serde(default)]
    eval_count: u64,
    #[serde(default)]
    eval_duration: u64,
}

#[derive(Debug, Deserialize)]
struct LineMessage {
    #[serde(default)]
    content: String,
}

#[derive(Debug, Default)]
struct OllamaStream;

impl StreamParser for OllamaStream {
    const SSE: bool = false;

    fn payload(&mut self, endpoint: &Endpoint, line: &str) -> Result<Vec<Chunk>, LlmError> {
        let line: ChatLine = serde_json::from_str(line).map_err(|e| LlmError::Protocol {
            provider: endpoint.provider.clone(),
            reason: format!("a stream line is not Ollama's ({e}): {}", line.chars().take(120).collect::<String>()),
        })?;
        if let Some(error) = line.error {
            return Err(from_status(&endpoint.provider, &endpoint.model, 500, None, &endpoint.redact(&error)));
        }
        let mut chunks = Vec::new();
        if let Some(text) = line.message.map(|m| m.content).filter(|t| !t.is_empty()) {
            chunks.push(Chunk::Delta(text));
        }
        if line.done {
            let ms = |nanoseconds: u64| nanoseconds as f64 / 1e6;
            let timings = ServerTimings {
                cache_n: 0,
                prompt_n: line.prompt_eval_count,
                prompt_ms: ms(line.prompt_eval_duration),
                predicted_n: line.eval_count,
                predicted_ms: ms(line.eval_duration),
            };
            chunks.push(Chunk::Done(Finish {
                reason: line.done_reason.as_deref().map_or(FinishReason::Stop, FinishReason::parse),
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
        let client = OllamaClient::new("http://127.0.0.1:11434", "m").with_context_window(Some(16384));
        let body = serde_json::to_value(client.body(&request)).unwrap();
        assert_eq!(body["options"], serde_json::json!({"num_predict": 32, "stop": ["```"], "num_ctx": 16384}));
    }
}
