//! Rewrite a region: the edit a small model gets right. The session picks lines of code where the bug
//! likely is ([`crate::localize`]), shows them alone, and the model answers with them rewritten; the
//! session makes the edit. There is no SEARCH text to copy exactly and no path to name, and each
//! prompt is short: the task, the failure and one function.

use fixbox_llm::{Message, estimate_tokens};
use fixbox_patch::EditFormat;

use crate::example::expectation;
use crate::localize::{Region, defined, leading};
use crate::prompt::Prompt;
use crate::repo::{Repo, file_diff};
use crate::testrun::failure_text;
use crate::text::{cut_middle, first_of};

/// Earlier tries of a region shown with it, at most: the latest ones, a page at a time (see
/// [`shown_from`]).
const TRIES_SHOWN: usize = 2;
/// Answers in a row that bring no new change to test (unchanged, repeated or misshapen) allowed, in
/// rounds over the regions, before the session is stuck.
pub const IDLE_ROUNDS: usize = 3;
/// Characters of the failure shown, and of an earlier try's.
const FAILURE_CHARS: usize = 2400;
const TRY_CHARS: usize = 900;
/// Characters of the issue shown, at most: an issue may paste a whole log, and the prompt must fit a
/// small context window (8,192 tokens here) with the region and its tries.
const TASK_CHARS: usize = 6000;
/// Tests a try broke named in the prompt, at most: a change can break hundreds.
const BROKE_SHOWN: usize = 5;

/// The order the regions (most likely first) are asked in: rounds that each start again at the most
/// likely one and reach one region further than the last (0; 0 1; 0 1 2; ...). The likeliest places get
/// the most tries, each warmer than its last, and the others are still reached: in sixteen asks the
/// first region gets five, the fifth one.
#[derive(Debug, Clone)]
pub struct Schedule {
    regions: usize,
    round: usize,
    next: usize,
}

impl Schedule {
    pub fn new(regions: usize) -> Self {
        Self { regions: regions.max(1), round: 0, next: 0 }
    }
}

impl Iterator for Schedule {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let at = self.next;
        self.next += 1;
        if self.next > self.round.min(self.regions - 1) {
            self.round += 1;
            self.next = 0;
        }
        Some(at)
    }
}

/// An earlier rewrite of a region: its change, and the tests' output after it.
#[derive(Debug, Clone)]
pub struct Try {
    pub diff: String,
    pub output: String,
    /// Tests that passed before and failed after it, where they were all that failed: the change
    /// fixed the issue and broke these.
    pub broke: Vec<String>,
}

impl Region {
    /// `file` with this region replaced by `code`, indented as the region was when the model dropped
    /// its indentation. [`Rewritten::Unchanged`] when that changes no code (blank lines, trailing
    /// spaces and comments aside: a change to those is no fix), [`Rewritten::Misshapen`] when the
    /// region is a whole function and the code neither starts with its definition nor is a part of
    /// it (a small model pastes the issue's example there, or wraps the function in a class). A part
    /// of the function, as a small model gives back the lines it changed, is put in its place
    /// ([`within`]).
    pub fn replace(&self, file: &str, code: &str) -> Rewritten {
        let lines: Vec<&str> = file.lines().collect();
        let (start, end) = (self.start.min(lines.len()), self.end.min(lines.len()));
        let old = &lines[start..end];
        let marker = comment_marker(&self.path);
        let answer = without_preamble(old, code.lines().collect(), marker);
        let new = unmarked(old, answer.clone());
        let pad = " ".repeat(indentation(old).saturating_sub(indentation(&new)));
        let new: Vec<String> = new.iter().map(|l| padded(l, &pad)).collect();
        let code_of = |ls: &[String]| -> Vec<String> {
            ls.iter().map(|l| without_comment(l, marker).trim_end().to_string()).filter(|l| !l.is_empty()).collect()
        };
        let old_code = code_of(&old.iter().map(|l| l.to_string()).collect::<Vec<_>>());
        if old_code == code_of(&new) {
            return Rewritten::Unchanged;
        }
        let new = match misshapen(old, &new.iter().map(String::as_str).collect::<Vec<_>>()) {
            None => new,
            Some(why) => match within(old, &answer, marker) {
                Some(placed) if old_code == code_of(&placed) => return Rewritten::Unchanged,
                Some(placed) => placed,
                None => return Rewritten::Misshapen(why),
            },
        };
        let new: Vec<&str> = new.iter().map(String::as_str).collect();
        // The region's blank lines at its end stay: they part it from what follows.
        let filled = |ls: &[&str]| ls.iter().rposition(|l| !l.trim().is_empty()).map_or(0, |i| i + 1);
        let mut out: Vec<&str> = lines[..start].to_vec();
        out.extend(&new[..filled(&new)]);
        out.extend(&old[filled(old)..]);
        out.extend(&lines[end..]);
        let mut text = out.join("\n");
        if file.ends_with('\n') {
            text.push('\n');
        }
        Rewritten::Changed(text)
    }
}

/// What a rewrite of a region makes of its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewritten {
    /// The file with the region rewritten.
    Changed(String),
    /// The code is the same: the model sees no bug there.
    Unchanged,
    /// The answer is not the region's function any more; why, for the log.
    Misshapen(String),
}

/// Why `new` cannot replace `old` where `old` begins with a function's definition: `new` must begin
/// with that function's definition (decorators aside) at the same indentation.
fn misshapen(old: &[&str], new: &[&str]) -> Option<String> {
    fn first<'a>(lines: &[&'a str]) -> Option<&'a str> {
        lines.iter().find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('@')).copied()
    }
    let def = first(old)?;
    let name = defined(def)?;
    let kept = first(new).is_some_and(|l| defined(l) == Some(name) && leading(l) == leading(def));
    (!kept).then(|| {
        format!("the answer does not start with the definition of `{name}`: it must be the whole function, rewritten")
    })
}

/// `line` indented by `pad` more, or empty where it is blank.
fn padded(line: &str, pad: &str) -> String {
    if line.trim().is_empty() { String::new() } else { format!("{pad}{line}") }
}

/// `answer` from the definition of the function `old` starts with on, where only imports and comments
/// come before it: a small model writes the file's imports first.
fn without_preamble<'a>(old: &[&str], answer: Vec<&'a str>, marker: &str) -> Vec<&'a str> {
    let Some(name) = old.iter().find_map(|l| defined(l)) else { return answer };
    let preamble = |l: &&str| {
        let l = l.trim();
        l.is_empty()
            || l.starts_with(marker)
            || l.starts_with("import ")
            || l.starts_with("from ") && l.contains(" import ")
    };
    let Some(at) = answer.iter().position(|l| !preamble(l)) else { return answer };
    let def = answer[at..].iter().find(|l| !l.trim_start().starts_with('@'));
    if at > 0 && def.is_some_and(|l| defined(l) == Some(name)) { answer[at..].to_vec() } else { answer }
}

/// The function `old` with `answer` put in place of the lines it is a part of: from the line its first
/// line is (by text, indentation aside; comments before it aside) to the line its last line is, the
/// one that leaves as many lines between as the answer has where several are. An answer marked as the
/// tries are shown is placed by its old side (its kept and removed lines). An answer whose last line
/// is in no line of `old` is the function's body where its first line is the body's first: it goes to
/// the region's end. `None` where it is no part of `old`.
fn within(old: &[&str], answer: &[&str], marker: &str) -> Option<Vec<String>> {
    let code = answer.iter().position(|l| !l.trim().is_empty() && !l.trim_start().starts_with(marker))?;
    let answer = &answer[code..];
    let new = unmarked(old, answer.to_vec());
    let old_side: Vec<&str> = if new == answer {
        answer.to_vec()
    } else {
        answer.iter().filter(|l| !l.starts_with('+')).map(|l| l.strip_prefix('-').unwrap_or(l)).collect()
    };
    let text =
        |ls: &[&str]| -> Vec<String> { ls.iter().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect() };
    let (part, body) = (text(&old_side), text(old));
    let (first, last) = (part.first()?, part.last()?);
    let from = old.iter().position(|l| l.trim() == first)?;
    let ends = (from..old.len()).filter(|&j| old[j].trim() == last);
    let to = match ends.min_by_key(|&j| text(&old[from..=j]).len().abs_diff(part.len())) {
        Some(to) => to,
        None if body.iter().position(|l| defined(l).is_some()).and_then(|def| body.get(def + 1)) == Some(first) => {
            old.iter().rposition(|l| !l.trim().is_empty())?
        }
        None => return None,
    };
    let pad = " ".repeat(leading(old[from]).saturating_sub(indentation(&old_side)));
    let mut placed: Vec<String> = old[..from].iter().map(|l| l.to_string()).collect();
    placed.extend(new.iter().map(|l| padded(l, &pad)));
    placed.extend(old[to + 1..].iter().map(|l| l.to_string()));
    Some(placed)
}

/// How a line comment starts in `path`'s language.
fn comment_marker(path: &str) -> &'static str {
    match fence_language(path) {
        "python" => "#",
        _ => "//",
    }
}

/// `line` without its comment: from `marker` on, where it is outside a string literal.
fn without_comment<'a>(line: &'a str, marker: &str) -> &'a str {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
            None if line[i..].starts_with(marker) => return &line[..i],
            None => {}
        }
    }
    line
}

/// `new` as code where it is written as the earlier tries are shown (a line removed as `-` and one
/// added as `+` before it, among lines kept as they were): a small model copies that form. The lines
/// marked removed go, the added ones lose their mark. A mark is a `+` or `-` in the first column
/// followed by a space or nothing, or by the definition a region starts with; `old` having such a line, the
/// lines are taken as they are.
fn unmarked<'a>(old: &[&str], new: Vec<&'a str>) -> Vec<&'a str> {
    let marked = |l: &&str| {
        let rest = l.strip_prefix(['+', '-']);
        rest.is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t']) || defined(r).is_some())
    };
    if old.iter().any(marked) || !new.iter().any(marked) {
        return new;
    }
    new.into_iter()
        .filter(|l| !(marked(l) && l.starts_with('-')))
        .map(|l| if marked(&l) { &l[1..] } else { l })
        .collect()
}

/// The least indentation of the lines that are not blank.
fn indentation(lines: &[&str]) -> usize {
    lines.iter().filter(|l| !l.trim().is_empty()).map(|l| leading(l)).min().unwrap_or(0)
}

/// The code in an answer: its first fenced block (to its end when the fence is not closed), else the
/// whole answer. A small model may answer with a diff of the lines instead: their new side is taken.
pub fn extract(answer: &str) -> String {
    let code = fenced(answer);
    let is_diff = code.lines().any(|l| l.starts_with("@@")) || code.starts_with("--- ");
    if !is_diff {
        return code;
    }
    code.lines()
        .filter(|l| !(l.starts_with("@@") || l.starts_with("--- ") || l.starts_with("+++ ") || l.starts_with('-')))
        .map(|l| format!("{}\n", l.get(1..).unwrap_or("")))
        .collect()
}

fn fenced(answer: &str) -> String {
    let lines: Vec<&str> = answer.lines().collect();
    let is_fence = |l: &&str| l.trim_start().starts_with("```") || l.trim_start().starts_with("~~~");
    let body = match lines.iter().position(is_fence) {
        Some(open) => {
            let rest = &lines[open + 1..];
            &rest[..rest.iter().position(is_fence).unwrap_or(rest.len())]
        }
        None => &lines[..],
    };
    body.iter().map(|l| format!("{l}\n")).collect()
}

/// The prompt for one rewrite of `region`: the task and the failure first (the same for every region,
/// so the engine's prompt cache keeps them), then the region and what earlier tries of it did.
/// `echoed`: an earlier answer gave the region back unchanged.
pub fn prompt(task: &str, failure: &str, repo: &Repo, region: &Region, tries: &[Try], echoed: bool) -> Prompt {
    let text = region.text(repo.current(&region.path).unwrap_or(""));
    let lang = fence_language(&region.path);
    let mut user = format!(
        "# Issue\n{task}\n\n# The tests that fail\n```\n{failure}\n```\n\n# Code\n{label}:\n```{lang}\n{text}```\n",
        task = cut_middle(task.trim(), TASK_CHARS),
        failure = failure_text(failure, FAILURE_CHARS),
        label = region.label(),
    );
    for t in &tries[shown_from(tries.len())..] {
        let (outcome, next) = match t.broke.as_slice() {
            [] => ("the tests still failed".to_string(), "fix it another way"),
            // A small model that fixed the issue by replacing a condition is told to add one.
            broke => (
                format!(
                    "the issue's test passed, but tests that passed before failed ({})",
                    first_of(broke, BROKE_SHOWN)
                ),
                "keep what fixed the issue and what those tests need",
            ),
        };
        user.push_str(&format!(
            "\nAn earlier try changed these lines (- removed, + added):\n```\n{}```\nand {outcome}:\n```\n{}\n```\nThat change was undone: {next}.\n",
            t.diff,
            failure_text(&t.output, TRY_CHARS)
        ));
    }
    if echoed {
        // A small model shown a function it does not understand gives it back as it was.
        user.push_str("\nAn earlier answer gave these lines back unchanged, and the tests still fail: change them.\n");
    }
    // Said last, next to the code: a small model otherwise takes the error the issue reports for
    // what it asks for.
    let expects = expectation(task).map_or(String::new(), |e| format!(" The issue expects: \"{e}\""));
    user.push_str(&format!(
        "\nRewrite these {n} lines of {path} so the bug is fixed.{expects} {reminder}",
        n = region.end - region.start,
        path = region.path,
        reminder = EditFormat::Rewrite.reminder(&region.path),
    ));
    let system = format!(
        "You are an expert software engineer fixing a bug. You are shown an issue, the output of the tests that fail because of it, and lines of the code where the bug may be.\n\n{}",
        EditFormat::Rewrite.instructions()
    );
    let tokens_estimate = estimate_tokens(&system) + estimate_tokens(&user) + 8;
    Prompt { messages: vec![Message::system(system), Message::user(user)], tokens_estimate, trimmed_turns: 0 }
}

/// The first of `tries` earlier tries a prompt shows: they are shown in pages of [`TRIES_SHOWN`], so
/// that the prompt of a region's next ask begins with its last one (the engine resumes from its state
/// and computes only the new try) but where a page starts.
fn shown_from(tries: usize) -> usize {
    tries.saturating_sub(1) / TRIES_SHOWN * TRIES_SHOWN
}

/// The lines a try removed and added, as `-` and `+` lines: a whole diff with its headers is what a
/// small model then copies as its answer.
pub fn try_diff(path: &str, before: &str, after: &str) -> String {
    file_diff(path, Some(before), Some(after))
        .lines()
        .filter(|l| (l.starts_with('-') || l.starts_with('+')) && !l.starts_with("---") && !l.starts_with("+++"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn fence_language(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "py" => "python",
        "rs" => "rust",
        "go" => "go",
        "js" | "mjs" | "cjs" => "javascript",
        "ts" | "tsx" => "typescript",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::tests::repo;

    const CODE: &str = "import re\n\n\nclass Parser:\n    def __init__(self, fmt):\n        self.fmt = fmt\n\n    def parse(self, s):\n        m = re.match(self.fmt, s)\n        return m.group(0)\n\n\ndef parse(fmt, s):\n    return Parser(fmt).parse(s)\n";

    #[test]
    fn the_likeliest_regions_are_asked_most_and_every_round_reaches_one_further() {
        let order: Vec<usize> = Schedule::new(8).take(16).collect();
        assert_eq!(order, [0, 0, 1, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4, 0]);
        let order: Vec<usize> = Schedule::new(2).take(7).collect();
        assert_eq!(order, [0, 0, 1, 0, 1, 0, 1]);
        assert_eq!(Schedule::new(1).take(3).collect::<Vec<_>>(), [0, 0, 0]);
    }

    #[test]
    fn the_rewrite_replaces_the_region_keeps_its_indentation_and_nothing_is_no_change() {
        let region = Region { path: "parse.py".into(), start: 7, end: 10, function: Some("parse".into()) };
        let unindented = "def parse(self, s):\n    m = re.fullmatch(self.fmt, s)\n    return m.group(0)\n";
        let Rewritten::Changed(fixed) = region.replace(CODE, unindented) else { panic!("no change") };
        assert!(fixed.contains("\n    def parse(self, s):\n        m = re.fullmatch(self.fmt, s)\n        return m.group(0)\n\n\ndef parse"), "{fixed}");
        assert_eq!(fixed.lines().count(), CODE.lines().count());
        assert_eq!(region.replace(CODE, &region.text(CODE)), Rewritten::Unchanged);
        assert_eq!(
            region.replace(CODE, "def parse(self, s):\n    m = re.match(self.fmt, s)\n    return m.group(0)   \n\n"),
            Rewritten::Unchanged
        );
    }

    #[test]
    fn a_change_to_comments_is_none_and_the_function_must_stay_the_function() {
        let region = Region { path: "parse.py".into(), start: 7, end: 10, function: Some("parse".into()) };
        let commented = "    # Parse it.\n    def parse(self, s):\n        m = re.match(self.fmt, s)  # a '#' here\n        return m.group(0)\n";
        assert_eq!(region.replace(CODE, commented), Rewritten::Unchanged);
        let hashed = "    def parse(self, s):\n        m = re.match(self.fmt + '#', s)\n        return m.group(0)\n";
        assert!(matches!(region.replace(CODE, hashed), Rewritten::Changed(_)), "a '#' in a string is code");
        let misshapen = [
            "    p = Parser('a')\n    p.parse('a')\n",
            "    class Parser:\n        def parse(self, s):\n            return s\n",
        ];
        for code in misshapen {
            let Rewritten::Misshapen(why) = region.replace(CODE, code) else { panic!("taken: {code}") };
            assert!(why.contains("`parse`"), "{why}");
        }
        let decorated = "    @cached\n    def parse(self, s):\n        return s\n";
        assert!(matches!(region.replace(CODE, decorated), Rewritten::Changed(_)));
        let window = Region { function: None, start: 8, ..region };
        assert!(
            matches!(window.replace(CODE, "        return None\n"), Rewritten::Changed(_)),
            "only a whole function keeps its def"
        );
    }

    #[test]
    fn a_part_of_the_function_is_put_in_its_place() {
        let region = Region { path: "parse.py".into(), start: 7, end: 10, function: Some("parse".into()) };
        let expect = |code: &str, lines: &str| {
            let Rewritten::Changed(file) = region.replace(CODE, code) else { panic!("not placed: {code}") };
            assert!(file.contains(lines), "{code} made {file}");
            assert_eq!(file.matches("def parse(self, s)").count(), 1, "{file}");
        };
        // The body without its definition, dedented, its last line changed: it runs to the end.
        expect(
            "m = re.match(self.fmt, s)\nreturn m.group(0) if m else None\n",
            "    def parse(self, s):\n        m = re.match(self.fmt, s)\n        return m.group(0) if m else None\n\n\ndef parse",
        );
        // The lines from the first to the last the answer shows, both in the function.
        expect(
            "        m = re.match(self.fmt, s)\n        m = m or re.match(self.fmt, s + '\\n')\n        return m.group(0)\n",
            "    def parse(self, s):\n        m = re.match(self.fmt, s)\n        m = m or re.match(self.fmt, s + '\\n')\n        return m.group(0)\n",
        );
        // Marked lines are placed by what they remove.
        expect(
            "-        m = re.match(self.fmt, s)\n+        m = re.fullmatch(self.fmt, s)\n",
            "    def parse(self, s):\n        m = re.fullmatch(self.fmt, s)\n        return m.group(0)\n",
        );
        // The body given back as it was is no change.
        assert_eq!(region.replace(CODE, "m = re.match(self.fmt, s)\nreturn m.group(0)\n"), Rewritten::Unchanged);
        // Comments before a part aside.
        expect(
            "        # None where it does not match.\n        m = re.match(self.fmt, s)\n        return m and m.group(0)\n",
            "    def parse(self, s):\n        m = re.match(self.fmt, s)\n        return m and m.group(0)\n",
        );
        // The whole function after the file's imports.
        expect(
            "import re\n\n# Fixed.\n@cached\ndef parse(self, s):\n    return s\n",
            "    @cached\n    def parse(self, s):\n        return s\n\n\ndef parse",
        );
        // A part whose first line is not in the function is no part of it.
        assert!(matches!(region.replace(CODE, "return m.group(1)\n"), Rewritten::Misshapen(_)));
    }

    #[test]
    fn an_answer_written_as_the_tries_are_shown_is_taken_as_its_new_lines() {
        let region = Region { path: "parse.py".into(), start: 7, end: 10, function: Some("parse".into()) };
        let marked = "    def parse(self, s):\n-        m = re.match(self.fmt, s)\n+        m = re.fullmatch(self.fmt, s)\n-\n        return m.group(0)\n";
        let Rewritten::Changed(file) = region.replace(CODE, marked) else { panic!("not taken: {marked}") };
        assert!(
            file.contains(
                "    def parse(self, s):\n        m = re.fullmatch(self.fmt, s)\n        return m.group(0)\n"
            ),
            "{file}"
        );
        let whole = "+    def parse(self, s):\n+        return s\n";
        let Rewritten::Changed(file) = region.replace(CODE, whole) else { panic!("not taken: {whole}") };
        assert!(file.contains("    def parse(self, s):\n        return s\n"), "{file}");
        // Where the code itself has such lines, the answer's are code too.
        let code = "x = (1\n- 2)\n";
        let window = Region { path: "x.py".into(), start: 0, end: 2, function: None };
        let Rewritten::Changed(file) = window.replace(code, "x = (1\n- 3)\n") else { panic!() };
        assert_eq!(file, "x = (1\n- 3)\n");
    }

    #[test]
    fn earlier_tries_are_shown_a_page_at_a_time() {
        let shown = |n: usize| (shown_from(n)..n).collect::<Vec<_>>();
        assert_eq!([shown(0), shown(1), shown(2)], [vec![], vec![0], vec![0, 1]]);
        assert_eq!([shown(3), shown(4), shown(5)], [vec![2], vec![2, 3], vec![4]]);
    }

    #[test]
    fn the_code_is_the_answers_first_block_or_a_diffs_new_side() {
        assert_eq!(
            extract("```python\n--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n def f():\n-    return 1\n+    return 2\n```"),
            "def f():\n    return 2\n"
        );
        assert_eq!(extract("```python\ndef f():\n    return 1\n```\n"), "def f():\n    return 1\n");
        assert_eq!(extract("```python\ndef f():\n    return 1\n"), "def f():\n    return 1\n");
        assert_eq!(extract("def f():\n    return 1"), "def f():\n    return 1\n");
    }

    #[test]
    fn the_prompt_holds_the_task_the_failure_the_region_and_earlier_tries() {
        let (_d, repo) = repo(&[("parse.py", CODE)]);
        let region = Region { path: "parse.py".into(), start: 7, end: 10, function: Some("parse".into()) };
        let before = CODE;
        let after = CODE.replace("re.match", "re.fullmatch");
        assert_eq!(
            try_diff("parse.py", before, &after),
            "-        m = re.match(self.fmt, s)\n+        m = re.fullmatch(self.fmt, s)\n"
        );
        let tries = [
            Try { diff: "-a\n+b\n".into(), output: "E   assert 1 == 2".into(), broke: Vec::new() },
            Try { diff: "-c\n+d\n".into(), output: "E   assert 3 == 4".into(), broke: vec!["t.py::test_y".into()] },
        ];
        // A try that broke hundreds of tests names a few: the prompt stays within the context window.
        let many = Try { broke: (0..300).map(|n| format!("t.py::test_{n}")).collect(), ..tries[1].clone() };
        let crowded = prompt("x", "FAILED t.py::test_x", &repo, &region, &[many], false);
        assert!(crowded.messages[1].content.contains("t.py::test_4 and 295 more)"), "{}", crowded.messages[1].content);
        assert!(crowded.tokens_estimate < 1000, "{}", crowded.tokens_estimate);
        // So does an issue that pastes a long log: its start and end are kept.
        let log: String = (0..2000).map(|n| format!("DEBUG step {n} ok\n")).collect();
        let long =
            prompt(&format!("parse() drops the newline\n{log}Expected: kept."), "FAILED", &repo, &region, &[], false);
        let user = &long.messages[1].content;
        assert!(user.contains("parse() drops the newline") && user.contains("Expected: kept."), "{user}");
        assert!(long.tokens_estimate < 2500, "{}", long.tokens_estimate);
        let task = "parse() drops the newline\n\nExpected: the newline is kept.";
        let prompt = prompt(task, "FAILED t.py::test_x", &repo, &region, &tries, true);
        let user = &prompt.messages[1].content;
        for part in [
            "parse() drops the newline",
            "FAILED t.py::test_x",
            "parse.py, lines 8-10 (in `parse`)",
            "```python\n    def parse(self, s):\n",
            "-a\n+b\n",
            "assert 1 == 2",
            "these 3 lines of parse.py so the bug is fixed. The issue expects: \"Expected: the newline is kept.\"",
            "An earlier answer gave these lines back unchanged",
            "and the tests still failed:\n```\nE   assert 1 == 2\n```\nThat change was undone: fix it another way.",
            "and the issue's test passed, but tests that passed before failed (t.py::test_y):",
            "undone: keep what fixed the issue and what those tests need.",
        ] {
            assert!(user.contains(part), "{part} missing from {user}");
        }
    }
}
