//! git on this machine, for the clone the session copies into its sandbox and for the branch it pushes.
//! The token reaches git through its environment for one command (an `http.extraHeader`), never a URL
//! or a config file, and no credential helper sees it. No hook of the repository runs.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use fixbox_secret::Secret;

use crate::GitHubError;

/// What a clone, fetch or push may take.
const NETWORK_LIMIT: Duration = Duration::from_secs(600);
/// What a local git command may take.
const LOCAL_LIMIT: Duration = Duration::from_secs(60);

async fn git(dir: &Path, args: &[&str], token: Option<&Secret>, op: &str) -> Result<String, GitHubError> {
    let mut command = tokio::process::Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env("GCM_INTERACTIVE", "never")
        // Keep the user's settings, but no credential helper may store or offer a token, and no hook runs.
        .env("GIT_CONFIG_COUNT", if token.is_some() { "3" } else { "2" })
        .env("GIT_CONFIG_KEY_0", "credential.helper")
        .env("GIT_CONFIG_VALUE_0", "")
        .env("GIT_CONFIG_KEY_1", "core.hooksPath")
        .env("GIT_CONFIG_VALUE_1", "/dev/null")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(token) = token {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{}", token.expose()));
        command
            .env("GIT_CONFIG_KEY_2", "http.extraHeader")
            .env("GIT_CONFIG_VALUE_2", format!("Authorization: Basic {basic}"));
    }
    let limit = if matches!(args.first(), Some(&"clone" | &"fetch" | &"push")) { NETWORK_LIMIT } else { LOCAL_LIMIT };
    let output = tokio::time::timeout(limit, command.output())
        .await
        .map_err(|_| GitHubError::Git { op: op.to_string(), message: format!("it took over {} s", limit.as_secs()) })?
        .map_err(|e| GitHubError::Git {
            op: op.to_string(),
            message: format!("cannot run git ({e}); install git and try again"),
        })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    Err(GitHubError::Git { op: op.to_string(), message: said[said.len().saturating_sub(3)..].join(" / ") })
}

/// `url`'s `branch` in `dir`, exactly as on the server: cloned the first time, fetched and reset later
/// (what the session copies must be the branch, not what an earlier session left).
pub(crate) async fn clone_or_update(
    url: &str,
    dir: &Path,
    branch: &str,
    token: Option<&Secret>,
) -> Result<(), GitHubError> {
    if dir.join(".git").is_dir() {
        git(dir, &["remote", "set-url", "origin", url], None, "point the clone at the repository").await?;
        let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        git(dir, &["fetch", "--no-tags", "origin", &refspec], token, "fetch the repository").await?;
        git(dir, &["checkout", "-q", "-f", "-B", branch, &format!("origin/{branch}")], None, "check out the branch")
            .await?;
        git(dir, &["clean", "-q", "-f", "-d", "-x"], None, "clean the clone").await?;
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(|source| GitHubError::Io {
        op: "create",
        path: parent.display().to_string(),
        source,
    })?;
    let into = dir.to_string_lossy();
    let args = ["clone", "-q", "--no-tags", "--single-branch", "--branch", branch, url, into.as_ref()];
    git(parent, &args, token, "clone the repository").await.map(|_| ())
}

/// Commits `diff` on `branch`, made fresh from `origin/<base>`; the commit's id.
pub(crate) async fn commit(
    dir: &Path,
    base: &str,
    branch: &str,
    diff: &str,
    message: &str,
) -> Result<String, GitHubError> {
    git(dir, &["checkout", "-q", "-f", "-B", branch, &format!("origin/{base}")], None, "make the branch").await?;
    let patch = dir.join(".git").join("fixbox.patch");
    std::fs::write(&patch, diff).map_err(|source| GitHubError::Io {
        op: "write",
        path: patch.display().to_string(),
        source,
    })?;
    let patch_arg = patch.to_string_lossy();
    git(dir, &["apply", "--index", "--whitespace=nowarn", patch_arg.as_ref()], None, "apply the fix to the clone")
        .await?;
    let _ = std::fs::remove_file(&patch);
    let identity = git(dir, &["config", "user.email"], None, "read the git identity").await.is_ok();
    let mut args = vec![];
    if !identity {
        args.extend(["-c", "user.name=Fixbox", "-c", "user.email=fixbox@users.noreply.github.com"]);
    }
    args.extend(["commit", "-q", "--no-verify", "-m", message]);
    git(dir, &args, None, "commit the fix").await?;
    Ok(git(dir, &["rev-parse", "HEAD"], None, "read the commit").await?.trim().to_string())
}

/// Pushes the checked-out commit to `branch` at `url`, replacing what an earlier try pushed there.
pub(crate) async fn push(dir: &Path, url: &str, branch: &str, token: Option<&Secret>) -> Result<(), GitHubError> {
    let refspec = format!("+HEAD:refs/heads/{branch}");
    git(dir, &["push", "-q", url, &refspec], token, "push the branch").await.map(|_| ())
}

/// The subjects of the branch's last commits, to write ours the way the project writes its own.
pub(crate) async fn recent_subjects(dir: &Path, base: &str) -> Vec<String> {
    git(dir, &["log", "-20", "--format=%s", &format!("origin/{base}")], None, "read the history")
        .await
        .map(|out| out.lines().map(str::to_string).collect())
        .unwrap_or_default()
}
