//! An evaluation run: each task's session (or the task's own fix, with `gold`), then its judgement, kept
//! as one JSON file per task so that a run stopped half way goes on where it stopped.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fixbox_agent::{Fix, FixRequest, Limits, ModelSettings, Outcome, SessionSetup, SessionUpdate, Sessions, Setup};
use fixbox_llm::Router;
use fixbox_sandbox::HostAddress;
use fixbox_store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::checkout::{apply, check_out, find_repo};
use crate::judge::judge;
use crate::report::Report;
use crate::result::{Category, TaskResult};
use crate::task_env::TaskEnv;
use crate::{EvalError, Mode, Task};

/// An evaluation over a dataset.
#[derive(Debug, Clone)]
pub struct EvalRun {
    /// Where each task's repository is (see [`find_repo`]).
    pub repos: PathBuf,
    /// Where results, predictions and the report go.
    pub out: PathBuf,
    pub mode: Mode,
    /// Tasks run at once.
    pub jobs: usize,
    /// The name predictions carry (`model_name_or_path`).
    pub model_name: String,
    pub model: ModelSettings,
    pub limits: Limits,
    pub sandbox: fixbox_sandbox::Limits,
    /// The sandbox hosts the tasks' sandboxes run on, taken in turn; none: the local one.
    pub hosts: Vec<HostAddress>,
}

/// What an evaluation reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Tasks to run, and tasks a previous run finished.
    Planned {
        total: usize,
        done_before: usize,
    },
    Started {
        instance_id: String,
    },
    /// A task's session is recorded under this id.
    Session {
        instance_id: String,
        session: String,
    },
    Finished {
        result: Box<TaskResult>,
    },
    /// The model server stopped answering during this task's session: the run waits for it, then
    /// runs the task again.
    EngineDown {
        instance_id: String,
    },
    /// The model server answers again.
    EngineBack,
}

/// The model `task`'s first route asks, the name predictions carry; `task` itself when it has none.
pub fn model_name(router: &Router, task: &str) -> String {
    router
        .routes(task)
        .ok()
        .and_then(|routes| routes.first().map(|r| r.client.model().to_string()))
        .unwrap_or_else(|| task.to_string())
}

/// How often a run waiting for the model server asks whether it is back.
const ENGINE_POLL: Duration = Duration::from_secs(5);

impl EvalRun {
    /// The file a task's result is kept in.
    pub fn result_path(&self, instance_id: &str) -> PathBuf {
        self.out.join("results").join(format!("{instance_id}.json"))
    }

    /// Runs every task without a result yet, `jobs` at a time, until all are done or `stop` is
    /// cancelled (what is done is kept). Returns every task's result, from this run and before.
    ///
    /// A task whose session lost the model server is marked [`Category::EngineDown`]; the run waits
    /// until the server answers again and then runs it once more.
    pub async fn run(
        &self,
        tasks: &[Task],
        store: Arc<Store>,
        router: Option<Router>,
        progress: mpsc::UnboundedSender<Progress>,
        stop: CancellationToken,
    ) -> Result<Vec<TaskResult>, EvalError> {
        std::fs::create_dir_all(self.out.join("results"))
            .map_err(|source| EvalError::Write { path: self.out.clone(), source })?;
        let mut queue: VecDeque<(Task, bool)> =
            tasks.iter().filter(|t| !self.is_done(&t.instance_id)).map(|t| (t.clone(), false)).collect();
        let _ = progress.send(Progress::Planned { total: tasks.len(), done_before: tasks.len() - queue.len() });
        let jobs = self.jobs.max(1);
        // The tasks' sessions restore their environments without network: a sandbox from the warm
        // pool each.
        let sessions = Sessions::new(jobs).with_warm_pools(1);
        let mut running = tokio::task::JoinSet::new();
        let hosts = if self.hosts.is_empty() { vec![HostAddress::Local] } else { self.hosts.clone() };
        let mut hosts = hosts.into_iter().cycle();
        loop {
            while running.len() < jobs && !stop.is_cancelled() {
                let Some((task, again)) = queue.pop_front() else { break };
                let docker = hosts.next().unwrap_or_default();
                let (run, store, router) = (self.clone(), store.clone(), router.clone());
                let (progress, stop, sessions) = (progress.clone(), stop.clone(), sessions.clone());
                running.spawn(async move {
                    let _ = progress.send(Progress::Started { instance_id: task.instance_id.clone() });
                    let result = run.task(&task, &docker, &sessions, store, router, &progress, stop).await;
                    (task, again, result)
                });
            }
            let Some(joined) = running.join_next().await else { break };
            let (task, again, result) = match joined {
                Ok((task, again, Some(result))) => (task, again, result),
                Ok((_, _, None)) => continue, // stopped before its end: it runs next time
                Err(err) => {
                    tracing::warn!(%err, "a task's run failed");
                    continue;
                }
            };
            if let Err(err) = self.keep(&result) {
                tracing::warn!(%err, "cannot keep a task's result");
            }
            let engine_down = result.category == Category::EngineDown;
            let _ = progress.send(Progress::Finished { result: Box::new(result) });
            if engine_down && let Some(router) = &router {
                let _ = progress.send(Progress::EngineDown { instance_id: task.instance_id.clone() });
                if self.engine_back(router, &stop).await {
                    let _ = progress.send(Progress::EngineBack);
                }
                if !again {
                    queue.push_back((task, true));
                }
            }
        }
        sessions.shutdown().await;
        // Each task removes its own checkouts; the folder that held them goes once it is empty.
        let _ = std::fs::remove_dir(self.out.join("work"));
        Ok(tasks.iter().filter_map(|t| self.kept(&t.instance_id)).collect())
    }

    /// [`run`](Self::run), then the report of every task's result, written into `out`.
    pub async fn evaluate(
        &self,
        tasks: &[Task],
        store: Arc<Store>,
        router: Option<Router>,
        progress: mpsc::UnboundedSender<Progress>,
        stop: CancellationToken,
    ) -> Result<Report, EvalError> {
        let results = self.run(tasks, store, router, progress, stop).await?;
        let report = Report::new(self.mode, &self.model_name, results);
        report.write(&self.out)?;
        Ok(report)
    }

    /// Waits until the model server answers again; `false` when stopped first.
    async fn engine_back(&self, router: &Router, stop: &CancellationToken) -> bool {
        loop {
            if router.reachable(&self.model.task).await {
                return true;
            }
            tokio::select! {
                () = tokio::time::sleep(ENGINE_POLL) => {}
                () = stop.cancelled() => return false,
            }
        }
    }

    /// One task, start to judgement; `None` when stopped before its end (it runs again next time).
    #[expect(clippy::too_many_arguments, reason = "one call site; the pieces are all different")]
    async fn task(
        &self,
        task: &Task,
        docker: &HostAddress,
        sessions: &Sessions,
        store: Arc<Store>,
        router: Option<Router>,
        progress: &mpsc::UnboundedSender<Progress>,
        stop: CancellationToken,
    ) -> Option<TaskResult> {
        let started = Instant::now();
        let mut result = TaskResult::new(task, self.mode);
        result.docker_host = docker.to_string();
        let work = self.out.join("work").join(&task.instance_id);
        let _ = std::fs::remove_dir_all(&work);
        let source = match find_repo(&self.repos, &task.repo) {
            Ok(source) => source,
            Err(err) => return Some(result.failed(Category::NoRepo, err.to_string(), started)),
        };
        let patch = match self.mode {
            Mode::Gold => task.patch.clone(),
            Mode::Issue | Mode::Tests => {
                let Some(router) = router else {
                    return Some(result.failed(Category::Error, "no model routes to run a session".into(), started));
                };
                let checkout = work.join("session");
                let setup = SessionSetup {
                    store,
                    router: router.clone(),
                    limits: self.sandbox.clone(),
                    docker: docker.clone(),
                };
                let session =
                    self.session(task, &source, &checkout, sessions, setup, progress, &mut result, stop.clone());
                let patch = match session.await {
                    Ok(Some(patch)) => patch,
                    Ok(None) => return None,
                    Err(err) => return Some(result.failed(Category::Error, err.to_string(), started)),
                };
                // A session that failed while the model server is gone says nothing of the task.
                if let Some(Outcome::Error { message }) = &result.outcome
                    && !router.reachable(&self.model.task).await
                {
                    let message = format!("the model server stopped answering: {message}");
                    let _ = std::fs::remove_dir_all(&work);
                    return Some(result.failed(Category::EngineDown, message, started));
                }
                patch
            }
        };
        if stop.is_cancelled() {
            return None;
        }
        result.model_patch = patch.clone();
        let on_line = |line: &str| tracing::debug!(line, "judging sandbox");
        let judge_dir = work.join("judge");
        let judging = judge(task, &source, &judge_dir, &patch, docker, self.sandbox.clone(), &on_line);
        // A stop does not wait for the judge (whose tests may hang until its timeout): the task runs
        // again next time, and the next start removes the judge's sandbox.
        let judged = tokio::select! {
            judged = judging => judged,
            () = stop.cancelled() => {
                let _ = std::fs::remove_dir_all(&work);
                return None;
            }
        };
        let _ = std::fs::remove_dir_all(&work);
        Some(match judged {
            Ok(judgement) => result.judged(judgement, started),
            Err(err @ EvalError::Setup { .. }) => result.failed(Category::SetupFailed, err.to_string(), started),
            Err(err) => result.failed(Category::Error, err.to_string(), started),
        })
    }

    /// The task's fix session; its patch, or `None` when stopped.
    #[expect(clippy::too_many_arguments, reason = "one call site; the pieces are all different")]
    async fn session(
        &self,
        task: &Task,
        source: &Path,
        work: &Path,
        sessions: &Sessions,
        setup: SessionSetup,
        progress: &mpsc::UnboundedSender<Progress>,
        result: &mut TaskResult,
        stop: CancellationToken,
    ) -> Result<Option<String>, EvalError> {
        check_out(source, &task.base_commit, work).await?;
        if self.mode == Mode::Tests {
            apply(work, &task.test_patch, "test patch").await?;
        }
        let env = TaskEnv::of(task);
        let request = FixRequest {
            repo: work.to_path_buf(),
            task: task.problem_statement.clone(),
            test: Some(env.test_command),
            setup: Setup::Command(env.setup),
            model: self.model.clone(),
            limits: self.limits.clone(),
            allow_test_edits: false,
            // Given the tests, the session knows which show the bug.
            bug_tests: if self.mode == Mode::Tests { task.fail_to_pass.clone() } else { Vec::new() },
            share: Vec::new(),
        };
        let fix = Fix::prepare(request).map_err(|e| EvalError::Session(e.to_string()))?;
        let mut session = sessions.start(fix, setup, stop.clone());
        while let Some(update) = session.next().await {
            match update {
                SessionUpdate::Started { session } => {
                    result.session = Some(session.to_string());
                    let _ = progress.send(Progress::Session {
                        instance_id: task.instance_id.clone(),
                        session: session.to_string(),
                    });
                }
                SessionUpdate::Event { event, .. } => result.saw(&event),
                SessionUpdate::Queued | SessionUpdate::Setup { .. } => {}
            }
        }
        let finished = match session.finish().await {
            Ok(finished) => finished,
            Err(_) if stop.is_cancelled() => return Ok(None),
            Err(err) => return Err(EvalError::Session(err.to_string())),
        };
        if finished.outcome == Outcome::Cancelled {
            return Ok(None);
        }
        result.session_ended(&finished);
        result.fix_region = crate::localization::fix_region(&task.patch, &result.regions);
        Ok(Some(finished.diff))
    }

    fn keep(&self, result: &TaskResult) -> Result<(), EvalError> {
        let path = self.result_path(&result.instance_id);
        let json =
            serde_json::to_vec_pretty(result).map_err(|e| EvalError::Write { path: path.clone(), source: e.into() })?;
        std::fs::write(&path, json).map_err(|source| EvalError::Write { path, source })
    }

    /// Whether a task has its result from before; one marked [`Category::EngineDown`] runs again.
    fn is_done(&self, instance_id: &str) -> bool {
        self.kept(instance_id).is_some_and(|result| result.category != Category::EngineDown)
    }

    fn kept(&self, instance_id: &str) -> Option<TaskResult> {
        let text = std::fs::read(self.result_path(instance_id)).ok()?;
        serde_json::from_slice(&text).ok()
    }
}
