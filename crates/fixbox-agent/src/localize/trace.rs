//! Which functions the failing tests ran: pytest under a profiler, and what it printed read back.

use std::collections::BTreeSet;

/// The functions a run of the failing tests called: `(path, 1-based first line)`, the line of the
/// `def` or of its first decorator.
#[derive(Debug, Clone, Default)]
pub struct Executed(BTreeSet<(String, usize)>);

impl Executed {
    /// Reads [`trace_command`]'s output; empty when it printed no trace.
    pub fn read(output: &str) -> Self {
        let Some((_, calls)) = output.split_once(TRACE_MARK) else { return Self::default() };
        Self(
            calls
                .lines()
                .filter_map(|l| l.rsplit_once(':'))
                .filter_map(|(path, line)| Some((path.to_string(), line.trim().parse().ok()?)))
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the function defined at `def_line` (0-based) of `path` ran.
    pub(super) fn ran(&self, path: &str, def_line: usize) -> bool {
        // A decorated function's code starts at its first decorator.
        (def_line.saturating_sub(3)..=def_line).any(|l| self.0.contains(&(path.to_string(), l + 1)))
    }
}

pub(super) const TRACE_MARK: &str = "FIXBOX-TRACE\n";

/// A shell command that runs pytest on `targets` (test files or ids) with a profiler that records
/// every function called from the workspace's code, then prints them after [`TRACE_MARK`].
pub fn trace_command(workspace: &str, targets: &[String]) -> String {
    let targets = serde_json::to_string(targets).unwrap_or_else(|_| "[]".into());
    format!(
        r#"python3 - <<'FIXBOX_TRACE' 2>&1
import sys
import pytest

seen = set()


def profile(frame, event, arg):
    if event == "call":
        seen.add((frame.f_code.co_filename, frame.f_code.co_firstlineno))


sys.setprofile(profile)
try:
    pytest.main(["-q", "-p", "no:cacheprovider", "-o", "addopts=", *{targets}])
finally:
    sys.setprofile(None)
root = "{workspace}/"
print("\n{mark}")
for name, line in sorted(seen):
    if name.startswith(root):
        print(f"{{name[len(root):]}}:{{line}}")
FIXBOX_TRACE"#,
        mark = TRACE_MARK.trim_end(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_runs_pytest_on_the_targets_under_a_profiler() {
        let command = trace_command("/workspace", &["tests/test_a.py::test_b[x y]".to_string()]);
        assert!(command.contains(r#"*["tests/test_a.py::test_b[x y]"]"#), "{command}");
        assert!(command.contains("root = \"/workspace/\""));
    }
}
