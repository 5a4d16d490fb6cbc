//! Splicing a patch's hunks into a file's text, forgiving the copying mistakes small models make.
//!
//! Each hunk is located in the result of the previous one by whole lines, trying in turn: the exact
//! lines, the lines with their whitespace ignored (re-indenting the replacement when the model shifted
//! the indentation), then the most similar window of the file. The file keeps its line endings and its
//! final newline or lack of one. Nothing here touches the disk.

mod locate;
mod similarity;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use super::{EditFormat, Hunk};
use locate::{Window, locate};

/// How forgiving [`apply`] is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ApplyOptions {
    /// The least similarity (0 to 1) at which a hunk that matches neither exactly nor up to whitespace is
    /// applied to the most similar part of the file. See [`MatchKind::Fuzzy`].
    pub fuzzy_threshold: f64,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions { fuzzy_threshold: 0.85 }
    }
}

/// How a hunk's search lines were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// Verbatim, as consecutive whole lines.
    Exact,
    /// Equal once each line is trimmed; the replacement was re-indented if the model shifted all lines
    /// by the same indentation.
    Whitespace,
    /// The window of the file (as many lines as the search, or one more or fewer) whose trimmed lines,
    /// joined with `'\n'`, are most similar to the search's: the ratio `similar::TextDiff::from_chars`
    /// reports, `2 * lcs / (len_a + len_b)` over characters.
    Fuzzy,
}

/// Where one hunk was applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct HunkMatch {
    pub hunk: usize,
    pub kind: MatchKind,
    /// 1-based, in the text the hunk was applied to (the result of the hunks before it).
    pub first_line: usize,
    /// 1 for exact and whitespace matches.
    pub similarity: f64,
}

/// A file's new text and where each hunk went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub content: String,
    pub matches: Vec<HunkMatch>,
}

/// The part of the file most like a hunk's search lines that matched nowhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Closest {
    /// 1-based.
    pub first_line: usize,
    pub lines: Vec<String>,
    pub similarity: f64,
}

/// Why a patch could not be applied. [`ApplyError::feedback`] says it to the model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    #[error("edit {} does not match the file ({} search lines occur nowhere in it)", hunk + 1, missing.len())]
    NoMatch {
        hunk: usize,
        /// Search lines that occur nowhere in the file, even trimmed.
        missing: Vec<String>,
        closest: Option<Closest>,
    },
    #[error("edit {} has no search lines, which only creates a file, but the file is not empty", hunk + 1)]
    EmptySearchOnExistingFile { hunk: usize },
}

/// Most lines quoted back to the model from one list: enough to see the mistake, short enough to keep
/// the prompt small.
const FEEDBACK_LINES: usize = 12;

impl ApplyError {
    /// What to tell a model that wrote SEARCH/REPLACE blocks for `path`.
    pub fn feedback(&self, path: &str) -> String {
        self.feedback_in(path, EditFormat::SearchReplace)
    }

    /// What to tell a model that was asked for `format`.
    pub fn feedback_in(&self, path: &str, format: EditFormat) -> String {
        let (search_lines, copy) = match format {
            EditFormat::SearchReplace | EditFormat::Rewrite => {
                ("SEARCH lines", "Copy the SEARCH lines exactly from the file.")
            }
            EditFormat::UnifiedDiff => (
                "unchanged and - lines",
                "Copy the unchanged and - lines exactly from the file, after their space or -.",
            ),
        };
        match self {
            ApplyError::EmptySearchOnExistingFile { hunk } => format!(
                "Edit {} for {path} was not applied: it has no {search_lines}, but {path} already exists. \
                 Put the lines to change, copied from the file, in the edit.",
                hunk + 1
            ),
            ApplyError::NoMatch { hunk, missing, closest } => {
                let mut text = format!(
                    "Edit {} for {path} was not applied: its {search_lines} do not match the file.\n",
                    hunk + 1
                );
                if missing.is_empty() {
                    text.push_str(&format!(
                        "Every one of its {search_lines} is in {path}, but not together in this order.\n"
                    ));
                } else {
                    text.push_str(&format!("These {search_lines} are not in {path}:\n"));
                    for line in missing.iter().take(FEEDBACK_LINES) {
                        text.push_str(&format!("    {line}\n"));
                    }
                    if missing.len() > FEEDBACK_LINES {
                        text.push_str(&format!("    ... and {} more\n", missing.len() - FEEDBACK_LINES));
                    }
                }
                if let Some(closest) = closest.as_ref().filter(|closest| !closest.lines.is_empty()) {
                    let shown = &closest.lines[..closest.lines.len().min(FEEDBACK_LINES)];
                    let last = closest.first_line + shown.len() - 1;
                    text.push_str(&format!(
                        "The closest part of {path} is lines {}-{last}:\n```\n",
                        closest.first_line
                    ));
                    for line in shown {
                        text.push_str(line);
                        text.push('\n');
                    }
                    text.push_str("```\n");
                }
                text.push_str(copy);
                text
            }
        }
    }
}

/// Applies `hunks`, in order, to `content`; each is located in the result of the ones before it.
pub fn apply(content: &str, hunks: &[Hunk], options: &ApplyOptions) -> Result<Applied, ApplyError> {
    let mut text = Text::parse(content);
    let mut matches = Vec::with_capacity(hunks.len());
    // Where the previous hunk's replacement ends: hunks usually come in file order.
    let mut from = 0;
    for (index, hunk) in hunks.iter().enumerate() {
        let search: Vec<&str> = hunk.search.lines().collect();
        let replace = hunk.replace.lines();
        if search.is_empty() {
            if text.lines.iter().any(|line| !line.text.trim().is_empty()) {
                return Err(ApplyError::EmptySearchOnExistingFile { hunk: index });
            }
            text.lines = replace.map(|line| text.line(line.to_owned())).collect();
            text.final_newline = true;
            from = text.lines.len();
            matches.push(HunkMatch { hunk: index, kind: MatchKind::Exact, first_line: 1, similarity: 1.0 });
            continue;
        }
        let file: Vec<&str> = text.lines.iter().map(|line| line.text.as_str()).collect();
        let found = match locate(&file, &search, from, options.fuzzy_threshold) {
            Ok(found) => found,
            Err(closest) => return Err(no_match(index, &file, &search, closest)),
        };
        let window = found.window;
        let new_lines: Vec<Line> = replace.map(|line| text.line(found.indent.apply(line))).collect();
        from = window.start + new_lines.len();
        text.lines.splice(window.start..window.start + window.len, new_lines);
        matches.push(HunkMatch {
            hunk: index,
            kind: found.kind,
            first_line: window.start + 1,
            similarity: window.similarity,
        });
    }
    Ok(Applied { content: text.render(), matches })
}

fn no_match(hunk: usize, file: &[&str], search: &[&str], closest: Option<Window>) -> ApplyError {
    let present: std::collections::HashSet<&str> = file.iter().map(|line| line.trim()).collect();
    let missing = search
        .iter()
        .filter(|line| !line.trim().is_empty() && !present.contains(line.trim()))
        .map(|line| line.trim_end().to_owned())
        .collect();
    let closest = closest.map(|window| Closest {
        first_line: window.start + 1,
        lines: file[window.start..window.start + window.len].iter().map(|line| (*line).to_owned()).collect(),
        similarity: window.similarity,
    });
    ApplyError::NoMatch { hunk, missing, closest }
}

/// A file's text as lines, remembering how to write it back.
#[derive(Debug)]
struct Text {
    lines: Vec<Line>,
    /// The style of new lines: that of the file's first line end.
    crlf: bool,
    final_newline: bool,
}

#[derive(Debug)]
struct Line {
    /// Without its line end.
    text: String,
    /// Ends in `"\r\n"` rather than `'\n'` (when it ends at all).
    cr: bool,
}

impl Text {
    fn parse(content: &str) -> Self {
        let crlf = content.find('\n').is_some_and(|at| content[..at].ends_with('\r'));
        let final_newline = content.is_empty() || content.ends_with('\n');
        let body = content.strip_suffix('\n').unwrap_or(content);
        let lines = if content.is_empty() {
            Vec::new()
        } else {
            let count = body.split('\n').count();
            body.split('\n')
                .enumerate()
                .map(|(index, line)| {
                    let terminated = final_newline || index + 1 < count;
                    match line.strip_suffix('\r').filter(|_| terminated) {
                        Some(text) => Line { text: text.to_owned(), cr: true },
                        // An unterminated last line takes the file's style should a later line follow it.
                        None => Line { text: line.to_owned(), cr: crlf && !terminated },
                    }
                })
                .collect()
        };
        Text { lines, crlf, final_newline }
    }

    /// A new line in the file's style.
    fn line(&self, text: String) -> Line {
        Line { text, cr: self.crlf }
    }

    fn render(&self) -> String {
        let mut out = String::with_capacity(self.lines.iter().map(|line| line.text.len() + 2).sum());
        for (index, line) in self.lines.iter().enumerate() {
            out.push_str(&line.text);
            if self.final_newline || index + 1 < self.lines.len() {
                out.push_str(if line.cr { "\r\n" } else { "\n" });
            }
        }
        out
    }
}
