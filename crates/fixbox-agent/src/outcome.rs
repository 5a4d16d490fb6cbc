//! How a fix session ended, and where its time went.

use fixbox_llm::Totals;
use serde::{Deserialize, Serialize};

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The tests pass, and every test that passed before still does.
    Fixed,
    /// The tests passed before any change: there is nothing for them to verify.
    AlreadyPassing,
    /// The tests passed before any change, and no test the model wrote showed the bug.
    NotReproduced {
        reason: String,
    },
    MaxIterations,
    Budget {
        message: String,
    },
    WallTime,
    /// The same failure came back this many times in a row.
    Stuck {
        failure: String,
    },
    GaveUp {
        reason: String,
    },
    /// Stopped by the user (Ctrl+C).
    Cancelled,
    /// The repository's setup command (installing its dependencies) failed, so its tests could not
    /// run; what it printed is in the session's [`crate::Event::SetupRun`].
    SetupFailed {
        command: String,
        exit_code: Option<i64>,
    },
    /// Something outside the loop failed (the sandbox, every model route).
    Error {
        message: String,
    },
}

impl Outcome {
    /// Its name, as serialized (`fixed`, `max_iterations`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::AlreadyPassing => "already_passing",
            Self::NotReproduced { .. } => "not_reproduced",
            Self::MaxIterations => "max_iterations",
            Self::Budget { .. } => "budget",
            Self::WallTime => "wall_time",
            Self::Stuck { .. } => "stuck",
            Self::GaveUp { .. } => "gave_up",
            Self::Cancelled => "cancelled",
            Self::SetupFailed { .. } => "setup_failed",
            Self::Error { .. } => "error",
        }
    }

    pub fn is_fixed(&self) -> bool {
        matches!(self, Self::Fixed)
    }

    /// One line for a person.
    pub fn describe(&self) -> String {
        match self {
            Self::Fixed => "fixed: the tests pass".into(),
            Self::AlreadyPassing => {
                "the tests already pass before any change: add a test that shows the bug, or give a test command that shows it".into()
            }
            Self::NotReproduced { reason } => format!(
                "not fixed: the tests pass before any change, and no test written for the issue showed the bug (the last: {reason}); add one, or give a test command that shows it"
            ),
            Self::MaxIterations => "not fixed: the iteration limit was reached (raise it to go on)".into(),
            Self::Budget { message } => format!("not fixed: {message}"),
            Self::WallTime => "not fixed: the time limit was reached (raise it to go on)".into(),
            Self::Stuck { failure } => format!("not fixed: the same failure came back each time ({failure})"),
            Self::GaveUp { reason } => format!("not fixed: the model gave up ({reason})"),
            Self::Cancelled => "stopped: cancelled; the session and its changes so far are kept".into(),
            Self::SetupFailed { command, exit_code } => format!(
                "not fixed: the setup command `{command}` failed ({}): mend it or give another (what it printed is in the session)",
                exit_code.map_or("no exit code".to_string(), |code| format!("exit {code}"))
            ),
            Self::Error { message } => format!("not fixed: {message}"),
        }
    }
}

/// Where a session's time went, in milliseconds: the model's answers, test runs, the setup (installing
/// the dependencies, or restoring them), localization (tracing the failing tests and ranking the
/// code), the sandbox's own work (start, copies, writes) and `own`, Fixbox itself: prompts, parsing,
/// applying, the event log.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Timings {
    pub wall_ms: f64,
    pub model_ms: f64,
    pub tests_ms: f64,
    /// Recorded since setup and localization were counted apart (in tests and own before).
    #[serde(default)]
    pub setup_ms: f64,
    #[serde(default)]
    pub localize_ms: f64,
    pub sandbox_ms: f64,
    pub own_ms: f64,
}

/// A finished session.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub outcome: Outcome,
    pub iterations: u32,
    /// The change to the code.
    pub diff: String,
    /// New tests the session wrote to show the bug, apart from the fix: kept or dropped by the user.
    pub test_diff: String,
    pub totals: Totals,
    pub timings: Timings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcomes_kind_is_its_serialized_name() {
        let text = || "x".to_string();
        for outcome in [
            Outcome::Fixed,
            Outcome::AlreadyPassing,
            Outcome::NotReproduced { reason: text() },
            Outcome::MaxIterations,
            Outcome::Budget { message: text() },
            Outcome::WallTime,
            Outcome::Stuck { failure: text() },
            Outcome::GaveUp { reason: text() },
            Outcome::Cancelled,
            Outcome::Error { message: text() },
        ] {
            let json = serde_json::to_value(&outcome).expect("an outcome serializes");
            assert_eq!(json["outcome"], outcome.kind());
        }
    }
}
