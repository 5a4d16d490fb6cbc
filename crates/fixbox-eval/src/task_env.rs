//! How a task's project is installed and its judging tests run, in a sandbox of its language's image.

use crate::Task;

/// The commands a task runs in the repository's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEnv {
    /// Run with network before the tests; for Python in a fresh virtualenv at /tmp/venv (seeing the
    /// image's packages, pytest among them), which the sandbox's pytest runner puts first on PATH.
    pub setup: String,
    /// Runs the judging tests; the task's, else pytest over the files its test patch touches.
    pub test_command: String,
}

impl TaskEnv {
    pub fn of(task: &Task) -> Self {
        let python = task.language == "python";
        let install = match task.install.trim() {
            "" if python => "pip install -e . pytest",
            "" => "true",
            given => given,
        };
        let setup = if python { format!("{} && {install}", fixbox_agent::PYTHON_VENV) } else { install.to_string() };
        let test_command = match task.test_cmd.trim() {
            "" => format!("python -m pytest -rA -p no:cacheprovider {}", patched_files(&task.test_patch).join(" ")),
            given => given.to_string(),
        };
        Self { setup, test_command }
    }
}

/// The files a diff changes (its `+++ b/` paths).
fn patched_files(diff: &str) -> Vec<String> {
    diff.lines().filter_map(|line| line.strip_prefix("+++ b/")).map(|path| path.trim().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dataset;

    #[test]
    fn python_installs_into_a_fresh_virtualenv_and_tests_the_patched_files_by_default() {
        let line = r#"{"instance_id": "a__b-1", "repo": "a/b", "base_commit": "abc", "problem_statement": "x", "FAIL_TO_PASS": ["t.py::a"], "PASS_TO_PASS": [], "test_patch": "--- a/tests/t.py\n+++ b/tests/t.py\n@@ -1 +1 @@\n-a\n+b\n"}"#;
        let task = &Dataset::parse(line).tasks[0];
        let env = TaskEnv::of(task);
        assert_eq!(env.setup, "python3 -m venv --system-site-packages /tmp/venv && pip install -e . pytest");
        assert_eq!(env.test_command, "python -m pytest -rA -p no:cacheprovider tests/t.py");
        let go = Task {
            language: "go".into(),
            install: "go mod download".into(),
            test_cmd: "go test -v ./...".into(),
            ..task.clone()
        };
        assert_eq!(
            TaskEnv::of(&go),
            TaskEnv { setup: "go mod download".into(), test_command: "go test -v ./...".into() }
        );
    }
}
