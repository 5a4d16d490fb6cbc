use std::time::Duration;

/// What went wrong talking to GitHub or running git, worded for the user with what to do next.
#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("{0:?} is not a GitHub issue: write owner/repo#123, github:owner/repo#123 or the issue's URL")]
    NotAnIssue(String),
    #[error("cannot reach GitHub at {api}: {reason}; check the network connection and try again")]
    Network { api: String, reason: String },
    #[error("GitHub refused the token (401 {message}): store a new GitHub token with access to this repository")]
    Unauthorized { message: String },
    #[error(
        "{what} was not found on GitHub: it does not exist, or it is private and {}",
        if *.signed_in { "the stored token cannot see it (give the token access to the repository)" } else { "Fixbox is not signed in to GitHub (store a GitHub token)" }
    )]
    NotFound { what: String, signed_in: bool },
    #[error(
        "GitHub's rate limit is spent; it resets in {}. {}",
        minutes(*.retry_in),
        if *.signed_in { "Try again then" } else { "Sign in to GitHub for a higher limit, or try again then" }
    )]
    RateLimited { retry_in: Duration, signed_in: bool },
    #[error("GitHub refused {action} (403 {message})")]
    Forbidden { action: String, message: String },
    #[error("GitHub could not {action}: {message}")]
    Rejected { action: String, message: String },
    #[error("GitHub answered {status} to {action}: {message}")]
    Http { action: String, status: u16, message: String },
    #[error("GitHub's answer to {action} was not what its API documents ({reason})")]
    Answer { action: String, reason: String },
    #[error("{repo} is {} MiB, over the {} MiB limit for a clone; raise the limit to fix issues in it", .size_kib / 1024, .limit_kib / 1024)]
    TooLarge { repo: String, size_kib: u64, limit_kib: u64 },
    #[error("git could not {op}: {message}")]
    Git { op: String, message: String },
    #[error("the session changed nothing, so there is no pull request to open")]
    NothingToPropose,
    #[error("session {0} has no fix session's log in this data folder")]
    NoSession(String),
    #[error("cannot keep the pull request for later: {0}")]
    Store(String),
    #[error("cannot read the GitHub token from the keychain: {0}")]
    Keychain(String),
    #[error("cannot {op} {path}: {source}")]
    Io { op: &'static str, path: String, source: std::io::Error },
}

fn minutes(wait: Duration) -> String {
    match wait.as_secs() {
        s if s < 90 => format!("{s} s"),
        s => format!("{} min", s.div_ceil(60)),
    }
}
