//! A session read back from its event log: what `fixbox sessions show` prints and `export` writes.

use fixbox_llm::{TokenUsage, Totals};
use fixbox_patch::EditFormat;
use fixbox_store::StoredEvent;
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::outcome::{Outcome, Timings};
use crate::testrun::TestSummary;

/// Everything a session's log says about it, folded into one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionReport {
    pub repo: String,
    pub task: String,
    pub test_command: String,
    pub edit_format: EditFormat,
    pub image: String,
    /// `None`: the session has not finished (it runs, or its process died).
    pub outcome: Option<Outcome>,
    pub iterations: u32,
    pub tests_before: Option<TestSummary>,
    pub tests_after: Option<TestSummary>,
    pub patches_applied: u32,
    pub patches_rejected: u32,
    pub calls: Vec<CallLine>,
    pub totals: Option<Totals>,
    pub timings: Option<Timings>,
    /// The change to the code against the original repository, `git apply`-able.
    pub diff: String,
    /// New tests the session wrote to show the bug, apart from `diff`.
    pub test_diff: String,
}

/// One model call of the session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallLine {
    pub iteration: u32,
    pub route: String,
    pub model: String,
    pub usage: TokenUsage,
    pub ttft_ms: Option<f64>,
    pub latency_ms: f64,
    pub tokens_per_second: Option<f64>,
    pub cost_usd: Option<f64>,
}

impl SessionReport {
    /// The report of a fix session's log; `None` when the log is not a fix session's.
    pub fn from_events(events: &[StoredEvent]) -> Option<Self> {
        let mut events = events.iter().filter_map(Event::from_stored);
        let Some(Event::SessionStarted { repo, task, test_command, edit_format, image, .. }) = events.next() else {
            return None;
        };
        let mut report = Self {
            repo,
            task,
            test_command,
            edit_format,
            image,
            outcome: None,
            iterations: 0,
            tests_before: None,
            tests_after: None,
            patches_applied: 0,
            patches_rejected: 0,
            calls: Vec::new(),
            totals: None,
            timings: None,
            diff: String::new(),
            test_diff: String::new(),
        };
        for event in events {
            match event {
                Event::TestsRun { iteration: 0, summary } => report.tests_before = Some(summary),
                Event::TestsRun { summary, .. } => report.tests_after = Some(summary),
                Event::ModelCall { iteration, record } => report.calls.push(CallLine {
                    iteration,
                    route: record.route,
                    model: record.model,
                    usage: record.usage,
                    ttft_ms: record.ttft_ms,
                    latency_ms: record.latency_ms,
                    tokens_per_second: record.tokens_per_second,
                    cost_usd: record.cost_usd,
                }),
                Event::PatchApplied { .. } => report.patches_applied += 1,
                Event::PatchRejected { .. } => report.patches_rejected += 1,
                Event::Iteration { iteration, totals, .. } => {
                    report.iterations = iteration;
                    report.totals = Some(totals);
                }
                Event::SessionFinished { outcome, iterations, diff, test_diff, totals, timings } => {
                    report.outcome = Some(outcome);
                    report.iterations = iterations;
                    report.diff = diff;
                    report.test_diff = test_diff;
                    report.totals = Some(totals);
                    report.timings = Some(timings);
                }
                _ => {}
            }
        }
        Some(report)
    }

    /// The share of prompt tokens the engine served from its cache, over the calls after the first
    /// (the first has nothing cached to reuse).
    pub fn cached_share_after_first(&self) -> Option<f64> {
        let later = self.calls.get(1..)?;
        let prompt: u64 = later.iter().map(|c| c.usage.prompt).sum();
        (prompt > 0).then(|| later.iter().map(|c| c.usage.cache_read).sum::<u64>() as f64 / prompt as f64)
    }
}
