//! One task's result: resolved or not, why not, and what the session cost.

use std::time::Instant;

use fixbox_agent::{Event, Finished, Outcome, Region, Timings};
use serde::{Deserialize, Serialize};

use crate::Mode;
use crate::Task;
use crate::judge::Judgement;

/// Why a task ended as it did, for the report's breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The hidden tests pass.
    Resolved,
    /// The session's tests passed before any change: it had no failing test to work from.
    NoRepro,
    /// The session ended without a change.
    NoPatch,
    /// The patch did not apply to the base tree.
    PatchDidNotApply,
    /// The patch broke tests that passed before.
    TestsBroke,
    /// The bug's tests still fail.
    NotFixed,
    /// The session ran out of time.
    Timeout,
    /// The same failure came back until the session stopped.
    Loop,
    /// The model said it could not fix it.
    GaveUp,
    /// The installation of the project's dependencies failed.
    SetupFailed,
    /// The repository or its commit is not there.
    NoRepo,
    /// The model server stopped answering during the session (the task runs again once it is back).
    EngineDown,
    /// Anything else that stopped the task (the sandbox, the model server).
    Error,
}

impl Category {
    pub fn label(self) -> &'static str {
        match self {
            Self::Resolved => "resolved",
            Self::NoRepro => "no failing test to start from",
            Self::NoPatch => "no patch",
            Self::PatchDidNotApply => "patch did not apply",
            Self::TestsBroke => "tests broke",
            Self::NotFixed => "bug's tests still fail",
            Self::Timeout => "timeout",
            Self::Loop => "same failure in a loop",
            Self::GaveUp => "model gave up",
            Self::SetupFailed => "setup failed",
            Self::NoRepo => "repository missing",
            Self::EngineDown => "model server down",
            Self::Error => "error",
        }
    }
}

/// What came of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub instance_id: String,
    pub repo: String,
    pub mode: Mode,
    pub resolved: bool,
    pub category: Category,
    /// How the session ended (none in `gold` mode or when it could not run).
    pub outcome: Option<Outcome>,
    /// The session said "Fixed" (its own tests passed).
    pub claimed_fixed: bool,
    pub iterations: u32,
    pub wall_s: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens served from the engine's cache.
    pub cached_tokens: u64,
    pub cost_usd: f64,
    /// The session in the store, for the history and replay.
    pub session: Option<String>,
    /// The sandbox host its sandboxes ran on (`local`, or its address).
    #[serde(default)]
    pub docker_host: String,
    /// Where the session's time went: the model, the tests (and the setup), the sandbox, Fixbox.
    #[serde(default)]
    pub timings: Option<Timings>,
    /// The first model call's prompt, in tokens as the engine counted them.
    #[serde(default)]
    pub first_prompt_tokens: Option<u64>,
    /// The prompt tokens of the calls after the first, and those of them the engine's cache served.
    #[serde(default)]
    pub later_prompt_tokens: u64,
    #[serde(default)]
    pub later_cached_tokens: u64,
    /// Answers that held no edit the loop could use (prose, a cut-off block, no file named).
    #[serde(default)]
    pub answers_without_edit: u32,
    /// The largest prompt of a model call, in tokens as the engine counted them, and calls whose
    /// prompt and answer did not fit the context window the route declared.
    #[serde(default)]
    pub largest_prompt_tokens: Option<u64>,
    #[serde(default)]
    pub over_context: u32,
    /// Where the session looked: the regions it asked the model to rewrite, most likely first.
    #[serde(default)]
    pub regions: Vec<Region>,
    /// The first of `regions` (1-based) that holds a line the task's upstream fix changes.
    #[serde(default)]
    pub fix_region: Option<usize>,
    /// The patch judged (SWE-bench's `model_patch`).
    pub model_patch: String,
    pub judgement: Option<Judgement>,
    pub error: Option<String>,
}

impl TaskResult {
    pub(crate) fn new(task: &Task, mode: Mode) -> Self {
        Self {
            instance_id: task.instance_id.clone(),
            repo: task.repo.clone(),
            mode,
            resolved: false,
            category: Category::Error,
            outcome: None,
            claimed_fixed: false,
            iterations: 0,
            wall_s: 0.0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cached_tokens: 0,
            cost_usd: 0.0,
            session: None,
            docker_host: String::new(),
            timings: None,
            first_prompt_tokens: None,
            later_prompt_tokens: 0,
            later_cached_tokens: 0,
            answers_without_edit: 0,
            largest_prompt_tokens: None,
            over_context: 0,
            regions: Vec::new(),
            fix_region: None,
            model_patch: String::new(),
            judgement: None,
            error: None,
        }
    }

    pub(crate) fn session_ended(&mut self, finished: &Finished) {
        self.outcome = Some(finished.outcome.clone());
        self.claimed_fixed = finished.outcome.is_fixed();
        self.iterations = finished.iterations;
        let usage = &finished.totals.usage;
        (self.prompt_tokens, self.completion_tokens, self.cached_tokens) =
            (usage.prompt, usage.completion, usage.cache_read);
        self.cost_usd = finished.totals.cost_usd;
        self.timings = Some(finished.timings);
    }

    /// Counts what one of the session's events says about its prompts and answers.
    pub(crate) fn saw(&mut self, event: &Event) {
        match event {
            Event::ModelCall { record, .. } => {
                let prompt = record.usage.prompt;
                if self.first_prompt_tokens.is_some() {
                    self.later_prompt_tokens += prompt;
                    self.later_cached_tokens += record.usage.cache_read;
                }
                self.first_prompt_tokens.get_or_insert(prompt);
                self.largest_prompt_tokens = Some(self.largest_prompt_tokens.unwrap_or(0).max(prompt));
                if record.context_window.is_some_and(|window| prompt + record.usage.completion > u64::from(window)) {
                    self.over_context += 1;
                }
            }
            Event::PatchRejected { path: None, .. } => self.answers_without_edit += 1,
            Event::Localized { regions } => self.regions = regions.clone(),
            _ => {}
        }
    }

    pub(crate) fn failed(mut self, category: Category, error: String, started: Instant) -> Self {
        self.category = category;
        self.error = Some(error);
        self.wall_s = started.elapsed().as_secs_f64();
        self
    }

    pub(crate) fn judged(mut self, judgement: Judgement, started: Instant) -> Self {
        self.resolved = judgement.resolved;
        self.category = self.category_of(&judgement);
        self.judgement = Some(judgement);
        self.wall_s = started.elapsed().as_secs_f64();
        self
    }

    /// Resolved first; then what the session's end says; then what the hidden tests say.
    fn category_of(&self, judgement: &Judgement) -> Category {
        if judgement.resolved {
            return Category::Resolved;
        }
        match &self.outcome {
            Some(Outcome::AlreadyPassing | Outcome::NotReproduced { .. }) => return Category::NoRepro,
            Some(Outcome::WallTime) => return Category::Timeout,
            Some(Outcome::Stuck { .. }) => return Category::Loop,
            Some(Outcome::GaveUp { .. }) => return Category::GaveUp,
            Some(Outcome::SetupFailed { .. }) => return Category::SetupFailed,
            Some(Outcome::Error { .. }) => return Category::Error,
            _ => {}
        }
        if self.model_patch.trim().is_empty() && self.mode != Mode::Gold {
            Category::NoPatch
        } else if !judgement.applied {
            Category::PatchDidNotApply
        } else if !judgement.pass_to_pass_broken.is_empty() {
            Category::TestsBroke
        } else {
            Category::NotFixed
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::Dataset;

    #[test]
    fn a_session_is_counted_by_how_it_ended_before_what_its_patch_did() {
        let line = r#"{"instance_id": "a__b-1", "repo": "a/b", "base_commit": "abc", "problem_statement": "x", "FAIL_TO_PASS": ["t.py::a"], "PASS_TO_PASS": [], "test_patch": "--- a/t.py\n+++ b/t.py\n@@ -1 +1 @@\n-a\n+b\n"}"#;
        let task = &Dataset::parse(line).tasks[0];
        let unresolved = Judgement {
            resolved: false,
            applied: true,
            fail_to_pass_left: BTreeMap::new(),
            pass_to_pass_broken: BTreeMap::new(),
            output: String::new(),
        };
        let category = |outcome: Outcome| {
            let mut result = TaskResult::new(task, Mode::Issue);
            result.outcome = Some(outcome);
            result.model_patch = "--- a/a.py\n".into();
            result.judged(unresolved.clone(), Instant::now()).category
        };
        let setup = Outcome::SetupFailed { command: "pip install .".into(), exit_code: Some(1) };
        assert_eq!(category(setup), Category::SetupFailed);
        assert_eq!(category(Outcome::Error { message: "the setup command of a test".into() }), Category::Error);
        assert_eq!(category(Outcome::MaxIterations), Category::NotFixed);
    }

    #[test]
    fn the_calls_after_the_first_count_their_prompts_and_what_the_cache_served() {
        let line = r#"{"instance_id": "a__b-1", "repo": "a/b", "base_commit": "abc", "problem_statement": "x", "FAIL_TO_PASS": ["t.py::a"], "PASS_TO_PASS": [], "test_patch": ""}"#;
        let mut result = TaskResult::new(&Dataset::parse(line).tasks[0], Mode::Issue);
        let call = |prompt: u64, cached: u64| -> Event {
            serde_json::from_value(serde_json::json!({
                "kind": "model_call",
                "iteration": 1,
                "record": {
                    "task": "fix", "route": "local", "model": "m", "local": true, "text": "",
                    "finish_reason": "stop", "usage_source": "server", "latency_ms": 1.0, "attempts": [],
                    "usage": { "prompt": prompt, "completion": 9, "cache_read": cached, "cache_write": 0 },
                },
            }))
            .expect("a model call")
        };
        for (prompt, cached) in [(1000, 20), (1200, 1100), (900, 800)] {
            result.saw(&call(prompt, cached));
        }
        assert_eq!(result.first_prompt_tokens, Some(1000));
        assert_eq!((result.later_prompt_tokens, result.later_cached_tokens), (2100, 1900));
    }
}
