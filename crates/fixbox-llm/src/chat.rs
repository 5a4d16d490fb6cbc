//! What a chat completion is asked and what a provider streams back, whatever its wire format.

use serde::{Deserialize, Serialize};

use crate::usage::{ServerTimings, TokenUsage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Self { role: Role::System, content: content.into() }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self { role: Role::User, content: content.into() }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self { role: Role::Assistant, content: content.into() }
    }
}

/// Sampling parameters, passed to the server as given; `None` (or no stop sequences) leaves its default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The answer ends before the first of these; the stop sequence itself is not part of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Server-specific parameters, passed as given: llama-server's `ignore_eos` or `top_k`, vLLM's
    /// `min_p`; for Ollama they go under `options`.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    #[serde(flatten)]
    pub sampling: Sampling,
}

impl ChatRequest {
    pub fn new(messages: Vec<Message>) -> Self {
        Self { messages, sampling: Sampling::default() }
    }

    /// The messages' text, one after another: what a tokenizer counts as the prompt (less the chat
    /// template's few tokens).
    pub fn prompt_text(&self) -> String {
        self.messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n")
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its answer, or reached a stop sequence.
    #[default]
    Stop,
    /// `max_tokens` (or the context) ran out.
    Length,
    ContentFilter,
    ToolCalls,
    Other,
}

impl FinishReason {
    pub(crate) fn parse(reason: &str) -> Self {
        match reason {
            "stop" | "eos" | "end_turn" | "stop_sequence" => Self::Stop,
            "length" | "max_tokens" | "model_length" => Self::Length,
            "content_filter" => Self::ContentFilter,
            "tool_calls" | "tool_use" => Self::ToolCalls,
            _ => Self::Other,
        }
    }
}

/// One item of a provider's stream: text as it comes, then how it ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk {
    Delta(String),
    Done(Finish),
}

/// The end of a completed stream, with whatever accounting the server gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finish {
    pub reason: FinishReason,
    pub usage: Option<TokenUsage>,
    pub timings: Option<ServerTimings>,
}
