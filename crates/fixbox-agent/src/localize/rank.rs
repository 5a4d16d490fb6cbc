//! Which functions of the project's code share the most (and rarest) words with the task: BM25 over
//! each function's code, its docstrings and comments left out, among the files where a fix may be.

use std::collections::{BTreeMap, BTreeSet};

use super::MAX_REGIONS;
use super::trace::Executed;
use super::window::{AROUND, defined, function_at};
use crate::prompt::identifiers;
use crate::repo::{Repo, is_code, is_test_file};

/// `(path, 0-based line)` in the functions of the project's code that best match the task, best
/// first, at most [`MAX_REGIONS`]: each name of the task a function uses counts by how rare it is
/// among the functions (BM25's idf), its own name half again; the line is the middle of the stretch
/// of [`AROUND`] lines either side that uses the most of them.
pub(super) fn ranked(repo: &Repo, task: &str, executed: &Executed) -> Vec<(String, usize)> {
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
pub(super) fn candidate(path: &str) -> bool {
    let aside = ["examples", "example", "docs", "doc", "benchmarks", "benchmark", "benches", "bench", "scripts"]
        .iter()
        .any(|dir| path.starts_with(&format!("{dir}/")));
    is_code(path) && !is_test_file(path) && !path.ends_with(".pyi") && !aside
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::localize::trace::TRACE_MARK;
    use crate::localize::{Region, regions};
    use crate::repo::tests::repo;

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
            "benches/parse.rs",
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
}
