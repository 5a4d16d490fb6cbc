use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;

use crate::EngineKind;

/// Overrides where Fixbox installs engines (default: the platform cache dir's `engines/`).
pub const ENGINES_DIR_ENV: &str = "FIXBOX_ENGINES_DIR";

/// How long `<engine> --version` may take before we give up on reading a version.
const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// Where an engine was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Installed by Fixbox into its engines dir.
    Fixbox,
    /// On the user's `PATH`.
    Path,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct InstalledEngine {
    pub kind: EngineKind,
    pub path: PathBuf,
    pub origin: Origin,
    /// What `--version` printed, when it answered in time.
    pub version: Option<String>,
}

/// Where to look for engines.
#[derive(Debug, Clone, Default)]
pub struct SearchPaths {
    pub engines_dir: Option<PathBuf>,
    /// A `PATH`-style list of directories.
    pub path: Option<OsString>,
}

impl SearchPaths {
    /// Fixbox's engines dir and the process's `PATH`.
    pub fn from_env() -> Self {
        Self { engines_dir: engines_dir(), path: std::env::var_os("PATH") }
    }
}

/// Fixbox's engines dir: `$FIXBOX_ENGINES_DIR`, else `<platform cache dir>/engines`
/// (`~/.cache/fixbox/engines` on Linux), one folder per engine and version inside.
pub fn engines_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(ENGINES_DIR_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("dev", "fixbox", "Fixbox").map(|dirs| dirs.cache_dir().join("engines"))
}

/// The executable `kind` runs from, as [`discover`] finds it with the usual search paths (Fixbox's
/// engines dir, then `PATH`).
/// One too old to serve Fixbox (see [`floor`]) is refused, naming its version and the one needed.
pub async fn installed(kind: EngineKind) -> Result<PathBuf, crate::EngineError> {
    installed_in(&SearchPaths::from_env(), kind).await
}

/// [`installed`] with these search paths.
pub async fn installed_in(search: &SearchPaths, kind: EngineKind) -> Result<PathBuf, crate::EngineError> {
    let found = discover(search).await;
    let engine = found.into_iter().find(|e| e.kind == kind).ok_or(crate::EngineError::NotInstalled { kind })?;
    let (needed, number) = floor(kind);
    match engine.version.as_deref().and_then(number) {
        Some(version) if version < needed => Err(crate::EngineError::TooOld {
            kind,
            path: engine.path,
            found: engine.version.unwrap_or_default(),
            needed: needed.to_string(),
        }),
        _ => Ok(engine.path),
    }
}

/// A version, comparable with one of its kind: llama.cpp's build number, or a release's
/// `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    Build(u64),
    Release(u64, u64, u64),
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Build(build) => write!(f, "build b{build}"),
            Self::Release(major, minor, patch) => write!(f, "{major}.{minor}.{patch}"),
        }
    }
}

/// The oldest version of `kind` Fixbox works with, and how to read one from its `--version` line:
/// llama-server from build b4000 (Nov 2024: prompt-cache counts in `timings`, GBNF, `/health`), Ollama
/// 0.3.0 (`num_ctx` per request), vLLM 0.6.0 (the OpenAI server's usage in streams).
pub fn floor(kind: EngineKind) -> (Version, fn(&str) -> Option<Version>) {
    match kind {
        EngineKind::LlamaServer => (Version::Build(4000), build_number),
        EngineKind::Ollama => (Version::Release(0, 3, 0), release),
        EngineKind::Vllm => (Version::Release(0, 6, 0), release),
    }
}

/// `version: 4567 (abc)` → build 4567. Builds made outside llama.cpp's releases name no build
/// (`version: 0.6.0-dev (build 0, commit unknown)`): `None`, as for any version not known.
fn build_number(line: &str) -> Option<Version> {
    let word = line.split("version:").nth(1)?.split_whitespace().next()?;
    let build: u64 = word.trim_start_matches('b').parse().ok()?;
    (build > 0).then_some(Version::Build(build))
}

/// The first `x.y[.z]` in the line.
fn release(line: &str) -> Option<Version> {
    line.split(|c: char| !(c.is_ascii_digit() || c == '.')).find_map(|word| {
        let mut parts = word.split('.').map(|p| p.parse::<u64>().ok());
        let (major, minor) = (parts.next()??, parts.next()??);
        Some(Version::Release(major, minor, parts.next().flatten().unwrap_or(0)))
    })
}

/// Every engine executable in `search`: Fixbox's own installs first, then `PATH`, each with its version.
pub async fn discover(search: &SearchPaths) -> Vec<InstalledEngine> {
    let mut found: Vec<(EngineKind, PathBuf, Origin)> = Vec::new();
    for kind in EngineKind::ALL {
        if let Some(dir) = &search.engines_dir {
            let dir = dir.clone();
            let installed =
                tokio::task::spawn_blocking(move || find_below(&dir, kind.binary(), 3)).await.unwrap_or_default();
            found.extend(installed.into_iter().map(|path| (kind, path, Origin::Fixbox)));
        }
        if let Some(path_var) = &search.path {
            let cwd = std::env::current_dir().unwrap_or_default();
            if let Ok(paths) = which::which_in_all(kind.binary(), Some(path_var), cwd) {
                for path in paths {
                    if !found.iter().any(|(_, known, _)| same_file(known, &path)) {
                        found.push((kind, path, Origin::Path));
                    }
                }
            }
        }
    }
    // Versions in parallel: one hanging engine costs one timeout, not one per engine.
    futures::future::join_all(found.into_iter().map(|(kind, path, origin)| async move {
        let version = version_of(&path).await;
        InstalledEngine { kind, path, origin, version }
    }))
    .await
}

/// Executables named `name` in `dir` and up to `depth` levels below it, sorted.
pub(crate) fn find_below(dir: &Path, name: &str, depth: usize) -> Vec<PathBuf> {
    let file_name = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() && depth > 0 => found.extend(find_below(&path, name, depth - 1)),
            Ok(_) if entry.file_name() == file_name.as_str() && is_executable(&path) => found.push(path),
            _ => {}
        }
    }
    found.sort();
    found
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The line of `<engine> --version` that names a version (llama-server prints `version: 4567 (abc)`,
/// Ollama `ollama version is 0.5.7`, vLLM a bare `0.6.3`), or `None` if it fails or hangs.
async fn version_of(path: &Path) -> Option<String> {
    let child = tokio::process::Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let output = tokio::time::timeout(VERSION_TIMEOUT, child.wait_with_output()).await.ok()?.ok()?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let line = lines.iter().find(|l| l.to_ascii_lowercase().contains("version")).or(lines.first())?;
    Some(line.chars().take(120).collect())
}
