//! Where the bug may be: regions of code, most likely first. The function each frame of the
//! failure's traceback is in (deepest first), where the values that frame uses were made, then the
//! functions that share the task's rarest words, among those the failing tests ran. A long function
//! is shown as a window of whole statements around the line that matters ([`window`]); the functions
//! are ranked in [`rank`], and the tests traced in [`trace`].

mod rank;
mod trace;
mod window;

use std::collections::BTreeSet;

use crate::prompt::lines_named;
use crate::repo::Repo;

use self::rank::{candidate, ranked};
pub use self::trace::{Executed, trace_command};
use self::window::{around, origin};
pub(crate) use self::window::{defined, leading};

/// Regions tried at most.
const MAX_REGIONS: usize = 8;

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

#[cfg(test)]
mod tests {
    use super::window::assigned;
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

    /// A Python function of `head`, forty plain lines, then `tail`: too long to be shown whole.
    fn long_function(head: &str, tail: &str) -> String {
        let filler: String = (0..40).map(|i| format!("    step_{i} = {i}\n")).collect();
        format!("{head}{filler}{tail}")
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
}
