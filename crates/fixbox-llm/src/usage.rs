//! Token accounting: what a call used, and where the numbers came from.

use serde::{Deserialize, Serialize};

/// Tokens one call (or a session) used. `prompt` counts every prompt token, those read from or written
/// to the prompt cache included (OpenAI's convention).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct TokenUsage {
    pub prompt: u64,
    pub completion: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

impl TokenUsage {
    pub fn total(&self) -> u64 {
        self.prompt + self.completion
    }

    pub(crate) fn add(&mut self, other: &TokenUsage) {
        self.prompt += other.prompt;
        self.completion += other.completion;
        self.cache_read += other.cache_read;
        self.cache_write += other.cache_write;
    }
}

/// Where a call's token counts came from, most exact first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum UsageSource {
    /// The server's `usage`.
    Server,
    /// llama-server's `timings` (prompt, cached and predicted token counts).
    Timings,
    /// Counted with the model's own tokenizer (the engine's `/tokenize`).
    Tokenizer,
    /// Nothing better was available: about four characters per token.
    Estimate,
}

/// llama-server's own account of a completion (`timings` in its responses; Ollama's durations map here
/// too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ServerTimings {
    /// Prompt tokens reused from the slot's cache.
    #[serde(default)]
    pub cache_n: u64,
    /// Prompt tokens processed for this request.
    #[serde(default)]
    pub prompt_n: u64,
    #[serde(default)]
    pub prompt_ms: f64,
    #[serde(default)]
    pub predicted_n: u64,
    #[serde(default)]
    pub predicted_ms: f64,
}

impl ServerTimings {
    pub fn usage(&self) -> TokenUsage {
        TokenUsage {
            prompt: self.prompt_n + self.cache_n,
            completion: self.predicted_n,
            cache_read: self.cache_n,
            cache_write: 0,
        }
    }

    /// Generation speed as the server measured it.
    pub fn tokens_per_second(&self) -> Option<f64> {
        (self.predicted_n > 1 && self.predicted_ms > 0.0).then(|| self.predicted_n as f64 * 1000.0 / self.predicted_ms)
    }
}

/// About four characters per token: the estimate when no count is to be had, and what a prompt is
/// planned by.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}
