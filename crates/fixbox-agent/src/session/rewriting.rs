//! The loop in [`EditFormat::Rewrite`](fixbox_patch::EditFormat::Rewrite): regions of code, most
//! likely first, each rewritten by the model and judged by the tests.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use fixbox_patch::{HunkMatch, MatchKind};
use fixbox_sandbox::{ExecRequest, Sandbox};

use super::{Answer, Run, WORKSPACE, ms};
use crate::AgentError;
use crate::event::Event;
use crate::localize::{self, Region};
use crate::outcome::Outcome;
use crate::repo::file_diff;
use crate::rewrite::{self, Rewritten, Try};
use crate::testrun::TestReport;

/// Failing tests traced at most, to find the functions they call.
const TRACED_TESTS: usize = 10;

impl<S: Sandbox> Run<'_, S> {
    /// The functions the failing tests (the reproduction, where there is one) call, from a run under
    /// a profiler; empty where the runner is not pytest or the run says nothing. Its time is
    /// localization's.
    pub(super) async fn trace(&mut self, baseline: &TestReport) -> Result<localize::Executed, AgentError> {
        if self.plan.runner != crate::detect::Runner::Pytest {
            return Ok(localize::Executed::default());
        }
        let targets: Vec<String> = match &self.reproduction {
            Some(place) => vec![place.path.clone()],
            None => baseline.failing().into_iter().take(TRACED_TESTS).collect(),
        };
        let started = Instant::now();
        let mut request = ExecRequest::shell(localize::trace_command(WORKSPACE, &targets))
            .hard_timeout(Duration::from_secs(self.request.limits.test_timeout_s));
        request.env = self.plan.runner.env();
        let output = match self.sandbox.exec(request).await {
            Ok(running) => running.finish().await.map(|o| o.stdout).unwrap_or_default(),
            Err(_) => String::new(),
        };
        self.timings.localize_ms += ms(started.elapsed());
        Ok(localize::Executed::read(&output))
    }

    /// The loop in [`EditFormat::Rewrite`]: each iteration the model rewrites one of `regions` (most
    /// likely first), in the order of a [`rewrite::Schedule`], and the tests judge it. A rewrite that
    /// does not fix the failure is undone, so every try starts from the code at base. An answer that
    /// brings no new change (it changes nothing, makes a change already tested, or puts other code in
    /// the function's place) is no iteration and runs no test. Each ask of a region is warmer than
    /// its last.
    pub(super) async fn rewrite(&mut self, baseline: &TestReport, regions: &[Region]) -> Result<Outcome, AgentError> {
        let mut tries: Vec<Vec<Try>> = vec![Vec::new(); regions.len()];
        // Times each region was asked for: each raises the temperature, or a region asked again
        // after an unchanged answer gets the same one.
        let mut asked = vec![0u32; regions.len()];
        // Regions an answer gave back unchanged: the next ask of each says so.
        let mut echoed = vec![false; regions.len()];
        // Answers in a row that brought no new change to test, and the changes tested, by iteration.
        let mut idle = 0;
        let mut tried: HashMap<u64, u32> = HashMap::new();
        let mut schedule = rewrite::Schedule::new(regions.len());
        while self.iteration < self.request.limits.max_iterations {
            let at = schedule.next().unwrap_or(0);
            if idle >= rewrite::IDLE_ROUNDS * regions.len() {
                let shown = match regions.len() {
                    1 => "the region".to_string(),
                    n => format!("any of the {n} regions"),
                };
                let failure = format!(
                    "the model found no new change for {shown} it was shown: {idle} answers in a row changed nothing, repeated an earlier change or put other code in the function's place"
                );
                return Ok(Outcome::Stuck { failure });
            }
            self.iteration += 1;
            let region = &regions[at];
            let prompt =
                rewrite::prompt(&self.request.task, &baseline.output, &self.repo, region, &tries[at], echoed[at]);
            let before = self.repo.current(&region.path).unwrap_or("").to_string();
            // Room for the region again and a few lines more: a small model otherwise writes on.
            let room = fixbox_llm::estimate_tokens(&region.text(&before)) * 3 / 2 + 128;
            asked[at] += 1;
            let text = match self.ask(prompt, self.format.grammar(), asked[at], Some(room)).await? {
                Answer::Text { text, .. } => text,
                Answer::Stop(outcome) => return Ok(outcome),
            };
            let rejected = match region.replace(&before, &rewrite::extract(&text)) {
                Rewritten::Changed(after) => match tried.get(&fingerprint(&region.path, &after)) {
                    Some(earlier) => Err(format!("The answer made the change of iteration {earlier} again.")),
                    None => Ok(after),
                },
                Rewritten::Unchanged => {
                    echoed[at] = true;
                    Err(format!("The answer left {} as it was: the model sees no bug there.", region.label()))
                }
                Rewritten::Misshapen(why) => Err(format!("Not applied to {}: {why}.", region.label())),
            };
            let after = match rejected {
                Ok(after) => after,
                Err(feedback) => {
                    self.log.record(Event::PatchRejected {
                        iteration: self.iteration,
                        path: Some(region.path.clone()),
                        feedback,
                    })?;
                    // No new patch, so no iteration: the next answer is this iteration's. Asking costs
                    // seconds, and the rounds over the regions bound it.
                    self.iteration -= 1;
                    idle += 1;
                    continue;
                }
            };
            tried.insert(fingerprint(&region.path, &after), self.iteration);
            idle = 0;
            let path = region.path.clone();
            let diff = file_diff(&path, Some(&before), Some(&after));
            let matches =
                vec![HunkMatch { hunk: 0, kind: MatchKind::Exact, first_line: region.start + 1, similarity: 1.0 }];
            self.log.record(Event::PatchApplied { iteration: self.iteration, path: path.clone(), matches, diff })?;
            self.write(&path, &after).await?;
            self.repo.set(&path, after.clone());
            let report = match self.tests().await? {
                Ok(report) => report,
                Err(stop) => {
                    // Out of time or cancelled before the tests judged this try: the session leaves
                    // what was tested (a try can hang the tests, and the judge of the eval after it).
                    self.repo.set(&path, before);
                    self.log.record(Event::PatchUndone { iteration: self.iteration, path, broke: Vec::new() })?;
                    return Ok(stop);
                }
            };
            let regressions = report.regressions(baseline);
            let output = if report.ok() && regressions.is_empty() {
                match self.stable().await? {
                    Ok(None) => {
                        self.end_iteration("fixed")?;
                        return Ok(Outcome::Fixed);
                    }
                    Ok(Some(flaky)) => flaky.output,
                    Err(stop) => return Ok(stop),
                }
            } else {
                report.output.clone()
            };
            self.write(&path, &before).await?;
            self.repo.set(&path, before.clone());
            self.log.record(Event::PatchUndone {
                iteration: self.iteration,
                path: path.clone(),
                broke: regressions.clone(),
            })?;
            self.end_iteration(&format!("{}, undone", report.summary().line()))?;
            // Where only tests that passed before fail, the issue's own test passed (not where none
            // is read as failing: a run that could not collect them).
            let failing = report.failing();
            let only_broke = !failing.is_empty() && failing.iter().all(|id| regressions.contains(id));
            let broke = if only_broke { regressions } else { Vec::new() };
            tries[at].push(Try { diff: rewrite::try_diff(&path, &before, &after), output, broke });
        }
        Ok(Outcome::MaxIterations)
    }
}

/// Which change a rewrite made: every try starts from the code at base, so its file says it all.
fn fingerprint(path: &str, after: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (path, after).hash(&mut hasher);
    hasher.finish()
}
