//! GitHub from the window: the open issues of a repository, an issue's repository cloned for a
//! session, the draft pull request a session on an issue leaves ready, and the `fixbox://` links that
//! open an issue in the app.

use fixbox_github::{GitHub, IssueCheckout, IssueFilter, IssueRef, Pending};
use serde::{Deserialize, Serialize};

use super::{blocking, open_store};
use crate::error::IpcError;

/// An open issue, as the list shows it.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct IssueRow {
    /// `github:owner/repo#123`, what the fix form takes.
    pub reference: String,
    pub number: u64,
    pub title: String,
    pub labels: Vec<String>,
    pub url: String,
}

/// The open issues of `repo` (`owner/repo`), newest first; only those with `label`, and those whose
/// title or body has `search`, when given.
#[tauri::command]
#[specta::specta]
pub async fn github_issues(
    repo: String,
    label: Option<String>,
    search: Option<String>,
) -> Result<Vec<IssueRow>, IpcError> {
    let repo = repo.trim().trim_start_matches("https://github.com/").trim_end_matches('/').to_string();
    let (owner, name) = repo.split_once('/').ok_or_else(|| IpcError::invalid("name the repository as owner/repo"))?;
    let filter = IssueFilter {
        label: label.filter(|l| !l.trim().is_empty()),
        text: search.filter(|s| !s.trim().is_empty()),
        limit: 100,
    };
    let issues = client().await?.open_issues(owner, name, &filter).await?;
    Ok(issues
        .into_iter()
        .map(|i| IssueRow {
            reference: format!("github:{repo}#{}", i.number),
            number: i.number,
            title: i.title,
            labels: i.labels.into_iter().map(|l| l.name).collect(),
            url: i.html_url,
        })
        .collect())
}

/// A pull request opened on GitHub.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct OpenedPull {
    pub number: u64,
    pub url: String,
}

/// Opens the draft pull request the session `session` left ready (pushing its branch first); safe to
/// call again after a failure, which keeps the branch and text.
#[tauri::command]
#[specta::specta]
pub async fn github_open_pr(session: String) -> Result<OpenedPull, IpcError> {
    let id = session.clone();
    let (store, pending) = blocking(move || {
        let store = open_store()?;
        let pending = Pending::load(&store, &id)?;
        Ok((store, pending))
    })
    .await?;
    let pending = pending.ok_or_else(|| IpcError::not_found(format!("no pull request waits for session {session}")))?;
    let pull = fixbox_github::open_pull_request(&client().await?, &pending).await.map_err(|e| IpcError {
        message: format!("the pull request was not opened ({e}); its branch and text are kept: try again"),
        ..e.into()
    })?;
    blocking(move || Pending::forget(&store, &session).map_err(IpcError::from)).await?;
    Ok(OpenedPull { number: pull.number, url: pull.html_url })
}

async fn client() -> Result<GitHub, IpcError> {
    GitHub::signed_in().await.map_err(IpcError::from)
}

/// The issue's text and its repository's default branch, cloned (or fetched) for a session.
pub(super) async fn checkout(reference: &IssueRef) -> Result<IssueCheckout, IpcError> {
    let clones = fixbox_github::clones_dir()?;
    fixbox_github::checkout_issue(&client().await?, reference, &clones, fixbox_github::MAX_REPO_KIB)
        .await
        .map_err(IpcError::from)
}

/// Sent to the window when a `fixbox://fix?repo=owner/repo&issue=123` link asks to fix an issue.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct OpenIssue {
    /// `github:owner/repo#123`.
    pub reference: String,
}

/// The issue of the link the app was started with, until the window takes it.
#[derive(Debug, Default)]
pub struct Links(std::sync::Mutex<Option<String>>);

impl Links {
    pub fn keep(&self, reference: String) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reference);
    }
}

/// The issue (`github:owner/repo#123`) of the `fixbox://` link the app was started with, once.
#[tauri::command]
#[specta::specta]
pub fn app_take_link(links: tauri::State<'_, Links>) -> Option<String> {
    links.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
}

/// The issue a `fixbox://fix?repo=owner/repo&issue=123` link names.
pub fn issue_from_link(link: &str) -> Option<IssueRef> {
    let query = link.strip_prefix("fixbox://fix")?.trim_start_matches('/').strip_prefix('?')?;
    let param =
        |name: &str| query.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v));
    let repo = param("repo")?.replace("%2F", "/").replace("%2f", "/");
    format!("{repo}#{}", param("issue")?).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fix_link_names_its_issue_and_nothing_else_does() {
        let want = IssueRef { owner: "octo".into(), repo: "cache".into(), number: 7 };
        assert_eq!(issue_from_link("fixbox://fix?repo=octo/cache&issue=7"), Some(want.clone()));
        assert_eq!(issue_from_link("fixbox://fix/?issue=7&repo=octo%2Fcache"), Some(want));
        for bad in [
            "fixbox://fix?repo=octo/cache",
            "fixbox://run?repo=a/b&issue=1",
            "https://x/fix?repo=a/b&issue=1",
            "fixbox://fix?repo=../x&issue=1",
        ] {
            assert_eq!(issue_from_link(bad), None, "{bad}");
        }
    }
}
