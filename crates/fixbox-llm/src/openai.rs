//! OpenAI's chat-completions API, which llama-server, vLLM, OpenAI, OpenRouter and many others speak,
//! and Mistral's variant of it.

use futures::future::BoxFuture;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::chat::{ChatRequest, Chunk, Finish, FinishReason, Message};
use crate::client::{ChunkStream, ModelClient};
use crate::error::{LlmError, from_status};
use crate::http::{Endpoint, HttpClient, StreamParser};
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

/// What an [`OpenAiClient`] speaks: the chat-completions API in a [`Dialect`].
#[derive(Debug, Clone)]
pub struct OpenAiApi {
    /// The server's root, for llama-server's `/tokenize`.
    root: String,
    dialect: Dialect,
}

/// A client of an OpenAI-compatible server.
pub type OpenAiClient = HttpClient<OpenAiApi>;

impl OpenAiClient {
    /// A client for `model` at `base_url` (`http://127.0.0.1:8080/v1`; a bare host gets `/v1`).
    pub fn new(base_url: &str, model: impl Into<String>) -> Self {
        let base = base_url.trim_end_matches('/');
        let has_path = base.split("://").nth(1).is_some_and(|rest| rest.contains('/'));
        let base = if has_path { base.to_string() } else { format!("{base}/v1") };
        let root = base.strip_suffix("/v1").unwrap_or(&base).to_string();
        Self::with_api(format!("{base}/chat/completions"), model.into(), OpenAiApi { root, dialect: Dialect::OpenAi })
    }

    pub fn with_dialect(mut self, dialect: Dialect) -> Self {
        self.api.dialect = dialect;
        self
    }

    fn body<'a>(&'a self, request: &'a ChatRequest) -> CompletionRequest<'a> {
        let sampling = &request.sampling;
        let openai = self.api.dialect == Dialect::OpenAi;
        CompletionRequest {
            model: &self.endpoint.model,
            messages: &request.messages,
            stream: true,
            temperature: sampling.temperature,
            top_p: sampling.top_p,
            max_tokens: sampling.max_tokens,
            stop: &sampling.stop,
            seed: sampling.seed.filter(|_| openai),
            random_seed: sampling.seed.filter(|_| !openai),
            stream_options: openai.then_some(StreamOptions { include_usage: true }),
            extra: &sampling.extra,
        }
    }
}

impl ModelClient for OpenAiClient {
    fn model(&self) -> &str {
        &self.endpoint.model
    }

    fn stream(&self, request: &ChatRequest) -> ChunkStream {
        self.post_stream(&self.body(request), OpenAiStream::default())
    }

    /// llama-server's `/tokenize`; other servers have none and answer `None`.
    fn count_tokens<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Option<u64>> {
        Box::pin(async move {
            let body = serde_json::to_string(&TokenizeRequest { content: text }).ok()?;
            let response = self
                .http
                .post(format!("{}/tokenize", self.api.root))
                .header("content-type", "application/json")
                .body(body)
                .timeout(self.timeouts.idle)
                .send()
                .await
                .ok()?;
            if !response.status().is_success() {
                return None;
            }
            let answer: TokenizeResponse = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
            Some(answer.tokens.len() as u64)
        })
    }

    /// A GET of the API's `/models`, which llama-server, vLLM, Ollama and the cloud APIs all serve.
    fn reachable(&self) -> BoxFuture<'_, bool> {
        let base = self.endpoint.url.strip_suffix("/chat/completions").unwrap_or(&self.endpoint.url);
        self.answers_at(format!("{base}/models"))
    }
}

/// `POST /chat/completions`, streamed.
#[derive(Debug, Serialize)]
struct CompletionRequest<'a> {
    model: &'a str,
    messages: &'a [Message],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    /// Mistral's name for the seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    random_seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    /// The server's own parameters ([`Sampling::extra`](crate::Sampling::extra)).
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// One `chat.completion.chunk` of the stream (or the error a server sends in its place).
#[derive(Debug, Deserialize)]
struct CompletionChunk {
    #[serde(default)]
    choices: Option<Vec<ChunkChoice>>,
    #[serde(default)]
    usage: Option<Usage>,
    /// llama-server's own account.
    #[serde(default)]
    timings: Option<ServerTimings>,
    #[serde(default)]
    error: Option<StreamError>,
}

#[derive(Debug, Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

/// An error inside the stream: llama-server gives its HTTP status as `code`, OpenAI a word.
#[derive(Debug, Deserialize)]
struct StreamError {
    #[serde(default)]
    code: Option<serde_json::Value>,
}

/// `usage` as OpenAI, vLLM, llama-server, Mistral, DeepSeek and OpenRouter report it.
#[derive(Debug, Deserialize)]
struct Usage {
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptTokensDetails>,
    /// DeepSeek's cache hits.
    #[serde(default)]
    prompt_cache_hit_tokens: Option<u64>,
    /// Anthropic-style names, as some proxies pass them on.
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_write_tokens: Option<u64>,
}

impl From<Usage> for TokenUsage {
    fn from(usage: Usage) -> Self {
        let details = usage.prompt_tokens_details.as_ref();
        TokenUsage {
            prompt: usage.prompt_tokens,
            completion: usage.completion_tokens.unwrap_or(0),
            cache_read: details
                .and_then(|d| d.cached_tokens)
                .or(usage.prompt_cache_hit_tokens)
                .or(usage.cache_read_input_tokens)
                .unwrap_or(0),
            cache_write: details.and_then(|d| d.cache_write_tokens).or(usage.cache_creation_input_tokens).unwrap_or(0),
        }
    }
}

/// llama-server's `POST /tokenize`.
#[derive(Debug, Serialize)]
struct TokenizeRequest<'a> {
    content: &'a str,
}

#[derive(Debug, Deserialize)]
struct TokenizeResponse {
    tokens: Vec<IgnoredAny>,
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
        let chunk: CompletionChunk = serde_json::from_str(payload).map_err(|e| LlmError::Protocol {
            provider: endpoint.provider.clone(),
            reason: format!(
                "a stream event is not a completion chunk ({e}): {}",
                payload.chars().take(120).collect::<String>()
            ),
        })?;
        if let Some(error) = chunk.error {
            let status = error.code.and_then(|c| c.as_u64()).and_then(|c| u16::try_from(c).ok()).unwrap_or(500);
            return Err(from_status(&endpoint.provider, &endpoint.model, status, None, &endpoint.redact(payload)));
        }
        let mut chunks = Vec::new();
        if let Some(choice) = chunk.choices.and_then(|c| c.into_iter().next()) {
            if let Some(text) = choice.delta.and_then(|d| d.content).filter(|t| !t.is_empty()) {
                chunks.push(Chunk::Delta(text));
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(FinishReason::parse(&reason));
            }
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into());
        }
        if let Some(timings) = chunk.timings {
            self.timings = Some(timings);
        }
        Ok(chunks)
    }

    fn end(&mut self) -> Option<Chunk> {
        // Some servers close after the finish reason without `[DONE]`: the answer is whole all the same.
        self.finish.is_some().then(|| self.done())
    }
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
        let usage = |json: &str| TokenUsage::from(serde_json::from_str::<Usage>(json).unwrap());
        let mistral = usage(r#"{"prompt_tokens":10,"total_tokens":25,"completion_tokens":15}"#);
        assert_eq!(mistral, TokenUsage { prompt: 10, completion: 15, cache_read: 0, cache_write: 0 });
        let deepseek = usage(
            r#"{"prompt_tokens":100,"completion_tokens":5,"prompt_cache_hit_tokens":64,"prompt_cache_miss_tokens":36}"#,
        );
        assert_eq!(deepseek.cache_read, 64);
        let cached = feed(&[
            r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1,"prompt_tokens_details":null}}"#,
            "[DONE]",
        ]);
        let Ok(done) = &cached[1] else { panic!("{cached:?}") };
        assert!(matches!(&done[0], Chunk::Done(Finish { usage: Some(u), .. }) if u.prompt == 9), "{done:?}");
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
        let client = OpenAiClient::new("http://127.0.0.1:8080", "m");
        let openai = serde_json::to_value(client.body(&request)).unwrap();
        assert_eq!(openai["stream_options"]["include_usage"], true);
        assert_eq!((openai["seed"].as_u64(), openai["max_tokens"].as_u64()), (Some(7), Some(64)));
        assert_eq!(openai["stop"], serde_json::json!(["\n\n"]));
        assert_eq!(openai["top_k"], 20);
        let mistral = OpenAiClient::new("https://api.mistral.ai/v1", "m").with_dialect(Dialect::Mistral);
        let mistral = serde_json::to_value(mistral.body(&request)).unwrap();
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
