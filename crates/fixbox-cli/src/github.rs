//! `fixbox github`: the open issues of a repository, opening a pull request a session left waiting,
//! and the GitHub Action's step.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "printing is what a command does")]

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser as _, Subcommand};
use fixbox_github::{IssueFilter, Pending};
use fixbox_store::Store;

use crate::pull_request::{client, open};

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
        /// Options for `fixbox fix` (after `--`), e.g. `-- --routes routes.toml --max-iterations 6`.
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
