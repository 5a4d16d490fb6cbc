//! File patches as a model writes them: search/replace blocks or unified diffs, parsed as the tokens
//! stream in, and applied to a file's text.
//!
//! [`PatchParser`] turns a streamed answer into [`PatchDelta`]s for a live view and, at the end, one
//! [`FilePatch`]; [`apply`] splices its hunks into the file, tolerating the copying mistakes small models
//! make. Both are pure: reading and writing the files, and deciding which file a header-less patch is
//! for, is the caller's job (fixbox-agent's session loop).

mod apply;
mod parse;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use apply::{Applied, ApplyError, ApplyOptions, Closest, HunkMatch, MatchKind, apply};
pub use parse::{ParseError, PatchParser, give_up_reason};

/// How the model is asked to write its edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum EditFormat {
    /// Aider-style `<<<<<<< SEARCH` / `=======` / `>>>>>>> REPLACE` blocks.
    SearchReplace,
    /// `--- a/path`, `+++ b/path` and `@@` hunks.
    UnifiedDiff,
    /// The lines the session shows (a function, or the part of a long one around the failure),
    /// rewritten whole in one fenced block: nothing to copy exactly and no path to name, which is
    /// what a small model gets right. The session picks the lines and makes the edit.
    Rewrite,
}

/// Name fragments of models that saw enough unified diffs in training to write them reliably. Small
/// Qwen, Llama and Mistral coders copy a SEARCH block far more faithfully than they count diff context,
/// so everything else gets search/replace.
const UNIFIED_DIFF_MODELS: &[&str] = &["gpt-4", "deepseek"];

impl EditFormat {
    /// The format a model follows best, judged from its name (case-insensitive).
    pub fn for_model(model: &str) -> EditFormat {
        let model = model.to_lowercase();
        if UNIFIED_DIFF_MODELS.iter().any(|name| model.contains(name)) {
            EditFormat::UnifiedDiff
        } else {
            EditFormat::SearchReplace
        }
    }

    /// The last words of every message to the model: the answer's exact shape, right where a small
    /// model looks last (the files shown above it would otherwise invite a copy of the whole file).
    pub fn reminder(self, path: &str) -> String {
        match self {
            EditFormat::SearchReplace => {
                format!(
                    "Answer with a sentence on the cause, then ONE SEARCH/REPLACE block in exactly this form, not the whole file:\n\n{path}\n```\n<<<<<<< SEARCH\n(the lines to change, copied exactly from the file)\n=======\n(the same lines, fixed)\n>>>>>>> REPLACE\n```"
                )
            }
            EditFormat::Rewrite => format!(
                "Answer with the lines of {path} shown above, all of them, rewritten so the bug is fixed, in one fenced code block and nothing else."
            ),
            EditFormat::UnifiedDiff => {
                format!(
                    "Answer with a sentence on the cause, then ONE unified diff for one file in exactly this form, not the whole file:\n\n```diff\n--- a/{path}\n+++ b/{path}\n@@ ... @@\n (a line kept as it is)\n-(a line removed)\n+(a line added)\n```"
                )
            }
        }
    }

    /// A grammar (llama.cpp's GBNF) that only answers of this format match: a line on the cause (300
    /// characters at most: a small model would go on talking), the path, one block of at most 40 lines
    /// to find and 60 to put in their place (a small model otherwise copies whole functions until its
    /// token limit); or giving up. An engine that takes it (llama-server) cannot give prose
    /// with no edit. Code lines may not start with `<<`, `==` or `>>`, so the block's markers are the
    /// only way on. A rewrite is one fenced block of code and nothing else. `None` where the format
    /// has none.
    pub fn grammar(self) -> Option<&'static str> {
        match self {
            EditFormat::SearchReplace => Some(SEARCH_REPLACE_GRAMMAR),
            EditFormat::Rewrite => Some(REWRITE_GRAMMAR),
            EditFormat::UnifiedDiff => None,
        }
    }

    /// The part of a system prompt that tells the model how to write one file patch in this format.
    pub fn instructions(self) -> &'static str {
        match self {
            EditFormat::SearchReplace => SEARCH_REPLACE_INSTRUCTIONS,
            EditFormat::UnifiedDiff => UNIFIED_DIFF_INSTRUCTIONS,
            EditFormat::Rewrite => REWRITE_INSTRUCTIONS,
        }
    }
}

const REWRITE_GRAMMAR: &str = r#"root ::= "```" [a-z]{0,20} "\n" line{1,150} "```\n"
line ::= ([^`\n] [^\n]*)? "\n"
"#;

const REWRITE_INSTRUCTIONS: &str = "\
Answer with the lines of code you are shown, rewritten so the bug is fixed: all of them, with their \
indentation, in one fenced code block, and nothing else. Change only what the fix needs. If the bug is \
not in these lines, answer with them unchanged.
";

const SEARCH_REPLACE_GRAMMAR: &str = r#"root ::= edit | "I GIVE UP: " [^\n]+ "\n"
edit ::= (cause "\n\n")? path "\n```" lang "\n<<<<<<< SEARCH\n" line{0,40} "=======\n" line{0,60} ">>>>>>> REPLACE\n```\n"
cause ::= [^\n`<] [^\n`<]{0,300}
path ::= [a-zA-Z0-9_./-]{1,200}
lang ::= [a-z]{0,20}
line ::= ([^\n=<>] [^\n]* | "=" [^=\n] [^\n]* | "<" [^<\n] [^\n]* | ">" [^>\n] [^\n]*)? "\n"
"#;

const SEARCH_REPLACE_INSTRUCTIONS: &str = "\
Answer with an edit to ONE file, written as SEARCH/REPLACE blocks. Example, fixing `add` in calc.py:

calc.py
```python
<<<<<<< SEARCH
def add(a, b):
    return a - b
=======
def add(a, b):
    return a + b
>>>>>>> REPLACE
```

Rules:
- Edit one file per answer. Write its path on its own line just before the ``` fence.
- Copy the SEARCH lines exactly from the file, with the same indentation and spaces.
- Keep SEARCH short: the lines you change and a line or two around them, just enough to be unique in the file.
- Do not write line numbers.
- Write ONE SEARCH/REPLACE block per answer. The tests run after it, and your next answer can make the next change.
- To create a new file, leave SEARCH empty and put the whole file in REPLACE.
- If you cannot fix it, answer only: I GIVE UP: <reason>
";

const UNIFIED_DIFF_INSTRUCTIONS: &str = "\
Answer with an edit to ONE file, written as a unified diff. Example, fixing `add` in calc.py:

```diff
--- a/calc.py
+++ b/calc.py
@@ ... @@
 def add(a, b):
-    return a - b
+    return a + b
```

Rules:
- Edit one file per answer. Start with the lines `--- a/path` and `+++ b/path`.
- Start each change with a line `@@ ... @@`. Do not write line numbers.
- Every line of a change starts with one character: a space for a line kept as it is, `-` for a line \
removed, `+` for a line added.
- Copy the kept and removed lines exactly from the file, with the same indentation and spaces.
- Keep each change short: the lines you change and a line or two around them, just enough to be unique in the file.
- To create a new file, write `--- /dev/null`, `+++ b/path` and the whole file as `+` lines.
- If you cannot fix it, answer only: I GIVE UP: <reason>
";

impl fmt::Display for EditFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EditFormat::SearchReplace => "search-replace",
            EditFormat::UnifiedDiff => "udiff",
            EditFormat::Rewrite => "rewrite",
        })
    }
}

/// A name that is not an [`EditFormat`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown edit format `{0}`: use `search-replace`, `udiff` or `rewrite`")]
pub struct UnknownEditFormat(pub String);

impl FromStr for EditFormat {
    type Err = UnknownEditFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim().to_lowercase().replace('_', "-").as_str() {
            "search-replace" | "searchreplace" | "sr" => Ok(EditFormat::SearchReplace),
            "udiff" | "unified-diff" | "diff" => Ok(EditFormat::UnifiedDiff),
            "rewrite" => Ok(EditFormat::Rewrite),
            _ => Err(UnknownEditFormat(name.to_owned())),
        }
    }
}

/// One change: whole lines to find and the lines to put in their place.
///
/// Every line ends in `'\n'`, so an empty string is no lines at all (an empty `search` creates a file).
/// A unified-diff hunk's `search` is its context and `-` lines in order, its `replace` the context and
/// `+` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hunk {
    pub search: String,
    pub replace: String,
}

/// The edit the model made to one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePatch {
    /// Normalised (no `a/`/`b/` diff prefix, no `./`, no markdown decoration); `None` when the answer
    /// named no file, which the caller resolves.
    pub path: Option<String>,
    pub hunks: Vec<Hunk>,
}

/// Which part of a hunk a streamed line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// A line to find: a SEARCH line, or a diff's `-` line.
    Search,
    /// A line to write: a REPLACE line, or a diff's `+` line.
    Replace,
    /// A diff's unchanged line, both found and written.
    Context,
}

/// What a live diff view renders as the model's answer arrives, in order.
///
/// Hunk numbers count the blocks as they begin, so they match [`FilePatch::hunks`] unless a block was
/// dropped at the end (malformed, or changing nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PatchDelta {
    /// The file the patch is for was named.
    File { path: String },
    /// A hunk begins (0-based).
    Hunk { hunk: usize },
    /// One complete line of the hunk, without its `'\n'`.
    Line { hunk: usize, side: Side, text: String },
    /// The hunk is complete.
    HunkEnd { hunk: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_coders_get_search_replace_and_diff_trained_models_get_udiff() {
        assert_eq!(EditFormat::for_model("qwen2.5-coder:1.5b"), EditFormat::SearchReplace);
        assert_eq!(EditFormat::for_model("Llama-3.2-3B-Instruct"), EditFormat::SearchReplace);
        assert_eq!(EditFormat::for_model("GPT-4o-mini"), EditFormat::UnifiedDiff);
        assert_eq!(EditFormat::for_model("deepseek-coder-6.7b"), EditFormat::UnifiedDiff);
    }

    #[test]
    fn format_names_round_trip() {
        for format in [EditFormat::SearchReplace, EditFormat::UnifiedDiff] {
            assert_eq!(format.to_string().parse::<EditFormat>(), Ok(format));
        }
        assert_eq!("unified_diff".parse::<EditFormat>(), Ok(EditFormat::UnifiedDiff));
        assert!("patch-me".parse::<EditFormat>().is_err());
    }

    #[test]
    fn each_format_parses_its_own_instructions_example() {
        for format in [EditFormat::SearchReplace, EditFormat::UnifiedDiff] {
            let mut parser = PatchParser::new(format);
            parser.push(format.instructions());
            let patch = parser.finish().unwrap();
            assert_eq!(patch.path.as_deref(), Some("calc.py"));
            assert_eq!(
                patch.hunks,
                vec![Hunk {
                    search: "def add(a, b):\n    return a - b\n".into(),
                    replace: "def add(a, b):\n    return a + b\n".into(),
                }]
            );
        }
    }

    #[test]
    fn deltas_serialize_with_a_type_tag() {
        let delta = PatchDelta::Line { hunk: 0, side: Side::Replace, text: "x".into() };
        let json = serde_json::to_string(&delta).unwrap();
        assert_eq!(json, r#"{"type":"line","hunk":0,"side":"replace","text":"x"}"#);
    }
}
