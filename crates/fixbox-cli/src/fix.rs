//! `fixbox fix`: a fix session in a sandbox, rendered live; exits 0 only when the tests pass.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "printing is what a command does")]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use fixbox_agent::{
    Fix, FixRequest, Limits, ModelSettings, Outcome, Preferences, SessionSetup, SessionUpdate, Sessions, Setup,
    SharedFiles,
};
use fixbox_github::IssueRef;
use fixbox_llm::Metrics;
use fixbox_patch::EditFormat;
use fixbox_sandbox::HostAddress;
use fixbox_store::Store;
use tokio_util::sync::CancellationToken;

use crate::render::Renderer;

/// `fixbox fix`'s arguments on their own, for a command that runs a fix with arguments it builds.
#[derive(Debug, clap::Parser)]
#[command(name = "fix")]
pub struct FixCommand {
    #[command(flatten)]
    pub args: FixArgs,
}

#[derive(Debug, Args)]
pub struct FixArgs {
    /// The repository to fix (it is copied into a sandbox; this folder is never changed), or a GitHub
    /// issue: github:OWNER/REPO#123 or its URL (the repository is cloned, the issue is the task).
    repo: String,
    /// What is wrong, as you would write it in an issue (a GitHub issue's own text when not given).
    #[arg(long)]
    task: Option<String>,
    /// For a GitHub issue: open a draft pull request with the change without asking.
    #[arg(long)]
    open_pr: bool,
    /// For a GitHub issue: refuse repositories larger than this many MiB.
    #[arg(long, default_value_t = fixbox_github::MAX_REPO_KIB >> 10)]
    max_repo_size: u64,
    /// The command that runs the tests (detected when not given: pytest, cargo test, npm test, go test, make test).
    #[arg(long)]
    test: Option<String>,
    /// The command that installs the dependencies, run in the repository's copy with network before
    /// the first test (detected from the manifests when not given: pip install -e '.[test]' and
    /// requirement files, npm ci, cargo fetch, go mod download). What it installs is kept for the
    /// next session on the same manifests.
    #[arg(long, conflicts_with = "no_setup")]
    setup: Option<String>,
    /// Install nothing: the tests run with the sandbox image's tools only.
    #[arg(long)]
    no_setup: bool,
    /// The task whose routes answer (`fixbox routes`); tasks without routes take `default`'s.
    #[arg(long, default_value = "fix")]
    model: String,
    /// A routes file to use instead of the stored routes.
    #[arg(long, alias = "routing", value_name = "FILE")]
    routes: Option<PathBuf>,
    /// Default: the settings' (10 unless changed in the app's settings).
    #[arg(long)]
    max_iterations: Option<u32>,
    /// Stop before a call that could take the session past this many US dollars (default: the
    /// settings' budget, none unless set).
    #[arg(long)]
    budget: Option<f64>,
    /// Stop before a call that could take the session past this many tokens.
    #[arg(long)]
    budget_tokens: Option<u64>,
    /// Wall time for the whole session: 90s, 10m, 1h (default: the settings', 30m unless changed).
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<u64>,
    /// Time one test run may take.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    test_timeout: u64,
    /// search-replace, udiff or rewrite (chosen for the model when not given).
    #[arg(long)]
    edit_format: Option<EditFormat>,
    #[arg(long, default_value_t = 0.15)]
    temperature: f32,
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Tokens one patch may take.
    #[arg(long, default_value_t = 2048)]
    max_tokens: u32,
    /// The model's context window, when the routes do not say.
    #[arg(long, default_value_t = 8192)]
    context: u32,
    #[arg(long)]
    seed: Option<u64>,
    /// Also stop the answer at this text (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Let patches change test files.
    #[arg(long)]
    allow_test_edits: bool,
    /// A test that shows the bug (its id as the runner names it, e.g. tests/test_a.py::test_b); its
    /// failure before any change is the bug's, never the project's own. Repeatable.
    #[arg(long = "bug-test")]
    bug_tests: Vec<String>,
    /// Copy files matching PATTERN into the sandbox although their names look like credentials (a
    /// `.env` or a key the tests read; a path, a name, or `*` at one end: `certs/*`). Repeatable;
    /// prompts still leave them out. Adds to what is remembered for the repository.
    #[arg(long, value_name = "PATTERN")]
    share: Vec<String>,
    /// Remember this run's `--share` patterns for the repository, in place of those remembered; with
    /// no `--share`, forget them.
    #[arg(long)]
    remember_share: bool,
}

/// The GitHub issue `repo` names: `github:…`, an issue URL, or `owner/repo#123` where no such folder
/// exists.
fn issue(repo: &str) -> anyhow::Result<Option<IssueRef>> {
    if IssueRef::is_issue(repo) || (repo.contains('#') && !std::path::Path::new(repo).exists()) {
        return Ok(Some(repo.parse()?));
    }
    Ok(None)
}

/// `90s`, `10m`, `2h` or plain seconds, as seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration: write 90s, 10m or 1h"))?;
    match unit {
        "" | "s" => Ok(n),
        "m" => Ok(n * 60),
        "h" => Ok(n * 3600),
        _ => Err(format!("{text:?} has an unknown unit {unit:?}: use s, m or h")),
    }
}

pub async fn run(args: FixArgs) -> anyhow::Result<ExitCode> {
    let store = Arc::new(tokio::task::spawn_blocking(Store::open_default).await??);
    let github = match issue(&args.repo)? {
        Some(reference) => {
            let github = crate::pull_request::client().await?;
            eprintln!("reading {reference} and cloning its repository");
            let clones = fixbox_github::clones_dir()?;
            let checkout =
                fixbox_github::checkout_issue(&github, &reference, &clones, args.max_repo_size << 10).await?;
            eprintln!("{reference}: {} ({})", checkout.issue.title, checkout.issue.html_url);
            Some((github, checkout))
        }
        None => None,
    };
    let (repo, task) = match &github {
        Some((_, checkout)) => (checkout.clone.clone(), args.task.clone().unwrap_or_else(|| checkout.task())),
        None => (
            PathBuf::from(&args.repo),
            args.task
                .clone()
                .context("say what is wrong with --task (or name a GitHub issue: github:OWNER/REPO#123)")?,
        ),
    };
    let preferences = Preferences::load(&store)?;
    let defaults = preferences.limits();
    let mut share = if args.remember_share {
        SharedFiles::save(&store, &repo, &args.share)?;
        Vec::new()
    } else {
        SharedFiles::load(&store, &repo)?
    };
    if !share.is_empty() {
        eprintln!("sharing with the sandbox, as remembered for this repository: {}", share.join(" "));
    }
    share.extend(args.share.iter().cloned());
    let request = FixRequest {
        repo,
        task,
        test: args.test.clone(),
        setup: match (&args.setup, args.no_setup) {
            (Some(command), _) => Setup::Command(command.clone()),
            (None, true) => Setup::Skip,
            (None, false) => Setup::Detect,
        },
        model: ModelSettings {
            task: args.model.clone(),
            temperature: args.temperature,
            top_p: args.top_p,
            max_tokens: args.max_tokens,
            edit_format: args.edit_format,
            stop: args.stop.clone(),
            context_window: args.context,
            seed: args.seed,
            ..ModelSettings::default()
        },
        limits: Limits {
            max_iterations: args.max_iterations.unwrap_or(defaults.max_iterations),
            budget_usd: args.budget.or(defaults.budget_usd),
            budget_tokens: args.budget_tokens,
            wall_time_s: args.timeout.unwrap_or(defaults.wall_time_s),
            test_timeout_s: args.test_timeout,
            ..defaults
        },
        allow_test_edits: args.allow_test_edits,
        bug_tests: args.bug_tests.clone(),
        share,
    };
    let fix = Fix::prepare(request)?;
    let (router, from) = crate::routes::router(args.routes.clone(), Arc::new(Metrics::default())).await?;
    tracing::info!(routes = %from, "fixing");

    let stop = CancellationToken::new();
    let on_interrupt = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nstopping (Ctrl+C): the session is kept");
            on_interrupt.cancel();
        }
    });
    let setup =
        SessionSetup { store: store.clone(), router, limits: preferences.sandbox_limits(), docker: HostAddress::Local };
    let mut session = Sessions::new(1).start(fix, setup, stop);
    let mut renderer = Renderer::stdout();
    let mut id = None;
    while let Some(update) = session.next().await {
        match update {
            SessionUpdate::Queued => eprintln!(
                "[queued] this machine runs as many sessions as it holds ({} at once; FIXBOX_MAX_SESSIONS sets it): \
                 starting when one ends",
                fixbox_agent::machine_cap(preferences.sandbox_limits().memory_bytes)
            ),
            SessionUpdate::Setup { line } => eprintln!("[sandbox] {line}"),
            SessionUpdate::Started { session } => {
                eprintln!("session {session} (replay: fixbox sessions replay {session})");
                id = Some(session.to_string());
            }
            SessionUpdate::Event { event, .. } => {
                if let Err(err) = renderer.event(&event) {
                    tracing::warn!(%err, "cannot print the session's progress");
                }
            }
        }
    }
    let outcome = session.finish().await?.outcome;
    if let (Some((github, checkout)), Some(id)) = (&github, &id)
        && outcome != Outcome::Cancelled
    {
        crate::pull_request::propose(&store, github, checkout, id, args.open_pr).await?;
    }
    Ok(match outcome {
        Outcome::Fixed => ExitCode::SUCCESS,
        // 130: what a shell reports for a command ended by Ctrl+C.
        Outcome::Cancelled => ExitCode::from(130),
        _ => ExitCode::FAILURE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("10m"), Ok(600));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("45"), Ok(45));
        assert!(parse_duration("10 minutes").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("m").is_err());
    }
}
