//! What an issue's text says, read as a test: its example turned into a test file that asserts what
//! the issue expects, the errors it names, and the sentence that says what should happen.

use std::collections::BTreeSet;

pub(crate) mod go;
pub(crate) mod node;

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

/// The issue's first Python example as a test, where it shows the bug by itself: the issue expects
/// the calls that end it to raise an error (`Expected a `ValueError``), or to raise the error they
/// raise now with another message (`String contains …: '2014'`), and that is asserted; the issue names an
/// error (`…Error`, `…Exception`) it raises, so run as is it fails until the bug is fixed; or the
/// issue says what the example's prints should show (`Expected: `V``), so each print becomes an
/// assertion. Where it names an error and also what the example's last expression should give, that
/// is asserted too: a change that only stops the error (by skipping the code that raised it) does
/// not pass.
pub fn from_example(task: &str) -> Option<String> {
    let code = fenced(task, &["python", "py", "python3", "pycon"])?;
    let raising = match (expected_errors(task), reworded_error(task)) {
        (expected, _) if !expected.is_empty() => Some((expected, None)),
        (_, Some((error, message))) => Some((vec![error], Some(message))),
        _ => None,
    };
    if let Some((errors, message)) = raising {
        let calls = trailing_expressions(&code);
        if calls.is_empty() {
            return None;
        }
        let mut code: Vec<String> = code.iter().map(|l| l.to_string()).collect();
        let errors: Vec<String> = errors.iter().map(|e| quoted(e)).collect();
        let says = message.map_or(String::new(), |m| format!(", says={}", quoted(m)));
        for at in calls {
            code[at] = format!("_raises([{}], lambda: {}{says})", errors.join(", "), code[at].trim_end());
        }
        return with_helper(&as_test(&code.join("\n"))?, RAISES);
    }
    if !errors_named(task).is_empty() {
        let Some((last, value)) = expected_result(&code, task) else { return as_test(&code.join("\n")) };
        let mut code: Vec<String> = code.iter().map(|l| l.to_string()).collect();
        code[last] = format!("assert _shows({}, {})", code[last].trim_end(), quoted(&value));
        let test = as_test(&code.join("\n"))?;
        // The issue's value as written: spaces and the kind of quotes aside, as repr or str shows it.
        let helper = "def _shows(value, expected):\n    def norm(text):\n        return \"\".join(text.split()).replace('\"', \"'\")\n\n    return norm(expected) in (norm(repr(value)), norm(str(value)))\n\n\n";
        return with_helper(&test, helper);
    }
    let prints: Vec<usize> = (0..code.len()).filter(|&i| code[i].trim_start().starts_with("print(")).collect();
    // A print in a loop or a branch prints what no one value says.
    if prints.iter().any(|&i| code[i].starts_with(char::is_whitespace)) {
        return None;
    }
    let expected = printed_values(task, &code, prints.len())?;
    let mut code: Vec<String> = code.iter().map(|l| l.to_string()).collect();
    for (&i, value) in prints.iter().zip(&expected) {
        let args = code[i].trim_end().strip_prefix("print(")?.strip_suffix(')')?.to_string();
        code[i] = format!("assert _printed({args}) == {}", quoted(value));
    }
    let test = as_test(&code.join("\n"))?;
    // What print would show, to compare with what the issue says it should.
    let helper = "def _printed(*values):\n    return \" \".join(str(v) for v in values)\n\n\n";
    with_helper(&test, helper)
}

/// Asserts that `call` raises one of the errors named (by its class or a base class's name), saying
/// `says` where given: spaces and the kind of quotes aside. An error of the example itself (a name not
/// defined, an import that fails) is raised as it is: the test cannot run, which is not the bug.
const RAISES: &str = r#"def _raises(expected, call, says=None):
    try:
        call()
    except (NameError, ImportError, SyntaxError):
        raise
    except Exception as error:
        kinds = [kind.__name__ for kind in type(error).__mro__]
        shown = f"{type(error).__name__}: {error}"
        assert any(name in kinds for name in expected), f"raised {shown}; the issue expects {' or '.join(expected)}"
        if says is not None:
            def norm(text):
                return "".join(text.split()).replace('"', "'")

            assert norm(says) in norm(str(error)), f"raised {shown}; the issue expects it to say {says}"
    else:
        raise AssertionError(f"raised nothing; the issue expects {' or '.join(expected)}")


"#;

/// The errors an issue expects raised: named where it says what it expects (`Expected a
/// `ValueError``, `Expected `SignatureExpired` to be raised`), unless it shows one raised now
/// (`` `TypeError: …` ``) or expects none raised.
pub(crate) fn expected_errors(task: &str) -> Vec<&str> {
    let Some(paragraph) = expectation_paragraph(task) else { return Vec::new() };
    let lower = paragraph.to_lowercase();
    const NONE: &[&str] =
        &["not raise", "not to raise", "n't raise", "not be raised", "without raising", "no error", "no exception"];
    if NONE.iter().any(|n| lower.contains(n)) {
        return Vec::new();
    }
    let mut names: BTreeSet<&str> = errors_named(paragraph);
    if lower.contains("raise") || lower.contains("thrown") {
        // `SignatureExpired` (or `pkg.SignatureExpired`) where it says raised: a class by its name.
        let classes = backticked(paragraph).filter_map(|quoted| {
            let name = quoted.rsplit('.').next()?;
            let is_class = name.starts_with(|c: char| c.is_ascii_uppercase()) && is_name(quoted);
            is_class.then_some(name)
        });
        names.extend(classes);
    }
    // One the issue shows raised now is expected for another input ("with the same TypeError") only
    // where it expects no other.
    let other: Vec<&str> = names.iter().copied().filter(|name| !task.contains(&format!("`{name}: "))).collect();
    if other.is_empty() { names.into_iter().collect() } else { other }
}

/// The error an issue shows raised (`` `ValueError: String contains …: b'2014'` ``) and the message it
/// says that error should have instead: another quoted text that begins as the shown message does.
fn reworded_error(task: &str) -> Option<(&str, &str)> {
    let quoted: Vec<&str> = backticked(task).collect();
    let named = errors_named(task);
    let (error, shown) = quoted.iter().find_map(|q| {
        let (error, message) = q.split_once(": ")?;
        named.contains(error).then_some((error, message))
    })?;
    let same_start = |q: &&&str| {
        let common = q.chars().zip(shown.chars()).take_while(|(a, b)| a == b).count();
        common >= 12 && **q != shown && !named.iter().any(|e| q.starts_with(&format!("{e}:")))
    };
    let message = quoted.iter().find(same_start)?;
    Some((error, message))
}

/// The texts `text` puts in backticks.
fn backticked(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

/// The lines of an issue's first code block fenced as one of `languages` (```` ```go ````).
fn fenced<'a>(task: &'a str, languages: &[&str]) -> Option<Vec<&'a str>> {
    let mut lines = task.lines();
    lines.find(|l| l.trim().strip_prefix("```").is_some_and(|language| languages.contains(&language)))?;
    Some(lines.take_while(|l| !l.trim_start().starts_with("```")).collect())
}

/// What each of an example's `prints` should show, by the issue: its expected values in order, or
/// its one value for each where it says so (`-2` for both). Values that are code of the example
/// (`a/1/x` of `P("a/1/x")`) say nothing of the output.
fn printed_values(task: &str, code: &[&str], prints: usize) -> Option<Vec<String>> {
    let example = code.join("\n");
    let values: Vec<String> =
        expected_values(task).into_iter().filter(|v| !v.trim().is_empty() && !example.contains(v.as_str())).collect();
    let lower = expectation_paragraph(task)?.to_lowercase();
    let each = ["both", "each", "all of them", "every"].iter().any(|w| lower.contains(w));
    match values.len() {
        0 => None,
        _ if prints == 0 => None,
        1 if each => Some(vec![values[0].clone(); prints]),
        n if n >= prints => Some(values),
        _ => None,
    }
}

/// Whether a value is a name: an identifier, a dotted path or a version (`semver.Check`, `1.5.0`).
fn is_name(value: &str) -> bool {
    value.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.')
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
    let parts: Vec<&str> = paragraph.split('`').collect();
    // An illustration (`e.g. `1.5.0``) or an assertion (`c.Check(v) == true`) is no value printed.
    let illustrated = |at: usize| {
        let before = parts[at - 1].trim_end().to_lowercase();
        ["e.g.", "e.g.,", "for example", "for example,", "such as", "like"].iter().any(|w| before.ends_with(w))
    };
    (1..parts.len())
        .step_by(2)
        .filter(|&at| !illustrated(at) && !parts[at].contains("=="))
        .map(|at| parts[at].to_string())
        .collect()
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
    let last = last_expression(code, false)?;
    let example = code.join("\n");
    let value = expected_values(task)
        .into_iter()
        .find(|v| !v.trim().is_empty() && !example.contains(v.as_str()) && !is_name(v))?;
    Some((last, value))
}

/// The example's last line where it is a bare expression at the top level (`S().dump(x)`, a
/// `print(…)` where `prints`): not a statement, an assignment or a line of an interpreter session.
fn last_expression(code: &[&str], prints: bool) -> Option<usize> {
    let last = code.iter().rposition(|l| !l.trim().is_empty())?;
    (!is_session(code) && is_expression(code[last], prints)).then_some(last)
}

/// The example's bare expressions at its end, prints included (`f(1)`, then `f(2)`): each is a call
/// the issue expects to raise.
fn trailing_expressions(code: &[&str]) -> Vec<usize> {
    if is_session(code) {
        return Vec::new();
    }
    let mut lines: Vec<usize> = (0..code.len())
        .rev()
        .filter(|&i| !code[i].trim().is_empty())
        .take_while(|&i| is_expression(code[i], true))
        .collect();
    lines.reverse();
    lines
}

/// Whether an example is an interpreter session: its last line is what it printed.
fn is_session(code: &[&str]) -> bool {
    code.iter().any(|l| l.starts_with(">>> "))
}

/// Whether `line` is a bare expression at the top level: not a statement (a `print(…)` is one unless
/// `prints`), an assignment, a comment or a part of a longer line.
fn is_expression(line: &str, prints: bool) -> bool {
    let line = line.trim_end();
    const STATEMENTS: &[&str] = &[
        "def ", "class ", "import ", "from ", "if ", "for ", "while ", "with ", "try:", "return ", "assert ", "raise ",
        "del ", "pass", "@",
    ];
    let print = !prints && line.starts_with("print(");
    top_level(line, STATEMENTS) && !(print || line.starts_with(['>', '#']) || line.ends_with(':'))
}

/// Whether `line` (its end trimmed) stands alone at an example's top level, in any language: not
/// indented, not the rest of an earlier line, not one of `statements`, its brackets closed, and
/// nothing assigned before its first bracket.
pub(super) fn top_level(line: &str, statements: &[&str]) -> bool {
    let balanced = line.matches(['(', '[', '{']).count() == line.matches([')', ']', '}']).count();
    let assigns = line.split(['(', '[', '{']).next().is_some_and(|head| head.contains('='));
    !(line.starts_with(char::is_whitespace)
        || line.starts_with(['.', ')', ']', '}'])
        || statements.iter().any(|s| line.starts_with(s))
        || !balanced
        || assigns)
}

/// `text` as a string literal in double quotes, as Python and Go write one.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The exceptions an issue names: in its prose, its output, or a traceback in its example; not a
/// name its example's code uses (`pflag.ContinueOnError`).
pub(crate) fn errors_named(task: &str) -> BTreeSet<&str> {
    let is_error = |w: &&str| w.ends_with("Error") || w.ends_with("Exception");
    let mut in_code = false;
    let mut named = BTreeSet::new();
    for line in task.lines() {
        let fence = line.trim_start().strip_prefix("```");
        if let Some(language) = fence {
            // A fence that names a language opens code; a bare one opens output, or closes.
            in_code = !in_code && !language.trim().is_empty();
            continue;
        }
        let traceback = line.split(':').next().is_some_and(|head| {
            let head = head.trim();
            head.rsplit('.').next().is_some_and(|name| is_error(&name) && !head.contains([' ', '(']))
        });
        if !in_code || traceback {
            named.extend(identifiers(line).into_iter().filter(is_error));
        }
    }
    named
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
        let assigned = "```python\nimport m\nr = m.f()\n```\nRaises `ValueError`.\n\nExpected `2`.\n";
        assert_eq!(
            from_example(assigned).unwrap(),
            "import m\n\n\ndef test_issue():\n    r = m.f()\n",
            "not an expression"
        );
        let looped = "```python\nfor q in qs:\n    print(q)\n```\nExpected `1`.\n";
        assert_eq!(from_example(looped), None, "a print in a loop");
        let session = ">>> import m\n>>> m.f(\n...   1)\nTraceback (most recent call last):\nValueError: x\n";
        assert_eq!(
            from_example(&format!("f raises ValueError\n```pycon\n{session}```\n")).unwrap(),
            "import m\n\n\ndef test_issue():\n    m.f(\n      1)\n"
        );
    }

    /// The calls of a test `from_example` wrote, without the helper it defines.
    fn body(test: &str) -> &str {
        &test[test.find("def test_issue():\n").expect("a test function")..]
    }

    #[test]
    fn an_issue_that_expects_an_error_is_a_test_that_it_is_raised() {
        let returns = "```python\nfrom dateutil.parser import isoparse\n\nisoparse(\"20120425T01:2000\")\n```\nReturns `datetime(2012, 4, 25, 1, 20)`.\n\nNot valid ISO 8601. I expected a `ValueError`, like other malformed strings.\n";
        let test = from_example(returns).unwrap();
        assert!(test.contains("def _raises(expected, call, says=None):"), "{test}");
        assert_eq!(
            body(&test),
            "def test_issue():\n    _raises([\"ValueError\"], lambda: isoparse(\"20120425T01:2000\"))\n"
        );

        let instead = "```python\nparse(\"0-100\")\n```\nRaises `TypeError: unsupported operand`.\n\nExpected: a `dateutil.parser.ParserError` (a ValueError) that says `bad month 0`.\n";
        assert_eq!(
            body(&from_example(instead).unwrap()),
            "def test_issue():\n    _raises([\"ParserError\", \"ValueError\"], lambda: parse(\"0-100\"))\n",
            "the error expected, not the one raised now"
        );

        let both = "```python\nf(1e20)\ng(1e20)\n```\nThe first raises `OverflowError: out of range`, the second `OSError: too large`.\n\nExpected: a `ValidationError`.\n";
        assert_eq!(
            body(&from_example(both).unwrap()),
            "def test_issue():\n    _raises([\"ValidationError\"], lambda: f(1e20))\n    _raises([\"ValidationError\"], lambda: g(1e20))\n",
            "each call that ends the example"
        );

        let printed = "```python\ns = S(\"k\")\n# a clock behind\nprint(s.unsign(x, max_age=10))\n```\nOutput: `b'value'`\n\nExpected `SignatureExpired` to be raised: its age is negative.\n";
        assert_eq!(
            body(&from_example(printed).unwrap()),
            "def test_issue():\n    s = S(\"k\")\n    # a clock behind\n    _raises([\"SignatureExpired\"], lambda: print(s.unsign(x, max_age=10)))\n",
            "a class named to be raised, not only a name ending in Error"
        );

        let reworded = "```python\nisoparser().parse_isodate(\"2014-0423\")\n```\nRaises `ValueError: String contains unknown ISO components: b'2014-0423'`.\n\nI passed a str, so it should say\n`String contains unknown ISO components: '2014-0423'` (no `b'...'`).\n";
        assert_eq!(
            body(&from_example(reworded).unwrap()),
            "def test_issue():\n    _raises([\"ValueError\"], lambda: isoparser().parse_isodate(\"2014-0423\"), says=\"String contains unknown ISO components: '2014-0423'\")\n",
            "the error it raises, with the message the issue expects"
        );

        let none = "```python\nf(\"x\")\n```\nRaises `ValueError`.\n\nExpected it not to raise a `ValueError`.\n";
        assert_eq!(body(&from_example(none).unwrap()), "def test_issue():\n    f(\"x\")\n", "no error expected");
        let assigned = "```python\nr = f(\"x\")\n```\nReturns 2.\n\nExpected a `ValueError`.\n";
        assert_eq!(from_example(assigned), None, "no call ends the example");
    }

    #[test]
    fn an_error_is_named_in_prose_output_or_a_traceback_not_as_code() {
        let task = "GetIP errs\n\n```go\nfs := pflag.NewFlagSet(\"app\", pflag.ContinueOnError)\n```\n\nOutput: `err=invalid`\n\nNo `ValueError` here.\n";
        assert_eq!(errors_named(task), BTreeSet::from(["ValueError"]));
        let session = "```pycon\n>>> m.f(x)\nTraceback (most recent call last):\nmarshmallow.exceptions.ValidationError: bad\n>>> except KeyError:\n```\n";
        assert_eq!(errors_named(session), BTreeSet::from(["ValidationError"]), "a traceback's last line");
        let output = "```python\nf()\n```\n```\nTypeError: x\n```\n";
        assert_eq!(errors_named(output), BTreeSet::from(["TypeError"]), "an output block");
    }

    #[test]
    fn the_raises_helper_passes_only_the_error_and_message_expected() {
        let calls = r#"
class ParserError(ValueError):
    pass


def boom(kind, text):
    raise kind(text)


_raises(["ValueError"], lambda: boom(ParserError, "x"))
_raises(["ValueError"], lambda: boom(ValueError, 'it said  "a"'), says="it said 'a'")
for call, says in [(lambda: 1, None), (lambda: boom(TypeError, "x"), None), (lambda: boom(ValueError, "b"), "a")]:
    try:
        _raises(["ValueError"], call, says=says)
    except AssertionError as e:
        print("failed:", e)
    else:
        raise SystemExit("passed wrongly")
try:
    _raises(["ValueError"], lambda: undefined_name)
except NameError:
    print("the example itself is broken")
"#;
        let out = std::process::Command::new("python3").arg("-c").arg(format!("{RAISES}{calls}")).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            stdout,
            "failed: raised nothing; the issue expects ValueError\n\
             failed: raised TypeError: x; the issue expects ValueError\n\
             failed: raised ValueError: b; the issue expects it to say a\n\
             the example itself is broken\n"
        );
    }
}
