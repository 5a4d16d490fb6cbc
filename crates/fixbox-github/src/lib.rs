//! GitHub Auto-fix: read an issue and its repository through GitHub's REST API, clone the repository on
//! this machine, and after a fix session the user approved, push a branch and open a draft pull request
//! that carries the session's evidence.
//!
//! The token lives in the OS keychain and is used here only: in REST headers and in git's environment
//! for one command (never in a URL, `.git/config`, a sandbox, a log, an event or a prompt). The model never
//! pushes; the host does, after the user says yes.

pub mod action;
mod api;
mod autofix;
mod error;
mod git;
mod reference;

pub use api::{Comment, GitHub, Issue, IssueFilter, Label, NewPull, Permissions, PullRequest, Repository, User};
pub use autofix::{IssueCheckout, Pending, PullRequestDraft, checkout_issue, clones_dir, open_pull_request};
pub use error::GitHubError;

/// The largest repository cloned for a session unless the user says otherwise: 2 GiB, in KiB as GitHub
/// counts a repository's size.
pub const MAX_REPO_KIB: u64 = 2 << 20;
pub use reference::IssueRef;
