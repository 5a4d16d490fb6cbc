//! What an issue's text says, read as a test: its example turned into a test file that asserts what
//! the issue expects, the errors it names, and the sentence that says what should happen.

use std::collections::BTreeSet;

use crate::prompt::identifiers;
use crate::text::cut_middle;

/// The sentence of an issue that says what should happen (`Expected: …`, `I expected …`, `should …`),
/// trimmed to its first paragraph.
pub(crate) fn expectation(task: &str) -> Option<String> {
    let lower = task.to_lowercase();
    let at = ["expected", "should"].iter().filter_map(|w| lower.find(w)).min()?;
    // From the start of its line.
    let start = task[..at].rfind('\n').map_or(0, |i| i + 1);
    let rest = &task[start..];
    let end = rest.find("\n\n").unwrap_or(rest.len());
    Some(cut_middle(rest[..end].trim(), 400).replace('\n', " "))
}

/// Code as a test file: its imports at the top, the rest the body of `test_issue`. `None` for code
/// with nothing but imports.
pub(crate) fn as_test(code: &str) -> Option<String> {
    // An interpreter session: its input lines, without the prompts and what was printed.
    let session = code.lines().any(|l| l.starts_with(">>> "));
    let lines: Vec<&str> = code
        .lines()
        .filter_map(|l| if session { l.strip_prefix(">>> ").or_else(|| l.strip_prefix("... ")) } else { Some(l) })
        .collect();
    let is_import = |l: &&str| l.starts_with("import ") || l.starts_with("from ");
    let imports: Vec<&str> = lines.iter().copied().filter(is_import).collect();
    let body: Vec<String> = lines
        .iter()
        .filter(|l| !is_import(l))
        .map(|l| if l.trim().is_empty() { String::new() } else { format!("    {l}") })
        .collect();
    if body.iter().all(|l| l.is_empty()) {
        return None;
    }
    let body = body.join("\n");
    let body = body.trim_end().trim_start_matches('\n');
    Some(format!("{}\n\n\ndef test_issue():\n{body}\n", imports.join("\n")).trim_start().to_string())
}

/// The issue's first Python example as a test, where it shows the bug by itself: the issue names an
/// error (`…Error`, `…Exception`) it raises, so run as is it fails until the bug is fixed; or the issue
/// says what the example's prints should show (`Expected: `V``), so each print becomes an assertion.
/// Where it names an error and also what the example's last expression should give, that is asserted
/// too: a change that only stops the error (by skipping the code that raised it) does not pass.
pub fn from_example(task: &str) -> Option<String> {
    let mut lines = task.lines();
    lines.find(|l| matches!(l.trim(), "```python" | "```py" | "```python3" | "```pycon"))?;
    let code: Vec<&str> = lines.take_while(|l| !l.trim_start().starts_with("```")).collect();
    if !errors_named(task).is_empty() {
        let Some((last, value)) = expected_result(&code, task) else { return as_test(&code.join("\n")) };
        let mut code: Vec<String> = code.iter().map(|l| l.to_string()).collect();
        code[last] = format!("assert _shows({}, {})", code[last].trim_end(), python_string(&value));
        let test = as_test(&code.join("\n"))?;
        // The issue's value as written: spaces and the kind of quotes aside, as repr or str shows it.
        let helper = "def _shows(value, expected):\n    def norm(text):\n        return \"\".join(text.split()).replace('\"', \"'\")\n\n    return norm(expected) in (norm(repr(value)), norm(str(value)))\n\n\n";
        return with_helper(&test, helper);
    }
    let expected = expected_values(task);
    let prints: Vec<usize> = (0..code.len()).filter(|&i| code[i].trim_start().starts_with("print(")).collect();
    // A print in a loop or a branch prints what no one value says.
    if prints.is_empty()
        || expected.len() < prints.len()
        || prints.iter().any(|&i| code[i].starts_with(char::is_whitespace))
    {
        return None;
    }
    let mut code: Vec<String> = code.iter().map(|l| l.to_string()).collect();
    for (&i, value) in prints.iter().zip(&expected) {
        let args = code[i].trim_end().strip_prefix("print(")?.strip_suffix(')')?.to_string();
        code[i] = format!("assert _printed({args}) == {}", python_string(value));
    }
    let test = as_test(&code.join("\n"))?;
    // What print would show, to compare with what the issue says it should.
    let helper = "def _printed(*values):\n    return \" \".join(str(v) for v in values)\n\n\n";
    with_helper(&test, helper)
}

/// `test` with `helper` defined before its test function.
fn with_helper(test: &str, helper: &str) -> Option<String> {
    let at = test.find("def test_issue")?;
    Some(format!("{}{helper}{}", &test[..at], &test[at..]))
}

/// The values in backticks from where an issue first says what it expects to the paragraph's end.
/// None where it expects something raised (or names an error there): no value shows that.
fn expected_values(task: &str) -> Vec<String> {
    let Some(paragraph) = expectation_paragraph(task) else { return Vec::new() };
    if paragraph.contains("raise") || !errors_named(paragraph).is_empty() {
        return Vec::new();
    }
    paragraph.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// From where an issue first says what it expects to the end of that paragraph.
fn expectation_paragraph(task: &str) -> Option<&str> {
    let at = task.to_lowercase().find("expected")?;
    let rest = &task[at..];
    Some(&rest[..rest.find("\n\n").unwrap_or(rest.len())])
}

/// The example's last line where it is a bare expression at the top level (`S().dump(x)`), and the
/// value the issue expects it to give: the first of its expected values that is not code of the
/// example itself or a name.
fn expected_result(code: &[&str], task: &str) -> Option<(usize, String)> {
    // An interpreter session's last line is what it printed.
    if code.iter().any(|l| l.starts_with(">>> ")) {
        return None;
    }
    let last = code.iter().rposition(|l| !l.trim().is_empty())?;
    let line = code[last].trim_end();
    const STATEMENTS: &[&str] = &[
        "def ", "class ", "import ", "from ", "if ", "for ", "while ", "with ", "try:", "return ", "assert ", "print(",
        "raise ", "del ", "pass", "@",
    ];
    let balanced = line.matches(['(', '[', '{']).count() == line.matches([')', ']', '}']).count();
    let assigns = line.split(['(', '[', '{']).next().is_some_and(|head| head.contains('='));
    if line.starts_with(char::is_whitespace)
        || line.starts_with(['>', '.', ')', ']', '}', '#'])
        || STATEMENTS.iter().any(|s| line.starts_with(s))
        || line.ends_with(':')
        || !balanced
        || assigns
    {
        return None;
    }
    let example = code.join("\n");
    let is_name = |v: &str| v.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.');
    let value = expected_values(task)
        .into_iter()
        .find(|v| !v.trim().is_empty() && !example.contains(v.as_str()) && !is_name(v))?;
    Some((last, value))
}

/// `text` as a Python string literal.
fn python_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The exceptions an issue names.
pub(crate) fn errors_named(task: &str) -> BTreeSet<&str> {
    identifiers(task).into_iter().filter(|w| w.ends_with("Error") || w.ends_with("Exception")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issues_example_is_a_test_where_the_issue_names_the_error_it_raises() {
        let task = "Boolean crashes\n\n```python\nfrom m import S\n\nclass T(S):\n    x = 1\n\nT().dump([1])\n```\nThis raises `TypeError: unhashable type`.\n";
        let test = from_example(task).unwrap();
        assert_eq!(
            test,
            "from m import S\n\n\ndef test_issue():\n    class T(S):\n        x = 1\n\n    T().dump([1])\n"
        );
        assert_eq!(from_example("f() returns 2\n\n```python\nf()\n```\n"), None, "no error named, no print");
        let prints = "parse drops a newline\n\n```python\nimport parse\nr = parse.parse('{}', 'a\\n')\nprint(repr(r[0]), 1)\nprint(r)\n```\nPrints `'a'`.\n\nExpected `'a\\n' 1` and `<Result \"x\">`: the whole string.\n";
        assert_eq!(
            from_example(prints).unwrap(),
            "import parse\n\n\ndef _printed(*values):\n    return \" \".join(str(v) for v in values)\n\n\ndef test_issue():\n    r = parse.parse('{}', 'a\\n')\n    assert _printed(repr(r[0]), 1) == \"'a\\\\n' 1\"\n    assert _printed(r) == \"<Result \\\"x\\\">\"\n"
        );
        let expects = "Dumping crashes\n\n```python\nfrom m import S\n\nS().dump({\"flag\": [1]})\n```\nThis raises `TypeError: unhashable type: 'list'`.\nI expected the value by its truthiness, i.e. `{'flag': True}`, as with `bool`.\n";
        let test = from_example(expects).unwrap();
        assert!(
            test.starts_with("from m import S\n\n\ndef _shows(value, expected):\n")
                && test
                    .ends_with("def test_issue():\n    assert _shows(S().dump({\"flag\": [1]}), \"{'flag': True}\")\n"),
            "{test}"
        );
        let gives = "```python\nimport attrs\n\n@attrs.define\nclass C:\n    x: int\n\nC(1)\n```\nRaises `TypeError`.\n\nExpected: `C(1)` gives `C(x=1)`.\n";
        assert!(
            from_example(gives).unwrap().contains("    assert _shows(C(1), \"C(x=1)\")\n"),
            "the value, not the call"
        );
        let raises = "```python\nparse(\"0-100\")\n```\nRaises `TypeError`.\n\nExpected: a `ParserError` that says `bad month 0`.\n";
        assert!(!from_example(raises).unwrap().contains("_shows"), "an error expected, not a value");
        let assigned = "```python\nimport m\nr = m.f()\n```\nRaises `ValueError`.\n\nExpected `2`.\n";
        assert_eq!(
            from_example(assigned).unwrap(),
            "import m\n\n\ndef test_issue():\n    r = m.f()\n",
            "not an expression"
        );
        let looped = "```python\nfor q in qs:\n    print(q)\n```\nExpected `1`.\n";
        assert_eq!(from_example(looped), None, "a print in a loop");
        let raised = "```python\nprint(s.unsign(x))\n```\nExpected `SignatureExpired` to be raised.\n";
        assert_eq!(from_example(raised), None, "an exception expected");
        let session = ">>> import m\n>>> m.f(\n...   1)\nTraceback (most recent call last):\nValueError: x\n";
        assert_eq!(
            from_example(&format!("f raises ValueError\n```pycon\n{session}```\n")).unwrap(),
            "import m\n\n\ndef test_issue():\n    m.f(\n      1)\n"
        );
    }
}
