//! `fixbox github`: the open issues of a repository, and opening a pull request a session left waiting;
//! and what `fixbox fix github:owner/repo#123` uses: the client and the proposal after the
//! session.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "printing is what a command does")]

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser as _, Subcommand};
use fixbox_github::{GitHub, IssueCheckout, IssueFilter, Pending};
use fixbox_store::Store;

#[derive(Debug, Subcommand)]
pub enum GithubCommand {
    /// The open issues of OWNER/REPO, newest first.
    Issues {
        repo: String,
        #[arg(long)]
        label: Option<String>,
        /// Only issues whose title or body has this text.
        #[arg(long)]
        search: Option<String>,
        #[arg(long, default_value_t = 30)]
        limit: usize,
    },
    /// Open the pull request a fix session left waiting (declined, or its push failed).
    OpenPr { session: String },
    /// The GitHub Action's step (on a self-hosted runner, where the model runs): fix the issue the
    /// workflow's event asks about (a LABEL added, or a COMMAND comment from the repository's owners,
    /// members or collaborators) and open a draft pull request; any other event is skipped.
    Action {
        #[arg(long, default_value = "fixbox")]
        label: String,
        #[arg(long, default_value = "/fixbox")]
        command: String,
        /// Options for `fixbox fix` (after `--`), e.g. `-- --routing routes.toml --max-iterations 6`.
        #[arg(last = true)]
        fix: Vec<String>,
    },
}

pub async fn run(command: GithubCommand) -> anyhow::Result<ExitCode> {
    match command {
        GithubCommand::Issues { repo, label, search, limit } => {
            let (owner, name) = repo.split_once('/').context("name the repository as OWNER/REPO")?;
            let filter = IssueFilter { label, text: search, limit };
            let issues = client().await?.open_issues(owner, name, &filter).await?;
            if issues.is_empty() {
                eprintln!("no open issues match in {repo}");
            }
            for issue in issues {
                let labels: Vec<&str> = issue.labels.iter().map(|l| l.name.as_str()).collect();
                let labels = if labels.is_empty() { String::new() } else { format!(" [{}]", labels.join(", ")) };
                println!("#{:<6} {}{labels}", issue.number, issue.title);
            }
            eprintln!("fix one with: fixbox fix github:{repo}#NUMBER");
            Ok(ExitCode::SUCCESS)
        }
        GithubCommand::Action { label, command, fix } => {
            let name = std::env::var("GITHUB_EVENT_NAME")
                .context("GITHUB_EVENT_NAME is not set: run this in a GitHub Actions workflow")?;
            let path = std::env::var("GITHUB_EVENT_PATH")
                .context("GITHUB_EVENT_PATH is not set: run this in a GitHub Actions workflow")?;
            let payload = std::fs::read_to_string(&path).with_context(|| format!("cannot read the event at {path}"))?;
            match fixbox_github::action::decide(&name, &payload, &label, &command)? {
                fixbox_github::action::Decision::Skip(why) => {
                    println!("nothing to fix: {why}");
                    Ok(ExitCode::SUCCESS)
                }
                fixbox_github::action::Decision::Fix(reference) => {
                    println!("fixing {reference}");
                    let mut args = vec!["fix".to_string(), format!("github:{reference}"), "--open-pr".to_string()];
                    args.extend(fix);
                    crate::fix::run(crate::fix::FixCommand::try_parse_from(args)?.args).await
                }
            }
        }
        GithubCommand::OpenPr { session } => {
            let store = tokio::task::spawn_blocking(Store::open_default).await??;
            let pending = Pending::load(&store, &session)?
                .with_context(|| format!("no pull request waits for session {session}"))?;
            open(&store, &client().await?, &pending, &session).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The client for `FIXBOX_GITHUB_API` (else github.com), signed in when a token is at hand.
pub async fn client() -> anyhow::Result<GitHub> {
    Ok(GitHub::signed_in().await?.on_wait(|line| eprintln!("[github] {line}")))
}

/// After a session on an issue: the pull request drafted and kept, then opened when `open_pr` says so
/// or the user says yes; otherwise how to open it later.
pub async fn propose(
    store: &Store,
    github: &GitHub,
    checkout: &IssueCheckout,
    session: &str,
    open_pr: bool,
) -> anyhow::Result<()> {
    let Some(pending) = Pending::draft(store, checkout, session).await? else {
        eprintln!("no pull request: the session changed nothing");
        return Ok(());
    };
    if !pending.draft.sensitive.is_empty() {
        eprintln!(
            "review with care: the change edits files that run in CI or at build time: {}",
            pending.draft.sensitive.join(", ")
        );
    }
    let verified = if pending.draft.verified { "" } else { " (not verified by the tests: the pull request says so)" };
    let approved = open_pr
        || (std::io::stdin().is_terminal()
            && ask(&format!(
                "open a draft pull request on {} with this change{verified}? [y/N] ",
                checkout.repository.full_name
            ))?);
    if !approved {
        eprintln!("no pull request opened; open it later with: fixbox github open-pr {session}");
        return Ok(());
    }
    open(store, github, &pending, session).await
}

async fn open(store: &Store, github: &GitHub, pending: &Pending, session: &str) -> anyhow::Result<()> {
    match fixbox_github::open_pull_request(github, pending).await {
        Ok(pull) => {
            Pending::forget(store, session)?;
            println!("pull request #{} (draft): {}", pull.number, pull.html_url);
            Ok(())
        }
        Err(err) => Err(anyhow::Error::new(err).context(format!(
            "the pull request was not opened; its branch ({}) and text are kept: try again with `fixbox github open-pr {session}`",
            pending.draft.branch
        ))),
    }
}

fn ask(question: &str) -> anyhow::Result<bool> {
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}
