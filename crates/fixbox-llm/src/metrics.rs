//! Counters and histograms of every call, by route (`provider`) and model, in Prometheus's text
//! exposition format (what `fixbox serve --metrics` serves at `/metrics`). Other parts count on the
//! same registry under families of their own (fix sessions do: see [`Metrics::describe`]).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::ErrorKind;
use crate::record::CallRecord;

/// Seconds; from a short local answer to a long CPU generation or a whole session.
const BUCKETS: [f64; 14] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

/// A series' labels, in order: `[("provider", "local"), ("model", "qwen")]`.
pub type Labels = Vec<(&'static str, String)>;

/// What kind of number a family holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down (what is running now).
    Gauge,
    /// Observations in [`BUCKETS`], with their count and sum.
    Histogram,
}

impl MetricKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Families>,
}

#[derive(Debug, Default)]
struct Families {
    /// Families beyond the calls' own, in the order they were described.
    described: Vec<(&'static str, MetricKind, &'static str)>,
    /// Counters and gauges.
    counters: BTreeMap<&'static str, BTreeMap<Labels, f64>>,
    histograms: BTreeMap<&'static str, BTreeMap<Labels, Histogram>>,
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

const FAMILIES: [(&str, MetricKind, &str); 8] = [
    ("fixbox_llm_calls_total", MetricKind::Counter, "Calls that answered."),
    ("fixbox_llm_errors_total", MetricKind::Counter, "Tries that failed, by kind of failure."),
    (
        "fixbox_llm_tokens_total",
        MetricKind::Counter,
        "Tokens used, by kind (prompt, completion, cache_read, cache_write).",
    ),
    ("fixbox_llm_cost_usd_total", MetricKind::Counter, "What the calls cost, in US dollars."),
    ("fixbox_llm_equivalent_cost_usd_total", MetricKind::Counter, "What local calls would have cost in the cloud."),
    ("fixbox_llm_latency_seconds", MetricKind::Histogram, "From sending a call to its last token."),
    ("fixbox_llm_time_to_first_token_seconds", MetricKind::Histogram, "From sending a call to its first token."),
    ("fixbox_llm_tokens_per_second", MetricKind::Histogram, "Generation speed of a call."),
];

impl Metrics {
    /// Adds a family of one's own to what [`render`](Self::render) shows (again: nothing changes).
    pub fn describe(&self, name: &'static str, kind: MetricKind, help: &'static str) {
        let mut f = self.lock();
        if !f.described.iter().any(|(known, ..)| *known == name) {
            f.described.push((name, kind, help));
        }
    }

    /// Adds `by` to a counter, or to a gauge (negative to take away).
    pub fn add(&self, name: &'static str, labels: Labels, by: f64) {
        self.lock().add(name, labels, by);
    }

    /// One observation of a histogram, in seconds.
    pub fn observe(&self, name: &'static str, labels: Labels, value: f64) {
        self.lock().observe(name, labels, value);
    }

    pub(crate) fn record_call(&self, record: &CallRecord) {
        let base: Labels = vec![("provider", record.route.clone()), ("model", record.model.clone())];
        let with = |key: &'static str, value: &str| {
            let mut labels = base.clone();
            labels.push((key, value.to_string()));
            labels
        };
        let mut f = self.lock();
        f.add("fixbox_llm_calls_total", base.clone(), 1.0);
        let usage = &record.usage;
        for (kind, n) in [
            ("prompt", usage.prompt),
            ("completion", usage.completion),
            ("cache_read", usage.cache_read),
            ("cache_write", usage.cache_write),
        ] {
            f.add("fixbox_llm_tokens_total", with("kind", kind), n as f64);
        }
        f.add("fixbox_llm_cost_usd_total", base.clone(), record.cost_usd.unwrap_or(0.0));
        if let Some(equivalent) = record.equivalent_cost_usd {
            f.add("fixbox_llm_equivalent_cost_usd_total", base.clone(), equivalent);
        }
        f.observe("fixbox_llm_latency_seconds", base.clone(), record.latency_ms / 1000.0);
        if let Some(ttft) = record.ttft_ms {
            f.observe("fixbox_llm_time_to_first_token_seconds", base.clone(), ttft / 1000.0);
        }
        if let Some(rate) = record.tokens_per_second {
            f.observe("fixbox_llm_tokens_per_second", base, rate);
        }
    }

    pub(crate) fn record_error(&self, route: &str, model: &str, kind: ErrorKind) {
        let labels =
            vec![("provider", route.to_string()), ("model", model.to_string()), ("kind", kind.as_str().to_string())];
        self.lock().add("fixbox_llm_errors_total", labels, 1.0);
    }

    /// Everything, in Prometheus's text format (version 0.0.4).
    pub fn render(&self) -> String {
        let f = self.lock();
        let mut out = String::new();
        for (name, kind, help) in FAMILIES.iter().chain(&f.described) {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {}", kind.as_str());
            for (labels, value) in f.counters.get(name).into_iter().flatten() {
                let _ = writeln!(out, "{name}{} {value}", render_labels(labels, None));
            }
            for (labels, h) in f.histograms.get(name).into_iter().flatten() {
                for (le, count) in BUCKETS.iter().zip(h.counts) {
                    let _ = writeln!(out, "{name}_bucket{} {count}", render_labels(labels, Some(&le.to_string())));
                }
                let _ = writeln!(out, "{name}_bucket{} {}", render_labels(labels, Some("+Inf")), h.count);
                let _ = writeln!(out, "{name}_sum{} {}", render_labels(labels, None), h.sum);
                let _ = writeln!(out, "{name}_count{} {}", render_labels(labels, None), h.count);
            }
        }
        out
    }

    fn lock(&self) -> MutexGuard<'_, Families> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Families {
    fn add(&mut self, name: &'static str, labels: Labels, by: f64) {
        *self.counters.entry(name).or_default().entry(labels).or_default() += by;
    }

    fn observe(&mut self, name: &'static str, labels: Labels, value: f64) {
        let h = self.histograms.entry(name).or_default().entry(labels).or_default();
        for (bound, count) in BUCKETS.iter().zip(h.counts.iter_mut()) {
            if value <= *bound {
                *count += 1;
            }
        }
        h.count += 1;
        h.sum += value;
    }
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    let escape = |v: &str| v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n");
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FinishReason, TokenUsage, UsageSource};

    #[test]
    fn calls_and_errors_render_as_prometheus_text() {
        let metrics = Metrics::default();
        let record = CallRecord {
            task: "default".into(),
            route: "local".into(),
            model: "smol\"lm".into(),
            local: true,
            text: "hi".into(),
            finish_reason: FinishReason::Stop,
            usage: TokenUsage { prompt: 10, completion: 5, cache_read: 4, cache_write: 0 },
            usage_source: UsageSource::Server,
            ttft_ms: Some(80.0),
            latency_ms: 700.0,
            tokens_per_second: Some(20.0),
            context_window: None,
            cost_usd: Some(0.0),
            equivalent_cost_usd: Some(0.5),
            timings: None,
            attempts: vec![],
        };
        metrics.record_call(&record);
        metrics.record_call(&record);
        metrics.record_error("cloud", "gpt", ErrorKind::RateLimited);
        let text = metrics.render();
        assert!(text.contains("# TYPE fixbox_llm_calls_total counter\nfixbox_llm_calls_total{provider=\"local\",model=\"smol\\\"lm\"} 2\n"), "{text}");
        assert!(
            text.contains("fixbox_llm_tokens_total{provider=\"local\",model=\"smol\\\"lm\",kind=\"cache_read\"} 8\n"),
            "{text}"
        );
        assert!(
            text.contains("fixbox_llm_errors_total{provider=\"cloud\",model=\"gpt\",kind=\"rate_limited\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("fixbox_llm_latency_seconds_bucket{provider=\"local\",model=\"smol\\\"lm\",le=\"0.5\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("fixbox_llm_latency_seconds_bucket{provider=\"local\",model=\"smol\\\"lm\",le=\"1\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("fixbox_llm_latency_seconds_count{provider=\"local\",model=\"smol\\\"lm\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("fixbox_llm_equivalent_cost_usd_total{provider=\"local\",model=\"smol\\\"lm\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn families_described_elsewhere_render_after_the_calls_own() {
        let metrics = Metrics::default();
        metrics.describe("fixbox_sessions_running", MetricKind::Gauge, "Sessions running now.");
        metrics.describe("fixbox_sessions_running", MetricKind::Gauge, "Sessions running now.");
        metrics.add("fixbox_sessions_running", vec![], 1.0);
        metrics.add("fixbox_sessions_running", vec![], 1.0);
        metrics.add("fixbox_sessions_running", vec![], -1.0);
        metrics.describe("fixbox_session_seconds", MetricKind::Histogram, "How long sessions took.");
        metrics.observe("fixbox_session_seconds", vec![("outcome", "fixed".into())], 700.0);
        let text = metrics.render();
        assert_eq!(text.matches("# TYPE fixbox_sessions_running gauge\n").count(), 1, "{text}");
        assert!(text.contains("# TYPE fixbox_sessions_running gauge\nfixbox_sessions_running 1\n"), "{text}");
        assert!(text.contains("fixbox_session_seconds_bucket{outcome=\"fixed\",le=\"600\"} 0\n"), "{text}");
        assert!(text.contains("fixbox_session_seconds_bucket{outcome=\"fixed\",le=\"1800\"} 1\n"), "{text}");
        assert!(text.find("fixbox_llm_calls_total") < text.find("fixbox_sessions_running"), "{text}");
    }
}
