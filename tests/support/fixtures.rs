//! The buggy sample projects (`tests/fixtures/buggy/<name>/`): each a repository in `repo/` with a
//! failing test, its task, and its reference fix.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Fixture {
    #[serde(skip)]
    pub name: String,
    /// The project: what Fixbox is pointed at.
    #[serde(skip)]
    pub repo: PathBuf,
    /// The reference fix, a unified diff against `repo`.
    #[serde(skip)]
    pub fix_patch: String,
    pub task: String,
    pub language: String,
    pub kind: String,
    pub files: Vec<String>,
    pub failing: Vec<String>,
}

fn root() -> PathBuf {
    crate::workspace_root().join("tests/fixtures/buggy")
}

/// Every sample project, by name.
pub fn all() -> Result<Vec<Fixture>> {
    let mut names: Vec<String> = std::fs::read_dir(root())?
        .flatten()
        .filter(|e| e.path().join("fixbox-fixture.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.iter().map(|name| get(name)).collect()
}

pub fn get(name: &str) -> Result<Fixture> {
    load(&root(), name)
}

/// A sample project with dependencies from a registry, which a session's setup installs
/// (`tests/fixtures/with-dependencies/`).
pub fn with_dependencies(name: &str) -> Result<Fixture> {
    load(&crate::workspace_root().join("tests/fixtures/with-dependencies"), name)
}

fn load(root: &std::path::Path, name: &str) -> Result<Fixture> {
    let dir = root.join(name);
    let text = std::fs::read_to_string(dir.join("fixbox-fixture.toml")).with_context(|| format!("fixture {name}"))?;
    let mut fixture: Fixture = toml::from_str(&text).with_context(|| format!("fixture {name}'s metadata"))?;
    fixture.name = name.to_string();
    fixture.repo = dir.join("repo");
    fixture.fix_patch = std::fs::read_to_string(dir.join("fix.patch"))?;
    Ok(fixture)
}
