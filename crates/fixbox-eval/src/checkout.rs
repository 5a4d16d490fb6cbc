//! A task's repository at its base commit, checked out from a local clone or mirror with git.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::EvalError;

/// Where the copy of `repo` (`owner/name`) is under `repos`: `owner+name` (with its git data in `repo/`
/// or directly), `owner__name`, or `name`, each optionally ending in `.git`.
pub fn find_repo(repos: &Path, repo: &str) -> Result<PathBuf, EvalError> {
    let name = repo.rsplit('/').next().unwrap_or(repo);
    let stems = [repo.replace('/', "+"), repo.replace('/', "__"), name.to_string()];
    for stem in &stems {
        for candidate in [repos.join(stem).join("repo"), repos.join(stem), repos.join(format!("{stem}.git"))] {
            if candidate.join("HEAD").is_file() || candidate.join(".git").exists() {
                return Ok(candidate);
            }
        }
    }
    Err(EvalError::NoRepo { repo: repo.to_string(), dir: repos.to_path_buf() })
}

/// Checks `commit` of the repository at `source` out into `into` (which must not exist), with its
/// history, so that tools that read it (setuptools-scm, `git diff`) work as in a real clone.
pub async fn check_out(source: &Path, commit: &str, into: &Path) -> Result<(), EvalError> {
    git(Path::new("."), &["clone", "-q", "--no-checkout", &source.display().to_string(), &into.display().to_string()])
        .await?;
    git(into, &["checkout", "-q", "--detach", commit]).await.map_err(|err| match err {
        EvalError::Git { dir, reason, .. } => EvalError::Git {
            op: format!("checkout of {commit} (is it in the clone at {}?)", source.display()),
            dir,
            reason,
        },
        other => other,
    })?;
    Ok(())
}

/// Applies a diff to the work tree of `dir`.
pub async fn apply(dir: &Path, diff: &str, what: &str) -> Result<(), EvalError> {
    if diff.trim().is_empty() {
        return Ok(());
    }
    let applied = git_with_input(dir, &["apply", "--whitespace=nowarn", "-"], Some(diff)).await;
    applied.map(drop).map_err(|err| match err {
        EvalError::Git { dir, reason, .. } => EvalError::Git { op: format!("apply of the {what}"), dir, reason },
        other => other,
    })
}

async fn git(dir: &Path, args: &[&str]) -> Result<String, EvalError> {
    git_with_input(dir, args, None).await
}

/// Runs git in `dir`, with `input` on its standard input.
async fn git_with_input(dir: &Path, args: &[&str], input: Option<&str>) -> Result<String, EvalError> {
    let op = args.first().copied().unwrap_or("").to_string();
    let failed = |reason: String| EvalError::Git { op: op.clone(), dir: dir.into(), reason };
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("cannot run git: {e}")))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(input.as_bytes()).await.map_err(|e| failed(format!("cannot write to git: {e}")))?;
    }
    let output = child.wait_with_output().await.map_err(|e| failed(format!("cannot run git: {e}")))?;
    if !output.status.success() {
        return Err(failed(String::from_utf8_lossy(&output.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
