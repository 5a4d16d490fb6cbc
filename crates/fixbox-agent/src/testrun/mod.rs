//! Running the test command in the sandbox and reading its outcome: which tests pass and fail (from
//! pytest's, cargo's, node's and go's own lines), a fingerprint of the failure, and the output a
//! prompt gets.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use fixbox_sandbox::{Ending, ExecRequest, OutputChunk, Sandbox};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::detect::{Runner, TestPlan};
use crate::{AgentError, text};

mod lines;
mod live;

use self::lines::{any_runner_line, outcomes};
pub(crate) use self::live::LiveOutput;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestOutcome {
    Passed,
    Failed,
    Skipped,
}

/// One run of the test command.
#[derive(Debug, Clone, PartialEq)]
pub struct TestReport {
    pub exit_code: Option<i64>,
    pub timed_out: bool,
    /// Killed by the kernel for using more than the sandbox's memory.
    pub oom_killed: bool,
    /// Per test, where the runner's output says; empty when it does not (a build error, an unknown runner).
    pub outcomes: BTreeMap<String, TestOutcome>,
    /// stdout and stderr together, as they came.
    pub output: String,
    pub duration: Duration,
}

/// What the event log keeps of a test run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct TestSummary {
    pub ok: bool,
    pub exit_code: Option<i64>,
    pub timed_out: bool,
    pub passed: usize,
    pub failed: Vec<String>,
    pub skipped: usize,
    pub duration_ms: f64,
    /// The output, its middle cut when long.
    pub output: String,
}

const OOM_KILLED: &str = "killed for using more than the sandbox's memory";

/// Test output kept in an event: enough to see what failed, bounded so the log stays small.
const SUMMARY_OUTPUT_CHARS: usize = 12_000;

impl TestReport {
    /// Runs `plan` in `sandbox`, killed after `timeout`.
    pub async fn run(sandbox: &impl Sandbox, plan: &TestPlan, timeout: Duration) -> Result<Self, AgentError> {
        Self::exec(sandbox, plan, Self::request(plan, timeout)).await
    }

    /// [`TestReport::run`], its output also sent to `live` as it arrives.
    pub(crate) async fn run_live(
        sandbox: &impl Sandbox,
        plan: &TestPlan,
        timeout: Duration,
        live: mpsc::UnboundedSender<OutputChunk>,
    ) -> Result<Self, AgentError> {
        Self::exec(sandbox, plan, Self::request(plan, timeout).on_output(live)).await
    }

    fn request(plan: &TestPlan, timeout: Duration) -> ExecRequest {
        let mut request = ExecRequest::shell(format!("{} 2>&1", plan.command)).hard_timeout(timeout);
        request.env = plan.runner.env();
        request
    }

    async fn exec(sandbox: &impl Sandbox, plan: &TestPlan, request: ExecRequest) -> Result<Self, AgentError> {
        let started = Instant::now();
        let output = sandbox.exec(request).await.map_err(AgentError::sandbox("run the tests"))?;
        let output = output.finish().await.map_err(AgentError::sandbox("run the tests"))?;
        let mut report = Self::read(plan.runner, output.exit_code, &output.stdout);
        report.timed_out = output.ending == Ending::HardTimeout;
        report.oom_killed = output.oom_killed;
        if report.oom_killed {
            report.output.push_str(&format!("\n[the test command was {OOM_KILLED}]\n"));
        }
        report.duration = started.elapsed();
        Ok(report)
    }

    /// Reads a finished run's output.
    pub fn read(runner: Runner, exit_code: Option<i64>, output: &str) -> Self {
        Self {
            exit_code,
            timed_out: false,
            oom_killed: false,
            outcomes: outcomes(runner, output),
            output: output.to_string(),
            duration: Duration::ZERO,
        }
    }

    /// Whether the tests pass: the command exited 0 in time.
    pub fn ok(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    pub fn with(&self, outcome: TestOutcome) -> BTreeSet<&str> {
        self.outcomes.iter().filter(|(_, o)| **o == outcome).map(|(name, _)| name.as_str()).collect()
    }

    /// The failing tests by name; when the runner names none but the command failed, the command.
    pub fn failing(&self) -> Vec<String> {
        let failed = self.with(TestOutcome::Failed);
        if failed.is_empty() && !self.ok() {
            let why = if self.timed_out {
                "timed out".to_string()
            } else if self.oom_killed {
                OOM_KILLED.to_string()
            } else {
                format!("exit code {}", self.exit_code.map_or("unknown".into(), |c| c.to_string()))
            };
            return vec![format!("(the test command: {why})")];
        }
        failed.into_iter().map(str::to_string).collect()
    }

    /// The kind of error failing test `id` ended with, from pytest's summary line (`FAILED id -
    /// TypeError: …` gives `TypeError`; a bare `assert` is an `AssertionError`); `None` where the
    /// line says no kind.
    pub fn error_kind(&self, id: &str) -> Option<&str> {
        let prefix = format!("FAILED {id} - ");
        let reason = self.output.lines().find_map(|l| l.strip_prefix(&prefix))?;
        if reason.starts_with("assert ") {
            return Some("AssertionError");
        }
        let head = reason.split_once(':').map_or(reason, |(head, _)| head).trim();
        let name = head.rsplit('.').next()?;
        let named = name.starts_with(|c: char| c.is_ascii_uppercase())
            && head.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.');
        named.then_some(name)
    }

    /// Tests that passed in `before` and do not pass now (failed, or gone: a test deleted is not fixed).
    /// A parametrized test whose parameters hold the time or a random value has another id each run
    /// (`test_f[14:17:36 2026-12-07]`): one gone while a passing one of the same function is new is
    /// that test again, not a regression.
    pub fn regressions(&self, before: &TestReport) -> Vec<String> {
        let now = self.with(TestOutcome::Passed);
        let new: Vec<&str> = now.iter().copied().filter(|id| !before.outcomes.contains_key(*id)).collect();
        let renamed = |id: &str| {
            let Some((function, _)) = id.split_once('[') else { return false };
            !self.outcomes.contains_key(id) && new.iter().any(|n| n.split_once('[').is_some_and(|(f, _)| f == function))
        };
        before.with(TestOutcome::Passed).difference(&now).filter(|id| !renamed(id)).map(|s| s.to_string()).collect()
    }

    /// Identifies the failure: the same failing tests with the same error lines give the same
    /// fingerprint, so a loop that keeps producing it can be stopped.
    pub fn fingerprint(&self) -> String {
        let errors: BTreeSet<&str> = self
            .output
            .lines()
            .map(str::trim)
            .filter(|l| {
                l.starts_with("E ")
                    || l.starts_with("error")
                    || l.contains("Error:")
                    || l.contains("panicked at")
                    || l.contains("assert")
            })
            .filter(|l| !is_timing(l))
            .collect();
        format!(
            "{:?}|{}|{}",
            self.exit_code,
            self.failing().join(","),
            errors.into_iter().collect::<Vec<_>>().join("\n")
        )
    }

    /// Why the tests could not run at all, where the output says so: the command not found, the
    /// runner refusing its arguments or collecting nothing, a module the tests need not installed.
    /// A bug makes tests fail; these are the environment's, and no patch to the code fixes them.
    /// `local_module`: whether a top-level module name is the project's own.
    pub fn cannot_run(&self, runner: Runner, local_module: impl Fn(&str) -> bool) -> Option<String> {
        if self.ok() || self.timed_out {
            return None;
        }
        if self.oom_killed {
            return Some(format!("the tests were {OOM_KILLED}: raise the sandbox's memory limit"));
        }
        let first = |needle: &str| self.output.lines().map(str::trim).find(|l| l.contains(needle)).map(str::to_string);
        if self.exit_code == Some(127) {
            let line = first("not found").unwrap_or_else(|| "exit 127".into());
            return Some(format!("the test command was not found ({line}): check the test command"));
        }
        if let Some(line) = first("Missing script:") {
            return Some(format!("npm has no such script ({line}): check the test command"));
        }
        if runner != Runner::Pytest {
            return None;
        }
        match self.exit_code {
            Some(4) => {
                let line = first("error:").unwrap_or_else(|| "a usage error".into());
                return Some(format!("pytest refused its arguments ({line}): check the test command"));
            }
            Some(5) => return Some("pytest collected no tests: check the test command's paths".into()),
            _ => {}
        }
        // A dependency missing when the tests are collected: none of them ran.
        let rest = self.output.split("ModuleNotFoundError: No module named '").nth(1)?;
        let module = rest[..rest.find('\'')?].split('.').next().unwrap_or("");
        if self.with(TestOutcome::Passed).is_empty() && !module.is_empty() && !local_module(module) {
            return Some(format!(
                "the tests need the module `{module}`, which is not installed: give a setup command that installs the \
                 project's dependencies"
            ));
        }
        None
    }

    pub fn summary(&self) -> TestSummary {
        TestSummary {
            ok: self.ok(),
            exit_code: self.exit_code,
            timed_out: self.timed_out,
            passed: self.with(TestOutcome::Passed).len(),
            failed: if self.ok() { Vec::new() } else { self.failing() },
            skipped: self.with(TestOutcome::Skipped).len(),
            duration_ms: self.duration.as_secs_f64() * 1e3,
            output: text::cut_middle(&self.output, SUMMARY_OUTPUT_CHARS),
        }
    }
}

/// What a model needs of a test run's output to see why tests fail, in at most `max` characters: the
/// output without the lines that say a test passed or was skipped, the runner's banner and pytest's
/// warnings summary. A run of a few hundred passing tests is otherwise all a cut to `max` keeps, and
/// the traceback the model needs is what it drops. Over `max`, the start is kept whole (the first
/// failure's traceback) and the end (the runner's list of failures) after the cut.
pub fn failure_text(output: &str, max: usize) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut in_warnings = false;
    for line in output.lines() {
        let trimmed = line.trim();
        if is_section_header(trimmed) {
            in_warnings = trimmed.contains(" warnings summary ");
            if in_warnings || trimmed.contains(" test session starts ") {
                continue;
            }
        }
        if in_warnings || is_noise(trimmed) {
            continue;
        }
        // One blank line is enough to part two blocks.
        if trimmed.is_empty() && kept.last().is_none_or(|l| l.trim().is_empty()) {
            continue;
        }
        kept.push(line);
    }
    text::cut(kept.join("\n").trim_end(), max - max / 3, max / 3)
}

/// pytest's `==== name ====` lines.
fn is_section_header(line: &str) -> bool {
    line.len() > 8 && line.starts_with("===") && line.ends_with("===")
}

/// A line that says nothing about a failure: a test that passed or was skipped (in any runner's
/// words), a Go test starting, or a line of pytest's banner.
fn is_noise(line: &str) -> bool {
    const BANNER: &[&str] =
        &["platform ", "rootdir: ", "cachedir: ", "plugins: ", "configfile: ", "collecting ", "collected "];
    matches!(any_runner_line(line), Some((_, TestOutcome::Passed | TestOutcome::Skipped)))
        || ["=== RUN ", "=== PAUSE ", "=== CONT "].iter().any(|p| line.starts_with(p))
        || BANNER.iter().any(|p| line.starts_with(p))
}

impl TestSummary {
    /// `3 passed, 1 failed (test_x)`; of many failures the first few are named.
    pub fn line(&self) -> String {
        if self.ok {
            return format!("{} passed", self.passed);
        }
        let why = if self.timed_out { ", timed out" } else { "" };
        let named = text::first_of(&self.failed, NAMED_FAILURES);
        format!("{} passed, {} failed{why} ({named})", self.passed, self.failed.len())
    }
}

/// Failing tests a summary line names.
const NAMED_FAILURES: usize = 3;

fn is_timing(line: &str) -> bool {
    ["passed in", "failed in", "finished in", "duration_ms", "# duration", "Finished ", "Running "]
        .iter()
        .any(|t| line.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYTEST: &str = "\
..F.                                                                     [100%]
=================================== FAILURES ===================================
______________________________ test_second_page _______________________________
test_pages.py:9: in test_second_page
    assert paginate(list(range(10)), 2, 3) == [3, 4, 5]
E   assert [4, 5, 6] == [3, 4, 5]
=========================== short test summary info ============================
PASSED test_pages.py::test_first_page
PASSED test_pages.py::test_empty
FAILED test_pages.py::test_second_page - assert [4, 5, 6] == [3, 4, 5]
PASSED test_pages.py::test_size
1 failed, 3 passed in 0.03s
";

    #[test]
    fn pytest_ids_with_spaces_in_their_parameters_are_read_whole() {
        let out = "\
tests/t.py::test_p[a b-c] PASSED                                          [ 33%]
tests/t.py::test_p[x - y] FAILED                                          [ 66%]
tests/t.py::test_q SKIPPED (no reason)                                    [100%]
PASSED tests/t.py::test_p[a b-c]
FAILED tests/t.py::test_p[x - y] - AssertionError: assert 1 == 2
FAILED tests/t.py::test_r - assert 0
";
        let report = TestReport::read(Runner::Pytest, Some(1), out);
        let ids: Vec<(&str, TestOutcome)> = report.outcomes.iter().map(|(id, o)| (id.as_str(), *o)).collect();
        assert_eq!(
            ids,
            [
                ("tests/t.py::test_p[a b-c]", TestOutcome::Passed),
                ("tests/t.py::test_p[x - y]", TestOutcome::Failed),
                ("tests/t.py::test_q", TestOutcome::Skipped),
                ("tests/t.py::test_r", TestOutcome::Failed),
            ]
        );
    }

    #[test]
    fn a_failing_tests_error_kind_is_read_from_its_summary_line() {
        let out = "\
FAILED tests/t.py::test_p[x - y] - AssertionError: assert 1 == 2
FAILED tests/t.py::test_r - assert 0
FAILED tests/t.py::test_s - marshmallow.exceptions.ValidationError: {'a': ['bad']}
FAILED tests/t.py::test_t - Failed: DID NOT RAISE <class 'ValueError'>
FAILED tests/t.py::test_u - this is not: a kind
FAILED tests/t.py::test_w - KeyError
";
        let report = TestReport::read(Runner::Pytest, Some(1), out);
        let kinds: Vec<Option<&str>> = ["test_p[x - y]", "test_r", "test_s", "test_t", "test_u", "test_v", "test_w"]
            .iter()
            .map(|t| report.error_kind(&format!("tests/t.py::{t}")))
            .collect();
        assert_eq!(
            kinds,
            [
                Some("AssertionError"),
                Some("AssertionError"),
                Some("ValidationError"),
                Some("Failed"),
                None,
                None,
                Some("KeyError")
            ]
        );
    }

    #[test]
    fn pytest_outcomes_failing_tests_and_regressions() {
        let before = TestReport::read(Runner::Pytest, Some(1), PYTEST);
        assert_eq!(before.with(TestOutcome::Passed).len(), 3);
        assert_eq!(before.failing(), vec!["test_pages.py::test_second_page"]);
        assert!(!before.ok());

        let deleted = PYTEST.replace("PASSED test_pages.py::test_empty\n", "");
        let after = TestReport::read(Runner::Pytest, Some(1), &deleted);
        assert_eq!(after.regressions(&before), vec!["test_pages.py::test_empty"]);
        let timed = |time: &str, outcome: &str| {
            let line = format!("{outcome} t.py::test_when[{time} 2026-12-07]\n");
            TestReport::read(Runner::Pytest, Some(0), &format!("{line}PASSED t.py::test_other[1]\n"))
        };
        let earlier = timed("14:17:36", "PASSED");
        assert!(timed("14:17:41", "PASSED").regressions(&earlier).is_empty(), "the same test at another time");
        assert_eq!(timed("14:17:41", "FAILED").regressions(&earlier), vec!["t.py::test_when[14:17:36 2026-12-07]"]);
        assert_eq!(after.summary().line(), "2 passed, 1 failed (test_pages.py::test_second_page)");
    }

    #[test]
    fn the_fingerprint_ignores_timings_but_not_values() {
        let a = TestReport::read(Runner::Pytest, Some(1), PYTEST);
        let slower = TestReport::read(Runner::Pytest, Some(1), &PYTEST.replace("0.03s", "0.41s"));
        let other = TestReport::read(Runner::Pytest, Some(1), &PYTEST.replace("[4, 5, 6]", "[5, 6, 7]"));
        assert_eq!(a.fingerprint(), slower.fingerprint());
        assert_ne!(a.fingerprint(), other.fingerprint());
    }

    #[test]
    fn cargo_node_and_go_lines() {
        let cargo =
            "running 2 tests\ntest tests::odd ... ok\ntest tests::even ... FAILED\ntest tests::slow ... ignored\n";
        let r = TestReport::read(Runner::Cargo, Some(101), cargo);
        assert_eq!(r.failing(), vec!["tests::even"]);
        assert_eq!(r.with(TestOutcome::Skipped).len(), 1);

        let tap = "TAP version 13\n# Subtest: slugify\n    ok 1 - lowercases\n    not ok 2 - collapses dashes\nnot ok 1 - slugify\nok 3 - skipped one # SKIP\n";
        let r = TestReport::read(Runner::Npm, Some(1), tap);
        assert_eq!(r.failing(), vec!["collapses dashes", "slugify"]);
        assert_eq!(r.with(TestOutcome::Passed).into_iter().collect::<Vec<_>>(), vec!["lowercases"]);

        let mocha = "1..2\nok 1 serialize basic\nnot ok 2 serialize expires\n  Error: x\n# tests 2\n";
        assert_eq!(TestReport::read(Runner::Other, Some(1), mocha).failing(), vec!["serialize expires"]);

        let go = "=== RUN   TestAdd\n--- PASS: TestAdd (0.00s)\n--- FAIL: TestSub (0.00s)\n";
        assert_eq!(TestReport::read(Runner::Go, Some(1), go).failing(), vec!["TestSub"]);
    }

    #[test]
    fn a_build_error_fails_as_the_command() {
        let r = TestReport::read(Runner::Cargo, Some(101), "error[E0425]: cannot find value `x`\n");
        assert_eq!(r.failing(), vec!["(the test command: exit code 101)"]);
        assert!(r.fingerprint().contains("E0425"));
        let passing = TestReport::read(Runner::Other, Some(0), "all good\n");
        assert!(passing.ok() && passing.failing().is_empty());
    }

    #[test]
    fn a_run_that_could_not_run_says_why_and_a_failing_one_does_not() {
        let read = |runner, exit, out: &str| TestReport::read(runner, Some(exit), out);
        let local = |m: &str| m == "calc";
        let missing = read(Runner::Pytest, 127, "sh: 1: pytst: not found\n");
        assert!(missing.cannot_run(Runner::Pytest, local).unwrap().contains("not found (sh: 1: pytst: not found)"));
        let usage =
            read(Runner::Pytest, 4, "ERROR: usage: pytest [options]\npytest: error: unrecognized arguments: --cov\n");
        assert!(usage.cannot_run(Runner::Pytest, local).unwrap().contains("unrecognized arguments: --cov"));
        assert!(read(Runner::Pytest, 5, "no tests ran in 0.01s\n").cannot_run(Runner::Pytest, local).is_some());
        let dependency = "ImportError while loading conftest '/workspace/conftest.py'.\nE   ModuleNotFoundError: No module named 'hypothesis.strategies'\n";
        let needs = read(Runner::Pytest, 4, dependency);
        assert!(needs.cannot_run(Runner::Pytest, local).unwrap().contains("usage error"), "exit 4 says usage first");
        let needs = read(Runner::Pytest, 2, dependency);
        assert!(
            needs
                .cannot_run(Runner::Pytest, local)
                .unwrap()
                .contains("the module `hypothesis`, which is not installed")
        );
        let own = read(Runner::Pytest, 2, "E   ModuleNotFoundError: No module named 'calc.fast'\n");
        assert_eq!(own.cannot_run(Runner::Pytest, local), None, "the project's own module: the fix may add it");
        let npm = read(Runner::Npm, 1, "npm error Missing script: \"test\"\n");
        assert!(npm.cannot_run(Runner::Npm, local).unwrap().contains("no such script"));
        let failing = read(Runner::Pytest, 1, "FAILED test_calc.py::test_add - assert 1 == 5\n");
        assert_eq!(failing.cannot_run(Runner::Pytest, local), None);
        let oom = TestReport { oom_killed: true, ..read(Runner::Pytest, 137, "") };
        assert!(oom.cannot_run(Runner::Pytest, local).unwrap().contains("raise the sandbox's memory limit"));
        assert_eq!(oom.failing(), ["(the test command: killed for using more than the sandbox's memory)"]);
    }

    #[test]
    fn the_model_sees_the_failures_not_the_passing_tests_banner_or_warnings() {
        let passing: String = (0..300)
            .map(|i| format!("tests/test_schema.py::test_{i} PASSED                 [ {}%]\n", i / 3))
            .collect();
        let output = format!(
            "============================= test session starts ==============================\n\
             platform linux -- Python 3.11.2, pytest-7.0.1\nrootdir: /workspace, configfile: setup.cfg\n\
             collecting ... collected 301 items\n\n{passing}tests/test_issue.py::test_issue FAILED [100%]\n\n\
             =================================== FAILURES ===================================\n\
             __________________________________ test_issue __________________________________\n\
             src/marshmallow/fields.py:1115: in _serialize\n    elif value in self.truthy:\n\
             E   TypeError: unhashable type: 'list'\n\
             =============================== warnings summary ===============================\n\
             src/marshmallow/__init__.py:17\n  DeprecationWarning: distutils Version classes are deprecated.\n\n\
             -- Docs: https://docs.pytest.org/en/stable/how-to/capture-warnings.html\n\
             =========================== short test summary info ============================\n\
             PASSED tests/test_schema.py::test_1\n\
             FAILED tests/test_issue.py::test_issue - TypeError: unhashable type: '...\n\
             ======================== 1 failed, 300 passed, 1 warning in 0.92s ========================\n"
        );
        let shown = failure_text(&output, 2400);
        assert_eq!(
            shown,
            "tests/test_issue.py::test_issue FAILED [100%]\n\n\
             =================================== FAILURES ===================================\n\
             __________________________________ test_issue __________________________________\n\
             src/marshmallow/fields.py:1115: in _serialize\n    elif value in self.truthy:\n\
             E   TypeError: unhashable type: 'list'\n\
             =========================== short test summary info ============================\n\
             FAILED tests/test_issue.py::test_issue - TypeError: unhashable type: '...\n\
             ======================== 1 failed, 300 passed, 1 warning in 0.92s ========================"
        );
        // Go, cargo and TAP runners' passing lines go too; a cut keeps the start whole.
        let go = "=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestB\n    b_test.go:9: got 1, want 2\n--- FAIL: TestB (0.00s)\nFAIL\n";
        assert_eq!(failure_text(go, 100), "    b_test.go:9: got 1, want 2\n--- FAIL: TestB (0.00s)\nFAIL");
        assert_eq!(failure_text("test a ... ok\nok 1 b\nnot ok 2 c\n", 100), "not ok 2 c");
        let long = format!("E   first\n{}E   last\n", "x\n".repeat(500));
        let cut = failure_text(&long, 90);
        assert!(cut.starts_with("E   first\nx\n") && cut.ends_with("x\nE   last") && cut.contains("characters cut"));
    }
}
