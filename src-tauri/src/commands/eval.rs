//! Evaluate: fix sessions over a dataset of real bugs, judged by their hidden tests, as `fixbox eval
//! run` does: the tasks' ends as they come, then the report (kept in the data folder, so a stopped run
//! goes on where it stopped). Each task's session is in the history.

use std::path::PathBuf;
use std::sync::Arc;

use fixbox_agent::{Limits, ModelSettings, Preferences};
use fixbox_eval::{Category, Dataset, EvalRun, Mode, Progress, Report, TaskResult};
use fixbox_llm::Metrics;
use serde::{Deserialize, Serialize};
use tauri::ipc::Channel;
use tokio::sync::mpsc;

use super::{JobId, Jobs, blocking, load_routes, open_store};
use crate::error::IpcError;

/// An evaluation to start, as the form fills it.
#[derive(Debug, Clone, Deserialize, specta::Type)]
pub struct NewEval {
    /// A dataset in SWE-bench's JSONL format.
    pub dataset: String,
    /// A folder with a clone of each task's repository (as owner+name, owner__name or name).
    pub repos: String,
    /// `issue`, `tests` or `gold`.
    pub mode: String,
    /// The routing task whose routes answer.
    pub route: String,
    pub max_iterations: u32,
    pub timeout_minutes: u32,
}

/// One task's end.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct EvalTask {
    pub instance_id: String,
    pub resolved: bool,
    /// Why it ended so, and that in words (`resolved`, `no failing test to start from`, …).
    pub category: Category,
    pub why: String,
    pub iterations: u32,
    pub wall_s: f64,
    /// Its session in the history.
    pub session: Option<String>,
    pub error: Option<String>,
}

/// What a run adds up to.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct EvalSummary {
    /// Where the report is (`report.md`, `report.json`, `report.svg`, `predictions.jsonl`).
    pub folder: String,
    pub model: String,
    pub tasks: u32,
    pub resolved: u32,
    /// The 95% interval of the resolve rate, low and high.
    pub interval_low: f64,
    pub interval_high: f64,
    pub median_wall_s: f64,
    /// Tasks per reason, most first.
    pub by_why: Vec<EvalCount>,
    pub all: Vec<EvalTask>,
}

#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct EvalCount {
    pub category: Category,
    pub why: String,
    pub tasks: u32,
}

/// What a running evaluation sends the window.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EvalUpdate {
    /// A dataset line that is not a task (it is skipped).
    BadLine {
        message: String,
    },
    /// Tasks in all, and those a previous run finished.
    Planned {
        total: u32,
        done_before: u32,
    },
    Started {
        instance_id: String,
    },
    Finished {
        task: EvalTask,
    },
    /// The model server stopped answering: the run waits for it.
    EngineDown {
        instance_id: String,
    },
    EngineBack,
    /// The run is over (all done, or stopped): its report, or why there is none.
    Ended {
        summary: Option<EvalSummary>,
        error: Option<String>,
    },
}

fn task_view(result: &TaskResult) -> EvalTask {
    EvalTask {
        instance_id: result.instance_id.clone(),
        resolved: result.resolved,
        category: result.category,
        why: result.category.label().to_string(),
        iterations: result.iterations,
        wall_s: result.wall_s,
        session: result.session.clone(),
        error: result.error.clone(),
    }
}

fn summary(report: &Report, folder: &std::path::Path) -> EvalSummary {
    let t = &report.totals;
    let mut by_why: Vec<EvalCount> = t
        .by_category
        .iter()
        .map(|(category, n)| EvalCount { category: *category, why: category.label().to_string(), tasks: *n as u32 })
        .collect();
    by_why.sort_by_key(|count| std::cmp::Reverse(count.tasks));
    EvalSummary {
        folder: folder.display().to_string(),
        model: report.model.clone(),
        tasks: t.tasks as u32,
        resolved: t.resolved as u32,
        interval_low: t.interval_95.0,
        interval_high: t.interval_95.1,
        median_wall_s: t.median_wall_s,
        by_why,
        all: report.tasks.iter().map(task_view).collect(),
    }
}

/// Starts an evaluation and returns the folder its report goes to (in the data folder, by dataset
/// and mode: running the same again goes on where it stopped). Its progress and end come on
/// `on_update`.
#[tauri::command]
#[specta::specta]
pub async fn eval_start(
    request: NewEval,
    on_update: Channel<EvalUpdate>,
    jobs: tauri::State<'_, Arc<Jobs>>,
) -> Result<String, IpcError> {
    let mode: Mode = request.mode.parse().map_err(IpcError::invalid)?;
    let dataset_path = PathBuf::from(request.dataset.trim());
    let repos = PathBuf::from(request.repos.trim());
    if !repos.is_dir() {
        return Err(IpcError::invalid(format!(
            "{} is not a folder: give the folder that holds the tasks' repositories",
            repos.display()
        )));
    }
    let route = request.route.clone();
    let (dataset, store, router, preferences, out) = blocking(move || {
        let dataset = Dataset::read(&dataset_path)?;
        let store = open_store()?;
        let router =
            if mode == Mode::Gold { None } else { Some(load_routes(&store)?.router(Arc::new(Metrics::default()))?) };
        let preferences = Preferences::load(&store)?;
        let stem = dataset_path.file_stem().map_or("dataset".into(), |s| s.to_string_lossy().into_owned());
        let out = fixbox_store::data_dir()?.join("evals").join(format!("{stem}-{mode}"));
        Ok((dataset, Arc::new(store), router, preferences, out))
    })
    .await?;
    if dataset.tasks.is_empty() {
        return Err(IpcError::invalid(format!("{} holds no task", request.dataset.trim())));
    }
    for bad in &dataset.bad_lines {
        let _ = on_update.send(EvalUpdate::BadLine { message: bad.to_string() });
    }
    let model_name = router.as_ref().map_or_else(|| "gold".to_string(), |r| fixbox_eval::model_name(r, &route));
    let run = EvalRun {
        repos,
        out: out.clone(),
        mode,
        jobs: 1,
        model_name,
        model: ModelSettings { task: route, ..ModelSettings::default() },
        limits: Limits {
            max_iterations: request.max_iterations.max(1),
            wall_time_s: u64::from(request.timeout_minutes.max(1)) * 60,
            ..preferences.limits()
        },
        sandbox: preferences.sandbox_limits(),
        hosts: Vec::new(),
    };
    let (stop, job) = jobs.start(JobId::Eval)?;
    tauri::async_runtime::spawn(async move {
        let (progress, mut updates) = mpsc::unbounded_channel();
        let evaluated = run.evaluate(&dataset.tasks, store, router, progress, stop);
        tokio::pin!(evaluated);
        let ended = loop {
            tokio::select! {
                ended = &mut evaluated => break ended,
                Some(update) = updates.recv() => { let _ = on_update.send(view(update)); }
            }
        };
        while let Ok(update) = updates.try_recv() {
            let _ = on_update.send(view(update));
        }
        drop(job);
        let update = match ended {
            Ok(report) => EvalUpdate::Ended { summary: Some(summary(&report, &run.out)), error: None },
            Err(err) => EvalUpdate::Ended { summary: None, error: Some(err.to_string()) },
        };
        let _ = on_update.send(update);
    });
    Ok(out.display().to_string())
}

fn view(update: Progress) -> EvalUpdate {
    match update {
        Progress::Planned { total, done_before } => {
            EvalUpdate::Planned { total: total as u32, done_before: done_before as u32 }
        }
        Progress::Started { instance_id } | Progress::Session { instance_id, .. } => {
            EvalUpdate::Started { instance_id }
        }
        Progress::Finished { result } => EvalUpdate::Finished { task: task_view(&result) },
        Progress::EngineDown { instance_id } => EvalUpdate::EngineDown { instance_id },
        Progress::EngineBack => EvalUpdate::EngineBack,
    }
}

/// Stops the running evaluation: the tasks done are kept, and so is the report of them.
#[tauri::command]
#[specta::specta]
pub fn eval_stop(jobs: tauri::State<'_, Arc<Jobs>>) -> Result<(), IpcError> {
    if jobs.cancel(&JobId::Eval) { Ok(()) } else { Err(IpcError::not_found("no evaluation is running")) }
}
