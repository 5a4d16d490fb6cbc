//! Which tests passed, failed or were skipped, read from each runner's own lines.

use std::collections::BTreeMap;

use super::TestOutcome;
use crate::detect::Runner;

pub(super) fn outcomes(runner: Runner, output: &str) -> BTreeMap<String, TestOutcome> {
    let mut found = BTreeMap::new();
    for line in output.lines() {
        let parsed = match runner {
            Runner::Pytest => pytest_line(line),
            Runner::Cargo => cargo_line(line),
            Runner::Npm => tap_line(line),
            Runner::Go => go_line(line),
            // Make and other commands may run any of them.
            Runner::Make | Runner::Other => any_runner_line(line),
        };
        if let Some((name, outcome)) = parsed {
            // A test reported twice (e.g. pytest -v and -rA) keeps its worst outcome.
            let entry = found.entry(name).or_insert(outcome);
            if outcome == TestOutcome::Failed {
                *entry = outcome;
            }
        }
    }
    found
}

/// A test's outcome as any of the runners says it.
pub(super) fn any_runner_line(line: &str) -> Option<(String, TestOutcome)> {
    pytest_line(line).or_else(|| cargo_line(line)).or_else(|| tap_line(line)).or_else(|| go_line(line))
}

/// `PASSED tests/test_x.py::test_a` (-rA summary; a failure's ` - message` follows) or
/// `tests/test_x.py::test_a PASSED [ 50%]` (-v). A parametrized id may hold spaces (`test_p[a b]`).
fn pytest_line(line: &str) -> Option<(String, TestOutcome)> {
    let outcome = |word: &str| match word {
        "PASSED" | "XFAIL" => Some(TestOutcome::Passed),
        "FAILED" | "ERROR" | "XPASS" => Some(TestOutcome::Failed),
        "SKIPPED" => Some(TestOutcome::Skipped),
        _ => None,
    };
    let line = line.trim_end();
    if let Some((first, rest)) = line.split_once(' ')
        && let Some(o) = outcome(first)
        && rest.contains("::")
    {
        let word_end = rest.find(' ').unwrap_or(rest.len());
        let word = &rest[..word_end];
        // Parameters with spaces run on to the bracket that closes them, before any ` - message`.
        let end = if word.contains('[') && !word.ends_with(']') {
            rest.find("] - ").map_or(rest.len(), |i| i + 1)
        } else {
            word_end
        };
        return Some((rest[..end].to_string(), o));
    }
    // -v: the id, then the outcome as the next word.
    line.match_indices(' ').find_map(|(i, _)| {
        let id = &line[..i];
        let o = outcome(line[i + 1..].split(' ').next()?)?;
        id.contains("::").then(|| (id.to_string(), o))
    })
}

/// `test tests::parses ... ok`
fn cargo_line(line: &str) -> Option<(String, TestOutcome)> {
    let rest = line.strip_prefix("test ")?;
    let (name, result) = rest.split_once(" ... ")?;
    let outcome = match result.trim() {
        "ok" => TestOutcome::Passed,
        "FAILED" => TestOutcome::Failed,
        r if r.starts_with("ignored") => TestOutcome::Skipped,
        _ => return None,
    };
    Some((name.trim().to_string(), outcome))
}

/// TAP, as `node --test` prints it without a terminal (`ok 1 - name`, `not ok 2 - name`, `# SKIP`) and
/// as mocha's TAP reporter does (`ok 1 name`).
fn tap_line(line: &str) -> Option<(String, TestOutcome)> {
    let line = line.trim_start();
    let (failed, rest) = match line.strip_prefix("not ok ") {
        Some(rest) => (true, rest),
        None => (false, line.strip_prefix("ok ")?),
    };
    // `ok 1 - name` (node --test, tape) or `ok 1 name` (mocha).
    let (number, name) = rest.split_once(' ')?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let name = name.strip_prefix("- ").unwrap_or(name);
    let (name, directive) = name.split_once(" # ").unwrap_or((name, ""));
    let outcome = if directive.to_ascii_uppercase().starts_with("SKIP") {
        TestOutcome::Skipped
    } else if failed {
        TestOutcome::Failed
    } else {
        TestOutcome::Passed
    };
    Some((name.trim().to_string(), outcome))
}

/// `--- PASS: TestX (0.00s)`
fn go_line(line: &str) -> Option<(String, TestOutcome)> {
    let rest = line.trim_start().strip_prefix("--- ")?;
    let (word, rest) = rest.split_once(": ")?;
    let outcome = match word {
        "PASS" => TestOutcome::Passed,
        "FAIL" => TestOutcome::Failed,
        "SKIP" => TestOutcome::Skipped,
        _ => return None,
    };
    Some((rest.split_whitespace().next()?.to_string(), outcome))
}
