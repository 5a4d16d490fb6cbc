//! What operators watch of fix sessions, counted on the registry the model calls count on (so one
//! `/metrics` shows both): sessions started, queued, running and ended by outcome, where their time
//! went, how long sandboxes took to start, and why sessions could not run.

use std::sync::Arc;
use std::time::Duration;

use fixbox_llm::{MetricKind, Metrics};

use crate::AgentError;
use crate::outcome::Finished;

const STARTED: &str = "fixbox_sessions_started_total";
const QUEUED: &str = "fixbox_sessions_queued";
const RUNNING: &str = "fixbox_sessions_running";
const ENDED: &str = "fixbox_sessions_ended_total";
const PHASE: &str = "fixbox_session_phase_seconds";
const SANDBOX_START: &str = "fixbox_sandbox_start_seconds";
const ERRORS: &str = "fixbox_session_errors_total";

const FAMILIES: [(&str, MetricKind, &str); 7] = [
    (STARTED, MetricKind::Counter, "Fix sessions asked to start."),
    (QUEUED, MetricKind::Gauge, "Fix sessions waiting for a running one to end."),
    (RUNNING, MetricKind::Gauge, "Fix sessions running now."),
    (ENDED, MetricKind::Counter, "Fix sessions that ran to an end, by outcome."),
    (
        PHASE,
        MetricKind::Histogram,
        "Time a session spent per phase (model, tests, setup, localize, sandbox, own, wall).",
    ),
    (
        SANDBOX_START,
        MetricKind::Histogram,
        "From asking for a sandbox to having it (an image build included), from the warm pool or new.",
    ),
    (ERRORS, MetricKind::Counter, "Sessions that could not run or ended in an error, by kind."),
];

/// One session's counts.
#[derive(Debug, Clone)]
pub(crate) struct SessionMetrics {
    metrics: Arc<Metrics>,
}

/// Holds one on a gauge; lets go when dropped, however the session ends.
pub(crate) struct Held {
    metrics: Arc<Metrics>,
    name: &'static str,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.metrics.add(self.name, Vec::new(), -1.0);
    }
}

impl SessionMetrics {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        for (name, kind, help) in FAMILIES {
            metrics.describe(name, kind, help);
        }
        metrics.add(STARTED, Vec::new(), 1.0);
        Self { metrics }
    }

    pub(crate) fn queued(&self) -> Held {
        self.hold(QUEUED)
    }

    pub(crate) fn running(&self) -> Held {
        self.hold(RUNNING)
    }

    fn hold(&self, name: &'static str) -> Held {
        self.metrics.add(name, Vec::new(), 1.0);
        Held { metrics: Arc::clone(&self.metrics), name }
    }

    pub(crate) fn sandbox_started(&self, took: Duration, warm: bool) {
        let from = if warm { "pool" } else { "new" };
        self.metrics.observe(SANDBOX_START, vec![("from", from.to_string())], took.as_secs_f64());
    }

    /// How the session ended: its outcome, and each phase's time.
    pub(crate) fn ended(&self, result: &Result<Finished, AgentError>) {
        let finished = match result {
            Ok(finished) => finished,
            Err(err) => {
                self.metrics.add(ERRORS, vec![("kind", err.kind().to_string())], 1.0);
                return;
            }
        };
        let outcome = finished.outcome.kind();
        self.metrics.add(ENDED, vec![("outcome", outcome.to_string())], 1.0);
        if outcome == "error" {
            self.metrics.add(ERRORS, vec![("kind", "in_session".to_string())], 1.0);
        }
        let t = &finished.timings;
        for (phase, ms) in [
            ("model", t.model_ms),
            ("tests", t.tests_ms),
            ("setup", t.setup_ms),
            ("localize", t.localize_ms),
            ("sandbox", t.sandbox_ms),
            ("own", t.own_ms),
            ("wall", t.wall_ms),
        ] {
            self.metrics.observe(PHASE, vec![("phase", phase.to_string())], ms / 1000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use fixbox_llm::Totals;

    use super::*;
    use crate::{Outcome, Timings};

    #[test]
    fn a_session_counts_its_start_its_gauges_while_held_and_its_end() {
        let metrics = Arc::new(Metrics::default());
        let session = SessionMetrics::new(Arc::clone(&metrics));
        let queued = session.queued();
        assert!(metrics.render().contains("\nfixbox_sessions_queued 1\n"));
        drop(queued);
        let running = session.running();
        session.sandbox_started(Duration::from_millis(1500), false);
        let timings = Timings { wall_ms: 90_000.0, model_ms: 60_000.0, ..Timings::default() };
        let finished = Finished {
            outcome: Outcome::Stuck { failure: "x".into() },
            iterations: 3,
            diff: String::new(),
            test_diff: String::new(),
            totals: Totals::default(),
            timings,
        };
        session.ended(&Ok(finished));
        session.ended(&Err(AgentError::Stopped { before: "its sandbox was ready" }));
        drop(running);
        let text = metrics.render();
        for line in [
            "fixbox_sessions_started_total 1",
            "fixbox_sessions_queued 0",
            "fixbox_sessions_running 0",
            "fixbox_sessions_ended_total{outcome=\"stuck\"} 1",
            "fixbox_session_phase_seconds_bucket{phase=\"model\",le=\"60\"} 1",
            "fixbox_session_phase_seconds_bucket{phase=\"wall\",le=\"60\"} 0",
            "fixbox_sandbox_start_seconds_sum{from=\"new\"} 1.5",
            "fixbox_session_errors_total{kind=\"stopped\"} 1",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "no {line} in\n{text}");
        }
    }
}
