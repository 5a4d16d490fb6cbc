//! The loop: tests once to record what fails, then prompt → streamed answer → one file patch → apply →
//! tests → feedback, until the tests pass or a limit stops it. Every step is an [`Event`].

mod installing;
mod reproduction;
mod rewriting;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fixbox_llm::{Budget, CallEvent, ChatRequest, ErrorKind, FinishReason, LlmError, Meter, Router};
use fixbox_patch::{ApplyOptions, EditFormat, FilePatch, Hunk, ParseError, PatchParser, apply, give_up_reason};
use fixbox_sandbox::{Excludes, FileWrite, Sandbox};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::AgentError;
use crate::detect::{TestPlan, detect};
use crate::environment::{self, Environment, Setup};
use crate::event::{Event, EventLog};
use crate::localize;
use crate::outcome::{Finished, Outcome, Timings};
use crate::prompt::{Conversation, Prompt, after_tests, rejected};
use crate::repo::{Repo, file_diff, inside, is_test_file, safe_path};
use crate::reproduce::{self, Placement};
use crate::request::FixRequest;
use crate::testrun::{LiveOutput, TestReport};

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
        let environment = command.map(|command| Environment { command, archive: None, restore: false });
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
        timings.own_ms = (timings.wall_ms - timings.model_ms - timings.tests_ms - timings.sandbox_ms).max(0.0);
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

/// What one model call gave.
enum Answer {
    /// `prompt_tokens`: the prompt as the engine counted it (0 when it did not say).
    Text {
        text: String,
        parser: Box<PatchParser>,
        prompt_tokens: u64,
    },
    Stop(Outcome),
}

/// A patch applied to its file: the file's new text, and its text before (`None`: a new file).
struct Applied {
    path: String,
    content: String,
    before: Option<String>,
}

/// A patch that could not be used, and what the model is told.
struct Rejected {
    path: Option<String>,
    feedback: String,
    /// Identifies the failure for the stuck-loop check.
    fingerprint: String,
}

impl Rejected {
    fn new(path: Option<&str>, feedback: impl Into<String>) -> Self {
        let feedback = feedback.into();
        Self { path: path.map(str::to_string), fingerprint: format!("rejected {path:?}: {feedback}"), feedback }
    }
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
            let regions = localize::regions(&self.repo, &self.request.task, &baseline.output, &executed);
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
        let report = loop {
            tokio::select! {
                report = &mut run => break report,
                Some(text) = live.next() => {
                    self.log.record(Event::TestsOutput { iteration, text })?;
                }
                () = self.cancel.cancelled() => return Ok(Err(Outcome::Cancelled)),
                () = tokio::time::sleep_until(self.deadline.into()) => return Ok(Err(Outcome::WallTime)),
            }
        };
        self.timings.tests_ms += ms(started.elapsed());
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

    /// One streamed model call; its patch lines become events as they arrive. `grammar` constrains
    /// the answer where the routes take one.
    /// `repeats`: how many iterations in a row ended with the same failure. Each raises the temperature
    /// a step: at a low temperature a small model given the same prompt gives the same answer.
    /// `max_tokens`: the answer's room where less than the settings'.
    async fn ask(
        &mut self,
        prompt: Prompt,
        grammar: Option<&str>,
        repeats: u32,
        max_tokens: Option<u64>,
    ) -> Result<Answer, AgentError> {
        if self.cancel.is_cancelled() {
            return Ok(Answer::Stop(Outcome::Cancelled));
        }
        self.log.record(Event::ModelStarted {
            iteration: self.iteration,
            prompt_tokens_estimate: prompt.tokens_estimate,
            trimmed_turns: prompt.trimmed_turns,
        })?;
        let settings = &self.request.model;
        let mut request = ChatRequest::new(prompt.messages);
        let bumped = settings.temperature + TEMPERATURE_STEP * repeats.saturating_sub(1) as f32;
        request.sampling.temperature = Some(bumped.min(MAX_TEMPERATURE).max(settings.temperature));
        request.sampling.top_p = Some(settings.top_p);
        let room = max_tokens.map_or(settings.max_tokens, |room| room.min(u64::from(settings.max_tokens)) as u32);
        request.sampling.max_tokens = Some(room);
        request.sampling.seed = settings.seed;
        // A search/replace answer is one block: the server stops at its end instead of the model
        // going on to explain itself.
        let block_end = (self.format == EditFormat::SearchReplace).then(|| ">>>>>>> REPLACE".to_string());
        request.sampling.stop = block_end.into_iter().chain(settings.stop.iter().cloned()).collect();
        let local = self.router.routes(&settings.task).is_ok_and(|routes| routes.iter().all(|r| r.local));
        if let Some(grammar) = grammar.filter(|_| settings.grammar && local) {
            request.sampling.extra.insert("grammar".into(), grammar.into());
        }

        let started = Instant::now();
        let mut stream = self.router.call(&settings.task, request, self.meter.clone());
        let mut parser = PatchParser::new(self.format);
        let mut answer = None;
        // Parsing the stream and writing its events is our work, not the model's: it is timed apart
        // and left out of the model's time.
        let mut handling = Duration::ZERO;
        let outcome = loop {
            let next = tokio::select! {
                next = stream.next() => next,
                () = self.cancel.cancelled() => break Some(Outcome::Cancelled),
                () = tokio::time::sleep_until(self.deadline.into()) => break Some(Outcome::WallTime),
            };
            let handled = Instant::now();
            match next {
                Some(Ok(CallEvent::Delta { text })) => {
                    for delta in parser.push(&text) {
                        self.log.record(Event::PatchDelta { iteration: self.iteration, delta })?;
                    }
                }
                Some(Ok(CallEvent::Discard { reason, .. })) => {
                    parser = PatchParser::new(self.format);
                    self.log.record(Event::ModelDiscard { iteration: self.iteration, reason })?;
                }
                Some(Ok(CallEvent::Attempt(attempt))) => {
                    self.log.record(Event::ModelAttempt { iteration: self.iteration, attempt })?;
                }
                Some(Ok(CallEvent::Done(record))) => {
                    answer = Some((record.text.clone(), record.finish_reason, record.usage.prompt));
                    self.log.record(Event::ModelCall { iteration: self.iteration, record })?;
                }
                Some(Err(err)) => break Some(model_failed(err)),
                None => break None,
            }
            handling += handled.elapsed();
        };
        // Dropping the stream cancels the call.
        drop(stream);
        self.timings.model_ms += ms(started.elapsed().saturating_sub(handling));
        if let Some(outcome) = outcome {
            return Ok(Answer::Stop(outcome));
        }
        let Some((mut text, finish, prompt_tokens)) = answer else {
            return Ok(Answer::Stop(Outcome::Error { message: "the model's answer ended without its end".into() }));
        };
        if finish == FinishReason::Stop && self.format == EditFormat::SearchReplace && parser.in_replace() {
            // The server stopped at the block's end marker, which it leaves out: put it back.
            let marker = if text.ends_with('\n') { ">>>>>>> REPLACE\n" } else { "\n>>>>>>> REPLACE\n" };
            text.push_str(marker);
            for delta in parser.push(marker) {
                self.log.record(Event::PatchDelta { iteration: self.iteration, delta })?;
            }
        }
        // The last line may have no newline (a diff that ends there): its deltas come only now.
        for delta in parser.close() {
            self.log.record(Event::PatchDelta { iteration: self.iteration, delta })?;
        }
        Ok(Answer::Text { text, parser: Box::new(parser), prompt_tokens })
    }

    /// The answer's patch applied to its file; or why not.
    fn patch(&mut self, parser: Box<PatchParser>, text: &str) -> Result<Result<Applied, Rejected>, AgentError> {
        let patch = match parser.finish() {
            Ok(patch) => patch,
            // Small models often answer with the whole file instead of an edit: take it as one.
            Err(ParseError::NoPatch) => match whole_file(text, &self.repo) {
                Some(patch) => patch,
                None => return Ok(Err(Rejected::new(None, ParseError::NoPatch.feedback(self.format)))),
            },
            Err(err) => return Ok(Err(Rejected::new(None, err.feedback(self.format)))),
        };
        let path = match self.resolve(&patch) {
            Ok(path) => path,
            Err(rejected) => return Ok(Err(rejected)),
        };
        if let Err(why) = inside(self.repo.root(), &path) {
            return Ok(Err(Rejected::new(Some(&path), format!("{why}: edit the repository's own files."))));
        }
        if is_test_file(&path) && !self.request.allow_test_edits {
            return Ok(Err(Rejected::new(
                Some(&path),
                format!("{path} is a test file, and the tests must not change: fix the code they test."),
            )));
        }
        let before = self.repo.current(&path).map(str::to_string);
        if before.is_none() && patch.hunks.iter().any(|h| !h.search.is_empty()) {
            return Ok(Err(Rejected::new(
                Some(&path),
                format!("There is no file {path}. Use a path from the repository map."),
            )));
        }
        let options = ApplyOptions { fuzzy_threshold: self.request.model.fuzzy_threshold };
        if let [hunk] = patch.hunks.as_slice()
            && before.as_deref() == Some(hunk.replace.as_str())
        {
            return Ok(Err(Rejected::new(
                Some(&path),
                format!(
                    "Your answer repeats {path} without a change. Change the lines that cause the failure, as an edit block."
                ),
            )));
        }
        let applied = match apply(before.as_deref().unwrap_or(""), &patch.hunks, &options) {
            Ok(applied) => applied,
            Err(err) => return Ok(Err(Rejected::new(Some(&path), err.feedback_in(&path, self.format)))),
        };
        let diff = file_diff(&path, before.as_deref(), Some(&applied.content));
        self.log.record(Event::PatchApplied {
            iteration: self.iteration,
            path: path.clone(),
            matches: applied.matches,
            diff,
        })?;
        self.repo.set(&path, applied.content.clone());
        Ok(Ok(Applied { path, content: applied.content, before }))
    }

    /// The repository file a patch is for: the one it names (also by a shorter path, `pages.py` for
    /// `src/pages.py`), or when it names none, the one file its search text is in.
    fn resolve(&self, patch: &FilePatch) -> Result<String, Rejected> {
        // The one file holding the search lines (indentation aside), for a patch that names no file
        // or one that does not exist (a small model may copy a placeholder path).
        let holder = || {
            let search = patch.hunks.iter().map(|h| h.search.as_str()).find(|s| !s.trim().is_empty())?;
            let wanted: Vec<&str> = search.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            let holding: Vec<&str> = self
                .repo
                .paths()
                .filter(|p| {
                    let lines: Vec<&str> = self.repo.current(p).unwrap_or("").lines().map(str::trim).collect();
                    wanted.iter().all(|l| lines.contains(l))
                })
                .collect();
            match holding.as_slice() {
                [one] => Some(one.to_string()),
                _ => None,
            }
        };
        let Some(named) = patch.path.as_deref() else {
            return holder().ok_or_else(|| {
                Rejected::new(
                    None,
                    "Your edit does not name its file: write the file's path on the line before the block.",
                )
            });
        };
        let Some(path) = safe_path(named) else {
            return Err(Rejected::new(
                Some(named),
                format!("{named} is outside the repository: use a path from the repository map."),
            ));
        };
        if self.repo.current(&path).is_some() {
            return Ok(path);
        }
        let suffix = format!("/{path}");
        let longer: Vec<&str> = self.repo.paths().filter(|p| p.ends_with(&suffix)).collect();
        Ok(match longer.as_slice() {
            [one] => one.to_string(),
            _ => holder().unwrap_or(path),
        })
    }
}

/// An answer that is a file's path and then its whole new text in a fence, as an edit replacing the
/// file; `None` unless the path is a file of the repository.
fn whole_file(text: &str, repo: &Repo) -> Option<FilePatch> {
    let lines: Vec<&str> = text.lines().collect();
    let is_fence = |l: &str| l.trim_start().starts_with("```") || l.trim_start().starts_with("~~~");
    let open = lines.iter().position(|l| is_fence(l))?;
    let close = open + 1 + lines[open + 1..].iter().position(|l| is_fence(l))?;
    let named = lines.get(open.checked_sub(1)?)?.trim().trim_matches(|c: char| "*#`'\": ".contains(c));
    let named = named.strip_prefix("File").map_or(named, |rest| rest.trim_start_matches([':', ' ']));
    let path = safe_path(named)?;
    let current = repo.current(&path)?;
    let mut content: String = lines[open + 1..close].iter().map(|l| format!("{l}\n")).collect();
    if !current.ends_with('\n') {
        content.pop();
    }
    Some(FilePatch { path: Some(path), hunks: vec![Hunk { search: current.to_string(), replace: content }] })
}

/// How much a repeated failure raises the temperature, and the most it gets.
const TEMPERATURE_STEP: f32 = 0.3;
const MAX_TEMPERATURE: f32 = 1.0;

/// How many of the last iterations in a row ended with the latest failure.
fn repeats(fingerprints: &[String]) -> u32 {
    let Some(last) = fingerprints.last() else { return 0 };
    fingerprints.iter().rev().take_while(|f| *f == last).count() as u32
}

fn model_failed(err: LlmError) -> Outcome {
    match err.kind() {
        ErrorKind::Budget => Outcome::Budget { message: err.to_string() },
        _ => Outcome::Error { message: format!("the model call failed: {err}") },
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
