//! Counters and histograms of every call, by route (`provider`) and model, in Prometheus's text
//! exposition format (what `fixbox serve --metrics` serves at `/metrics`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::ErrorKind;
use crate::router::CallRecord;

/// Seconds; from a short local answer to a long CPU generation.
const BUCKETS: [f64; 12] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Families>,
}

#[derive(Debug, Default)]
struct Families {
    counters: BTreeMap<&'static str, BTreeMap<Labels, f64>>,
    histograms: BTreeMap<&'static str, BTreeMap<Labels, Histogram>>,
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

const FAMILIES: [(&str, &str, &str); 8] = [
    ("fixbox_llm_calls_total", "counter", "Calls that answered."),
    ("fixbox_llm_errors_total", "counter", "Tries that failed, by kind of failure."),
    ("fixbox_llm_tokens_total", "counter", "Tokens used, by kind (prompt, completion, cache_read, cache_write)."),
    ("fixbox_llm_cost_usd_total", "counter", "What the calls cost, in US dollars."),
    ("fixbox_llm_equivalent_cost_usd_total", "counter", "What local calls would have cost in the cloud."),
    ("fixbox_llm_latency_seconds", "histogram", "From sending a call to its last token."),
    ("fixbox_llm_time_to_first_token_seconds", "histogram", "From sending a call to its first token."),
    ("fixbox_llm_tokens_per_second", "histogram", "Generation speed of a call."),
];

impl Metrics {
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
        for (name, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
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
    format!("{{{}}}", parts.join(","))
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
}
