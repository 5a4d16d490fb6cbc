//! Every model call the event log recorded (fix sessions' and `fixbox ask`'s), and their summaries per
//! model and per session: latency, time to first token, tokens per second, tokens, cost.

use std::collections::BTreeMap;

use fixbox_llm::CallRecord;
use fixbox_store::Store;
use serde::Serialize;

use crate::AgentError;

/// One call, with the session it belongs to and when it was recorded.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct LoggedCall {
    pub session: String,
    pub at_ms: i64,
    pub record: CallRecord,
}

/// Calls summed up: per model, or per session.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct CallSummary {
    /// The model (`route/model`), or the session id.
    pub key: String,
    pub calls: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens the engine read from its cache.
    pub cached_tokens: u64,
    /// What the calls cost; local models cost nothing.
    pub cost_usd: f64,
    /// What local calls would have cost in the cloud.
    pub equivalent_cost_usd: f64,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub ttft_p50_ms: Option<f64>,
    /// The median of the calls' generation speeds.
    pub tokens_per_second_p50: Option<f64>,
}

/// Every recorded call, oldest first.
pub fn logged_calls(store: &Store) -> Result<Vec<LoggedCall>, AgentError> {
    let events = store.events_of_kinds(&["model.call", "llm.call"])?;
    Ok(events
        .into_iter()
        .filter_map(|event| {
            // A fix session's `model.call` wraps the record; `fixbox ask`'s `llm.call` is the record.
            let record = event.payload.get("record").cloned().unwrap_or(event.payload);
            let record: CallRecord = serde_json::from_value(record).ok()?;
            Some(LoggedCall { session: event.session_id.to_string(), at_ms: event.at_ms, record })
        })
        .collect())
}

/// `calls` summed up per `key`, in the keys' order.
pub fn summarize<'a>(
    calls: impl IntoIterator<Item = &'a LoggedCall>,
    key: impl Fn(&LoggedCall) -> String,
) -> Vec<CallSummary> {
    let mut groups: BTreeMap<String, Vec<&LoggedCall>> = BTreeMap::new();
    for call in calls {
        groups.entry(key(call)).or_default().push(call);
    }
    groups.into_iter().map(|(key, calls)| summary(key, &calls)).collect()
}

/// The model a call went to, as the summaries name it.
pub fn model_of(call: &LoggedCall) -> String {
    format!("{}/{}", call.record.route, call.record.model)
}

fn summary(key: String, calls: &[&LoggedCall]) -> CallSummary {
    let records = calls.iter().map(|c| &c.record);
    let latency: Vec<f64> = records.clone().map(|r| r.latency_ms).collect();
    let ttft: Vec<f64> = records.clone().filter_map(|r| r.ttft_ms).collect();
    let speed: Vec<f64> = records.clone().filter_map(|r| r.tokens_per_second).collect();
    CallSummary {
        key,
        calls: u32::try_from(calls.len()).unwrap_or(u32::MAX),
        prompt_tokens: records.clone().map(|r| r.usage.prompt).sum(),
        completion_tokens: records.clone().map(|r| r.usage.completion).sum(),
        cached_tokens: records.clone().map(|r| r.usage.cache_read).sum(),
        cost_usd: records.clone().filter_map(|r| r.cost_usd).sum(),
        equivalent_cost_usd: records.filter_map(|r| r.equivalent_cost_usd).sum(),
        latency_p50_ms: quantile(&latency, 0.5).unwrap_or(0.0),
        latency_p95_ms: quantile(&latency, 0.95).unwrap_or(0.0),
        ttft_p50_ms: quantile(&ttft, 0.5),
        tokens_per_second_p50: quantile(&speed, 0.5),
    }
}

/// The nearest-rank quantile `q` of `values`; `None` for none.
fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len().checked_sub(1)?;
    sorted.get(((last as f64) * q).round() as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(model: &str, latency_ms: f64, prompt: u64, cost: Option<f64>) -> serde_json::Value {
        serde_json::json!({
            "task": "fix", "route": "r", "model": model, "local": cost.is_none(), "text": "…",
            "finish_reason": "stop", "usage_source": "server",
            "usage": { "prompt": prompt, "completion": 10, "cache_read": prompt / 2, "cache_write": 0 },
            "ttft_ms": latency_ms / 4.0, "latency_ms": latency_ms, "tokens_per_second": 1000.0 / latency_ms * 10.0,
            "context_window": null, "cost_usd": cost, "equivalent_cost_usd": 0.01, "timings": null,
            "attempts": [],
        })
    }

    #[test]
    fn calls_from_fix_sessions_and_asks_are_read_back_and_summed_per_model_and_session() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let (fix, ask) = (store.create_session("fix").unwrap(), store.create_session("ask").unwrap());
        for latency in [100.0, 200.0, 300.0] {
            let record = call("small", latency, 1000, None);
            store.append_event(&fix, "model.call", &serde_json::json!({ "iteration": 1, "record": record })).unwrap();
        }
        store.append_event(&fix, "patch.delta", &serde_json::json!({})).unwrap();
        store.append_event(&ask, "llm.call", &call("big", 50.0, 400, Some(0.25))).unwrap();

        let calls = logged_calls(&store).unwrap();
        assert_eq!(calls.len(), 4, "every call, and nothing else");
        let per_model = summarize(&calls, model_of);
        assert_eq!(
            per_model.iter().map(|s| (s.key.as_str(), s.calls)).collect::<Vec<_>>(),
            [("r/big", 1), ("r/small", 3)]
        );
        let small = &per_model[1];
        assert_eq!((small.prompt_tokens, small.completion_tokens, small.cached_tokens), (3000, 30, 1500));
        assert_eq!((small.latency_p50_ms, small.latency_p95_ms), (200.0, 300.0));
        assert_eq!(small.ttft_p50_ms, Some(50.0));
        assert_eq!(small.tokens_per_second_p50, Some(50.0));
        assert_eq!((small.cost_usd, small.equivalent_cost_usd), (0.0, 0.03));
        assert_eq!(per_model[0].cost_usd, 0.25);

        let per_session = summarize(&calls, |c| c.session.clone());
        assert_eq!(per_session.len(), 2);
        assert_eq!(per_session.iter().find(|s| s.key == fix.to_string()).map(|s| s.calls), Some(3));
    }

    #[test]
    fn quantiles_skip_what_is_not_a_number() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[f64::NAN, 3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(quantile(&[5.0], 0.95), Some(5.0));
    }
}
