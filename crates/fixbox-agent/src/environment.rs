//! The project's dependencies: the command that installs them (the user's, or the one its manifests
//! call for), and what that command installed, kept between sessions so that the next session on the
//! same repository and manifests restores it instead of installing again.

use std::path::{Path, PathBuf};

use fixbox_sandbox::{ExecRequest, Sandbox, SandboxError};
use sha2::{Digest, Sha256};

use crate::text::shell_quote;

/// How a session's dependencies are installed, in its sandbox with network, before the first test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Setup {
    /// What the repository's manifests declare ([`install_command`]); nothing where they declare none.
    #[default]
    Detect,
    /// Nothing: the image's tools only.
    Skip,
    /// This shell command, run in the repository's copy.
    Command(String),
}

/// A session's setup: its command, and where what it installs is kept between sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub command: String,
    /// The archive of what the command installs, when one is kept.
    pub archive: Option<PathBuf>,
    /// Whether that archive was there before the session: it is restored, and the command not run.
    pub restore: bool,
    /// Whether the session's sandbox holds it already, restored by a warm pool.
    pub restored_ahead: bool,
}

impl Environment {
    /// `command`, kept in `dir` under the repository, command, image and manifests it installs for.
    pub fn kept_in(dir: &Path, repo: &Path, command: &str, image: &str) -> Self {
        let archive = dir.join(format!("{}.tar", key(repo, command, image)));
        let restore = archive.is_file();
        Self { command: command.to_string(), archive: Some(archive), restore, restored_ahead: false }
    }
}

/// The files a setup installs that the tests need, one absolute path a line: in `/tmp` (the sandbox's
/// home, where the virtualenv, cargo's and Go's modules go) all but pip's and npm's download caches
/// and what Fixbox put there itself, and in the workspace the packages npm installs and the metadata
/// an editable pip install writes.
const INSTALLED: &str = r#"cd / && for p in tmp/* tmp/.[!.]*; do
  [ -e "$p" ] || continue
  case "$p" in tmp/.cache|tmp/npm|tmp/fixbox-*) ;; *) echo "/$p" ;; esac
done
find workspace -maxdepth 3 \( -name node_modules -o -name '*.egg-info' \) -prune -print | sed 's|^|/|'"#;

/// Keeps what a setup installed in `sandbox` ([`INSTALLED`]) at `archive`, for the next session, and
/// prunes the archives beside it. Written aside and moved in whole: a session that reads it meanwhile
/// sees none or all of it.
pub(crate) async fn keep(sandbox: &impl Sandbox, archive: &Path) -> Result<u64, SandboxError> {
    let listed = sandbox.exec(ExecRequest::shell(INSTALLED)).await?.finish().await?;
    let paths: Vec<String> = listed.stdout.lines().map(str::to_string).collect();
    let dir = archive.parent().unwrap_or(Path::new("."));
    let failed = |path: &Path| {
        let path = path.display().to_string();
        move |source| SandboxError::Copy { path, source }
    };
    std::fs::create_dir_all(dir).map_err(failed(dir))?;
    let partial = archive.with_extension(format!("partial-{}", std::process::id()));
    let kept = match sandbox.save(&paths, &partial).await {
        Ok(bytes) => std::fs::rename(&partial, archive).map(|()| bytes).map_err(failed(archive)),
        Err(err) => Err(err),
    };
    if kept.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    prune(dir, KEPT, KEPT_BYTES);
    kept
}

/// Restores the archive [`keep`] made into `sandbox`. One that cannot be restored is removed: the
/// next session installs again instead of failing the same way.
pub(crate) async fn restore(sandbox: &impl Sandbox, archive: &Path) -> Result<(), SandboxError> {
    let restored = sandbox.restore(archive).await;
    match &restored {
        // Used now: the last to go.
        Ok(()) => {
            let _ = std::fs::File::options()
                .append(true)
                .open(archive)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        }
        Err(_) => {
            let _ = std::fs::remove_file(archive);
        }
    }
    restored
}

/// Archives kept at most, and their size at most; the least recently used goes first.
const KEPT: usize = 20;
const KEPT_BYTES: u64 = 8 << 30;

/// Removes the least recently used archives in `dir` (by their modification time, which
/// [`restore`] renews) until at most `keep` are left, of at most `bytes` in all.
fn prune(dir: &Path, keep: usize, bytes: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut archives: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .filter_map(|p| {
            let meta = p.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), p))
        })
        .collect();
    archives.sort();
    let (mut count, mut total) = (0, 0);
    for (_, size, path) in archives.iter().rev() {
        (count, total) = (count + 1, total + size);
        if count > keep || total > bytes {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Makes the virtualenv a Python setup installs into: at /tmp/venv, which the pytest runner puts first
/// on the tests' PATH ([`Runner::env`](crate::Runner::env)), seeing the image's packages (pytest among
/// them).
pub const PYTHON_VENV: &str = "python3 -m venv --system-site-packages /tmp/venv";

/// The files whose content decides what a setup installs.
const MANIFESTS: &[&str] = &[
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "package.json",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "Cargo.toml",
    "Cargo.lock",
    "go.mod",
    "go.sum",
];

/// Requirement files a Python project keeps its dependencies in, tests' included.
const REQUIREMENTS: &[&str] = &[
    "requirements.txt",
    "requirements-dev.txt",
    "requirements_dev.txt",
    "requirements-test.txt",
    "requirements_test.txt",
    "requirements-tests.txt",
    "dev-requirements.txt",
    "test-requirements.txt",
    "requirements/dev.txt",
    "requirements/test.txt",
    "requirements/tests.txt",
    "requirements/testing.txt",
];

/// The names of the extras and groups that hold a project's test dependencies.
const TEST_EXTRAS: &[&str] = &["test", "tests", "testing", "dev"];

/// What a kept archive is named by: the repository's folder, the command, the image and the content
/// of every manifest, so a change to any of them installs again.
fn key(repo: &Path, command: &str, image: &str) -> String {
    let mut hash = Sha256::new();
    let folder = std::fs::canonicalize(repo).unwrap_or_else(|_| repo.to_path_buf());
    for part in [folder.to_string_lossy().as_bytes(), command.as_bytes(), image.as_bytes()] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    for name in MANIFESTS.iter().chain(REQUIREMENTS) {
        if let Ok(content) = std::fs::read(repo.join(name)) {
            hash.update(name.as_bytes());
            hash.update((content.len() as u64).to_le_bytes());
            hash.update(&content);
        }
    }
    hash.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The command that installs what `repo`'s manifests declare, test dependencies included, in the
/// sandbox image of `recipe`; `None` where they declare nothing to install.
pub fn install_command(repo: &Path, recipe: &str) -> Option<String> {
    let read = |name: &str| std::fs::read_to_string(repo.join(name)).ok();
    match recipe {
        "python" => python(repo),
        "node" => {
            let manifest: serde_json::Value = serde_json::from_str(&read("package.json")?).ok()?;
            let declares = |key: &str| manifest.get(key).and_then(|d| d.as_object()).is_some_and(|d| !d.is_empty());
            if !(declares("dependencies") || declares("devDependencies")) {
                return None;
            }
            let locked = ["package-lock.json", "npm-shrinkwrap.json"].iter().any(|f| repo.join(f).is_file());
            Some(if locked { "npm ci --no-audit --no-fund" } else { "npm install --no-audit --no-fund" }.to_string())
        }
        "rust" => {
            let manifest: toml::Table = read("Cargo.toml")?.parse().ok()?;
            let workspace = manifest.get("workspace").and_then(|w| w.as_table());
            let declares = ["dependencies", "dev-dependencies", "build-dependencies"]
                .iter()
                .filter_map(|k| manifest.get(*k).or_else(|| workspace?.get(*k)))
                .any(|d| d.as_table().is_some_and(|d| !d.is_empty()));
            declares.then(|| "cargo fetch".to_string())
        }
        "go" => read("go.mod")?
            .lines()
            .any(|l| l.trim_start().starts_with("require"))
            .then(|| "go mod download".to_string()),
        _ => None,
    }
}

/// A virtualenv at /tmp/venv (seeing the image's packages, pytest among them) with the project's
/// requirement files, the project itself (editable, with its test extras) where it is a package, and
/// its test dependency groups.
fn python(repo: &Path) -> Option<String> {
    let read = |name: &str| std::fs::read_to_string(repo.join(name)).ok();
    let mut steps = Vec::new();
    let requirements: Vec<String> =
        REQUIREMENTS.iter().filter(|f| repo.join(f).is_file()).map(|f| format!("-r {f}")).collect();
    if !requirements.is_empty() {
        steps.push(format!("pip install {}", requirements.join(" ")));
    }
    let pyproject: Option<toml::Table> = read("pyproject.toml").and_then(|t| t.parse().ok());
    let project = pyproject.as_ref().and_then(|t| t.get("project")).and_then(|p| p.as_table());
    let mut extras: Vec<String> = Vec::new();
    if let Some(optional) = project.and_then(|p| p.get("optional-dependencies")).and_then(|o| o.as_table()) {
        extras.extend(optional.keys().filter(|k| TEST_EXTRAS.contains(&k.as_str())).cloned());
    }
    if let Some(cfg) = read("setup.cfg") {
        extras.extend(setup_cfg_extras(&cfg));
    }
    if let Some(setup) = read("setup.py") {
        extras.extend(setup_py_extras(&setup));
    }
    extras.sort();
    extras.dedup();
    let declares_dependencies =
        project.and_then(|p| p.get("dependencies")).and_then(|d| d.as_array()).is_some_and(|d| !d.is_empty());
    let package = repo.join("setup.py").is_file()
        || read("setup.cfg").is_some_and(|c| c.contains("[metadata]") || c.contains("[options]"))
        || pyproject.as_ref().is_some_and(|t| t.contains_key("build-system"))
        || declares_dependencies
        || !extras.is_empty();
    if package {
        let target = if extras.is_empty() { ".".to_string() } else { shell_quote(&format!(".[{}]", extras.join(","))) };
        steps.push(format!("pip install -e {target}"));
    }
    // PEP 735's groups: their requirements, listed (the image's pip predates `--group`).
    let groups = pyproject.as_ref().and_then(|t| t.get("dependency-groups")).and_then(|g| g.as_table());
    let grouped: Vec<String> = groups
        .into_iter()
        .flat_map(|g| g.iter())
        .filter(|(name, _)| TEST_EXTRAS.contains(&name.as_str()))
        .filter_map(|(_, list)| list.as_array())
        .flatten()
        .filter_map(|r| r.as_str())
        .map(shell_quote)
        .collect();
    if !grouped.is_empty() {
        steps.push(format!("pip install {}", grouped.join(" ")));
    }
    if steps.is_empty() {
        return None;
    }
    steps.insert(0, PYTHON_VENV.to_string());
    Some(steps.join(" && "))
}

/// The test extras of a `setup.cfg`'s `[options.extras_require]`.
fn setup_cfg_extras(cfg: &str) -> Vec<String> {
    let mut inside = false;
    let mut found = Vec::new();
    for line in cfg.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            inside = trimmed == "[options.extras_require]";
        } else if inside
            && !line.starts_with(char::is_whitespace)
            && let Some((name, _)) = trimmed.split_once('=')
            && TEST_EXTRAS.contains(&name.trim())
        {
            found.push(name.trim().to_string());
        }
    }
    found
}

/// The test extras a `setup.py` names in its `extras_require`: its quoted keys followed by `:`.
fn setup_py_extras(setup: &str) -> Vec<String> {
    let Some(at) = setup.find("extras_require") else { return Vec::new() };
    let rest = &setup[at..];
    TEST_EXTRAS
        .iter()
        .filter(|name| ['"', '\''].iter().any(|q| rest.contains(&format!("{q}{name}{q}:"))))
        .map(|name| name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::tests::folder;

    #[test]
    fn a_python_package_installs_editable_with_its_test_extras_requirements_and_groups() {
        let pyproject = "[build-system]\nrequires = [\"setuptools\"]\n\n[project]\nname = \"p\"\ndependencies = [\"six\"]\n\n[project.optional-dependencies]\ntests = [\"pytest\"]\ndocs = [\"sphinx\"]\n\n[dependency-groups]\ndev = [\"hypothesis>=6\", {include-group = \"lint\"}]\nlint = [\"ruff\"]\n";
        let dir = folder(&[("pyproject.toml", pyproject), ("requirements-dev.txt", "freezegun\n")]);
        assert_eq!(
            install_command(dir.path(), "python").as_deref(),
            Some(
                "python3 -m venv --system-site-packages /tmp/venv && pip install -r requirements-dev.txt && pip install -e '.[tests]' && pip install 'hypothesis>=6'"
            )
        );
        let setup_py = "setup(name='p', extras_require={\n    'testing': ['pytest'],\n    'docs': [],\n})\n";
        let cfg = "[metadata]\nname = p\n\n[options.extras_require]\ntest =\n    pytest\n";
        let dir = folder(&[("setup.py", setup_py), ("setup.cfg", cfg)]);
        assert_eq!(
            install_command(dir.path(), "python").as_deref(),
            Some("python3 -m venv --system-site-packages /tmp/venv && pip install -e '.[test,testing]'")
        );
    }

    #[test]
    fn manifests_that_declare_nothing_to_install_need_no_setup() {
        let bare =
            "[project]\nname = \"summary\"\nversion = \"0.1.0\"\n\n[tool.pytest.ini_options]\npythonpath = [\".\"]\n";
        assert_eq!(install_command(folder(&[("pyproject.toml", bare)]).path(), "python"), None);
        assert_eq!(install_command(folder(&[("calc.py", "")]).path(), "python"), None);
        let package = r#"{"name": "slugify", "scripts": {"test": "node --test"}}"#;
        assert_eq!(install_command(folder(&[("package.json", package)]).path(), "node"), None);
        let crate_ = "[package]\nname = \"median\"\n\n[dependencies]\n\n[workspace]\n";
        assert_eq!(install_command(folder(&[("Cargo.toml", crate_)]).path(), "rust"), None);
        assert_eq!(install_command(folder(&[("go.mod", "module m\n\ngo 1.21\n")]).path(), "go"), None);
        assert_eq!(install_command(folder(&[("package.json", "not json")]).path(), "node"), None);
    }

    #[test]
    fn node_rust_and_go_install_what_they_declare() {
        let package = r#"{"name": "p", "devDependencies": {"mocha": "^10"}}"#;
        let dir = folder(&[("package.json", package)]);
        assert_eq!(install_command(dir.path(), "node").as_deref(), Some("npm install --no-audit --no-fund"));
        let dir = folder(&[("package.json", package), ("package-lock.json", "{}")]);
        assert_eq!(install_command(dir.path(), "node").as_deref(), Some("npm ci --no-audit --no-fund"));
        let dir = folder(&[("Cargo.toml", "[package]\nname = \"p\"\n\n[dev-dependencies]\nproptest = \"1\"\n")]);
        assert_eq!(install_command(dir.path(), "rust").as_deref(), Some("cargo fetch"));
        let dir = folder(&[("go.mod", "module m\n\nrequire github.com/x/y v1.0.0\n")]);
        assert_eq!(install_command(dir.path(), "go").as_deref(), Some("go mod download"));
    }

    #[test]
    fn an_archive_is_kept_per_repository_command_and_manifests_and_the_oldest_go() {
        let dir = folder(&[("pyproject.toml", "[project]\ndependencies = [\"six\"]\n")]);
        let kept = tempfile::tempdir().unwrap();
        let first = Environment::kept_in(kept.path(), dir.path(), "pip install -e .", "image:1");
        assert!(!first.restore);
        let archive = first.archive.clone().unwrap();
        assert_eq!(Environment::kept_in(kept.path(), dir.path(), "pip install -e .", "image:1"), first);
        std::fs::write(&archive, "saved").unwrap();
        assert!(Environment::kept_in(kept.path(), dir.path(), "pip install -e .", "image:1").restore);
        for other in [
            Environment::kept_in(kept.path(), dir.path(), "pip install -e '.[test]'", "image:1"),
            Environment::kept_in(kept.path(), dir.path(), "pip install -e .", "image:2"),
        ] {
            assert!(!other.restore && other.archive.as_ref() != Some(&archive), "{other:?}");
        }
        std::fs::write(dir.path().join("pyproject.toml"), "[project]\ndependencies = [\"six\", \"attrs\"]\n").unwrap();
        assert!(!Environment::kept_in(kept.path(), dir.path(), "pip install -e .", "image:1").restore);

        for n in 0..4 {
            std::fs::write(kept.path().join(format!("{n}.tar")), "1234").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let left = || {
            let mut names: Vec<String> = std::fs::read_dir(kept.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into())
                .collect();
            names.sort();
            names
        };
        prune(kept.path(), 3, u64::MAX);
        assert_eq!(left(), ["1.tar", "2.tar", "3.tar"]);
        prune(kept.path(), 3, 8);
        assert_eq!(left(), ["2.tar", "3.tar"]);
    }
}
