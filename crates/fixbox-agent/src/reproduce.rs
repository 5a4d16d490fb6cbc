//! Reproduction first. An issue arrives as text: the project's tests pass before any change, so there
//! is nothing to fix against. A new test file shows the bug: the issue's own example, asserting what
//! the issue expects (for pytest, Go and node), else one the model writes (for pytest). It is kept only
//! when it fails at base for the issue's reason (an assertion, or an exception the code raises), not
//! because it cannot run (an import, syntax or name error, a missing fixture). The fix loop then runs
//! it beside the project's tests; a session is Fixed only when it passes there, and again each of
//! [`STABLE_RUNS`] times in a row.

use fixbox_llm::{Message, estimate_tokens};

use crate::detect::{Runner, TestPlan};
use crate::example::{self, as_test, errors_named, expectation, expected_errors};
use crate::prompt::{Prompt, anchors, identifiers, show_file, window};
use crate::repo::{Repo, is_test_file};
use crate::testrun::{TestOutcome, TestReport, failure_text};

/// The new test file's name, by language.
const FILE_NAME: &str = "test_fixbox_issue.py";
const GO_FILE: &str = "fixbox_issue_test.go";
const NODE_FILE: &str = "fixbox-issue.test.js";
/// A grammar (llama.cpp's GBNF) for the answer: one fenced Python file.
pub const GRAMMAR: &str = r#"root ::= "```python\n" line+ "```\n"
line ::= ([^`\n] [^\n]*)? "\n"
"#;
/// Tries the model gets to write a test that shows the bug.
pub const TRIES: u32 = 3;
/// Runs in a row the reproduction must pass for a fix to count: once in the loop, then these less one.
pub const STABLE_RUNS: u32 = 3;
/// Import lines of an existing test file shown at most: how the tests reach the code. Only imports:
/// shown whole tests, a small model copies them.
const IMPORT_LINES: usize = 12;
/// Characters of code the model is shown, and files at most: the definitions the issue names.
const CODE_CHARS: usize = 4000;
const CODE_FILES: usize = 2;
/// Characters of a rejected test's output the model is shown.
const OUTPUT_CHARS: usize = 1500;

/// Exceptions that say a test could not run, not that the code misbehaves.
const CANNOT_RUN: &[&str] = &[
    "ImportError",
    "ModuleNotFoundError",
    "SyntaxError",
    "IndentationError",
    "NameError",
    "fixture '",
    "AttributeError: module '",
];

/// Where a reproduction goes and how it runs on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub path: String,
    /// Runs the new test file alone.
    pub command: String,
    /// An existing test file, whose imports show how the tests reach the code.
    pub example: Option<String>,
    runner: Runner,
    recipe: String,
    language: Language,
}

/// What the test is written in, and what it needs to reach the code.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Language {
    Python,
    /// The package at the module's root, by its name, and the module's path.
    Go {
        package: String,
        module: String,
    },
    /// The package's name, as an example requires it.
    Node {
        package: String,
    },
}

/// Where `plan`'s reproduction goes: for pytest beside the test files its command names, else in the
/// repository's `tests/` (or `test/`), else at its root; for Go in the package at the module's root;
/// for node at the repository's root. `None` for other runners.
pub fn place(plan: &TestPlan, repo: &Repo) -> Option<Placement> {
    let placement = |path: String, command: String, example: Option<String>, language: Language| Placement {
        path,
        command,
        example,
        runner: plan.runner,
        recipe: plan.recipe.clone(),
        language,
    };
    match plan.runner {
        Runner::Pytest => {}
        Runner::Go => {
            let module = repo.current("go.mod")?.lines().find_map(|l| l.strip_prefix("module "))?.trim().to_string();
            let package = repo
                .paths()
                .filter(|p| !p.contains('/') && p.ends_with(".go") && !p.ends_with("_test.go"))
                .find_map(|p| repo.current(p)?.lines().find_map(|l| l.strip_prefix("package ")))?
                .trim()
                .to_string();
            let command = format!("go test -v -count=1 -run '^{}$' .", example::go::TEST);
            return Some(placement(GO_FILE.into(), command, None, Language::Go { package, module }));
        }
        Runner::Npm => {
            let manifest: serde_json::Value = serde_json::from_str(repo.current("package.json")?).ok()?;
            let package = manifest.get("name")?.as_str()?.to_string();
            let command = format!("node {NODE_FILE}");
            return Some(placement(NODE_FILE.into(), command, None, Language::Node { package }));
        }
        _ => return None,
    }
    let named = plan
        .command
        .split_whitespace()
        .map(|word| word.split("::").next().unwrap_or(word))
        .find(|word| word.ends_with(".py") && is_test_file(word) && repo.current(word).is_some());
    let folder = match named {
        Some(file) => file.rsplit_once('/').map_or("", |(dir, _)| dir).to_string(),
        None => ["tests", "test"]
            .into_iter()
            .find(|dir| repo.paths().any(|p| p.starts_with(&format!("{dir}/"))))
            .unwrap_or("")
            .to_string(),
    };
    let path = if folder.is_empty() { FILE_NAME.to_string() } else { format!("{folder}/{FILE_NAME}") };
    let example = named
        .map(str::to_string)
        .or_else(|| repo.paths().find(|p| is_test_file(p) && p.ends_with(".py")).map(str::to_string));
    let command = format!("python3 -m pytest -rA -p no:cacheprovider {path}");
    Some(placement(path, command, example, Language::Python))
}

impl Placement {
    /// The plan the fix loop tests with: the reproduction, then the project's tests; it fails when
    /// either does, and the report reads both. The reproduction goes first: its failure is what the
    /// model must see, and the project's output, often long, is what a cut may take.
    pub fn with_project(&self, plan: &TestPlan) -> TestPlan {
        TestPlan {
            command: format!(
                "( {}; issue=$?; ( {} ); project=$?; test $issue -eq 0 -a $project -eq 0 )",
                self.command, plan.command
            ),
            runner: self.runner,
            recipe: self.recipe.clone(),
        }
    }

    /// The issue's own example as this test file, where it shows the bug by itself.
    pub fn example_test(&self, task: &str) -> Option<String> {
        match &self.language {
            Language::Python => example::from_example(task),
            Language::Go { package, module } => example::go::test(task, package, module),
            Language::Node { package } => example::node::test(task, package, "./"),
        }
    }

    /// Whether the model can be asked for this test: its prompts ask for pytest only.
    pub fn model_writes(&self) -> bool {
        self.language == Language::Python
    }

    /// The reproduction alone, as a plan.
    pub fn alone(&self) -> TestPlan {
        TestPlan { command: self.command.clone(), runner: self.runner, recipe: self.recipe.clone() }
    }
}

/// The prompt that asks for the reproduction: short, so it costs seconds of prefill. A retry is the
/// same prompt with why the earlier tests were not kept: shown its own answer, a small model copies it.
#[derive(Debug, Clone)]
pub struct Ask {
    system: String,
    user: String,
    rejected: Vec<String>,
    last_output: Option<String>,
}

impl Ask {
    pub fn new(task: &str, repo: &Repo, place: &Placement) -> Self {
        let system = "You are an expert software engineer. Before a reported bug is fixed, you write a test that \
reproduces it: it fails now because of the bug, and passes once the bug is fixed. Answer with the whole test file \
in one fenced code block and nothing else.";
        let imports = place.example.as_deref().and_then(|path| repo.current(path)).map_or(String::new(), |text| {
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("import ") || l.starts_with("from "))
                .take(IMPORT_LINES)
                .collect();
            if lines.is_empty() {
                return String::new();
            }
            format!("# How the existing tests import it\n```python\n{}\n```\n\n", lines.join("\n"))
        });
        let words = identifiers(task);
        let mut code = String::new();
        for path in repo.defining(task).iter().filter(|p| !is_test_file(p)).take(CODE_FILES) {
            let Some(text) = repo.current(path) else { continue };
            let room = CODE_CHARS.saturating_sub(code.len() + path.len() + 16);
            if room < 200 {
                break;
            }
            code.push_str(&show_file(path, &window(text, &anchors(path, text, "", &words), room)));
        }
        let code = if code.is_empty() { code } else { format!("# The code the issue names\n{code}\n") };
        let expected =
            expectation(task).map_or(String::new(), |e| format!(" The issue expects: \"{e}\" Assert exactly that."));
        let user = format!(
            "# Issue\n{task}\n\n{code}{imports}Write a new test file {path} with one pytest test function, \
`test_issue`, that does what the issue describes and asserts what the issue expects: it must fail now, because of the \
bug, and pass once the bug is fixed.{expected} Use `pytest.raises` only for an error the issue says should be \
raised. Do not repeat the existing tests.",
            task = task.trim(),
            path = place.path,
        );
        Self { system: system.to_string(), user, rejected: Vec::new(), last_output: None }
    }

    pub fn prompt(&self) -> Prompt {
        let mut user = self.user.clone();
        if !self.rejected.is_empty() {
            user.push_str("\n\nTests written before were not kept:\n");
            for why in &self.rejected {
                user.push_str(&format!("- {why}\n"));
            }
            if let Some(output) = &self.last_output {
                user.push_str(&format!("The last one's output:\n```\n{output}\n```\n"));
            }
            user.push_str("Write a different test that avoids these mistakes, in one ```python block.");
        }
        let messages = vec![Message::system(&self.system), Message::user(user)];
        let tokens_estimate = messages.iter().map(|m| estimate_tokens(&m.content) + 4).sum();
        Prompt { messages, tokens_estimate, trimmed_turns: 0 }
    }

    /// Records why a test was not kept, and its run's output, for the next try.
    pub fn push_rejected(&mut self, why: &str, report: Option<&TestReport>) {
        if !self.rejected.iter().any(|w| w == why) {
            self.rejected.push(why.to_string());
        }
        self.last_output = report.map(|r| failure_text(&r.output, OUTPUT_CHARS));
    }
}

/// The test file in an answer: its first fenced block, or the whole answer when it has no fence and
/// defines a test. Fenced code with no test function becomes the body of one.
pub fn extract(answer: &str) -> Option<String> {
    let lines: Vec<&str> = answer.lines().collect();
    let is_fence = |l: &&str| l.trim_start().starts_with("```");
    let fenced = lines.iter().any(is_fence);
    let body: Vec<&str> = match lines.iter().position(is_fence) {
        // The file's text alone, then a stray closing fence.
        Some(close) if lines[..close].iter().any(|l| l.contains("def test")) => lines[..close].to_vec(),
        Some(open) => {
            let rest = &lines[open + 1..];
            // A missing closing fence: the answer ran to its end.
            let close = rest.iter().position(is_fence).unwrap_or(rest.len());
            rest[..close].to_vec()
        }
        None => lines,
    };
    let text = body.join("\n");
    if text.contains("def test") {
        return Some(format!("{}\n", text.trim_end()));
    }
    // Fenced code, not prose.
    fenced.then(|| as_test(&text)).flatten()
}

/// Whether a run fails with the errors the issue reports: every one it names, as its example run as
/// is raises them; an issue that names another error ("raises TypeError instead of ParserError")
/// expects one such an example cannot pass with. Where the issue expects an error raised, the example
/// asserts that, and its run fails with one the issue reports raised now, or with none raised.
pub fn raises_the_reported_error(report: &TestReport, task: &str) -> bool {
    let expected = expected_errors(task);
    let reported: Vec<&str> = errors_named(task).into_iter().filter(|e| !expected.contains(e)).collect();
    let shown = |e: &&str| report.output.contains(&format!("{e}:")) || report.output.contains(&format!("{e}\n"));
    let raised = match expected.is_empty() {
        true => reported.iter().all(shown),
        false => reported.is_empty() || reported.iter().any(shown),
    };
    !report.ok() && raised
}

/// Whether `test`, run at base, shows the bug: the failing tests, or why it does not. A test that
/// expects an exception the issue never names expects the wrong thing.
pub fn judge(test: &str, report: &TestReport, task: &str) -> Result<Vec<String>, String> {
    let failed: Vec<String> = report.with(TestOutcome::Failed).into_iter().map(str::to_string).collect();
    if report.timed_out {
        return Err("it did not finish in time: call the code once, with small inputs".into());
    }
    if failed.is_empty() {
        if report.ok() {
            return Err("it passes before any fix, so it does not show the bug: assert the result the issue \
expects, which the code does not give now"
                .into());
        }
        return Err(format!("it could not run ({}): fix the test file", first_error(&report.output)));
    }
    let reasons: Vec<&str> =
        report.output.lines().filter(|l| l.starts_with("FAILED ") || l.starts_with("ERROR ")).collect();
    let cannot_run = |line: &&str| CANNOT_RUN.iter().any(|e| line.contains(e)) || miscalled_test(line);
    if !reasons.is_empty() && reasons.iter().all(cannot_run) {
        return Err(format!(
            "it fails because it cannot run ({}), not because of the bug: fix the test itself",
            first_error(&report.output)
        ));
    }
    let named = identifiers(task);
    let expected = raised(test).into_iter().chain(unraised(&report.output)).find(|e| !named.contains(e));
    if let Some(expected) = expected {
        return Err(format!(
            "it expects {expected} to be raised, which the issue does not say: assert the result the issue \
expects instead"
        ));
    }
    Ok(failed)
}

/// Whether a line says pytest called the test function itself wrongly (`TypeError: test_f() missing 1
/// required positional argument`), not code the test calls (`test_f.<locals>.C.__init__() takes …`).
fn miscalled_test(line: &str) -> bool {
    line.split("TypeError: test_").skip(1).any(|rest| {
        let name = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        rest[name..].starts_with('(')
    })
}

/// The exceptions `test` expects with `pytest.raises(E)`, by their names.
fn raised(test: &str) -> Vec<&str> {
    test.split("pytest.raises(")
        .skip(1)
        .filter_map(|rest| {
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))?;
            rest[..end].rsplit('.').next().filter(|name| !name.is_empty())
        })
        .collect()
}

/// The exception pytest says was not raised (`DID NOT RAISE <class 'ValueError'>`), by its name.
fn unraised(output: &str) -> Option<&str> {
    let rest = output.split("DID NOT RAISE <class '").nth(1)?;
    let name = &rest[..rest.find('\'')?];
    Some(name.rsplit('.').next().unwrap_or(name))
}

/// `test` made to show the bug after a run that passed at base, and what was done. A small model
/// often wraps the call in `pytest.raises(E)` where E is the error the issue reports: that test
/// passes because of the bug. Without the wrapper it fails with E now and passes once E is gone.
pub fn unwrap_reported_error(test: &str, report: &TestReport, task: &str) -> Option<(String, String)> {
    if !report.ok() {
        return None;
    }
    let named = identifiers(task);
    let lines: Vec<&str> = test.lines().collect();
    let at = lines.iter().position(|line| {
        let rest = line.trim_start().strip_prefix("with pytest.raises(").unwrap_or("");
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.').collect();
        let name = name.rsplit('.').next().unwrap_or("");
        !name.is_empty() && named.contains(name) && line.trim_end().ends_with(':')
    })?;
    // `with pytest.raises(E) as info:`: what reads `info` afterwards goes with it.
    let info = lines[at].trim_end().trim_end_matches(':').rsplit_once(" as ").map(|(_, name)| name.trim());
    let indent = |l: &str| l.len() - l.trim_start().len();
    let outer = indent(lines[at]);
    let body = lines[at + 1..].iter().take_while(|l| l.trim().is_empty() || indent(l) > outer).count();
    let inner = lines[at + 1..at + 1 + body].iter().filter(|l| !l.trim().is_empty()).map(|l| indent(l)).min()?;
    let mut out: Vec<String> = lines[..at].iter().map(|l| l.to_string()).collect();
    out.extend(
        lines[at + 1..at + 1 + body]
            .iter()
            .map(|l| if l.trim().is_empty() { String::new() } else { format!("{}{}", " ".repeat(outer), &l[inner..]) }),
    );
    let reads_info = |l: &&str| info.is_some_and(|name| identifiers(l).contains(name));
    out.extend(lines[at + 1 + body..].iter().filter(|l| !reads_info(l)).map(|l| l.to_string()));
    let line = lines[at].trim();
    Some((format!("{}\n", out.join("\n").trim_end()), format!("`{line}` removed: the issue reports that error")))
}

/// Modules of Python's standard library a test commonly uses without importing them.
const STANDARD_MODULES: &[&str] = &[
    "collections",
    "copy",
    "datetime",
    "decimal",
    "fractions",
    "functools",
    "io",
    "itertools",
    "json",
    "math",
    "os",
    "pathlib",
    "pickle",
    "random",
    "re",
    "string",
    "sys",
    "tempfile",
    "textwrap",
    "time",
    "typing",
    "uuid",
    "warnings",
];

/// `test` with the import added of the standard module whose name its run says is not defined; and
/// the module. `None` when the run says no such thing, or the module is imported already.
pub fn add_missing_import(test: &str, report: &TestReport) -> Option<(String, String)> {
    let rest = report.output.split("NameError: name '").nth(1)?;
    let name = &rest[..rest.find('\'')?];
    let import = format!("import {name}");
    if !STANDARD_MODULES.contains(&name) || test.lines().any(|l| l.trim() == import) {
        return None;
    }
    Some((format!("{import}\n{test}"), format!("`{import}` added")))
}

/// The first line that names an error, for a message.
fn first_error(output: &str) -> String {
    output
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("E ") || l.starts_with("ERROR ") || l.contains("Error"))
        .map_or_else(|| "no error line in its output".to_string(), |l| l.trim_start_matches("E ").trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::TestPlan;
    use crate::repo::tests::repo;

    fn pytest(command: &str) -> TestPlan {
        TestPlan { command: command.into(), runner: Runner::Pytest, recipe: "python".into() }
    }

    #[test]
    fn the_test_goes_beside_the_tests_the_command_names_else_in_tests_else_at_the_root() {
        let (_d, with_tests) = repo(&[("src/a.py", ""), ("tests/unit/test_a.py", ""), ("tests/test_b.py", "")]);
        let named = place(&pytest("python -m pytest -rA tests/unit/test_a.py::test_x"), &with_tests).unwrap();
        assert_eq!(named.path, "tests/unit/test_fixbox_issue.py");
        assert_eq!(named.command, "python3 -m pytest -rA -p no:cacheprovider tests/unit/test_fixbox_issue.py");
        assert_eq!(named.example.as_deref(), Some("tests/unit/test_a.py"), "its imports are shown");
        assert_eq!(place(&pytest("pytest"), &with_tests).unwrap().path, "tests/test_fixbox_issue.py");
        let (_d, flat) = repo(&[("a.py", ""), ("test_a.py", "")]);
        let at_root = place(&pytest("pytest"), &flat).unwrap();
        assert_eq!((at_root.path.as_str(), at_root.example.as_deref()), ("test_fixbox_issue.py", Some("test_a.py")));
        let cargo = TestPlan { command: "cargo test".into(), runner: Runner::Cargo, recipe: "rust".into() };
        assert_eq!(place(&cargo, &flat), None);
    }

    #[test]
    fn a_go_or_node_test_goes_at_the_root_and_the_issues_example_is_written_for_it() {
        let task = "```go\nfmt.Println(semver.MustParse(\"1\"))\n```\n\nI expected `1.0.0`.\n";
        let (_d, go) = repo(&[
            ("go.mod", "module github.com/a/semver/v3\n\ngo 1.19\n"),
            ("version.go", "// Package semver …\npackage semver\n"),
            ("version_test.go", "package semver\n"),
        ]);
        let plan = TestPlan { command: "go test -v ./...".into(), runner: Runner::Go, recipe: "go".into() };
        let placed = place(&plan, &go).unwrap();
        assert_eq!(
            (placed.path.as_str(), placed.command.as_str()),
            ("fixbox_issue_test.go", "go test -v -count=1 -run '^TestFixboxIssue$' .")
        );
        let test = placed.example_test(task).unwrap();
        let imports_module = test.contains("\t\"github.com/a/semver/v3\"\n");
        assert!(test.starts_with("package semver_test\n") && imports_module, "{test}");
        assert!(!placed.model_writes(), "the model's prompt asks for pytest");

        let (_d, node) = repo(&[("package.json", "{\"name\": \"range-parser\"}"), ("index.js", "")]);
        let plan = TestPlan { command: "mocha".into(), runner: Runner::Npm, recipe: "node".into() };
        let placed = place(&plan, &node).unwrap();
        assert_eq!(
            (placed.path.as_str(), placed.command.as_str()),
            ("fixbox-issue.test.js", "node fixbox-issue.test.js")
        );
        let task = "```js\nconst p = require('range-parser')\nconsole.log(p(1))\n```\n\nI expected `-2`.\n";
        assert!(placed.example_test(task).unwrap().contains("  const p = require('./')\n"));
        let (_d, no_module) = repo(&[("main.go", "package main\n")]);
        let go_test = TestPlan { command: "go test".into(), runner: Runner::Go, recipe: "go".into() };
        assert_eq!(place(&go_test, &no_module), None, "no go.mod: no module to import");
    }

    #[test]
    fn the_loop_runs_the_project_tests_and_the_reproduction_and_fails_when_either_does() {
        let (_d, flat) = repo(&[("a.py", ""), ("test_a.py", "")]);
        let place = place(&pytest("pytest -x || exit 3"), &flat).unwrap();
        let both = place.with_project(&pytest("pytest -x || exit 3"));
        for (project, issue, ok) in [("true", "true", true), ("false", "true", false), ("true", "false", false)] {
            let script = both.command.replace("pytest -x || exit 3", project).replace(&place.command, issue);
            let status = std::process::Command::new("sh").arg("-c").arg(&script).status().unwrap();
            assert_eq!(status.success(), ok, "{script}");
        }
    }

    #[test]
    fn the_file_is_the_answers_fenced_block_or_its_bare_text() {
        let fenced = "Here it is:\n```python\nfrom a import f\n\ndef test_f():\n    assert f() == 1\n```\nDone.";
        assert_eq!(extract(fenced).unwrap(), "from a import f\n\ndef test_f():\n    assert f() == 1\n");
        assert_eq!(extract("def test_f():\n    assert f() == 1\n```").unwrap(), "def test_f():\n    assert f() == 1\n");
        assert_eq!(extract("```python\nimport m\n```"), None);
        assert_eq!(extract("The sum is wrong."), None, "prose");
    }

    #[test]
    fn the_prompt_says_what_the_issue_expects_and_a_retry_says_why_not_without_the_old_answer() {
        let (_d, repo) = repo(&[("parse.py", "def parse(f, s):\n    return s\n"), ("test_parse.py", "import parse\n")]);
        let place = place(&pytest("pytest test_parse.py"), &repo).unwrap();
        let task = "parse() drops a newline\n\n```python\nparse.parse('{}', 'a\\n')\n```\nPrints 'a'.\n\nExpected `'a\\n'`: the newline is\npart of the value.\n\nThanks";
        let mut ask = Ask::new(task, &repo, &place);
        let first = ask.prompt().messages[1].content.clone();
        assert!(
            first.contains("The issue expects: \"Expected `'a\\n'`: the newline is part of the value.\""),
            "{first}"
        );
        let failed = TestReport::read(Runner::Pytest, Some(1), "E   Failed: DID NOT RAISE <class 'ValueError'>\n");
        ask.push_rejected("it expects ValueError", Some(&failed));
        ask.push_rejected("it expects ValueError", Some(&failed));
        let retry = ask.prompt();
        assert_eq!(retry.messages.len(), 2, "the old answer is not shown");
        let user = &retry.messages[1].content;
        assert!(user.starts_with(&first) && user.matches("- it expects ValueError").count() == 1, "{user}");
        assert!(user.contains("DID NOT RAISE"));
    }

    #[test]
    fn a_run_raises_the_reported_error_and_bare_example_code_is_a_test() {
        let task = "Boolean crashes\n\nThis raises `TypeError: unhashable type`.\n";
        let read = |out: &str| TestReport::read(Runner::Pytest, Some(1), out);
        let raised = read("E   TypeError: unhashable type\nFAILED t.py::test_issue - TypeError: unhashable type\n");
        assert!(raises_the_reported_error(&raised, task));
        assert!(!raises_the_reported_error(&raised, "raises TypeError instead of ParserError"), "another is expected");
        let expects = "Raises `TypeError: unsupported operand`.\n\nExpected: a `ParserError` (a ValueError).\n";
        let asserted =
            read("E   AssertionError: raised TypeError: unsupported operand; the issue expects ParserError\n");
        assert!(raises_the_reported_error(&asserted, expects), "the error raised now, where another is expected");
        let other = read("E   AttributeError: 'NoneType' object has no attribute 'x'\n");
        assert!(!raises_the_reported_error(&other, expects), "not the error the issue reports");
        let nothing = read("E   AssertionError: raised nothing; the issue expects ValueError\n");
        assert!(raises_the_reported_error(&nothing, "Returns a date.\n\nI expected a `ValueError`.\n"));
        assert_eq!(
            extract("```python\nimport m\nm.f()\n```").unwrap(),
            "import m\n\n\ndef test_issue():\n    m.f()\n",
            "a bare example"
        );
    }

    #[test]
    fn a_standard_module_the_test_uses_without_importing_it_is_imported() {
        let run = |out: &str| TestReport::read(Runner::Pytest, Some(1), out);
        let test = "from cache import TTLCache\n\ndef test_issue():\n    time.sleep(1)\n";
        let missing = run(
            "E       NameError: name 'time' is not defined\nFAILED t.py::test_issue - NameError: name 'time' is not defined\n",
        );
        let (repaired, done) = add_missing_import(test, &missing).unwrap();
        assert_eq!(
            (repaired.as_str(), done.as_str()),
            (format!("import time\n{test}").as_str(), "`import time` added")
        );
        assert_eq!(add_missing_import(&repaired, &missing), None, "imported already");
        assert_eq!(
            add_missing_import(test, &run("NameError: name 'cachey' is not defined")),
            None,
            "not ours to guess"
        );
    }

    #[test]
    fn a_test_that_expects_the_reported_error_is_made_to_fail_with_it() {
        let passed = TestReport::read(Runner::Pytest, Some(0), "PASSED t.py::test_issue\n");
        let test = "import pytest\nimport a\n\ndef test_issue():\n    x = 1\n    with pytest.raises(TypeError) as info:\n        a.f(x)\n        a.g()\n    assert x\n    assert 'takes' in str(info.value)\n";
        let task = "a.f(1) raises `TypeError: f() takes 0 arguments`; expected 2";
        let (repaired, done) = unwrap_reported_error(test, &passed, task).unwrap();
        assert_eq!(
            repaired,
            "import pytest\nimport a\n\ndef test_issue():\n    x = 1\n    a.f(x)\n    a.g()\n    assert x\n"
        );
        assert!(done.contains("with pytest.raises(TypeError) as info:"), "{done}");
        assert_eq!(
            unwrap_reported_error(test, &passed, "a.f(1) returns 3; expected 2"),
            None,
            "not the reported error"
        );
        let failed = TestReport::read(Runner::Pytest, Some(1), "FAILED t.py::test_issue - assert 1 == 2\n");
        assert_eq!(unwrap_reported_error(test, &failed, task), None, "it shows the bug already");
    }

    #[test]
    fn a_test_is_kept_only_when_it_fails_for_the_bug() {
        let read = |exit, out: &str| TestReport::read(Runner::Pytest, Some(exit), out);
        let assertion = read(1, "E   assert 2 == 1\nFAILED tests/test_fixbox_issue.py::test_f - assert 2 == 1\n");
        let judge = |report: &TestReport| {
            judge("def test_f():\n    assert f() == 1\n", report, "f() returns 2 where 1 is expected")
        };
        assert_eq!(judge(&assertion).unwrap(), vec!["tests/test_fixbox_issue.py::test_f"]);
        let raised = read(1, "FAILED tests/test_fixbox_issue.py::test_f - ValueError: bad\n");
        assert!(judge(&raised).is_ok());
        let unraised = read(
            1,
            "E   Failed: DID NOT RAISE <class 'ValueError'>\nFAILED tests/test_fixbox_issue.py::test_f - Failed: DID NOT RAISE <class 'ValueError'>\n",
        );
        assert!(judge(&unraised).unwrap_err().contains("expects ValueError to be raised"));
        let expecting = "def test_f():\n    with pytest.raises(errors.ValueError):\n        f()\n";
        assert!(super::judge(expecting, &unraised, "f() should raise ValueError").is_ok(), "the issue asks for it");
        let erroring = read(
            1,
            "E   AttributeError: module 'a.errors' has no attribute 'TokenError'\nFAILED tests/test_fixbox_issue.py::test_f - AttributeError: module 'a.errors' has no attribute 'TokenError'\n",
        );
        let unnamed = "def test_f():\n    with pytest.raises(a.errors.TokenError):\n        f()\n";
        assert!(super::judge(unnamed, &erroring, "f() returns 2").unwrap_err().contains("cannot run"));
        assert!(super::judge(unnamed, &assertion, "f() returns 2").unwrap_err().contains("expects TokenError"));

        let passing = read(0, "PASSED tests/test_fixbox_issue.py::test_f\n");
        assert!(judge(&passing).unwrap_err().contains("does not show the bug"));
        let import = read(
            1,
            "E   ImportError: cannot import name 'g'\nFAILED tests/test_fixbox_issue.py::test_f - ImportError: cannot import name 'g'\n",
        );
        assert!(judge(&import).unwrap_err().contains("cannot import name 'g'"), "{:?}", judge(&import));
        let miscalled = read(
            1,
            "FAILED tests/test_fixbox_issue.py::test_f - TypeError: test_f() missing 1 required positional argument: 'x'\n",
        );
        assert!(judge(&miscalled).unwrap_err().contains("cannot run"));
        let local = read(
            1,
            "FAILED tests/test_fixbox_issue.py::test_f - TypeError: test_f.<locals>.C.__init__() takes 1 positional argument but 2 were given\n",
        );
        assert!(super::judge("", &local, "C(1) raises TypeError").is_ok(), "the code under test raised it");
        let collection = read(2, "ERROR tests/test_fixbox_issue.py - SyntaxError: invalid syntax\n1 error in 0.1s\n");
        assert!(
            judge(&collection).unwrap_err().contains("could not run (ERROR tests/test_fixbox_issue.py - SyntaxError")
        );
    }
}
