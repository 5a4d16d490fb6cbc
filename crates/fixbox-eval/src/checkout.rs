//! A task's repository at its base commit, checked out from a local clone or mirror with git.

use std::path::{Path, PathBuf};

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
    let file = dir.join(format!(".fixbox-{what}.diff"));
    std::fs::write(&file, diff).map_err(|source| EvalError::Write { path: file.clone(), source })?;
    let applied = git(dir, &["apply", "--whitespace=nowarn", &file.display().to_string()]).await;
    let _ = std::fs::remove_file(&file);
    applied.map(drop).map_err(|err| match err {
        EvalError::Git { dir, reason, .. } => EvalError::Git { op: format!("apply of the {what}"), dir, reason },
        other => other,
    })
}

async fn git(dir: &Path, args: &[&str]) -> Result<String, EvalError> {
    let op = args.first().copied().unwrap_or("").to_string();
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| EvalError::Git { op: op.clone(), dir: dir.into(), reason: format!("cannot run git: {e}") })?;
    if !output.status.success() {
        let reason = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(EvalError::Git { op, dir: dir.into(), reason });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
