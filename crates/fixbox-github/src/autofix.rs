//! From an issue to a draft pull request: the issue and its repository read, the repository cloned for
//! the session, and after the session, its verified diff committed on a branch, pushed (to the
//! repository, or to the user's fork when they cannot push there) and proposed with its evidence.

use std::path::{Path, PathBuf};

use fixbox_agent::{Outcome, SessionReport};
use fixbox_store::Store;
use serde::{Deserialize, Serialize};

use crate::api::{Comment, GitHub, Issue, NewPull, PullRequest, Repository};
use crate::{GitHubError, IssueRef, git};

/// An issue, ready for a session: what it says, and its repository's default branch cloned here.
#[derive(Debug, Clone)]
pub struct IssueCheckout {
    pub reference: IssueRef,
    pub issue: Issue,
    pub comments: Vec<Comment>,
    pub repository: Repository,
    /// The clone the session copies into its sandbox; the session never changes it.
    pub clone: PathBuf,
}

/// The issue's text the session gets at most: the title and body first, then the latest comments.
const TASK_CHARS: usize = 6_000;
const COMMENTS_CHARS: usize = 2_000;

impl IssueCheckout {
    /// What the session is asked to fix: the issue as its author and commenters wrote it (untrusted
    /// text: the session's sandbox has no network and no secret, and nothing is pushed unasked).
    pub fn task(&self) -> String {
        let body = self.issue.body.as_deref().unwrap_or_default().trim();
        let mut task = format!("{}\n\n{}", self.issue.title.trim(), cut(body, TASK_CHARS));
        let mut comments = Vec::new();
        let mut room = COMMENTS_CHARS;
        for comment in self.comments.iter().rev() {
            let text = format!("{}: {}", comment.user.login, comment.body.as_deref().unwrap_or_default().trim());
            if text.len() > room {
                break;
            }
            room -= text.len();
            comments.push(text);
        }
        if !comments.is_empty() {
            comments.reverse();
            task.push_str("\n\nFrom the comments:\n");
            task.push_str(&comments.join("\n"));
        }
        task
    }
}

/// Where repositories are cloned for sessions: `<data>/github`.
pub fn clones_dir() -> Result<PathBuf, GitHubError> {
    fixbox_store::data_dir().map(|d| d.join("github")).map_err(|e| GitHubError::Store(e.to_string()))
}

/// Reads the issue and its repository and brings the repository's default branch into
/// `clones/<owner>/<repo>` (cloned once, fetched after). A repository over `max_repo_kib` is refused
/// before anything is downloaded.
pub async fn checkout_issue(
    github: &GitHub,
    reference: &IssueRef,
    clones: &Path,
    max_repo_kib: u64,
) -> Result<IssueCheckout, GitHubError> {
    let repository = github.repository(&reference.owner, &reference.repo).await?;
    let issue = github.issue(reference).await?;
    if repository.size > max_repo_kib {
        return Err(GitHubError::TooLarge {
            repo: repository.full_name.clone(),
            size_kib: repository.size,
            limit_kib: max_repo_kib,
        });
    }
    let comments = if issue.comments > 0 { github.comments(reference).await? } else { Vec::new() };
    let clone = clones.join(&reference.owner).join(&reference.repo);
    git::clone_or_update(&repository.clone_url, &clone, &repository.default_branch, github.token()).await?;
    Ok(IssueCheckout { reference: reference.clone(), issue, comments, repository, clone })
}

/// A pull request ready to open: the commit and the text. Kept (see [`Pending`]) until it is open, so
/// a push that failed can be tried again without running the session again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestDraft {
    pub branch: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub commit_message: String,
    /// The session's change and the tests it wrote, `git apply`-able on `base`.
    pub diff: String,
    pub verified: bool,
    /// Files the change touches that run on others' machines or in CI (workflows, build and install
    /// scripts): the model wrote them from untrusted text, so the user is told before approving.
    pub sensitive: Vec<String>,
}

/// Test output quoted in a pull request, at most.
const EXCERPT_LINES: usize = 25;

impl PullRequestDraft {
    /// The pull request for `report`, the session run on `checkout`, written the way the repository
    /// writes its commits where its history shows a convention.
    pub async fn new(checkout: &IssueCheckout, report: &SessionReport) -> Result<Self, GitHubError> {
        let diff = format!("{}{}", report.diff, report.test_diff);
        if diff.trim().is_empty() {
            return Err(GitHubError::NothingToPropose);
        }
        let base = checkout.repository.default_branch.clone();
        let subjects = git::recent_subjects(&checkout.clone, &base).await;
        let number = checkout.issue.number;
        let title = checkout.issue.title.trim().chars().take(200).collect::<String>();
        let subject = if conventional(&subjects) {
            format!("fix: {title} (#{number})")
        } else {
            format!("Fix #{number}: {title}")
        };
        let verified = report.outcome.as_ref().is_some_and(Outcome::is_fixed);
        let keyword = if verified { "Fixes" } else { "Addresses" };
        let commit_message = format!(
            "{subject}\n\n{keyword} #{number}. Written by a model in a Fixbox session{}.\n",
            if verified { "; the tests pass" } else { "; not verified" }
        );
        let sensitive = sensitive_paths(&diff);
        let mut body = evidence(report, number, verified);
        if !sensitive.is_empty() {
            body = format!(
                "> **Review with care**: this change edits files that run in CI or when the project is built or installed: {}.\n\n{body}",
                sensitive.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
            );
        }
        Ok(Self {
            branch: format!("fixbox/issue-{number}"),
            base,
            title: subject,
            body,
            commit_message,
            diff,
            verified,
            sensitive,
        })
    }
}

/// The files a diff touches that run in CI or at build or install time.
fn sensitive_paths(diff: &str) -> Vec<String> {
    const NAMES: [&str; 14] = [
        "Makefile",
        "setup.py",
        "setup.cfg",
        "pyproject.toml",
        "package.json",
        "build.rs",
        "conftest.py",
        "tox.ini",
        "noxfile.py",
        "Dockerfile",
        "Jenkinsfile",
        ".gitlab-ci.yml",
        ".travis.yml",
        ".pre-commit-config.yaml",
    ];
    const FOLDERS: [&str; 3] = [".github/", ".circleci/", ".gitlab/"];
    let mut paths: Vec<String> = diff
        .lines()
        .filter_map(|l| l.strip_prefix("+++ b/").or_else(|| l.strip_prefix("--- a/")))
        .map(|p| p.trim().to_string())
        .filter(|p| {
            let name = p.rsplit('/').next().unwrap_or(p);
            NAMES.contains(&name) || FOLDERS.iter().any(|f| p.starts_with(f))
        })
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// Whether most recent subjects follow Conventional Commits (`fix: …`, `feat(x)!: …`).
fn conventional(subjects: &[String]) -> bool {
    let follows = |s: &String| {
        let Some((kind, _)) = s.split_once(": ") else { return false };
        let kind = kind.trim_end_matches('!');
        let kind = kind.split_once('(').map_or(kind, |(k, scope)| if scope.ends_with(')') { k } else { "" });
        !kind.is_empty() && kind.chars().all(|c| c.is_ascii_lowercase())
    };
    !subjects.is_empty() && subjects.iter().filter(|s| follows(s)).count() * 2 > subjects.len()
}

/// The pull request's text: what was fixed and how it was shown, then what the session cost.
fn evidence(report: &SessionReport, number: u64, verified: bool) -> String {
    let mut body = String::new();
    if verified {
        body.push_str(&format!("Fixes #{number}.\n\n"));
    } else {
        let why = report.outcome.as_ref().map_or_else(|| "the session did not finish".into(), Outcome::describe);
        body.push_str(&format!(
            "Addresses #{number}.\n\n> **Not verified**: {why}. No test shows this change fixes the issue; read it as a suggestion.\n\n"
        ));
    }
    body.push_str("### Evidence\n\n");
    body.push_str(&format!("Test command: `{}`\n\n", report.test_command));
    body.push_str("| | before | after |\n|---|---|---|\n");
    let line = |s: &Option<fixbox_agent::TestSummary>| {
        s.as_ref().map_or_else(|| "not run".into(), |s| s.line().replace('|', "\\|"))
    };
    body.push_str(&format!("| tests | {} | {} |\n\n", line(&report.tests_before), line(&report.tests_after)));
    if !report.test_diff.trim().is_empty() {
        body.push_str(&format!(
            "The test written to reproduce the issue{}:\n\n```diff\n{}\n```\n\n",
            if verified { " (it failed before the change and passes after)" } else { "" },
            excerpt(&report.test_diff, 60)
        ));
    }
    if let Some(before) = report.tests_before.as_ref().filter(|s| !s.ok) {
        body.push_str(&format!(
            "<details><summary>Failing before</summary>\n\n```\n{}\n```\n</details>\n\n",
            excerpt_tail(&before.output, EXCERPT_LINES)
        ));
    }
    if let Some(after) = &report.tests_after {
        body.push_str(&format!(
            "<details><summary>After the change</summary>\n\n```\n{}\n```\n</details>\n\n",
            excerpt_tail(&after.output, EXCERPT_LINES)
        ));
    }
    body.push_str("### Session\n\n");
    let models: Vec<&str> = {
        let mut m: Vec<&str> = report.calls.iter().map(|c| c.model.as_str()).collect();
        m.dedup();
        m
    };
    let (prompt, completion, cached, cost) = report
        .totals
        .as_ref()
        .map_or((0, 0, 0, 0.0), |t| (t.usage.prompt, t.usage.completion, t.usage.cache_read, t.cost_usd));
    let seconds = report.timings.map_or(0.0, |t| t.wall_ms / 1000.0);
    let time = if seconds < 90.0 { format!("{seconds:.0} s") } else { format!("{:.1} min", seconds / 60.0) };
    body.push_str(&format!(
        "- model: {}\n- iterations: {}\n- tokens: {prompt} prompt ({cached} from the cache), {completion} completion\n- cost: ${cost:.4}\n- time: {time}\n\n",
        if models.is_empty() { "none".into() } else { models.join(", ") },
        report.iterations,
    ));
    body.push_str("Opened as a draft by [Fixbox](https://github.com/fixbox-dev/fixbox) after its user reviewed the diff. The change was written by a model: review it before merging.\n");
    body
}

fn cut(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_string();
    }
    format!("{}\n[… cut]", text.chars().take(chars).collect::<String>())
}

fn excerpt(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let mut kept = all[..all.len().min(lines)].join("\n");
    if all.len() > lines {
        kept.push_str(&format!("\n… {} more lines", all.len() - lines));
    }
    kept.replace("```", "ˋˋˋ")
}

fn excerpt_tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n").replace("```", "ˋˋˋ")
}

/// A pull request waiting to be opened, kept in the settings under the session's id until it is: a
/// failed push or a refusal loses nothing, and opening it again needs no new session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub reference: IssueRef,
    pub clone: PathBuf,
    pub draft: PullRequestDraft,
}

impl Pending {
    fn key(session: &str) -> String {
        format!("github.pending:{session}")
    }

    pub fn save(&self, store: &Store, session: &str) -> Result<(), fixbox_store::StoreError> {
        let value = serde_json::to_value(self).map_err(fixbox_store::StoreError::Payload)?;
        store.set_setting(&Self::key(session), &value)
    }

    /// The pull request kept for `session`, if one waits.
    pub fn load(store: &Store, session: &str) -> Result<Option<Self>, fixbox_store::StoreError> {
        Ok(store.setting(&Self::key(session))?.filter(|v| !v.is_null()).and_then(|v| serde_json::from_value(v).ok()))
    }

    pub fn forget(store: &Store, session: &str) -> Result<(), fixbox_store::StoreError> {
        store.set_setting(&Self::key(session), &serde_json::Value::Null)
    }
}

impl Pending {
    /// The pull request for the session `session` run on `checkout`, drafted from its log and kept
    /// until it is opened; `None` when the session changed nothing.
    pub async fn draft(store: &Store, checkout: &IssueCheckout, session: &str) -> Result<Option<Self>, GitHubError> {
        let report = session
            .parse()
            .ok()
            .and_then(|id| store.events_from(&id, 1).ok())
            .and_then(|events| SessionReport::from_events(&events))
            .ok_or_else(|| GitHubError::NoSession(session.to_string()))?;
        let draft = match PullRequestDraft::new(checkout, &report).await {
            Ok(draft) => draft,
            Err(GitHubError::NothingToPropose) => return Ok(None),
            Err(err) => return Err(err),
        };
        let pending = Self { reference: checkout.reference.clone(), clone: checkout.clone.clone(), draft };
        pending.save(store, session).map_err(|e| GitHubError::Store(e.to_string()))?;
        Ok(Some(pending))
    }
}

/// How often a push to a fork GitHub is still copying is tried.
const FORK_PUSH_TRIES: u32 = 5;

/// Commits the draft on its branch in the clone, pushes it (to the repository where the user may push,
/// else to their fork) and opens the draft pull request, or finds the one already open for the branch;
/// then says so on the issue. Safe to call again after a failure.
pub async fn open_pull_request(github: &GitHub, pending: &Pending) -> Result<PullRequest, GitHubError> {
    let (reference, draft) = (&pending.reference, &pending.draft);
    let repository = github.repository(&reference.owner, &reference.repo).await?;
    git::commit(&pending.clone, &draft.base, &draft.branch, &draft.diff, &draft.commit_message).await?;
    let may_push = repository.permissions.is_some_and(|p| p.push);
    let head = if may_push {
        git::push(&pending.clone, &repository.clone_url, &draft.branch, github.token()).await?;
        format!("{}:{}", reference.owner, draft.branch)
    } else {
        let fork = github.fork(&reference.owner, &reference.repo).await?;
        let mut tries = 0;
        loop {
            tries += 1;
            match git::push(&pending.clone, &fork.clone_url, &draft.branch, github.token()).await {
                Ok(()) => break,
                Err(e) if tries >= FORK_PUSH_TRIES => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_secs(2 * u64::from(tries))).await,
            }
        }
        format!("{}:{}", fork.owner.login, draft.branch)
    };
    if let Some(open) = github.pull_for(&reference.owner, &reference.repo, &head).await? {
        return Ok(open);
    }
    let pull = github
        .create_pull(
            &reference.owner,
            &reference.repo,
            &NewPull {
                title: &draft.title,
                body: &draft.body,
                head: &head,
                base: &draft.base,
                draft: true,
                maintainer_can_modify: true,
            },
        )
        .await?;
    let note = if draft.verified {
        format!("Fixbox proposes a fix in #{} (a draft; the tests pass with it).", pull.number)
    } else {
        format!("Fixbox proposes a change in #{} (a draft, not verified by the tests).", pull.number)
    };
    github.comment(reference, &note).await?;
    Ok(pull)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_to_ci_and_build_files_are_named() {
        let diff = "--- a/cache.py\n+++ b/cache.py\n@@\n--- /dev/null\n+++ b/.github/workflows/ci.yml\n@@\n\
                    --- a/sub/setup.py\n+++ b/sub/setup.py\n@@\n--- a/Makefile\n+++ /dev/null\n";
        assert_eq!(sensitive_paths(diff), [".github/workflows/ci.yml", "Makefile", "sub/setup.py"]);
        assert!(sensitive_paths("--- a/src/make.py\n+++ b/src/make.py\n").is_empty());
    }

    #[test]
    fn a_conventional_history_gets_a_conventional_subject() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(conventional(&s(&["fix: a", "feat(parser)!: b", "docs: c", "Merge pull request #3"])));
        assert!(!conventional(&s(&["Fix the parser", "Add docs", "fix: a"])));
        assert!(!conventional(&s(&["Note: this is prose", "Update README"])));
        assert!(!conventional(&[]));
    }
}
