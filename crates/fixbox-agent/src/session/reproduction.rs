//! A test that shows the bug before any change: the issue's own example or one the model writes;
//! and which failures before any change are the project's own, not the issue's.

use std::collections::BTreeSet;

use fixbox_sandbox::{ExecRequest, Sandbox};

use super::{Answer, Run};
use crate::AgentError;
use crate::detect::Runner;
use crate::event::Event;
use crate::outcome::Outcome;
use crate::reproduce::{self, Placement};
use crate::testrun::TestReport;
use crate::text::shell_quote;

impl<S: Sandbox> Run<'_, S> {
    /// Where tests fail before any change, whether they fail for the issue: where the issue's own
    /// example shows the bug (pytest, a plain command), a failing test that ends with another kind of
    /// error than the example is the project's own failure (its environment's, a flaky one), unless
    /// the user named it among the tests that show the bug ([`crate::FixRequest::bug_tests`]). Those
    /// are left out of every later run and the example becomes the reproduction; the run with them
    /// left out is the new baseline. `Ok(None)`: the failures stand as the bug.
    pub(super) async fn set_aside(
        &mut self,
        baseline: &TestReport,
    ) -> Result<Result<Option<TestReport>, Outcome>, AgentError> {
        let task = self.request.task.clone();
        // Tests are left out by pytest's `--deselect`, added to a plain command.
        let plain = !self.plan.command.contains([';', '&', '|', '(']) && self.plan.runner == Runner::Pytest;
        let Some(place) = reproduce::place(&self.plan, &self.repo).filter(|_| plain) else { return Ok(Ok(None)) };
        let Some(test) = place.example_test(&task) else { return Ok(Ok(None)) };
        let shown = match self.try_reproduction(&place, 0, test, true).await? {
            Ok(Ok(report)) => report,
            Ok(Err(_)) => {
                // Not kept: gone, or a command that collects every test file would run it.
                let remove = ExecRequest::shell(format!("rm -f {}", shell_quote(&place.path)));
                self.sandbox.exec(remove).await.map_err(AgentError::sandbox("remove a test"))?.finish().await.ok();
                return Ok(Ok(None));
            }
            Err(stop) => return Ok(Err(stop)),
        };
        let issues = shown.failing().iter().find_map(|id| shown.error_kind(id)).map(str::to_string);
        let failing = baseline.failing();
        let (others, kinds): (Vec<String>, BTreeSet<&str>) = failing
            .iter()
            .filter(|id| !self.request.bug_tests.contains(id))
            .filter_map(|id| match (baseline.error_kind(id), &issues) {
                (Some(kind), Some(issue)) if kind != issue => Some((id.clone(), kind)),
                _ => None,
            })
            .unzip();
        if let Some(issue) = issues.filter(|_| !others.is_empty()) {
            let deselect: String = others.iter().map(|id| format!(" --deselect {}", shell_quote(id))).collect();
            self.log.record(Event::FailingBefore {
                tests: others,
                why: format!(
                    "they fail with {} and the issue's example with {issue}",
                    kinds.into_iter().collect::<Vec<_>>().join(", ")
                ),
            })?;
            self.plan.command.push_str(&deselect);
        }
        self.adopt(place).await.map(|run| run.map(Some))
    }

    /// Makes `place`'s test, kept, the reproduction: every later run has it first, then the project's
    /// tests. The run of both is what the patches are judged against.
    pub(super) async fn adopt(&mut self, place: Placement) -> Result<Result<TestReport, Outcome>, AgentError> {
        self.plan = place.with_project(&self.plan);
        self.reproduction = Some(place);
        self.tests().await
    }

    /// Has the model write a test that shows the bug, in up to [`reproduce::TRIES`] tries; on success
    /// the test is in the sandbox and the repository. Its calls and test runs belong to iteration 0,
    /// before any patch.
    pub(super) async fn reproduce(&mut self, place: &Placement) -> Result<Result<(), Outcome>, AgentError> {
        let task = self.request.task.clone();
        // The issue's own example, where it raises the error the issue reports, is the test: no
        // model call needed.
        if let Some(test) = place.example_test(&task) {
            match self.try_reproduction(place, 0, test, true).await? {
                Ok(Ok(_)) => return Ok(Ok(())),
                Ok(Err(_)) => {}
                Err(stop) => return Ok(Err(stop)),
            }
        }
        if !place.model_writes() {
            let reason = "the issue's example does not show the bug by itself, and a test for it is written by the \
model only for pytest yet: add a failing test to the repository"
                .to_string();
            return Ok(Err(Outcome::NotReproduced { reason }));
        }
        let mut ask = reproduce::Ask::new(&task, &self.repo, place);
        let mut why = String::new();
        for attempt in 1..=reproduce::TRIES {
            // Each try a step warmer: at a low temperature the same prompt gets the same test.
            let text = match self.ask(ask.prompt(), Some(reproduce::GRAMMAR), attempt, None).await? {
                Answer::Text { text, .. } => text,
                Answer::Stop(outcome) => return Ok(Err(outcome)),
            };
            let Some(test) = reproduce::extract(&text) else {
                why = "the answer holds no test function".into();
                self.log.record(Event::Reproduction {
                    attempt,
                    path: place.path.clone(),
                    test: String::new(),
                    accepted: false,
                    why: why.clone(),
                })?;
                ask.push_rejected(&why, None);
                continue;
            };
            match self.try_reproduction(place, attempt, test, false).await? {
                Ok(Ok(_)) => return Ok(Ok(())),
                Ok(Err((reason, report))) => {
                    ask.push_rejected(&reason, Some(&report));
                    why = reason;
                }
                Err(stop) => return Ok(Err(stop)),
            }
        }
        Ok(Err(Outcome::NotReproduced { reason: why }))
    }

    /// Runs `test` as the reproduction and judges it, repairing what is ours to repair; a kept test is
    /// in the repository. `example`: the issue's own example, kept only when it fails with the errors
    /// the issue names. Its run when kept; `Err((why, its run))` when not.
    async fn try_reproduction(
        &mut self,
        place: &Placement,
        attempt: u32,
        mut test: String,
        example: bool,
    ) -> Result<Result<Result<TestReport, (String, TestReport)>, Outcome>, AgentError> {
        let task = self.request.task.clone();
        loop {
            self.write(&place.path, &test).await?;
            let report = match self.run_plan(&place.alone()).await? {
                Ok(report) => report,
                Err(stop) => return Ok(Err(stop)),
            };
            let mut verdict = reproduce::judge(&test, &report, &task).map(|_| ());
            if example && verdict.is_ok() && !reproduce::raises_the_reported_error(&report, &task) {
                verdict = Err("the issue's example does not fail with the error the issue reports".into());
            }
            // A module of the standard library left unimported is ours to add, and the reported
            // error wrapped in `pytest.raises` ours to unwrap: neither is worth a try.
            let repaired = verdict.as_ref().err().and_then(|_| {
                reproduce::add_missing_import(&test, &report)
                    .or_else(|| reproduce::unwrap_reported_error(&test, &report, &task))
            });
            self.log.record(Event::Reproduction {
                attempt,
                path: place.path.clone(),
                test: test.clone(),
                accepted: verdict.is_ok(),
                why: match (&verdict, &repaired) {
                    (Ok(_), _) => String::new(),
                    (Err(why), Some((_, done))) => format!("{why}; running it again with {done}"),
                    (Err(why), None) => why.clone(),
                },
            })?;
            match (verdict, repaired) {
                (Ok(()), _) => {
                    self.repo.set(&place.path, test);
                    return Ok(Ok(Ok(report)));
                }
                (Err(_), Some((repaired, _))) => test = repaired,
                (Err(why), None) => return Ok(Ok(Err((why, report)))),
            }
        }
    }

    /// After the tests passed with a reproduction: runs it again until it has passed
    /// [`reproduce::STABLE_RUNS`] times in a row. `Ok(None)` when it held, else the run that failed.
    pub(super) async fn stable(&mut self) -> Result<Result<Option<TestReport>, Outcome>, AgentError> {
        let Some(place) = self.reproduction.clone() else { return Ok(Ok(None)) };
        for _ in 1..reproduce::STABLE_RUNS {
            match self.run_plan(&place.alone()).await? {
                Ok(report) if report.ok() => {}
                Ok(report) => return Ok(Ok(Some(report))),
                Err(stop) => return Ok(Err(stop)),
            }
        }
        Ok(Ok(None))
    }
}
