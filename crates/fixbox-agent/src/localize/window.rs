//! The lines of a region: the function around a line, or its part around the line where the function
//! is long, cut where statements start; and where the values a line uses were made.

use std::collections::BTreeSet;

use super::Region;
use crate::prompt::identifiers;

/// A function longer than this is shown as the part around the line the failure points at.
const MAX_LINES: usize = 40;
pub(super) const AROUND: usize = 12;

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
pub(super) fn around(path: &str, text: &str, at: usize) -> Option<Region> {
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
pub(super) fn origin(path: &str, text: &str, at: usize) -> Option<usize> {
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
pub(super) fn assigned(line: &str) -> Option<&str> {
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
pub(super) fn function_at(path: &str, lines: &[&str], at: usize) -> Option<(usize, usize)> {
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
}
