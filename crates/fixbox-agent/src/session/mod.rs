//! The loop: tests once to record what fails, then prompt → streamed answer → one file patch → apply →
//! tests → feedback, until the tests pass or a limit stops it. Every step is an [`Event`].

mod asking;
mod installing;
mod patching;
mod reproduction;
mod rewriting;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fixbox_llm::{Budget, Meter, Router};
use fixbox_patch::{EditFormat, give_up_reason};
use fixbox_sandbox::{Excludes, FileWrite, Sandbox};
use tokio_util::sync::CancellationToken;

use crate::AgentError;
use crate::detect::{TestPlan, detect};
use crate::environment::{self, Environment, Setup};
use crate::event::{Event, EventLog};
use crate::localize;
use crate::outcome::{Finished, Outcome, Timings};
use crate::prompt::{Conversation, after_tests, rejected};
use crate::repo::Repo;
use crate::reproduce::{self, Placement};
use crate::request::FixRequest;
use crate::testrun::{LiveOutput, TestReport};

use self::asking::Answer;
use self::patching::{Applied, Rejected};

/// Where the repository's copy lives in the sandbox.
pub const WORKSPACE: &str = "/workspace";

/// A fix session ready to run: its repository read and its test command known.
#[derive(Debug)]
pub struct Fix {
    request: FixRequest,
    plan: TestPlan,
    repo: Repo,
    /// Its setup, where it has one.
    environment: Option<Environment>,
}

impl Fix {
    pub fn prepare(request: FixRequest) -> Result<Self, AgentError> {
        let plan = match &request.test {
            Some(command) => TestPlan::given(command, &request.repo),
            None => detect(&request.repo)?,
        };
        let repo = Repo::load(&request.repo)?;
        let command = match &request.setup {
            Setup::Detect => environment::install_command(&request.repo, &plan.recipe),
            Setup::Skip => None,
            Setup::Command(command) => Some(command.clone()),
        };
        let environment =
            command.map(|command| Environment { command, archive: None, restore: false, restored_ahead: false });
        Ok(Self { request, plan, repo, environment })
    }

    pub fn plan(&self) -> &TestPlan {
        &self.plan
    }

    /// Keeps what its setup installs in `dir`, for the next session on the same repository and
    /// manifests, and restores what an earlier one kept there instead of installing again.
    pub fn keep_environment_in(&mut self, dir: &std::path::Path) {
        let Ok(recipe) = fixbox_sandbox::Recipe::builtin(&self.plan.recipe) else { return };
        if let Some(environment) = &mut self.environment {
            *environment = Environment::kept_in(dir, &self.request.repo, &environment.command, &recipe.image_tag());
        }
    }

    /// Whether its sandbox starts with network: for a setup to run, not one restored.
    pub fn needs_network(&self) -> bool {
        self.environment.as_ref().is_some_and(|e| !e.restore)
    }

    /// The archive of what an earlier session installed, which this one restores instead of running
    /// its setup.
    pub fn restores(&self) -> Option<&std::path::Path> {
        self.environment.as_ref().filter(|e| e.restore).and_then(|e| e.archive.as_deref())
    }

    /// Its sandbox holds what [`Fix::restores`] names already (a warm pool restored it): the session
    /// says so instead of restoring it again.
    pub fn restored_ahead(&mut self) {
        if let Some(environment) = self.environment.as_mut().filter(|e| e.restore) {
            environment.restored_ahead = true;
        }
    }

    /// The session's title in the history: "fix: " and the task's first 70 characters.
    pub fn title(&self) -> String {
        format!("fix: {}", self.request.task.chars().take(70).collect::<String>())
    }

    /// Runs the session in `sandbox` (made from `image` in `sandbox_time`, which counts as the
    /// session's), asking `router`, until an [`Outcome`]; removes the sandbox. An `Err` is only a
    /// failure to record events: anything else ends the session with [`Outcome::Error`].
    pub async fn run<S: Sandbox>(
        self,
        sandbox: S,
        image: &str,
        sandbox_time: Duration,
        router: &Router,
        log: &EventLog,
        cancel: CancellationToken,
    ) -> Result<Finished, AgentError> {
        let started = Instant::now();
        let ran = self.run_in(&sandbox, image, sandbox_time, router, log, cancel, started).await;
        // Removed however the session ended, a store that cannot record included.
        if let Err(err) = sandbox.destroy().await {
            tracing::warn!(%err, "could not remove the sandbox; the reaper removes it at the next start");
        }
        let (finished, work_ended) = ran?;
        let mut timings = finished.timings;
        timings.sandbox_ms += ms(work_ended.elapsed());
        timings.wall_ms = ms(started.elapsed()) + ms(sandbox_time);
        let counted = timings.model_ms + timings.tests_ms + timings.setup_ms + timings.localize_ms + timings.sandbox_ms;
        timings.own_ms = (timings.wall_ms - counted).max(0.0);
        let finished = Finished { timings, ..finished };
        log.record(Event::SessionFinished {
            outcome: finished.outcome.clone(),
            iterations: finished.iterations,
            diff: finished.diff.clone(),
            test_diff: finished.test_diff.clone(),
            totals: finished.totals.clone(),
            timings,
        })?;
        // Finished means on disk: whoever reads the store next sees the whole session.
        log.flush().await?;
        Ok(finished)
    }

    /// [`Fix::run`] up to removing the sandbox: the session as it ended, and when its work did.
    #[expect(clippy::too_many_arguments, reason = "run's arguments, passed on")]
    async fn run_in<S: Sandbox>(
        self,
        sandbox: &S,
        image: &str,
        sandbox_time: Duration,
        router: &Router,
        log: &EventLog,
        cancel: CancellationToken,
        started: Instant,
    ) -> Result<(Finished, Instant), AgentError> {
        let format = self.request.model.edit_format.unwrap_or_else(|| {
            let model = router
                .routes(&self.request.model.task)
                .ok()
                .and_then(|r| r.first())
                .map(|r| r.client.model().to_string());
            EditFormat::for_model(model.as_deref().unwrap_or(""))
        });
        log.record(Event::SessionStarted {
            repo: self.request.repo.display().to_string(),
            task: self.request.task.clone(),
            test_command: self.plan.command.clone(),
            model_task: self.request.model.task.clone(),
            edit_format: format,
            limits: self.request.limits.clone(),
            image: image.to_string(),
        })?;
        let meter = Arc::new(Meter::new(Budget {
            max_cost_usd: self.request.limits.budget_usd,
            max_tokens: self.request.limits.budget_tokens,
        }));
        let mut run = Run {
            request: &self.request,
            environment: self.environment.as_ref(),
            plan: self.plan.clone(),
            reproduction: None,
            repo: self.repo,
            format,
            router,
            log,
            sandbox,
            meter: meter.clone(),
            cancel,
            deadline: started + Duration::from_secs(self.request.limits.wall_time_s),
            timings: Timings { sandbox_ms: ms(sandbox_time), ..Timings::default() },
            iteration: 0,
        };
        let outcome = match run.go().await {
            Ok(outcome) => outcome,
            Err(AgentError::Store(err)) => return Err(AgentError::Store(err)),
            Err(err) => Outcome::Error { message: err.to_string() },
        };
        let (iterations, repo, timings) = (run.iteration, run.repo, run.timings);
        // The new test is its own part of the result: the user may keep it or drop it.
        let test_paths: Vec<&str> = run.reproduction.iter().map(|r| r.path.as_str()).collect();
        let (diff, test_diff) = (repo.diff_except(&test_paths), repo.diff_only(&test_paths));
        Ok((Finished { outcome, iterations, diff, test_diff, totals: meter.totals(), timings }, Instant::now()))
    }
}

/// One session's running state.
struct Run<'a, S> {
    request: &'a FixRequest,
    environment: Option<&'a Environment>,
    /// The tests each iteration runs: the request's, and the reproduction once there is one.
    plan: TestPlan,
    /// The new test that shows the bug, where the project's tests did not.
    reproduction: Option<Placement>,
    repo: Repo,
    format: EditFormat,
    router: &'a Router,
    log: &'a EventLog,
    sandbox: &'a S,
    meter: Arc<Meter>,
    cancel: CancellationToken,
    deadline: Instant,
    timings: Timings,
    iteration: u32,
}

impl<S: Sandbox> Run<'_, S> {
    async fn go(&mut self) -> Result<Outcome, AgentError> {
        let copy = Instant::now();
        let copied = self
            .sandbox
            .copy_in(
                &self.request.repo,
                WORKSPACE,
                &Excludes { shared: self.request.share.clone(), ..Excludes::default() },
            )
            .await
            .map_err(AgentError::sandbox("copy the repository in"))?;
        self.timings.sandbox_ms += ms(copy.elapsed());
        self.log.record(Event::SandboxReady {
            sandbox: self.sandbox.id().to_string(),
            files: copied.files,
            bytes: copied.bytes,
        })?;
        if let Some(environment) = self.environment
            && let Err(stop) = self.set_up(environment).await?
        {
            return Ok(stop);
        }

        let mut baseline = match self.tests().await? {
            Ok(report) => report,
            Err(stop) => return Ok(stop),
        };
        // The environment's failure is not the bug: handed to the model, it would patch the code
        // against an error no patch fixes.
        if let Some(reason) = baseline.cannot_run(self.plan.runner, |module| self.repo.has_module(module)) {
            let message = format!("the tests cannot run before any change, so no patch could be judged: {reason}");
            return Ok(Outcome::Error { message });
        }
        if !baseline.ok()
            && let Some(kept) = match self.set_aside(&baseline).await? {
                Ok(kept) => kept,
                Err(stop) => return Ok(stop),
            }
        {
            baseline = kept;
        }
        if baseline.ok() {
            let Some(place) = reproduce::place(&self.plan, &self.repo) else {
                return Ok(Outcome::AlreadyPassing);
            };
            if let Err(stop) = self.reproduce(&place).await? {
                return Ok(stop);
            }
            // What the patches are judged against: the project's tests passing, the new one failing.
            baseline = match self.adopt(place).await? {
                Ok(report) => report,
                Err(stop) => return Ok(stop),
            };
        }
        if self.format == EditFormat::Rewrite {
            let executed = self.trace(&baseline).await?;
            let ranking = Instant::now();
            let regions = localize::regions(&self.repo, &self.request.task, &baseline.output, &executed);
            self.timings.localize_ms += ms(ranking.elapsed());
            if !regions.is_empty() {
                self.log.record(Event::Localized { regions: regions.clone() })?;
                return self.rewrite(&baseline, &regions).await;
            }
            // Nothing points at the code: the model finds the place itself, in blocks.
            self.format = EditFormat::SearchReplace;
        }
        let context = self
            .router
            .routes(&self.request.model.task)
            .ok()
            .and_then(|routes| routes.first().and_then(|r| r.context_window))
            .unwrap_or(self.request.model.context_window);
        let budget = u64::from(context).saturating_sub(u64::from(self.request.model.max_tokens) + 64);
        let mut conversation =
            Conversation::new(self.format, &self.repo, &self.request.task, &self.plan.command, &baseline, budget);
        let output_chars = (budget as usize).saturating_mul(4) / 6;
        let mut fingerprints: Vec<String> = Vec::new();

        while self.iteration < self.request.limits.max_iterations {
            self.iteration += 1;
            let grammar = self.format.grammar();
            let prompt = conversation.prompt();
            let estimate = prompt.tokens_estimate;
            let (text, parser) = match self.ask(prompt, grammar, repeats(&fingerprints), None).await? {
                Answer::Text { text, parser, prompt_tokens } => {
                    conversation.observe(estimate, prompt_tokens);
                    (text, parser)
                }
                Answer::Stop(outcome) => return Ok(outcome),
            };
            let (feedback, fingerprint, result) = match self.patch(parser, &text)? {
                Err(Rejected { path, feedback, fingerprint }) => {
                    if let Some(reason) = give_up_reason(&text) {
                        return Ok(Outcome::GaveUp { reason });
                    }
                    self.log.record(Event::PatchRejected {
                        iteration: self.iteration,
                        path: path.clone(),
                        feedback: feedback.clone(),
                    })?;
                    (
                        rejected(self.format, &feedback, path.as_deref(), &self.repo),
                        fingerprint,
                        "patch rejected".to_string(),
                    )
                }
                Ok(Applied { path, content, before }) => {
                    self.write(&path, &content).await?;
                    let report = match self.tests().await? {
                        Ok(report) => report,
                        Err(stop) => return Ok(stop),
                    };
                    let regressions = report.regressions(&baseline);
                    if report.ok() && regressions.is_empty() {
                        match self.stable().await? {
                            Ok(None) => {
                                self.end_iteration("fixed")?;
                                return Ok(Outcome::Fixed);
                            }
                            Ok(Some(flaky)) => {
                                let feedback = format!(
                                    "Your edit to {path} was applied and the tests passed, but the test that shows the bug failed when run again:\n```\n{}\n```\nMake the fix hold on every run. {}",
                                    crate::testrun::failure_text(&flaky.output, output_chars),
                                    self.format.reminder(&path)
                                );
                                (feedback, flaky.fingerprint(), "passed once, then failed".to_string())
                            }
                            Err(stop) => return Ok(stop),
                        }
                    } else {
                        // An edit that breaks tests that passed is undone: the next one starts from
                        // code that worked, and the session's change never keeps it.
                        let undone = match before.filter(|_| !regressions.is_empty()) {
                            Some(before) => {
                                self.write(&path, &before).await?;
                                self.repo.set(&path, before);
                                self.log.record(Event::PatchUndone {
                                    iteration: self.iteration,
                                    path: path.clone(),
                                    broke: regressions.clone(),
                                })?;
                                true
                            }
                            None => false,
                        };
                        let summary = report.summary();
                        let mut feedback =
                            after_tests(self.format, &path, &self.repo, &report, &regressions, output_chars);
                        if undone {
                            feedback = feedback.replacen(
                                " was applied. ",
                                " was undone, as it broke tests that passed; the file is as it was before it. ",
                                1,
                            );
                        }
                        let result = if undone { format!("{}, undone", summary.line()) } else { summary.line() };
                        (feedback, report.fingerprint(), result)
                    }
                }
            };
            self.end_iteration(&result)?;
            conversation.push_turn(&text, feedback);
            fingerprints.push(fingerprint);
            let same = self.request.limits.same_failure;
            if same > 0 && repeats(&fingerprints) >= same {
                return Ok(Outcome::Stuck { failure: result });
            }
        }
        Ok(Outcome::MaxIterations)
    }

    fn end_iteration(&self, result: &str) -> Result<(), AgentError> {
        self.log.record(Event::Iteration {
            iteration: self.iteration,
            result: result.to_string(),
            totals: self.meter.totals(),
        })?;
        Ok(())
    }

    /// Runs the session's tests (unless cancelled or out of time) and records the run.
    async fn tests(&mut self) -> Result<Result<TestReport, Outcome>, AgentError> {
        let plan = self.plan.clone();
        self.run_plan(&plan).await
    }

    /// Runs `plan` (unless cancelled or out of time) and records the run.
    async fn run_plan(&mut self, plan: &TestPlan) -> Result<Result<TestReport, Outcome>, AgentError> {
        let timeout = Duration::from_secs(self.request.limits.test_timeout_s);
        let started = Instant::now();
        let (mut live, sender) = LiveOutput::new();
        let run = TestReport::run_live(self.sandbox, plan, timeout, sender);
        tokio::pin!(run);
        let iteration = self.iteration;
        let ended = loop {
            tokio::select! {
                report = &mut run => break Ok(report),
                Some(text) = live.next() => {
                    self.log.record(Event::TestsOutput { iteration, text })?;
                }
                () = self.cancel.cancelled() => break Err(Outcome::Cancelled),
                () = tokio::time::sleep_until(self.deadline.into()) => break Err(Outcome::WallTime),
            }
        };
        // A run cut off is the tests' time too.
        self.timings.tests_ms += ms(started.elapsed());
        let report = match ended {
            Ok(report) => report,
            Err(stop) => return Ok(Err(stop)),
        };
        while let Some(text) = live.next().await {
            self.log.record(Event::TestsOutput { iteration, text })?;
        }
        let report = report?;
        self.log.record(Event::TestsRun { iteration: self.iteration, summary: report.summary() })?;
        Ok(Ok(report))
    }

    async fn write(&mut self, path: &str, content: &str) -> Result<(), AgentError> {
        let started = Instant::now();
        let file = FileWrite {
            path: path.to_string(),
            content: content.as_bytes().to_vec(),
            executable: self.repo.is_executable(path),
        };
        self.sandbox.write_files(WORKSPACE, &[file]).await.map_err(AgentError::sandbox("write a file"))?;
        self.timings.sandbox_ms += ms(started.elapsed());
        Ok(())
    }
}

/// How many of the last iterations in a row ended with the latest failure.
fn repeats(fingerprints: &[String]) -> u32 {
    let Some(last) = fingerprints.last() else { return 0 };
    fingerprints.iter().rev().take_while(|f| *f == last).count() as u32
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
