use std::path::PathBuf;

/// What stopped an evaluation, or one of its tasks, from running.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("no copy of {repo} under {dir}: put a git clone or mirror of it there as {dir}/{}", repo.replace('/', "+"))]
    NoRepo { repo: String, dir: PathBuf },
    #[error("git {op} failed in {dir}: {reason}")]
    Git { op: String, dir: PathBuf, reason: String },
    #[error("the setup command failed (exit {exit_code:?}): {output}")]
    Setup { exit_code: Option<i64>, output: String },
    #[error("the sandbox failed: {0}")]
    Sandbox(String),
    #[error("the session could not run: {0}")]
    Session(String),
    #[error("the run was stopped")]
    Stopped,
}
