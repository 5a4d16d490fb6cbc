//! The GitHub side of a session on an issue, for `fixbox fix github:owner/repo#123` and `fixbox
//! github`: the client, and the pull request drafted after the session, opened when the user says so.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "printing is what a command does")]

use std::io::{BufRead, IsTerminal, Write};

use fixbox_github::{GitHub, IssueCheckout, Pending};
use fixbox_store::Store;

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

pub async fn open(store: &Store, github: &GitHub, pending: &Pending, session: &str) -> anyhow::Result<()> {
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
