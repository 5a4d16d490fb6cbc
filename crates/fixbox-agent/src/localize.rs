//! Where the bug may be: regions of code, most likely first. The function each frame of the
//! failure's traceback is in (deepest first), where the values that frame uses were made, then the
//! functions that share the task's rarest words, among those the failing tests ran. A long function
//! is shown as a window of whole statements around the line that matters.

use std::collections::{BTreeMap, BTreeSet};

use crate::prompt::{identifiers, lines_named};
use crate::repo::{Repo, is_code, is_test_file};

/// Regions tried at most.
const MAX_REGIONS: usize = 8;
/// A function longer than this is shown as the part around the line the failure points at.
const MAX_LINES: usize = 40;
const AROUND: usize = 12;

/// Lines `start..end` (0-based) of a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Region {
    pub path: String,
    pub start: usize,
    pub end: usize,
    /// The function it is (part of).
    pub function: Option<String>,
}

impl Region {
    /// Its lines, each ending in a newline.
    pub fn text(&self, file: &str) -> String {
        file.lines().skip(self.start).take(self.end - self.start).map(|l| format!("{l}\n")).collect()
    }

    /// Where it is, for the model and the log: `src/a.py, lines 12-30 (in `f`)`.
    pub fn label(&self) -> String {
        let within = self.function.as_deref().map_or(String::new(), |f| format!(" (in `{f}`)"));
        format!("{}, lines {}-{}{within}", self.path, self.start + 1, self.end)
    }
}

/// The regions to try, most likely first: the function around each frame of the failure's
/// tracebacks in the project's code (not its tests), deepest frame first, each followed by where the
/// values its line uses were made when that is further up a long function; then the functions whose
/// code shares the most (and rarest) words with the task, among those the failing tests ran where
/// they were traced. Overlapping regions are tried once.
pub fn regions(repo: &Repo, task: &str, output: &str, executed: &Executed) -> Vec<Region> {
    let mut found: Vec<Region> = Vec::new();
    let mut add = |region: Region| {
        let overlaps = |r: &Region| r.path == region.path && r.start < region.end && region.start < r.end;
        if found.len() < MAX_REGIONS && !found.iter().any(overlaps) {
            found.push(region);
        }
    };
    for (path, line) in frames(repo, output) {
        let Some(text) = repo.current(&path) else { continue };
        // Then where the values it fails on were made, when that is apart from it.
        for at in std::iter::once(line).chain(origin(&path, text, line)) {
            if let Some(region) = around(&path, text, at) {
                add(region);
            }
        }
    }
    for (path, line) in ranked(repo, task, executed) {
        if let Some(region) = repo.current(&path).and_then(|text| around(&path, text, line)) {
            add(region);
        }
    }
    found
}

/// `(path, 0-based line)` of each place in the project's code `output` points at (`path:LINE`, or a
/// Python traceback's `path", line N`), the last one named first: a traceback ends at its deepest frame.
fn frames(repo: &Repo, output: &str) -> Vec<(String, usize)> {
    // pytest's warnings summary names `path:line` too, after the tracebacks: where a deprecated call
    // is, not where the failure went.
    let output = output.split("warnings summary ===").next().unwrap_or(output);
    let mut found: Vec<(usize, String, usize)> = Vec::new();
    for path in repo.mentioned_in(output).into_iter().filter(|p| candidate(p)) {
        for (at, line) in lines_named(&path, output) {
            // `src/a.py` inside `xsrc/a.py` or `test_a.py` is another file.
            let before = output[..at].chars().next_back();
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                found.push((at, path.clone(), line));
            }
        }
    }
    found.sort();
    let mut seen = BTreeSet::new();
    found.into_iter().rev().map(|(_, path, line)| (path, line)).filter(|place| seen.insert(place.clone())).collect()
}

/// `(path, 0-based line)` in the functions of the project's code that best match the task, best
/// first, at most [`MAX_REGIONS`]: each name of the task a function uses counts by how rare it is
/// among the functions (BM25's idf), its own name half again; the line is the middle of the stretch
/// of [`AROUND`] lines either side that uses the most of them.
fn ranked(repo: &Repo, task: &str, executed: &Executed) -> Vec<(String, usize)> {
    /// A function that uses some of the task's words.
    struct Function<'a> {
        path: &'a str,
        start: usize,
        name: &'a str,
        used: BTreeSet<String>,
        /// The task's words each line of it uses in code (not in a docstring or a comment).
        lines: Vec<BTreeSet<String>>,
    }
    let asked: BTreeSet<String> = words(task).into_iter().filter(|w| !COMMON.contains(&w.as_str())).collect();
    let files: Vec<(&str, Vec<&str>, Vec<bool>)> = repo
        .paths()
        .filter(|p| candidate(p))
        .map(|p| {
            let lines: Vec<&str> = repo.current(p).unwrap_or("").lines().collect();
            let code = code_lines(p, &lines);
            (p, lines, code)
        })
        .collect();
    let mut functions: Vec<Function> = Vec::new();
    for (path, lines, code) in &files {
        for (i, line) in lines.iter().enumerate() {
            // Prose that says "function …" defines nothing.
            let Some(name) = defined(line).filter(|_| code[i]) else { continue };
            // Where the failing tests were traced, only what they ran.
            if !executed.is_empty() && !executed.ran(path, i) {
                continue;
            }
            let Some((start, end)) = function_at(path, lines, i) else { continue };
            let uses: Vec<BTreeSet<String>> = (start..end)
                .map(|l| match code[l] {
                    true => words(lines[l]).into_iter().filter(|w| asked.contains(w)).collect(),
                    false => BTreeSet::new(),
                })
                .collect();
            let used: BTreeSet<String> = uses.iter().flatten().cloned().collect();
            if !used.is_empty() || !executed.is_empty() {
                functions.push(Function { path, start, name, used, lines: uses });
            }
        }
    }
    let n = functions.len() as f64;
    let average = functions.iter().map(|f| f.lines.len()).sum::<usize>() as f64 / n.max(1.0);
    // How many functions use each word, counted once, not per function scored.
    let mut uses: BTreeMap<&str, usize> = BTreeMap::new();
    for word in functions.iter().flat_map(|f| &f.used) {
        *uses.entry(word).or_default() += 1;
    }
    let idf = |w: &str| (1.0 + n / (uses.get(w).copied().unwrap_or(0) as f64).max(1.0)).ln();
    let mut scored: Vec<(f64, &str, usize)> = functions
        .iter()
        .map(|f| {
            let name = f.name.to_lowercase();
            let own = if f.used.contains(&name) { idf(&name) / 2.0 } else { 0.0 };
            // BM25 with each word counted once: a long function matches more words by its length.
            let norm = (K1 + 1.0) / (1.0 + K1 * (1.0 - B + B * f.lines.len() as f64 / average));
            let score = (f.used.iter().map(|w| idf(w)).sum::<f64>() + own) * norm;
            // Each line by the task's words it uses; a long function is shown around the line whose
            // neighbourhood uses the most, where the change likely is, not around its first match.
            let weights: Vec<f64> = f.lines.iter().map(|line| line.iter().map(|w| idf(w)).sum()).collect();
            let near =
                |c: usize| weights[c.saturating_sub(AROUND)..(c + AROUND + 1).min(weights.len())].iter().sum::<f64>();
            // Of the middles that tie, the first line that itself uses a word.
            let best = (1..f.lines.len()).filter(|&c| weights[c] > 0.0).fold(None, |best: Option<(usize, f64)>, c| {
                match (best, near(c)) {
                    (Some((_, top)), here) if here <= top => best,
                    (_, here) => Some((c, here)),
                }
            });
            let line = best.map_or(f.start, |(c, _)| f.start + c);
            (score, f.path, line)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)).then(a.2.cmp(&b.2)));
    scored.into_iter().take(MAX_REGIONS).map(|(_, path, line)| (path.to_string(), line)).collect()
}

/// The words of `text` for ranking, lowercased: each identifier of 3+ characters and the parts of a
/// snake_case or camelCase one (`_match_re` is also `match`, `getRealName` also `real`).
fn words(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for word in identifiers(text) {
        out.insert(word.to_lowercase());
        let mut part = String::new();
        let mut parts = Vec::new();
        let mut previous_lower = false;
        for c in word.chars() {
            if c == '_' || (c.is_uppercase() && previous_lower) {
                parts.push(std::mem::take(&mut part));
            }
            if c != '_' {
                part.push(c.to_ascii_lowercase());
            }
            previous_lower = c.is_lowercase() || c.is_ascii_digit();
        }
        parts.push(part);
        out.extend(parts.into_iter().filter(|p| p.len() >= 3));
    }
    out
}

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
    fn ran(&self, path: &str, def_line: usize) -> bool {
        // A decorated function's code starts at its first decorator.
        (def_line.saturating_sub(3)..=def_line).any(|l| self.0.contains(&(path.to_string(), l + 1)))
    }
}

const TRACE_MARK: &str = "FIXBOX-TRACE\n";

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

/// BM25's parameters, with length normalised half way (b = 0.5): a long function matches more words
/// for its length, but a bug is no likelier in a short one.
const K1: f64 = 1.2;
const B: f64 = 0.5;

/// Whether each line is code: not in a docstring (Python) or a block comment (`/* … */`
/// elsewhere), and not a line comment.
fn code_lines(path: &str, lines: &[&str]) -> Vec<bool> {
    let python = path.ends_with(".py");
    let mut in_string = false;
    lines
        .iter()
        .map(|line| {
            let trimmed = line.trim_start();
            let was = in_string;
            let opened = if python {
                let quotes = line.matches("\"\"\"").count() + line.matches("\'\'\'").count();
                if quotes % 2 == 1 {
                    in_string = !in_string;
                }
                quotes > 0
            } else {
                match (line.rfind("/*"), line.rfind("*/")) {
                    (Some(open), close) if close.is_none_or(|close| close < open) => in_string = true,
                    (_, Some(_)) => in_string = false,
                    _ => {}
                }
                trimmed.starts_with("/*")
            };
            !(was || opened || (python && trimmed.starts_with('#')) || trimmed.starts_with("//"))
        })
        .collect()
}

/// Words of an issue that name nothing in the code.
const COMMON: &[&str] = &[
    "the", "and", "for", "not", "but", "with", "this", "that", "from", "when", "what", "which", "should", "would",
    "expected", "expect", "instead", "gives", "returns", "raises", "print", "prints", "import", "true", "false",
    "none", "self", "same", "like", "any", "all", "other", "than", "then", "there", "where", "also", "only", "does",
    "doesn", "isn", "can", "cannot", "into", "its", "are", "was", "were", "has", "have", "had", "one",
];

/// Code a region may be in: source, not a test, a type stub, an example of how to use it or a script
/// or benchmark run beside it.
fn candidate(path: &str) -> bool {
    let aside = ["examples", "example", "docs", "doc", "benchmarks", "benchmark", "bench", "scripts"]
        .iter()
        .any(|dir| path.starts_with(&format!("{dir}/")));
    is_code(path) && !is_test_file(path) && !path.ends_with(".pyi") && !aside
}

/// The function a line defines, if it starts one: `def f(`, `fn f(`, `func f(`, `func (r T) f(`,
/// `function f(`.
pub(crate) fn defined(line: &str) -> Option<&str> {
    let line = line.trim_start();
    let line = ["pub(crate) ", "pub ", "export ", "async ", "static "]
        .iter()
        .fold(line, |l, prefix| l.strip_prefix(prefix).unwrap_or(l));
    let rest = ["def ", "fn ", "function ", "func "].iter().find_map(|d| line.strip_prefix(d))?;
    // A Go method: its receiver comes first.
    let rest = match rest.strip_prefix('(') {
        Some(receiver) => receiver.split_once(')')?.1.trim_start(),
        None => rest,
    };
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// The function around line `at` of `path`, or its part around `at` when it is long; lines around
/// `at` when no function holds it. A part is whole statements: cut inside a call's arguments, the
/// model closes the call again and the file no longer parses.
fn around(path: &str, text: &str, at: usize) -> Option<Region> {
    let lines: Vec<&str> = text.lines().collect();
    if at >= lines.len() {
        return None;
    }
    let part = |from: usize, to: usize, function: Option<String>| {
        let (start, end) = window(&statement_starts(path, &lines), at, from, to);
        Region { path: path.to_string(), start, end, function }
    };
    let Some((start, end)) = function_at(path, &lines, at) else {
        return Some(part(0, lines.len(), None));
    };
    let name = defined(lines[start]).map(str::to_string);
    Some(if end - start <= MAX_LINES {
        Region { path: path.to_string(), start, end, function: name }
    } else {
        part(start, end, name)
    })
}

/// Lines `start..end` around line `at`, within `from..to`: [`AROUND`] lines either side, widened to
/// where statements start (`starts`, from [`statement_starts`]); a statement that runs on for more
/// than [`AROUND`] lines past either end (a long docstring above the code) is left out instead,
/// where that leaves line `at` in: the model would write it out again with each rewrite.
fn window(starts: &[bool], at: usize, from: usize, to: usize) -> (usize, usize) {
    let start = at.saturating_sub(AROUND).max(from);
    let start = (from..=start)
        .rev()
        .take(AROUND + 1)
        .find(|&s| starts[s])
        .or_else(|| (start..=at).find(|&s| starts[s]))
        .unwrap_or(start);
    let end = (at + AROUND + 1).min(to);
    let end = (end..=to)
        .take(AROUND + 1)
        .find(|&e| starts[e])
        .or_else(|| (at + 1..end).rev().find(|&e| starts[e]))
        .unwrap_or(end);
    (start, end)
}

/// Whether a statement can start at each line of `lines`, and after the last: outside brackets,
/// strings and docstrings, and not after a line continued with `\`. In Python braces are brackets
/// too; elsewhere they open blocks, which hold statements.
fn statement_starts(path: &str, lines: &[&str]) -> Vec<bool> {
    let python = path.ends_with(".py");
    let comment = if python { "#" } else { "//" };
    // Quotes that open a string; a Rust `'` is also a lifetime.
    let quotes: &[u8] = if path.ends_with(".rs") { b"\"" } else { b"\"'`" };
    let mut depth = 0i64;
    let mut docstring: Option<&str> = None;
    let mut continued = false;
    let mut starts = Vec::with_capacity(lines.len() + 1);
    for line in lines {
        starts.push(depth == 0 && docstring.is_none() && !continued);
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            // Inside a character of several bytes: none of them is a quote or a bracket.
            let Some(rest) = line.get(i..) else {
                i += 1;
                continue;
            };
            if let Some(close) = docstring {
                match rest.find(close) {
                    Some(k) => (i, docstring) = (i + k + 3, None),
                    None => break,
                }
                continue;
            }
            if python && (rest.starts_with("\"\"\"") || rest.starts_with("'''")) {
                (i, docstring) = (i + 3, Some(&rest[..3]));
                continue;
            }
            if rest.starts_with(comment) {
                break;
            }
            let c = bytes[i];
            i += 1;
            match c {
                _ if quotes.contains(&c) => {
                    // To its closing quote on this line.
                    while i < bytes.len() && bytes[i] != c {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b'{' if python => depth += 1,
                b'}' if python => depth -= 1,
                _ => {}
            }
        }
        // A bracket closed that was never opened (a misread string): count from here.
        depth = depth.max(0);
        continued = line.trim_end().ends_with('\\') && docstring.is_none();
    }
    starts.push(depth == 0 && docstring.is_none());
    starts
}

/// Where the statement at line `at` of a long function had the values it uses made: the last line
/// above the part [`around`] shows that assigns one of its names. A failure shows where a bad value
/// was used; the bug is often where it was made. `None` in a short function, shown whole.
fn origin(path: &str, text: &str, at: usize) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    if at >= lines.len() {
        return None;
    }
    let (start, end) = function_at(path, &lines, at)?;
    if end - start <= MAX_LINES {
        return None;
    }
    let starts = statement_starts(path, &lines);
    // The statement: its line and those until the next statement.
    let last = (at + 1..=lines.len()).find(|&e| starts[e]).unwrap_or(lines.len()).min(at + AROUND);
    let used: BTreeSet<&str> = lines[at..last].iter().flat_map(|l| identifiers(l)).collect();
    let (shown, _) = window(&starts, at, start, end);
    (start + 1..shown).rev().find(|&i| assigned(lines[i]).is_some_and(|name| used.contains(name)))
}

/// The name a line assigns: `name = …`, `name: T = …`, `name := …`, `let [mut] name = …`,
/// `const name = …`.
fn assigned(line: &str) -> Option<&str> {
    let line =
        ["let mut ", "let ", "const ", "var "].iter().fold(line.trim_start(), |l, k| l.strip_prefix(k).unwrap_or(l));
    let end = line.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(line.len());
    let (name, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let typed = rest.strip_prefix(':').filter(|r| !r.starts_with('=')).and_then(|r| r.split_once(" = ")).is_some();
    let assigns = (rest.starts_with('=') && !rest.starts_with("==")) || rest.starts_with(":=") || typed;
    (!name.is_empty() && assigns).then_some(name)
}

/// Lines `start..end` of the function holding line `at`: by indentation in Python, by braces elsewhere.
fn function_at(path: &str, lines: &[&str], at: usize) -> Option<(usize, usize)> {
    if path.ends_with(".py") {
        let depth = if defined(lines[at]).is_some() { leading(lines[at]) + 1 } else { leading(lines[at]) };
        let start = (0..=at).rev().find(|&i| defined(lines[i]).is_some() && leading(lines[i]) < depth)?;
        let indent = leading(lines[start]);
        let body = lines[start + 1..]
            .iter()
            .position(|l| !l.trim().is_empty() && leading(l) <= indent && !l.trim_start().starts_with(')'))
            .map_or(lines.len(), |i| start + 1 + i);
        // Blank lines before what follows belong to neither.
        let end = (start + 1..body).rev().find(|&i| !lines[i].trim().is_empty()).map_or(start + 1, |i| i + 1);
        return Some((start, end));
    }
    let start = (0..=at).rev().find(|&i| defined(lines[i]).is_some())?;
    let mut depth = 0i64;
    let mut opened = false;
    for (i, line) in lines.iter().enumerate().skip(start) {
        for c in line.chars() {
            match c {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
        if opened && depth <= 0 {
            return (i >= at).then_some((start, i + 1));
        }
    }
    None
}

pub(crate) fn leading(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::tests::repo;

    const CODE: &str = "import re\n\n\nclass Parser:\n    def __init__(self, fmt):\n        self.fmt = fmt\n\n    def parse(self, s):\n        m = re.match(self.fmt, s)\n        return m.group(0)\n\n\ndef parse(fmt, s):\n    return Parser(fmt).parse(s)\n";

    #[test]
    fn the_deepest_frame_of_the_traceback_comes_first_then_what_the_task_names() {
        let (_d, repo) = repo(&[("parse.py", CODE), ("tests/test_parse.py", "def test_x():\n    pass\n")]);
        let output = "tests/test_parse.py:2: in test_x\n    parse('a', 'b')\nparse.py:14: in parse\n    return Parser(fmt).parse(s)\nparse.py:10: AttributeError\n==== warnings summary ====\nparse.py:1\n  /workspace/parse.py:1: DeprecationWarning: imp\n";
        let found = regions(&repo, "`Parser.__init__` keeps the fmt", output, &Executed::default());
        let labels: Vec<String> = found.iter().map(Region::label).collect();
        assert_eq!(
            labels,
            [
                "parse.py, lines 8-10 (in `parse`)",
                "parse.py, lines 13-14 (in `parse`)",
                "parse.py, lines 5-6 (in `__init__`)"
            ]
        );
        assert_eq!(
            found[0].text(CODE),
            "    def parse(self, s):\n        m = re.match(self.fmt, s)\n        return m.group(0)\n"
        );
    }

    #[test]
    fn a_long_function_is_shown_around_the_line_and_braces_bound_a_go_function() {
        let body: String = (0..60).map(|i| format!("    x{i} = {i}\n")).collect();
        let long = format!("def f():\n{body}    return x0\n");
        let region = around("a.py", &long, 30).unwrap();
        assert_eq!((region.start, region.end, region.function.as_deref()), (18, 43, Some("f")));
        let go = "package a\n\nfunc (c *C) Check(v int) bool {\n\tif v > 0 {\n\t\treturn true\n\t}\n\treturn false\n}\n\nfunc g() {}\n";
        let region = around("a.go", go, 4).unwrap();
        assert_eq!((region.start, region.end, region.function.as_deref()), (2, 8, Some("Check")));
    }

    #[test]
    fn comments_and_docstrings_are_not_code() {
        let go = [
            "/*",
            "Package semver …",
            "function only parses valid versions.",
            "*/",
            "package semver",
            "func Check() {} /* a",
            "b */",
            "// c",
            "x := 1 /* d */",
        ];
        assert_eq!(code_lines("doc.go", &go), [false, false, false, false, true, true, false, false, true]);
        let python =
            ["def f():", "    \"\"\"Parse", "    /* not a comment here */", "    \"\"\"", "    # c", "    return 1"];
        assert_eq!(code_lines("a.py", &python), [true, false, false, false, false, true]);
    }

    #[test]
    fn examples_docs_and_tests_are_no_place_for_the_fix() {
        assert!(candidate("src/click/core.py") && candidate("parse.py"));
        for aside in [
            "examples/termui/termui.py",
            "docs/conf.py",
            "scripts/update-benchmark.js",
            "benchmark/parse-top.js",
            "test.py",
            "tests/test_a.py",
            "a.pyi",
            "setup.cfg",
        ] {
            assert!(!candidate(aside), "{aside}");
        }
    }

    #[test]
    fn without_a_traceback_the_functions_using_the_tasks_rarest_names_come_first() {
        let code = "def load(path):\n    \"\"\"Reads a file; see field_transformer.\n\n    field_transformer\n    \"\"\"\n    return open(path).read()\n\n\ndef transform(cls, fields, field_transformer):\n    if field_transformer is not None:\n        fields = field_transformer(cls, fields)\n    return fields\n\n\ndef fields(cls):\n    return cls.fields\n";
        let (_d, repo) = repo(&[
            ("a.py", code),
            ("a.pyi", "def transform(cls, fields, field_transformer): ...\n"),
            ("tests/test_a.py", "def test_fields():\n    field_transformer = 1\n"),
        ]);
        let found =
            regions(&repo, "`field_transformer` written as a generator drops all fields", "", &Executed::default());
        let labels: Vec<String> = found.iter().map(Region::label).collect();
        assert_eq!(
            labels,
            ["a.py, lines 9-12 (in `transform`)", "a.py, lines 15-16 (in `fields`)"],
            "docstrings do not count"
        );
    }

    /// A Python function of `head`, forty plain lines, then `tail`: too long to be shown whole.
    fn long_function(head: &str, tail: &str) -> String {
        let filler: String = (0..40).map(|i| format!("    step_{i} = {i}\n")).collect();
        format!("{head}{filler}{tail}")
    }

    #[test]
    fn a_part_of_a_long_function_is_whole_statements() {
        let steps =
            |from: usize, to: usize| -> String { (from..to).map(|i| format!("    step_{i} = {i}\n")).collect() };
        let code = format!(
            "def f(a):\n{}    x = call(\n        a,\n        \"b)\",\n    )\n{}    value = 1\n{}    y = g(\n        1,\n        2,\n    )\n{}",
            steps(1, 31),
            steps(35, 45),
            steps(46, 56),
            steps(60, 80),
        );
        // Twelve lines either side of line 45 would start inside `call(` and end inside `g(`.
        let region = around("a.py", &code, 45).unwrap();
        assert_eq!((region.start, region.end), (31, 60), "{}", region.text(&code));
        let doc: String = (0..40).map(|i| format!("    line {i} of the docstring\n")).collect();
        let documented = format!("def f(a):\n    \"\"\"\n{doc}    \"\"\"\n{}", steps(1, 41));
        let region = around("a.py", &documented, 47).unwrap();
        assert_eq!((region.start, region.end), (43, 60), "the code after the docstring: {}", region.text(&documented));
        let starts = |path: &str, text: &str| -> Vec<usize> {
            let lines: Vec<&str> = text.lines().collect();
            let starts = statement_starts(path, &lines);
            (0..starts.len()).filter(|&i| starts[i]).collect()
        };
        let python = "s = \"\"\"(\n  [\n\"\"\"\nt = f(  # )\n  1) + \\\n  2\nu = {'é': (\n)}\n";
        assert_eq!(starts("a.py", python), [0, 3, 6, 8], "a docstring, a comment, a continued line, braces");
        let rust = "fn f<'a>(x: &'a str) -> &'a str {\n    g(\n        x,\n    )\n}\n";
        assert_eq!(starts("a.rs", rust), [0, 1, 4, 5], "a lifetime is no quote; a block holds statements");
    }

    #[test]
    fn a_frame_in_a_long_function_is_followed_by_where_its_values_were_made() {
        let code = long_function(
            "def script(a):\n    if a.converter:\n        converter = wrap(a.converter)\n    else:\n        converter = a.converter\n    count: int = 0\n",
            "    if converter is not None:\n        lines.append(\n            setter(a.name, converter)\n        )\n    return lines\n",
        );
        let (_d, repo) = repo(&[("make.py", &code)]);
        let output = "make.py:47: in script\n    lines.append(\nE   AttributeError: x\n";
        let labels: Vec<String> = regions(&repo, "", output, &Executed::default()).iter().map(Region::label).collect();
        assert_eq!(labels[..2], ["make.py, lines 35-51 (in `script`)", "make.py, lines 1-17 (in `script`)"]);
        assert_eq!(origin("make.py", &code, 46), Some(4), "the last assignment of `converter` above the part shown");
        let short = "def f(a):\n    b = a\n    return b.c\n";
        assert_eq!(origin("f.py", short, 2), None, "a short function is shown whole");
        let assigns: Vec<Option<&str>> =
            ["x = 1", "  x: int = 1", "x := f()", "let mut x = 1", "x == 1", "else:", "x: int"]
                .iter()
                .map(|l| assigned(l))
                .collect();
        assert_eq!(assigns, [Some("x"), Some("x"), Some("x"), Some("x"), None, None, None]);
    }

    #[test]
    fn a_long_function_is_shown_where_it_uses_the_tasks_words_most() {
        let code = long_function(
            "def handle(format):\n    width = format['width']\n",
            "    fill = format['fill']\n    if align == '<':\n        s = s + fill\n    elif align == '^':\n        s = fill + s + fill\n    return s\n",
        );
        let (_d, repo) = repo(&[("parse.py", &code)]);
        let found = regions(&repo, "the fill and width of an alignment", "", &Executed::default());
        let labels: Vec<String> = found.iter().map(Region::label).collect();
        assert_eq!(labels, ["parse.py, lines 31-48 (in `handle`)"], "around the fills, not the first width");
    }

    #[test]
    fn where_the_failing_tests_were_traced_only_what_they_ran_is_ranked_and_words_split() {
        let code = "def load(path):\n    return path\n\n\n@property\ndef _match_re(self):\n    return compile(self._expression)\n\n\ndef matches(fmt):\n    return fmt\n";
        let (_d, repo) = repo(&[("parse.py", code)]);
        let trace = format!("3 passed\n{TRACE_MARK}parse.py:1\nparse.py:5\nconftest.py:1\n");
        let executed = Executed::read(&trace);
        let found = regions(&repo, "the whole string should match", "", &executed);
        let labels: Vec<String> = found.iter().map(Region::label).collect();
        assert_eq!(
            labels,
            ["parse.py, lines 6-7 (in `_match_re`)", "parse.py, lines 1-2 (in `load`)"],
            "`matches` did not run"
        );
        assert!(
            words("getRealName _match_re")
                .is_superset(&["real", "name", "match", "getrealname", "_match_re"].map(String::from).into())
        );
        assert!(Executed::read("no trace").is_empty());
    }

    #[test]
    fn the_trace_runs_pytest_on_the_targets_under_a_profiler() {
        let command = trace_command("/workspace", &["tests/test_a.py::test_b[x y]".to_string()]);
        assert!(command.contains(r#"*["tests/test_a.py::test_b[x y]"]"#), "{command}");
        assert!(command.contains("root = \"/workspace/\""));
    }
}
