//! `fixbox eval`: fix sessions over a dataset of real bugs, judged by their hidden tests; a report.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "printing is what a command does")]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use fixbox_agent::{Limits, ModelSettings, Preferences};
use fixbox_eval::{Dataset, EvalRun, Mode, Progress, Report, compare};
use fixbox_llm::Metrics;
use fixbox_sandbox::HostAddress;
use fixbox_store::Store;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use crate::fix::parse_duration;

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Run every task of a dataset (those a previous run finished are skipped) and write the report.
    Run(Box<RunArgs>),
    /// Per task, where two runs ended differently.
    Compare {
        /// A run's folder (or its report.json).
        a: PathBuf,
        b: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A dataset in SWE-bench's JSONL format.
    dataset: PathBuf,
    /// A folder with a git clone or mirror of each task's repository (as owner+name, owner__name or name).
    #[arg(long)]
    repos: PathBuf,
    /// issue: the problem statement only; tests: the judging tests given first; gold: no session, the
    /// task's own fix judged (checks the dataset on this machine).
    #[arg(long, default_value = "issue")]
    mode: Mode,
    /// Where results, predictions and the report go (default: eval-<mode> in the current folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Tasks at once (at most what this machine's cores and memory allow).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Only these tasks (instance ids, repeatable).
    #[arg(long = "instance")]
    instances: Vec<String>,
    /// The task whose routes answer.
    #[arg(long, default_value = "fix")]
    model: String,
    /// A routes file to use instead of the stored routes.
    #[arg(long, alias = "routing", value_name = "FILE")]
    routes: Option<PathBuf>,
    #[arg(long, default_value_t = 6)]
    max_iterations: u32,
    /// search-replace, udiff or rewrite (chosen for the model when not given).
    #[arg(long)]
    edit_format: Option<fixbox_patch::EditFormat>,
    /// Wall time per session: 90s, 10m, 1h.
    #[arg(long, default_value = "20m", value_parser = parse_duration)]
    timeout: u64,
    /// A sandbox host (a Docker daemon: tcp://…, ssh://…, unix://…) to run sandboxes on, repeatable:
    /// tasks take the hosts in turn. Default: DOCKER_HOST, else this machine's.
    #[arg(long = "docker-host", value_name = "URL")]
    docker_hosts: Vec<String>,
    /// Folder with ca.pem, cert.pem and key.pem for mutual TLS with every tcp:// --docker-host.
    #[arg(long, value_name = "DIR")]
    docker_certs: Option<PathBuf>,
    /// Serve Prometheus metrics of the run's sessions and model calls at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

pub async fn run(command: EvalCommand) -> anyhow::Result<ExitCode> {
    match command {
        EvalCommand::Run(args) => run_dataset(*args).await,
        EvalCommand::Compare { a, b } => {
            print!("{}", compare(&read_report(&a)?, &read_report(&b)?));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read_report(path: &std::path::Path) -> anyhow::Result<Report> {
    let file = if path.is_dir() { path.join("report.json") } else { path.to_path_buf() };
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not an eval report", file.display()))
}

async fn run_dataset(args: RunArgs) -> anyhow::Result<ExitCode> {
    let dataset = Dataset::read(&args.dataset)?;
    for bad in &dataset.bad_lines {
        eprintln!("{}: {bad}; skipped", args.dataset.display());
    }
    let mut tasks = dataset.tasks;
    if !args.instances.is_empty() {
        tasks.retain(|t| args.instances.contains(&t.instance_id));
    }
    if tasks.is_empty() {
        bail!("no task to run in {}", args.dataset.display());
    }
    let store = Arc::new(tokio::task::spawn_blocking(Store::open_default).await??);
    let preferences = Preferences::load(&store)?;
    let sandbox = preferences.sandbox_limits();
    let (router, model_name) = if args.mode == Mode::Gold {
        (None, "gold".to_string())
    } else {
        let metrics = Arc::new(Metrics::default());
        if let Some(addr) = args.metrics {
            crate::serve::spawn_metrics(addr, Arc::clone(&metrics), None).await?;
        }
        let (router, from) = crate::routes::router(args.routes.clone(), metrics).await?;
        let model = fixbox_eval::model_name(&router, &args.model);
        tracing::info!(routes = %from, model, "evaluating");
        (Some(router), model)
    };
    let hosts: Vec<HostAddress> = args
        .docker_hosts
        .iter()
        .map(|host| HostAddress::At {
            host: host.clone(),
            certs: args.docker_certs.clone().filter(|_| host.starts_with("tcp://")),
        })
        .collect();
    let jobs = bounded_jobs(args.jobs, sandbox.memory_bytes, hosts.len().max(1));
    let run = EvalRun {
        repos: args.repos.clone(),
        out: args.out.clone().unwrap_or_else(|| PathBuf::from(format!("eval-{}", args.mode))),
        mode: args.mode,
        jobs,
        model_name,
        model: ModelSettings { task: args.model.clone(), edit_format: args.edit_format, ..ModelSettings::default() },
        limits: Limits { max_iterations: args.max_iterations, wall_time_s: args.timeout, ..preferences.limits() },
        sandbox,
        hosts,
    };
    eprintln!(
        "{} tasks in {} mode, {jobs} at a time; results in {} (Ctrl+C stops and keeps what is done)",
        tasks.len(),
        args.mode,
        run.out.display()
    );
    let stop = crate::models::cancel_on_ctrl_c();
    let (progress, updates) = mpsc::unbounded_channel();
    let shown = tokio::spawn(show_progress(updates));
    let report = run.evaluate(&tasks, store, router, progress, stop.clone()).await?;
    let _ = shown.await;
    let t = &report.totals;
    println!(
        "resolved {}/{} of the tasks run ({:.1}%); report: {}",
        t.resolved,
        t.tasks,
        100.0 * t.resolve_rate,
        run.out.join("report.md").display()
    );
    if stop.is_cancelled() {
        println!("stopped: {} of {} tasks have results; run the same command again to go on", t.tasks, tasks.len());
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

/// As many tasks at once as each of `hosts` sandbox hosts, counted as this machine, holds.
fn bounded_jobs(asked: usize, sandbox_memory: u64, hosts: usize) -> usize {
    let most = fixbox_agent::machine_cap(sandbox_memory) * hosts;
    if asked > most {
        eprintln!(
            "--jobs {asked} is more than {hosts} sandbox host(s) of this machine's size hold (one task per two cores, \
             and a sandbox with a GiB to spare each): {most} at a time"
        );
    }
    asked.clamp(1, most)
}

async fn show_progress(mut updates: mpsc::UnboundedReceiver<Progress>) {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} tasks, {elapsed} so far, eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_secs(1));
    let say = |line: String| if bar.is_hidden() { eprintln!("{line}") } else { bar.println(line) };
    while let Some(update) = updates.recv().await {
        match update {
            Progress::Planned { total, done_before } => {
                bar.set_length(total as u64);
                bar.set_position(done_before as u64);
                bar.reset_eta();
                if done_before > 0 {
                    say(format!("{done_before} of {total} tasks have results from before; they are kept"));
                }
            }
            Progress::Started { instance_id } => bar.set_message(instance_id),
            Progress::Session { instance_id, session } => {
                say(format!("{instance_id}: session {session} (fixbox sessions replay {session})"));
            }
            Progress::Finished { result } => {
                bar.inc(1);
                let verdict = if result.resolved { "resolved" } else { result.category.label() };
                let error = result.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
                say(format!("{}: {verdict} in {:.0} s{error}", result.instance_id, result.wall_s));
            }
            Progress::EngineDown { instance_id } => say(format!(
                "{instance_id}: the model server stopped answering; waiting for it to come back \
                 (fixbox engine start, or Ctrl+C to stop here), then this task runs again"
            )),
            Progress::EngineBack => say("the model server answers again; going on".into()),
        }
    }
    bar.finish_and_clear();
}
