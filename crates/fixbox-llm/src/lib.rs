//! Fixbox's model clients: streamed chat completions from any OpenAI-compatible server (llama-server,
//! vLLM, OpenAI, OpenRouter, ...), from Ollama's native API and from Mistral's, behind one
//! [`ModelClient`] trait; and the [`Router`] that sends a call down a task's routes in order, retrying
//! what a retry can fix (429, 5xx, resets, hangs, broken streams) and moving on from what it cannot
//! (a bad key, an unknown model, a prompt too long), while recording each call's usage, latency and
//! cost, keeping a session inside its [`Budget`] and counting everything for Prometheus ([`Metrics`]).
//!
//! It is not an agent: it knows nothing of patches, sandboxes or sessions, only of one call at a time.
//! API keys come from the OS keychain (a [`KeySource`]); settings name an entry, never hold a value, and
//! a key never appears in an error, a log line or a record.

mod budget;
mod chat;
mod client;
mod error;
mod http;
mod metrics;
mod ollama;
mod openai;
mod price;
mod record;
mod retry;
mod route;
mod router;
mod sse;
mod usage;

pub use budget::{Budget, BudgetExceeded, Meter, Totals};
pub use chat::{ChatRequest, Chunk, Finish, FinishReason, Message, Role, Sampling};
pub use client::{ChunkStream, ModelClient, Timeouts, collect};
pub use error::{Attempt, ErrorKind, LlmError};
pub use http::HttpClient;
pub use metrics::{Labels, MetricKind, Metrics};
pub use ollama::{OllamaApi, OllamaClient};
pub use openai::{Dialect, OpenAiApi, OpenAiClient};
pub use price::{Price, PriceTable};
pub use record::CallRecord;
pub use retry::RetryPolicy;
pub use route::{KeySource, ProviderConfig, ProviderKind, RetrySettings, RoutesConfig, TimeoutSettings};
pub use router::{CallEvent, CallStream, Route, Router, finish};
pub use usage::{ServerTimings, TokenUsage, UsageSource, estimate_tokens};
