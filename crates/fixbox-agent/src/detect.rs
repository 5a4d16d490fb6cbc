//! Which test command a repository uses and which sandbox image runs it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::AgentError;

/// How a repository is tested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestPlan {
    /// A shell command, run in the repository's copy (`/workspace`).
    pub command: String,
    pub runner: Runner,
    /// The sandbox recipe whose image has the toolchain (`resources/sandbox/<recipe>`).
    pub recipe: String,
}

/// Whose output the test report is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Runner {
    Pytest,
    Cargo,
    Npm,
    Go,
    Make,
    /// A command given by the user that none of the above recognises: only its exit code counts.
    Other,
}

impl Runner {
    fn recipe(self) -> &'static str {
        match self {
            Self::Pytest | Self::Make | Self::Other => "python",
            Self::Cargo => "rust",
            Self::Npm => "node",
            Self::Go => "go",
        }
    }

    /// The environment the tests run with: every tool's cache and home under the sandbox's `/tmp`
    /// (the root filesystem is read-only), no colours, offline.
    pub fn env(self) -> Vec<(String, String)> {
        let mut env = vec![("HOME", "/tmp"), ("CI", "true"), ("NO_COLOR", "1"), ("TERM", "dumb")];
        env.extend(match self {
            // A setup that makes a virtualenv at /tmp/venv (installing the project's dependencies)
            // gets it used; without one the PATH is Debian's.
            Self::Pytest => vec![
                ("PYTHONDONTWRITEBYTECODE", "1"),
                ("VIRTUAL_ENV", "/tmp/venv"),
                ("PATH", "/tmp/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            ],
            Self::Cargo => {
                vec![("CARGO_HOME", "/tmp/cargo"), ("CARGO_TARGET_DIR", "/tmp/target"), ("CARGO_NET_OFFLINE", "true")]
            }
            Self::Npm => vec![("npm_config_cache", "/tmp/npm"), ("npm_config_update_notifier", "false")],
            Self::Go => {
                // No C compiler in the image: cgo off, so packages like `net` build from their Go code.
                vec![
                    ("GOCACHE", "/tmp/go/cache"),
                    ("GOPATH", "/tmp/go"),
                    ("GOPROXY", "off"),
                    ("GOFLAGS", "-mod=mod"),
                    ("CGO_ENABLED", "0"),
                ]
            }
            Self::Make | Self::Other => vec![],
        });
        env.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The environment of a setup command (installing dependencies): the tests' without the switches
    /// that keep cargo and go off the network.
    pub fn setup_env(self) -> Vec<(String, String)> {
        let offline = ["CARGO_NET_OFFLINE", "GOPROXY"];
        self.env().into_iter().filter(|(key, _)| !offline.contains(&key.as_str())).collect()
    }
}

impl TestPlan {
    fn new(command: &str, runner: Runner) -> Self {
        Self { command: command.to_string(), runner, recipe: runner.recipe().to_string() }
    }

    /// The plan for a command the user gave: its runner guessed from the command, its image from the
    /// command or else the repository.
    pub fn given(command: &str, repo: &Path) -> Self {
        let words: Vec<&str> = command.split_whitespace().collect();
        let has = |w: &str| words.iter().any(|x| *x == w || x.ends_with(&format!("/{w}")));
        let runner = if has("pytest") || command.contains("-m pytest") {
            Runner::Pytest
        } else if has("cargo") {
            Runner::Cargo
        } else if ["npm", "node", "npx", "mocha", "jest", "vitest", "tap", "ava"].iter().any(|w| has(w)) {
            Runner::Npm
        } else if has("go") {
            Runner::Go
        } else if has("make") {
            Runner::Make
        } else {
            Runner::Other
        };
        let mut plan = Self::new(command, runner);
        if matches!(runner, Runner::Make | Runner::Other)
            && let Ok(detected) = detect(repo)
        {
            plan.recipe = detected.recipe;
        }
        plan
    }
}

/// The command that runs `repo`'s tests: pytest, cargo test, npm test, go test or make test, in that
/// order of preference.
pub fn detect(repo: &Path) -> Result<TestPlan, AgentError> {
    if !repo.is_dir() {
        return Err(AgentError::NotARepo { path: repo.to_path_buf() });
    }
    let file = |name: &str| repo.join(name).is_file();
    let read = |name: &str| std::fs::read_to_string(repo.join(name)).unwrap_or_default();
    if file("pytest.ini")
        || file("conftest.py")
        || read("pyproject.toml").contains("[tool.pytest")
        || read("setup.cfg").contains("[tool:pytest]")
        || has_python_tests(repo)
    {
        // -rA: a line per test with its outcome, which is how a regression is noticed.
        return Ok(TestPlan::new("python3 -m pytest -q -rA --tb=short -p no:cacheprovider", Runner::Pytest));
    }
    if file("Cargo.toml") {
        return Ok(TestPlan::new("cargo test --offline --color never", Runner::Cargo));
    }
    if file("package.json") {
        let manifest: serde_json::Value = serde_json::from_str(&read("package.json")).unwrap_or_default();
        if let Some(script) = manifest.pointer("/scripts/test").and_then(|t| t.as_str())
            && !script.contains("no test specified")
        {
            // What `npm test` runs, run directly: the sandbox image has node but not npm.
            let command = format!("PATH=\"$PWD/node_modules/.bin:$PATH\" {script}");
            return Ok(TestPlan::new(&command, Runner::Npm));
        }
    }
    if file("go.mod") {
        return Ok(TestPlan::new("go test -v ./...", Runner::Go));
    }
    if read("Makefile").lines().any(|l| l.starts_with("test:")) {
        return Ok(TestPlan::new("make test", Runner::Make));
    }
    Err(AgentError::NoTestCommand { path: repo.to_path_buf() })
}

/// Whether `repo` has `test_*.py` or `*_test.py` files at its top or in a `tests`/`test` folder.
fn has_python_tests(repo: &Path) -> bool {
    let is_test = |name: &str| name.ends_with(".py") && (name.starts_with("test_") || name.ends_with("_test.py"));
    ["", "tests", "test"].iter().any(|dir| {
        std::fs::read_dir(repo.join(dir))
            .map(|entries| entries.flatten().any(|e| is_test(&e.file_name().to_string_lossy())))
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::tests::folder;

    #[test]
    fn each_ecosystem_is_recognised() {
        let cases = [
            (vec![("tests/test_x.py", "")], Runner::Pytest, "python"),
            (vec![("pyproject.toml", "[tool.pytest.ini_options]\n")], Runner::Pytest, "python"),
            (vec![("Cargo.toml", "[package]\n")], Runner::Cargo, "rust"),
            (vec![("package.json", r#"{"scripts":{"test":"node --test"}}"#)], Runner::Npm, "node"),
            (vec![("go.mod", "module x\n")], Runner::Go, "go"),
            (vec![("Makefile", "all:\n\ttrue\ntest:\n\ttrue\n")], Runner::Make, "python"),
        ];
        for (files, runner, recipe) in cases {
            let dir = folder(&files);
            let plan = detect(dir.path()).unwrap();
            assert_eq!((plan.runner, plan.recipe.as_str()), (runner, recipe), "{files:?}");
        }
    }

    #[test]
    fn npm_init_placeholder_script_is_not_a_test_command() {
        let dir = folder(&[("package.json", r#"{"scripts":{"test":"echo \"Error: no test specified\" && exit 1"}}"#)]);
        let err = detect(dir.path()).unwrap_err();
        assert!(matches!(err, AgentError::NoTestCommand { .. }), "{err}");
    }

    #[test]
    fn a_given_command_keeps_the_repositorys_image() {
        let dir = folder(&[("Cargo.toml", "[package]\n")]);
        let plan = TestPlan::given("./run-tests.sh", dir.path());
        assert_eq!((plan.runner, plan.recipe.as_str()), (Runner::Other, "rust"));
        assert_eq!(TestPlan::given("pytest -x tests", dir.path()).runner, Runner::Pytest);
        let mocha = TestPlan::given("./node_modules/.bin/mocha --reporter tap test/a.js", dir.path());
        assert_eq!((mocha.runner, mocha.recipe.as_str()), (Runner::Npm, "node"), "a test framework run directly");
    }
}
