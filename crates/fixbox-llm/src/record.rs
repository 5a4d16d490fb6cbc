//! What a call that answered leaves behind: its text, tokens, timings and cost, and the tries that
//! failed before it.

use serde::{Deserialize, Serialize};

use crate::chat::FinishReason;
use crate::error::Attempt;
use crate::usage::{ServerTimings, TokenUsage, UsageSource};

/// Everything recorded about a call that answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct CallRecord {
    pub task: String,
    pub route: String,
    pub model: String,
    pub local: bool,
    pub text: String,
    pub finish_reason: FinishReason,
    pub usage: TokenUsage,
    pub usage_source: UsageSource,
    pub ttft_ms: Option<f64>,
    pub latency_ms: f64,
    pub tokens_per_second: Option<f64>,
    pub context_window: Option<u32>,
    /// `None` when the model is not in the price table.
    pub cost_usd: Option<f64>,
    /// For a local model: what the same tokens would cost in the cloud.
    pub equivalent_cost_usd: Option<f64>,
    pub timings: Option<ServerTimings>,
    /// The tries that failed before this one.
    pub attempts: Vec<Attempt>,
}
