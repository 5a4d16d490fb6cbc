//! What a fix session is asked to do, and within what limits.

use std::path::PathBuf;

use fixbox_patch::{ApplyOptions, EditFormat};
use serde::{Deserialize, Serialize};

use crate::environment::Setup;

/// When a session stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Limits {
    pub max_iterations: u32,
    pub budget_usd: Option<f64>,
    pub budget_tokens: Option<u64>,
    /// Wall time of the whole session, in seconds.
    pub wall_time_s: u64,
    /// One run of the tests, in seconds.
    pub test_timeout_s: u64,
    /// The same failure this many iterations in a row stops the session.
    pub same_failure: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_iterations: 50,
            budget_usd: None,
            budget_tokens: None,
            wall_time_s: 30 * 60,
            test_timeout_s: 5 * 60,
            same_failure: 3,
        }
    }
}

/// How the model is asked. The defaults follow the Devstral/OpenHands recipe for small coding models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSettings {
    /// The routing task whose routes answer; tasks without routes take `default`'s.
    pub task: String,
    pub temperature: f32,
    pub top_p: f32,
    /// Tokens one patch may take.
    pub max_tokens: u32,
    /// `None`: chosen for the model.
    pub edit_format: Option<EditFormat>,
    /// Extra stop sequences (search/replace answers always stop at the end of their block).
    pub stop: Vec<String>,
    /// The context window the prompt is planned for, when the route does not say.
    pub context_window: u32,
    pub fuzzy_threshold: f64,
    pub seed: Option<u64>,
    /// Constrain answers to the edit format's grammar where every route is a local engine (they take
    /// llama.cpp's GBNF; a cloud API would refuse the field).
    pub grammar: bool,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            task: "fix".into(),
            temperature: 0.15,
            top_p: 0.95,
            max_tokens: 2048,
            edit_format: None,
            stop: Vec::new(),
            context_window: 8192,
            fuzzy_threshold: ApplyOptions::default().fuzzy_threshold,
            seed: None,
            grammar: true,
        }
    }
}

/// What to fix, where, and within what.
#[derive(Debug, Clone)]
pub struct FixRequest {
    pub repo: PathBuf,
    pub task: String,
    /// The test command; detected when `None`.
    pub test: Option<String>,
    /// How its dependencies are installed, in the repository's copy with network before the first
    /// test run; the network is cut after it.
    pub setup: Setup,
    pub model: ModelSettings,
    pub limits: Limits,
    /// Let patches change test files (off: a fix must not edit the tests that judge it).
    pub allow_test_edits: bool,
    /// Tests the user says show the bug (a failing check, SWE-bench's FAIL_TO_PASS): a failure of
    /// theirs before any change is the bug's, never set aside as the project's own.
    pub bug_tests: Vec<String>,
    /// Files the sandbox gets although their names look like credentials (see
    /// [`fixbox_sandbox::is_withheld`]); prompts still leave them out.
    pub share: Vec<String>,
}
