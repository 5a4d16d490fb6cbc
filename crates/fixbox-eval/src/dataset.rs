//! Datasets in SWE-bench's JSONL format, read line by line: a malformed line is an error naming its line
//! and field, and the others are still read.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::EvalError;

/// One task: a bug at a commit of a repository, the text that reports it, and the tests that judge a fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub instance_id: String,
    /// `owner/name`.
    pub repo: String,
    pub base_commit: String,
    /// The issue as a user wrote it: all a session sees in `issue` mode.
    pub problem_statement: String,
    /// Tests that must fail before the fix and pass after it, by the runner's test id.
    #[serde(rename = "FAIL_TO_PASS")]
    pub fail_to_pass: Vec<String>,
    /// Tests that must pass before and after.
    #[serde(rename = "PASS_TO_PASS")]
    pub pass_to_pass: Vec<String>,
    /// The diff that adds the judging tests; never in the session's sandbox in `issue` mode.
    pub test_patch: String,
    /// The upstream fix, when the dataset has it (judging it checks the task itself).
    #[serde(default)]
    pub patch: String,
    /// `python` (default), `rust`, `go`, `javascript`, `typescript`.
    #[serde(default = "python")]
    pub language: String,
    /// Installs what the tests need; run in the repository's root with network (for Python inside an
    /// active virtualenv).
    #[serde(default)]
    pub install: String,
    /// Runs the judging tests and prints a result per test id. Default: pytest over the test patch's files.
    #[serde(default)]
    pub test_cmd: String,
    #[serde(default)]
    pub version: String,
}

fn python() -> String {
    "python".to_string()
}

/// A line that is not a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based.
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// The tasks of a dataset file, and its lines that are not tasks.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub tasks: Vec<Task>,
    pub bad_lines: Vec<BadLine>,
}

const REQUIRED: [&str; 7] =
    ["instance_id", "repo", "base_commit", "problem_statement", "FAIL_TO_PASS", "PASS_TO_PASS", "test_patch"];

impl Dataset {
    pub fn read(path: &Path) -> Result<Self, EvalError> {
        let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read { path: path.into(), source })?;
        Ok(Self::parse(&text))
    }

    pub fn parse(text: &str) -> Self {
        let mut dataset = Self::default();
        let mut seen = std::collections::HashSet::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let line_no = index + 1;
            match task(line) {
                Ok(task) if !seen.insert(task.instance_id.clone()) => dataset.bad_lines.push(BadLine {
                    line: line_no,
                    reason: format!("instance_id {:?} is already used by an earlier line", task.instance_id),
                }),
                Ok(task) => dataset.tasks.push(task),
                Err(reason) => dataset.bad_lines.push(BadLine { line: line_no, reason }),
            }
        }
        dataset
    }
}

/// The fields a task reads, and whether each is a list of test ids (else a string).
const FIELDS: [(&str, bool); 12] = [
    ("instance_id", false),
    ("repo", false),
    ("base_commit", false),
    ("problem_statement", false),
    ("FAIL_TO_PASS", true),
    ("PASS_TO_PASS", true),
    ("test_patch", false),
    ("patch", false),
    ("language", false),
    ("install", false),
    ("test_cmd", false),
    ("version", false),
];

/// One line as a task, or why not: which field is missing or of the wrong kind.
fn task(line: &str) -> Result<Task, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let Value::Object(mut object) = value else { return Err("not a JSON object".into()) };
    for field in REQUIRED {
        match object.get(field) {
            None | Some(Value::Null) => return Err(format!("field {field} is missing")),
            Some(Value::String(s)) if s.trim().is_empty() && field != "test_patch" => {
                return Err(format!("field {field} is empty"));
            }
            _ => {}
        }
    }
    for (field, is_list) in FIELDS {
        let Some(value) = object.get_mut(field) else { continue };
        if is_list && let Value::String(text) = value {
            // SWE-bench's own files hold the test lists as JSON text inside a string.
            *value = serde_json::from_str(text).map_err(|_| format!("field {field} is not a list of test ids"))?;
        }
        let fits = match value {
            Value::Array(items) => is_list && items.iter().all(Value::is_string),
            Value::String(_) => !is_list,
            _ => false,
        };
        if !fits {
            let kind = if is_list { "a list of test ids" } else { "a string" };
            return Err(format!("field {field} is not {kind}"));
        }
    }
    serde_json::from_value(Value::Object(object)).map_err(|e| e.to_string())
}

/// What the session is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The problem statement only: the judging tests never enter the session's sandbox.
    Issue,
    /// The test patch is applied first (an oracle reproduction).
    Tests,
    /// No session: the task's own fix is judged (checks the task and this machine's setup).
    Gold,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "issue" => Ok(Self::Issue),
            "tests" => Ok(Self::Tests),
            "gold" => Ok(Self::Gold),
            _ => Err(format!("{text:?} is not a mode: issue, tests or gold")),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Issue => "issue",
            Self::Tests => "tests",
            Self::Gold => "gold",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"instance_id": "a__b-1", "repo": "a/b", "base_commit": "abc", "problem_statement": "it breaks", "FAIL_TO_PASS": ["t.py::test_x"], "PASS_TO_PASS": [], "test_patch": "diff", "install": "pip install -e ."}"#;

    #[test]
    fn a_good_line_is_a_task_with_defaults_for_what_it_leaves_out() {
        let dataset = Dataset::parse(GOOD);
        assert!(dataset.bad_lines.is_empty(), "{:?}", dataset.bad_lines);
        let task = &dataset.tasks[0];
        assert_eq!(
            (task.language.as_str(), task.install.as_str(), task.test_cmd.as_str()),
            ("python", "pip install -e .", "")
        );
        assert_eq!(task.fail_to_pass, ["t.py::test_x"]);
    }

    #[test]
    fn swe_bench_test_lists_as_json_text_are_read() {
        let line = GOOD.replace(r#"["t.py::test_x"]"#, r#""[\"t.py::test_x\", \"t.py::test_y\"]""#);
        let dataset = Dataset::parse(&line);
        assert_eq!(dataset.tasks[0].fail_to_pass, ["t.py::test_x", "t.py::test_y"]);
    }

    #[test]
    fn a_bad_line_names_its_line_and_field_and_the_others_are_read() {
        let missing = GOOD.replace(r#""base_commit": "abc", "#, "");
        let wrong =
            GOOD.replace(r#""FAIL_TO_PASS": ["t.py::test_x"]"#, r#""FAIL_TO_PASS": 3"#).replace("a__b-1", "a__b-2");
        let text = [GOOD, "", "{not json", &missing, &wrong, GOOD].join("\n");
        let dataset = Dataset::parse(&text);
        assert_eq!(dataset.tasks.len(), 1);
        let said: Vec<String> = dataset.bad_lines.iter().map(ToString::to_string).collect();
        assert_eq!(said.len(), 4, "{said:?}");
        assert!(said[0].starts_with("line 3: not JSON"), "{said:?}");
        assert_eq!(said[1], "line 4: field base_commit is missing");
        assert_eq!(said[2], "line 5: field FAIL_TO_PASS is not a list of test ids");
        assert_eq!(said[3], "line 6: instance_id \"a__b-1\" is already used by an earlier line");
    }

    #[test]
    fn the_dev_set_reads_whole() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/eval/dev/tasks.jsonl");
        let dataset = Dataset::read(&path).unwrap();
        assert!(dataset.bad_lines.is_empty(), "{:?}", dataset.bad_lines);
        assert!(dataset.tasks.len() >= 24);
        assert!(dataset.tasks.iter().all(|t| !t.install.is_empty() && !t.test_cmd.is_empty()));
    }
}
