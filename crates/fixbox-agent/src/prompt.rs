//! Prompts a small local model can follow, laid out so the engine's prompt cache is reused: the
//! system prompt, the repository map, the task and the first look at the code never change during a
//! session, and each iteration only appends the model's answer and what came of it. When the
//! conversation outgrows the context window the oldest turns go, and the prompt says so.

use std::collections::BTreeSet;

use fixbox_llm::{Message, estimate_tokens};
use fixbox_patch::EditFormat;

use crate::repo::Repo;
use crate::testrun::{TestReport, failure_text};
use crate::text::cut_middle;

/// The opening message's size at most, in estimated tokens: on a CPU every prompt token is prefill
/// time (at ~50 tokens/s, 4,000 tokens are over a minute), and a small model loses the task in a long
/// prompt. Code counts about a third more tokens on the engine than estimated (4,650 for 3,500 on the
/// eval's real repositories), so this is about 3,700 as the engine counts.
const OPENING_TOKENS: u64 = 2800;
/// Shares of the opening message's budget: the map, the files, the test output.
const MAP_SHARE: f64 = 0.2;
const FILES_SHARE: f64 = 0.5;
const OUTPUT_SHARE: f64 = 0.2;
/// A file in feedback at most, in characters: the part around the edits and the failure.
const FEEDBACK_FILE_CHARS: usize = 2400;
/// Files put in the opening message at most.
const MAX_FILES: usize = 4;
/// What a turn's two messages add beyond their text, and the note that turns were left out.
const TURN_TOKENS: u64 = 8;
const TRIMMED_NOTE_TOKENS: u64 = 24;

/// The conversation with the model over a session.
#[derive(Debug, Clone)]
pub struct Conversation {
    system: String,
    opening: String,
    turns: Vec<(String, String)>,
    /// Tokens the prompt may take: the context window less the answer's room.
    budget: u64,
    /// How many tokens the engine counts per token estimated, at least 1: learnt from each answer,
    /// so a prompt the estimate undercounts is trimmed to what really fits.
    scale: f64,
}

/// The messages for one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub messages: Vec<Message>,
    pub tokens_estimate: u64,
    /// Earlier turns left out to fit the context window.
    pub trimmed_turns: u32,
}

impl Conversation {
    /// Starts the conversation: the system prompt and the opening message (map, task, the files the
    /// failure and the task point at, the first test output), sized for `budget` prompt tokens.
    pub fn new(
        format: EditFormat,
        repo: &Repo,
        task: &str,
        test_command: &str,
        baseline: &TestReport,
        budget: u64,
    ) -> Self {
        let system = system_prompt(format);
        let room = budget.min(OPENING_TOKENS).saturating_sub(estimate_tokens(&system));
        let chars = |share: f64| (room as f64 * share * 4.0) as usize;
        let failing = baseline.failing().join("\n");
        let output = failure_text(&baseline.output, chars(OUTPUT_SHARE));
        let files = relevant_files(repo, task, &baseline.output);
        let named = format!("{task}\n{}", baseline.output);
        let words = identifiers(&named);
        let mut shown = String::new();
        let files_chars = chars(FILES_SHARE);
        for path in &files {
            let Some(text) = repo.current(path) else { continue };
            let room = files_chars.saturating_sub(shown.len());
            if room < 200 {
                break;
            }
            let anchors = anchors(path, text, &baseline.output, &words);
            shown.push_str(&show_file(path, &window(text, &anchors, room.saturating_sub(path.len() + 16))));
        }
        let opening = format!(
            "# Repository map\n{map}\n# Task\n{task}\n\n# Files\n{shown}\n# Tests\nThe command `{test_command}` fails. Failing tests:\n{failing}\n\nIts output:\n```\n{output}\n```\n\nFix the code so the failing tests pass without breaking the others.\n\n{reminder}",
            reminder = format.reminder(files.first().map_or("path/of/the/file", String::as_str)),
            map = repo.map(chars(MAP_SHARE)),
            task = task.trim(),
        );
        Self { system, opening, turns: Vec::new(), budget, scale: 1.0 }
    }

    /// Learns from a call how the engine counts: `estimate` tokens were `counted` (0: not said).
    pub fn observe(&mut self, estimate: u64, counted: u64) {
        if estimate > 0 && counted > 0 {
            self.scale = self.scale.max(counted as f64 / estimate as f64);
        }
    }

    /// Adds an answer and what the model is told about it.
    pub fn push_turn(&mut self, answer: &str, feedback: String) {
        self.turns.push((answer.trim_end().to_string(), feedback));
    }

    /// The messages for the next call: everything when it fits, else the newest turns that fit. The
    /// newest turn is always there (without it the model would not know what just happened): when it
    /// alone does not fit, the middles of its answer and feedback are cut.
    pub fn prompt(&self) -> Prompt {
        // In estimated tokens, what the budget holds as the engine counts.
        let budget = (self.budget as f64 / self.scale) as u64;
        let fixed = estimate_tokens(&self.system) + estimate_tokens(&self.opening) + TRIMMED_NOTE_TOKENS;
        let mut turns: Vec<(String, String)> = Vec::new();
        let mut used = fixed;
        for (answer, feedback) in self.turns.iter().rev() {
            let cost = estimate_tokens(answer) + estimate_tokens(feedback) + TURN_TOKENS;
            if used + cost <= budget {
                turns.push((answer.clone(), feedback.clone()));
                used += cost;
            } else if turns.is_empty() {
                // Characters, less what the two cut marks take.
                let room = ((budget.saturating_sub(used + TURN_TOKENS) * 4) as usize).saturating_sub(80);
                let (answer, feedback) = (cut_middle(answer, room * 2 / 5), cut_middle(feedback, room * 3 / 5));
                used += estimate_tokens(&answer) + estimate_tokens(&feedback) + TURN_TOKENS;
                turns.push((answer, feedback));
                break;
            } else {
                break;
            }
        }
        let trimmed = self.turns.len() - turns.len();
        let mut messages = vec![Message::system(&self.system), Message::user(&self.opening)];
        for (i, (answer, feedback)) in turns.into_iter().rev().enumerate() {
            messages.push(Message::assistant(answer));
            // Said to the model, not put in its mouth: a small model copies a note in its own turn.
            let feedback = if i == 0 && trimmed > 0 {
                format!("({trimmed} earlier tries are left out to fit the context window.)\n\n{feedback}")
            } else {
                feedback
            };
            messages.push(Message::user(feedback));
        }
        Prompt { messages, tokens_estimate: used, trimmed_turns: trimmed as u32 }
    }
}

/// What the model is told after its patch was applied and the tests ran.
pub fn after_tests(
    format: EditFormat,
    path: &str,
    repo: &Repo,
    report: &TestReport,
    regressions: &[String],
    output_chars: usize,
) -> String {
    let mut out = format!("Your edit to {path} was applied. ");
    if report.ok() && regressions.is_empty() {
        out.push_str("The tests pass.");
        return out;
    }
    if !regressions.is_empty() {
        out.push_str(&format!(
            "These tests passed before your edits and do not pass now: {}. Do not break or remove them.\n",
            regressions.join(", ")
        ));
    }
    let summary = report.summary();
    out.push_str(&format!(
        "The tests still fail: {}.\n\nOutput:\n```\n{}\n```\n",
        summary.line(),
        failure_text(&report.output, output_chars)
    ));
    if let Some(text) = focus(repo, path, &report.output) {
        out.push_str(&format!("\n{path} is now:\n{}", show_file(path, &text)));
    }
    out.push_str("\nFind the remaining cause. ");
    out.push_str(&format.reminder(path));
    out
}

/// What the model is told when its answer could not be used.
pub fn rejected(format: EditFormat, reason: &str, path: Option<&str>, repo: &Repo) -> String {
    let mut out = format!("Your edit was not applied. {reason}\n");
    // The reason shows the part of the file the edit was closest to, where it found one.
    let shown = reason.contains("The closest part of");
    if let Some((path, text)) = path.filter(|_| !shown).and_then(|p| Some((p, focus(repo, p, "")?))) {
        out.push_str(&format!("\n{path} is:\n{}", show_file(path, &text)));
    }
    out.push('\n');
    out.push_str(&format.reminder(path.unwrap_or("path/of/the/file")));
    out
}

fn system_prompt(format: EditFormat) -> String {
    format!(
        "You are an expert software engineer fixing a bug in a repository. You are shown a map of the repository, the task, the relevant files and the output of the failing tests. \
Each answer makes ONE edit to ONE file; the tests run after every answer and you are shown the result, so fix one thing at a time. \
Start with one or two sentences on the cause, then write the edit. Never change test files: fix the code under test.\n\n{}",
        format.instructions()
    )
}

pub(crate) fn show_file(path: &str, text: &str) -> String {
    let fence = if text.contains("```") { "~~~~" } else { "```" };
    format!("{path}\n{fence}\n{}\n{fence}\n", text.trim_end_matches('\n'))
}

/// Identifiers of 3+ characters in `text`.
pub(crate) fn identifiers(text: &str) -> BTreeSet<&str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| w.len() >= 3).collect()
}

/// The lines of `path` that matter for a failure, 0-based: those `output` points at (`path:LINE`, or
/// a Python traceback's `path", line N`), then the definitions `words` names.
pub(crate) fn anchors(path: &str, text: &str, output: &str, words: &BTreeSet<&str>) -> Vec<usize> {
    let mut found: Vec<usize> = lines_named(path, output).into_iter().map(|(_, line)| line).collect();
    const DEFINES: &[&str] =
        &["def ", "async def ", "class ", "fn ", "pub fn ", "func ", "function ", "export function "];
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        let Some(rest) = DEFINES.iter().find_map(|d| line.strip_prefix(d)) else { continue };
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if words.contains(name.as_str()) {
            found.push(i);
        }
    }
    let mut seen = BTreeSet::new();
    found.retain(|line| seen.insert(*line));
    found
}

/// Where `output` points into `path` (`path:LINE`, or a Python traceback's `path", line N`): the byte
/// offset of each mention in `output`, and the 0-based line.
pub(crate) fn lines_named(path: &str, output: &str) -> Vec<(usize, usize)> {
    output
        .match_indices(path)
        .filter_map(|(at, _)| {
            let rest = &output[at + path.len()..];
            let rest = rest.strip_prefix(':').or_else(|| rest.strip_prefix("\", line ")).unwrap_or("");
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            Some((at, digits.parse::<usize>().ok()?.saturating_sub(1)))
        })
        .collect()
}

/// `text` cut to about `max_chars` around `anchors` (0-based lines): a few lines before each and as
/// many after as fit, grown in turns so each anchor gets its share; the lines left out are said as
/// `[... N lines ...]`. Without anchors, its middle is cut.
pub(crate) fn window(text: &str, anchors: &[usize], max_chars: usize) -> String {
    const BEFORE: usize = 3;
    const STEP: usize = 8;
    if text.len() <= max_chars || anchors.is_empty() {
        return cut_middle(text, max_chars);
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut keep = vec![false; lines.len()];
    // Room for the marks: one gap before, between and after the windows.
    let max_chars = max_chars.saturating_sub((anchors.len() + 1) * "[... 99999 lines ...]\n".len());
    let mut used = 0;
    let mut reach = 0;
    'grow: loop {
        reach += STEP;
        let mut added = false;
        for &anchor in anchors.iter().filter(|a| **a < lines.len()) {
            for i in anchor.saturating_sub(BEFORE)..(anchor + reach).min(lines.len()) {
                if keep[i] {
                    continue;
                }
                used += lines[i].len() + 1;
                if used > max_chars {
                    break 'grow;
                }
                keep[i] = true;
                added = true;
            }
        }
        if !added {
            break;
        }
    }
    let mut out = String::new();
    let mut skipped = 0;
    for (line, kept) in lines.iter().zip(&keep) {
        if !kept {
            skipped += 1;
            continue;
        }
        if skipped > 0 {
            out.push_str(&format!("[... {skipped} lines ...]\n"));
            skipped = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    if skipped > 0 {
        out.push_str(&format!("[... {skipped} lines ...]\n"));
    }
    out
}

/// A file for feedback: whole when short, else windows around where the session changed it and the
/// lines `output` points at (the model saw the rest in the opening).
fn focus(repo: &Repo, path: &str, output: &str) -> Option<String> {
    let text = repo.current(path)?;
    let mut lines = repo.changed_lines(path, 4);
    lines.extend(anchors(path, text, output, &BTreeSet::new()));
    Some(window(text, &lines, FEEDBACK_FILE_CHARS))
}

/// The files worth showing first: code the failure's output names, then code defining what the task
/// and the output name, then the tests the output names. Only source code: the reminder names the
/// first as the file to edit, and a small model takes it at its word.
pub fn relevant_files(repo: &Repo, task: &str, output: &str) -> Vec<String> {
    let mentioned = repo.mentioned_in(output);
    let defining = repo.defining(&format!("{task}\n{output}"));
    let (tests, code): (Vec<String>, Vec<String>) = mentioned
        .into_iter()
        .chain(defining)
        .filter(|p| crate::repo::is_code(p))
        .partition(|p| crate::repo::is_test_file(p));
    let mut ordered: Vec<String> = Vec::new();
    for path in code.into_iter().chain(tests) {
        if !ordered.contains(&path) {
            ordered.push(path);
        }
    }
    ordered.truncate(MAX_FILES);
    ordered
}

#[cfg(test)]
mod tests {
    use fixbox_llm::Role;

    use super::*;
    use crate::detect::Runner;

    fn fixture() -> (tempfile::TempDir, Repo, TestReport) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pages.py"),
            "def paginate(items, page, size):\n    start = page * size\n    return items[start:start + size]\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("util.py"), "def unrelated():\n    return 1\n").unwrap();
        std::fs::write(dir.path().join("test_pages.py"), "from pages import paginate\n\ndef test_second_page():\n    assert paginate(list(range(10)), 2, 3) == [3, 4, 5]\n").unwrap();
        // The output names it in its header: not a place to fix the bug.
        std::fs::write(dir.path().join("setup.cfg"), "[tool:pytest]\n").unwrap();
        let repo = Repo::load(dir.path()).unwrap();
        let output = "configfile: setup.cfg\ntest_pages.py:4: in test_second_page\nE   assert [6, 7, 8] == [3, 4, 5]\nFAILED test_pages.py::test_second_page - assert\n";
        (dir, repo, TestReport::read(Runner::Pytest, Some(1), output))
    }

    #[test]
    fn the_opening_holds_map_task_code_and_failure_and_stays_the_prefix() {
        let (_dir, repo, baseline) = fixture();
        let mut conversation =
            Conversation::new(EditFormat::SearchReplace, &repo, "page 2 is wrong", "pytest", &baseline, 4000);
        assert_eq!(relevant_files(&repo, "page 2 is wrong", &baseline.output), vec!["pages.py", "test_pages.py"]);
        let first = conversation.prompt();
        let opening = &first.messages[1].content;
        for part in [
            "pages.py\n  def paginate(items, page, size)",
            "# Task\npage 2 is wrong",
            "    start = page * size",
            "test_pages.py::test_second_page",
        ] {
            assert!(opening.contains(part), "{part} missing from:\n{opening}");
        }
        assert!(!opening.contains("def unrelated():\n"), "util.py is not relevant");

        conversation.push_turn("answer one", "feedback one".into());
        let second = conversation.prompt();
        assert_eq!(second.messages[..2], first.messages[..], "the prefix is stable for the prompt cache");
        assert_eq!(second.messages.len(), 4);
    }

    #[test]
    fn a_long_file_is_shown_around_the_lines_the_failure_and_the_task_point_at() {
        let mut text = String::new();
        for i in 1..=400 {
            text.push_str(&match i {
                100 => "def parse(value):\n".to_string(),
                300 => "    raise ValueError(value)\n".to_string(),
                _ => format!("    x{i} = {i}\n"),
            });
        }
        let output = "src/p.py:300: in parse\nE   ValueError: 3";
        let anchors = anchors("src/p.py", &text, output, &identifiers("parse() fails on 3"));
        assert_eq!(anchors, vec![299, 99]);
        let shown = window(&text, &anchors, 1000);
        assert!(shown.len() <= 1000, "{}", shown.len());
        for part in ["def parse(value):", "    raise ValueError(value)", "[... 96 lines ...]", "    x297 = 297"] {
            assert!(shown.contains(part), "{part} missing from:\n{shown}");
        }
        assert!(shown.trim_end().ends_with("lines ...]"), "the end is elided:\n{shown}");
        assert_eq!(window("short\n", &anchors, 1000), "short\n");
    }

    #[test]
    fn feedback_on_a_long_file_shows_where_it_was_changed_not_its_head_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        // Lines of 40 characters or so, as code is.
        let text: String = (1..=400).map(|i| format!("x{i} = compute({i}, 'as long as code is')\n")).collect();
        std::fs::write(dir.path().join("big.py"), &text).unwrap();
        let mut repo = Repo::load(dir.path()).unwrap();
        repo.set("big.py", text.replace("x300 = compute(300, 'as long as code is')\n", "x300 = 'changed'\n"));
        let report = TestReport::read(Runner::Pytest, Some(1), "FAILED test_big.py::test_x - assert 1 == 2\n");
        let said = after_tests(EditFormat::SearchReplace, "big.py", &repo, &report, &[], 1000);
        let file = &said[said.find("big.py is now:").unwrap()..];
        assert!(file.contains("x300 = 'changed'") && file.contains("x298 = compute(298"), "{file}");
        assert!(!file.contains("\nx1 = ") && !file.contains("x400 = "), "{file}");
        assert!(file.len() < 2400 + 800, "{}", file.len());
    }

    #[test]
    fn old_turns_go_first_when_the_context_is_full() {
        let (_dir, repo, baseline) = fixture();
        let mut conversation = Conversation::new(EditFormat::SearchReplace, &repo, "task", "pytest", &baseline, 1500);
        for i in 0..20 {
            conversation.push_turn(&format!("answer {i} {}", "x".repeat(400)), format!("feedback {i}"));
        }
        let prompt = conversation.prompt();
        assert!(prompt.trimmed_turns > 0);
        assert!(
            prompt.messages[3].content.starts_with(&format!("({} earlier tries are left out", prompt.trimmed_turns))
        );
        assert!(prompt.messages.iter().all(|m| m.role != Role::Assistant || !m.content.contains("left out")));
        assert!(prompt.messages.last().unwrap().content.contains("feedback 19"));
        assert!(prompt.tokens_estimate <= 1500 + 200);
    }

    #[test]
    fn an_engine_that_counts_more_than_the_estimate_gets_a_prompt_trimmed_to_its_count() {
        let (_dir, repo, baseline) = fixture();
        let mut conversation = Conversation::new(EditFormat::SearchReplace, &repo, "task", "pytest", &baseline, 3000);
        for i in 0..20 {
            conversation.push_turn(&format!("answer {i} {}", "x".repeat(400)), format!("feedback {i}"));
        }
        let trusting = conversation.prompt();
        assert!(trusting.tokens_estimate > 2000, "{}", trusting.tokens_estimate);
        conversation.observe(1000, 1500);
        conversation.observe(1000, 0);
        let counted = conversation.prompt();
        assert!(counted.tokens_estimate as f64 * 1.5 <= 3000.0, "{}", counted.tokens_estimate);
        assert!(counted.trimmed_turns > trusting.trimmed_turns);
    }

    #[test]
    fn a_newest_turn_too_long_for_the_room_left_is_cut_to_fit() {
        let (_dir, repo, baseline) = fixture();
        let budget = 1500;
        let mut conversation = Conversation::new(EditFormat::SearchReplace, &repo, "task", "pytest", &baseline, budget);
        let answer = format!("pages.py\n{}\n>>>>>>> REPLACE", "y".repeat(6000));
        let feedback = format!("FAILED test_pages.py::test_second_page\n{}\n2 failed, 2 passed", "z".repeat(6000));
        conversation.push_turn(&answer, feedback);
        let prompt = conversation.prompt();
        let text: String = prompt.messages.iter().map(|m| m.content.as_str()).collect();
        assert!(prompt.tokens_estimate <= budget, "{} > {budget}", prompt.tokens_estimate);
        assert!(estimate_tokens(&text) <= budget, "{} > {budget}", estimate_tokens(&text));
        let last = &prompt.messages.last().unwrap().content;
        assert!(last.starts_with("FAILED test_pages.py::test_second_page"), "{last}");
        assert!(last.ends_with("2 failed, 2 passed") && last.contains("characters cut"), "{last}");
        assert_eq!(prompt.trimmed_turns, 0);
    }
}
