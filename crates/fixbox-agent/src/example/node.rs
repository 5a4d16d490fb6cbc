//! An issue's JavaScript example as a test: a script node runs that prints one TAP line, `ok 1 -
//! issue` or `not ok 1 - issue`. The example's calls at its end assert the error the issue expects
//! thrown, or each of its prints at the top level what the issue says it should print. The package
//! is required from the repository itself, where the example requires it by its name.

use super::{expected_errors, fenced, printed_values, top_level};

/// What the example's calls are checked with, and how its one test is run: an error of the example
/// itself (a name not defined, a module not found) is no test outcome, so the run says it could not
/// run instead of `not ok`.
const HARNESS: &str = r#"function fixboxShows (printed, expected) {
  const norm = (text) => String(text).replace(/"/g, "'").replace(/\s+/g, '')
  if (norm(printed) !== norm(expected)) throw new Error(`printed ${printed}; the issue expects ${expected}`)
}

function fixboxThrows (call, expected) {
  let error
  try {
    call()
  } catch (e) {
    error = e
  }
  const names = expected.join(' or ')
  if (error === undefined) throw new Error(`threw nothing; the issue expects ${names}`)
  if (fixboxCannotRun(error)) throw error
  const kinds = []
  for (let kind = error && error.constructor; kind && kind.name; kind = Object.getPrototypeOf(kind)) kinds.push(kind.name)
  if (!expected.some((name) => kinds.includes(name))) throw new Error(`threw ${error}; the issue expects ${names}`)
}

function fixboxCannotRun (error) {
  return error instanceof ReferenceError || error instanceof SyntaxError || (error && error.code === 'MODULE_NOT_FOUND')
}
"#;

const RUN: &str = r#"
try {
  fixboxIssue()
  console.log('ok 1 - issue')
} catch (error) {
  const text = String((error && error.stack) || error)
  if (fixboxCannotRun(error)) {
    console.log(`Bail out! the example cannot run: ${text}`)
    process.exit(2)
  }
  console.log('not ok 1 - issue')
  console.log(text.split('\n').map((line) => `  ${line}`).join('\n'))
  process.exitCode = 1
}
console.log('1..1')
"#;

/// The test for `task`'s ```` ```js ```` example, for the package named `package` at `root` (the
/// repository's root as the test file requires it: `..`).
pub fn test(task: &str, package: &str, root: &str) -> Option<String> {
    let code = fenced(task, &["js", "javascript", "node", "mjs"])?;
    let mut lines: Vec<String> = code.iter().map(|l| required_from(l, package, root)).collect();
    let errors = expected_errors(task);
    if !errors.is_empty() {
        let calls: Vec<usize> =
            (0..code.len()).rev().filter(|&i| !code[i].trim().is_empty()).take_while(|&i| is_call(code[i])).collect();
        if calls.is_empty() {
            return None;
        }
        let names: Vec<String> = errors.iter().map(|e| format!("'{e}'")).collect();
        for at in calls {
            let call = lines[at].trim_end().trim_end_matches(';').to_string();
            lines[at] = format!("fixboxThrows(() => {call}, [{}])", names.join(", "));
        }
    } else {
        let prints: Vec<usize> =
            (0..code.len()).filter(|&i| code[i].trim_start().starts_with("console.log(")).collect();
        if prints.iter().any(|&i| code[i].starts_with(char::is_whitespace)) {
            return None;
        }
        let expected = printed_values(task, &code, prints.len())?;
        for (&at, value) in prints.iter().zip(&expected) {
            let line = lines[at].trim_end().trim_end_matches(';');
            let args = line.strip_prefix("console.log(")?.strip_suffix(')')?;
            lines[at] = format!("fixboxShows(require('util').format({args}), {})", js_string(value));
        }
    }
    let body: String =
        lines.iter().map(|l| if l.trim().is_empty() { "\n".to_string() } else { format!("  {l}\n") }).collect();
    Some(format!("{HARNESS}\nfunction fixboxIssue () {{\n{body}}}\n{RUN}"))
}

/// `line` requiring the package from the repository instead of by its name.
fn required_from(line: &str, package: &str, root: &str) -> String {
    ["'", "\""].iter().fold(line.to_string(), |line, quote| {
        line.replace(&format!("require({quote}{package}{quote})"), &format!("require('{root}')"))
    })
}

/// Whether a line is a call on its own at the top level: not a declaration, an assignment, a print or
/// a part of a longer statement.
fn is_call(line: &str) -> bool {
    let line = line.trim_end().trim_end_matches(';');
    const STATEMENTS: &[&str] =
        &["const ", "let ", "var ", "function ", "class ", "if ", "for ", "while ", "return ", "throw ", "import "];
    top_level(line, STATEMENTS) && !line.starts_with('/') && line.ends_with(')')
}

/// `text` as a JavaScript string literal.
fn js_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(test: &str) -> &str {
        let start = test.find("function fixboxIssue () {\n").expect("the test's function");
        &test[start..test.find(RUN).expect("its run")]
    }

    #[test]
    fn a_js_example_is_a_test_that_throws_or_prints_what_the_issue_expects() {
        let throws = "serialize() accepts an invalid Date\n\n```js\nconst cookie = require('cookie')\ncookie.serialize('foo', 'bar', { expires: new Date('x') })\n```\n\nReturns `'foo=bar; Expires=Invalid Date'`.\n\nOther values already throw `TypeError: option expires is invalid`; I expected an invalid Date to be rejected with the same TypeError.\n";
        assert_eq!(
            body(&test(throws, "cookie", "..").unwrap()),
            "function fixboxIssue () {\n  const cookie = require('..')\n  fixboxThrows(() => cookie.serialize('foo', 'bar', { expires: new Date('x') }), ['TypeError'])\n}\n"
        );
        let prints = "Garbage is ignored\n\n```js\nconst parse = require(\"range-parser\")\nconsole.log(parse(1000, 'bytes=x-100'))\nconsole.log(parse(1000, 'bytes=100-x'));\n```\n\nOutput:\n```\n[ { start: 900, end: 999 }, type: 'bytes' ]\n```\n\n`x-100` is treated like `-100`. These are malformed, so I expected `-2` (the \"malformed\" result) for both.\n";
        assert_eq!(
            body(&test(prints, "range-parser", "..").unwrap()),
            "function fixboxIssue () {\n  const parse = require('..')\n  fixboxShows(require('util').format(parse(1000, 'bytes=x-100')), '-2')\n  fixboxShows(require('util').format(parse(1000, 'bytes=100-x')), '-2')\n}\n"
        );
        let one = "```js\nconsole.log(f(1))\nconsole.log(f(2))\n```\n\nI expected `-2`.\n";
        assert_eq!(test(one, "m", ".."), None, "one value, two prints, and the issue does not say both");
    }

    #[test]
    fn the_script_prints_one_tap_line_or_says_it_cannot_run() {
        let run = |body: &str| {
            let script = format!("{HARNESS}\nfunction fixboxIssue () {{\n{body}\n}}\n{RUN}");
            let out = std::process::Command::new("node").arg("-e").arg(script).output().unwrap();
            (out.status.code(), String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_string())
        };
        assert_eq!(run("fixboxShows(require('util').format(-2), '-2')"), (Some(0), "ok 1 - issue".into()));
        assert_eq!(run("fixboxShows(require('util').format([1]), '-2')"), (Some(1), "not ok 1 - issue".into()));
        assert_eq!(run("fixboxThrows(() => null.x, ['TypeError'])"), (Some(0), "ok 1 - issue".into()));
        assert_eq!(run("fixboxThrows(() => 1, ['TypeError'])"), (Some(1), "not ok 1 - issue".into()));
        assert_eq!(run("fixboxThrows(() => { throw new RangeError('x') }, ['TypeError'])").1, "not ok 1 - issue");
        let (code, line) = run("fixboxThrows(() => undefinedName(), ['TypeError'])");
        assert!(code == Some(2) && line.starts_with("Bail out! the example cannot run: ReferenceError"), "{line}");
        assert_eq!(run("require('no-such-module')").0, Some(2));
    }
}
