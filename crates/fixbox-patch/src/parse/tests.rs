//! Reading what small models really write, and stream splits (in [`streaming`]).

mod streaming;

use super::*;

const SR: EditFormat = EditFormat::SearchReplace;
const UDIFF: EditFormat = EditFormat::UnifiedDiff;

/// Feeds the answer whole; returns every delta (including those of `close`) and the result.
fn parse(format: EditFormat, answer: &str) -> (Vec<PatchDelta>, Result<FilePatch, ParseError>) {
    let mut parser = PatchParser::new(format);
    let mut deltas = parser.push(answer);
    deltas.extend(parser.close());
    (deltas, parser.finish())
}

fn patch(format: EditFormat, answer: &str) -> FilePatch {
    parse(format, answer).1.unwrap()
}

fn hunk(search: &str, replace: &str) -> Hunk {
    Hunk { search: search.into(), replace: replace.into() }
}

fn add_fix() -> Hunk {
    hunk("def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n")
}

const AIDER_ANSWER: &str = "Here is the fix:

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

This makes `add` return the sum.
";

const BLOCK: &str = "<<<<<<< SEARCH
def add(a, b):
    return a - b
=======
def add(a, b):
    return a + b
>>>>>>> REPLACE
";

#[test]
fn aider_style_block_with_header_fences_and_prose() {
    let (deltas, result) = parse(SR, AIDER_ANSWER);
    assert_eq!(result, Ok(FilePatch { path: Some("calc.py".into()), hunks: vec![add_fix()] }));
    let line = |side, text: &str| PatchDelta::Line { hunk: 0, side, text: text.into() };
    assert_eq!(
        deltas,
        vec![
            PatchDelta::File { path: "calc.py".into() },
            PatchDelta::Hunk { hunk: 0 },
            line(Side::Search, "def add(a, b):"),
            line(Side::Search, "    return a - b"),
            line(Side::Replace, "def add(a, b):"),
            line(Side::Replace, "    return a + b"),
            PatchDelta::HunkEnd { hunk: 0 },
        ]
    );
}

#[test]
fn header_variants_before_the_block_or_its_fence() {
    for header in ["**calc.py**", "### calc.py", "File: calc.py", "`calc.py`", "calc.py:", "# File: calc.py"] {
        let answer = format!("{header}\n```python\n{BLOCK}```\n");
        assert_eq!(patch(SR, &answer).path.as_deref(), Some("calc.py"), "{header}");
        let unfenced = format!("{header}\n\n{BLOCK}");
        assert_eq!(patch(SR, &unfenced).path.as_deref(), Some("calc.py"), "{header} without fence");
    }
    let in_fence = format!("```python:src/calc.py\n{BLOCK}```\n");
    assert_eq!(patch(SR, &in_fence).path.as_deref(), Some("src/calc.py"));
    let inside = format!("```python\n./calc.py\n{BLOCK}```\n");
    assert_eq!(patch(SR, &inside).path.as_deref(), Some("calc.py"));
}

#[test]
fn a_block_without_header_has_no_path() {
    assert_eq!(patch(SR, BLOCK), FilePatch { path: None, hunks: vec![add_fix()] });
    let prose_between = format!("calc.py\nHere is my change:\n```\n{BLOCK}```\n");
    assert_eq!(patch(SR, &prose_between).path, None);
}

#[test]
fn two_blocks_in_one_fence_are_two_hunks() {
    let answer = format!("calc.py\n```python\n{BLOCK}\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n```\n");
    let patch = patch(SR, &answer);
    assert_eq!(patch.hunks, vec![add_fix(), hunk("x = 1\n", "x = 2\n")]);
}

#[test]
fn a_comment_between_blocks_inside_the_fence_does_not_end_the_patch() {
    let answer = format!(
        "```python\n{BLOCK}# and the second one:\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n```\n"
    );
    assert_eq!(patch(SR, &answer).hunks, vec![add_fix(), hunk("x = 1\n", "x = 2\n")]);
}

#[test]
fn a_block_that_names_the_same_file_again_continues_the_patch() {
    let answer = format!("calc.py\n{BLOCK}\ncalc.py\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n");
    assert_eq!(patch(SR, &answer).hunks.len(), 2);
}

#[test]
fn complete_after_the_closing_fence_and_the_rest_is_ignored() {
    let (head, tail) = AIDER_ANSWER.split_at(AIDER_ANSWER.find("```\n\n").unwrap());
    let mut parser = PatchParser::new(SR);
    parser.push(head);
    assert!(!parser.is_complete());
    parser.push("``");
    assert!(!parser.is_complete(), "a fence is only read once its line ends");
    parser.push("`\n");
    assert!(parser.is_complete());
    assert_eq!(parser.push(&tail[4..]), vec![]);
    assert_eq!(parser.push("<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n"), vec![]);
    assert_eq!(parser.finish().unwrap().hunks, vec![add_fix()]);
}

#[test]
fn complete_after_prose_when_there_is_no_fence() {
    let mut parser = PatchParser::new(SR);
    parser.push(BLOCK);
    parser.push("\n");
    assert!(!parser.is_complete(), "blank lines do not end the patch");
    parser.push("This fixes the sum.\n");
    assert!(parser.is_complete());
}

#[test]
fn a_second_file_is_ignored() {
    let fenced = format!("calc.py\n```python\n{BLOCK}```\n\nutils.py\n```python\n{BLOCK}```\n");
    let (deltas, result) = parse(SR, &fenced);
    assert_eq!(result.unwrap().hunks.len(), 1);
    assert!(!deltas.contains(&PatchDelta::File { path: "utils.py".into() }));

    let mut parser = PatchParser::new(SR);
    parser.push(&format!("calc.py\n{BLOCK}\n"));
    assert!(!parser.is_complete());
    parser.push("utils.py\n");
    assert!(parser.is_complete(), "another file's header ends the patch");
    assert_eq!(parser.finish().unwrap().path.as_deref(), Some("calc.py"));
}

#[test]
fn marker_lengths_and_labels_vary() {
    let answer = "<<<<< SEARCH  \nx = 1\n=====\nx = 2\n>>>>>>>>> REPLACE\r\n";
    assert_eq!(patch(SR, answer).hunks, vec![hunk("x = 1\n", "x = 2\n")]);
}

#[test]
fn a_repeated_start_marker_is_one() {
    let answer = "<<<<<<< SEARCH\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n";
    assert_eq!(patch(SR, answer).hunks, vec![hunk("x = 1\n", "x = 2\n")]);
}

#[test]
fn crlf_answers_give_lf_hunks() {
    let answer = AIDER_ANSWER.replace('\n', "\r\n");
    assert_eq!(patch(SR, &answer).hunks, vec![add_fix()]);
}

#[test]
fn an_equals_line_in_replace_is_content() {
    let answer = "<<<<<<< SEARCH\nTitle\n=======\nTitle\n=======\n>>>>>>> REPLACE\n";
    assert_eq!(patch(SR, answer).hunks, vec![hunk("Title\n", "Title\n=======\n")]);
}

#[test]
fn an_empty_search_creates_a_file() {
    let answer = "new.py\n```python\n<<<<<<< SEARCH\n=======\nprint('hi')\n>>>>>>> REPLACE\n```\n";
    assert_eq!(patch(SR, answer), FilePatch { path: Some("new.py".into()), hunks: vec![hunk("", "print('hi')\n")] });
}

#[test]
fn a_forgotten_end_marker_is_ended_by_the_fence_or_the_next_block() {
    let by_fence = "```\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n```\n";
    assert_eq!(patch(SR, by_fence).hunks, vec![hunk("x = 1\n", "x = 2\n")]);
    let by_block = "<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n<<<<<<< SEARCH\ny = 1\n=======\ny = 2\n>>>>>>> REPLACE\n";
    assert_eq!(patch(SR, by_block).hunks, vec![hunk("x = 1\n", "x = 2\n"), hunk("y = 1\n", "y = 2\n")]);
}

#[test]
fn a_cut_off_block_is_unterminated() {
    let cut = &AIDER_ANSWER[..AIDER_ANSWER.find(">>>>>>>").unwrap()];
    assert_eq!(parse(SR, cut).1, Err(ParseError::Unterminated));
    let in_search = "calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n";
    assert_eq!(parse(SR, in_search).1, Err(ParseError::Unterminated));
}

#[test]
fn an_answer_stopped_at_its_end_marker_is_inside_the_replacement() {
    let mut parser = PatchParser::new(SR);
    parser.push("calc.py\n```\n<<<<<<< SEARCH\n    return a - b\n");
    assert!(!parser.in_replace());
    parser.push("=======\n    return a + b\n");
    assert!(parser.in_replace());
    parser.push(">>>>>>> REPLACE\n");
    assert!(!parser.in_replace());
    assert_eq!(parser.finish().unwrap().hunks, vec![hunk("    return a - b\n", "    return a + b\n")]);
}

/// py-config-bad-parsing, as Qwen2.5-Coder-1.5B answered it (shortened): the words of the format as
/// labels, its markers gone.
pub(super) const LABELLED_ANSWER: &str = "The cause of the failure is that `parse_config` splits on every '='.

SEARCH
```python
        key, value = line.split(\"=\")
```

REPLACE
```python
        key, value = line.split(\"=\", 1)
```
";

/// py-paginate-off-by-one, as Qwen2.5-Coder-1.5B answered it: the edit told in a sentence.
pub(super) const PROSE_ANSWER: &str = "The `page_numbers` function does not include the last page. The SEARCH line is \
`return list(range(1, page_count(total, per_page)))`. The REPLACE line should be \
`return list(range(1, page_count(total, per_page) + 1))`.";

#[test]
fn labelled_fenced_blocks_are_a_search_and_its_replacement() {
    let (deltas, result) = parse(SR, LABELLED_ANSWER);
    let expected = hunk("        key, value = line.split(\"=\")\n", "        key, value = line.split(\"=\", 1)\n");
    assert_eq!(result, Ok(FilePatch { path: None, hunks: vec![expected] }));
    let line = |side, text: &str| PatchDelta::Line { hunk: 0, side, text: text.into() };
    assert_eq!(
        deltas,
        vec![
            PatchDelta::Hunk { hunk: 0 },
            line(Side::Search, "        key, value = line.split(\"=\")"),
            line(Side::Replace, "        key, value = line.split(\"=\", 1)"),
            PatchDelta::HunkEnd { hunk: 0 },
        ]
    );
    let named = format!("config.py\n{}", &LABELLED_ANSWER[LABELLED_ANSWER.find("SEARCH").unwrap()..]);
    assert_eq!(patch(SR, &named).path.as_deref(), Some("config.py"));
    let decorated = LABELLED_ANSWER.replace("SEARCH\n", "**Search:**\n").replace("REPLACE\n", "### REPLACE\n\n");
    assert_eq!(patch(SR, &decorated).hunks, patch(SR, LABELLED_ANSWER).hunks);
}

/// andialbrecht__sqlparse-f66d12c of the eval dev set, as Qwen2.5-Coder-1.5B answered it: labels in prose.
const PROSE_LABELLED_ANSWER: &str =
    "The cause of the failing tests is that the `get_real_name` method is not correctly handling multi-part names.

The SEARCH lines are:
```python
        dot_idx, _ = self.token_next_by(m=(T.Punctuation, '.'))
        return self._get_first_name(dot_idx, real_name=True)
```

The REPLACE lines are:
```python
        dot_idx, _ = self.token_next_by(m=(T.Punctuation, '.'))
        return self._get_first_name(dot_idx, real_name=True, max_parts=3)
```

This change ensures that the `get_real_name` method correctly handles multi-part names.
";

#[test]
fn blocks_under_labels_in_prose_are_a_search_and_its_replacement() {
    let search = "        dot_idx, _ = self.token_next_by(m=(T.Punctuation, '.'))\n";
    let expected = hunk(
        &format!("{search}        return self._get_first_name(dot_idx, real_name=True)\n"),
        &format!("{search}        return self._get_first_name(dot_idx, real_name=True, max_parts=3)\n"),
    );
    assert_eq!(parse(SR, PROSE_LABELLED_ANSWER).1, Ok(FilePatch { path: None, hunks: vec![expected] }));
}

#[test]
fn a_labelled_search_without_its_replacement_says_so() {
    let cut = &LABELLED_ANSWER[..LABELLED_ANSWER.find("REPLACE").unwrap()];
    assert_eq!(parse(SR, cut).1, Err(ParseError::MissingReplace { hunk: 0 }));
    let prose_after = format!("{cut}That is the line to change.\n");
    assert_eq!(parse(SR, &prose_after).1, Err(ParseError::MissingReplace { hunk: 0 }));
    assert!(ParseError::MissingReplace { hunk: 0 }.to_string().starts_with("Edit block 1 has a SEARCH part"));
}

#[test]
fn a_label_inside_a_fence_is_code() {
    let answer = "```\nSEARCH\n```\n";
    assert_eq!(parse(SR, answer).1, Err(ParseError::NoPatch));
}

#[test]
fn a_one_line_edit_told_in_prose() {
    let (deltas, result) = parse(SR, PROSE_ANSWER);
    let expected = hunk(
        "return list(range(1, page_count(total, per_page)))\n",
        "return list(range(1, page_count(total, per_page) + 1))\n",
    );
    assert_eq!(result, Ok(FilePatch { path: None, hunks: vec![expected.clone()] }));
    assert_eq!(deltas.first(), Some(&PatchDelta::Hunk { hunk: 0 }));
    assert_eq!(deltas.last(), Some(&PatchDelta::HunkEnd { hunk: 0 }));
    // The two halves on two lines, under the file's name.
    let split = "pages.py\nSEARCH: `return list(range(1, page_count(total, per_page)))`\n\
                 REPLACE: `return list(range(1, page_count(total, per_page) + 1))`\n";
    assert_eq!(patch(SR, split), FilePatch { path: Some("pages.py".into()), hunks: vec![expected] });
}

#[test]
fn prose_that_only_mentions_the_format_is_no_edit() {
    for answer in [
        "Use a SEARCH/REPLACE block to change `x`.",
        "The REPLACE line should be `x = 2`.",
        "I would SEARCH for `x = 1` first.",
    ] {
        assert_eq!(parse(SR, answer).1, Err(ParseError::NoPatch), "{answer}");
    }
}

#[test]
fn prose_after_a_block_is_not_a_second_edit() {
    let answer = format!("{BLOCK}The SEARCH line was `x`. The REPLACE line is `y`.\n");
    assert_eq!(patch(SR, &answer).hunks, vec![add_fix()]);
}

#[test]
fn answers_without_a_change_say_why() {
    assert_eq!(parse(SR, "I think the bug is in calc.py.\n").1, Err(ParseError::NoPatch));
    assert_eq!(parse(SR, "").1, Err(ParseError::NoPatch));
    let same = "<<<<<<< SEARCH\nx = 1\n=======\nx = 1\n>>>>>>> REPLACE\n";
    assert_eq!(parse(SR, same).1, Err(ParseError::NoChange));
    let no_divider = "<<<<<<< SEARCH\nx = 1\n>>>>>>> REPLACE\n";
    assert_eq!(parse(SR, no_divider).1, Err(ParseError::MissingDivider { hunk: 0 }));
}

#[test]
fn unchanged_hunks_are_dropped() {
    let answer = format!("{BLOCK}<<<<<<< SEARCH\nx = 1\n=======\nx = 1\n>>>>>>> REPLACE\n");
    assert_eq!(patch(SR, &answer).hunks, vec![add_fix()]);
}

#[test]
fn feedback_speaks_the_format_asked_for() {
    assert!(ParseError::NoPatch.feedback(SR).contains("SEARCH/REPLACE"));
    assert!(ParseError::NoPatch.feedback(UDIFF).contains("+++ b/path"));
    assert!(ParseError::MissingDivider { hunk: 1 }.feedback(SR).starts_with("Edit block 2 "));
}

#[test]
fn give_up_reason_is_the_rest_of_the_line() {
    assert_eq!(
        give_up_reason("I GIVE UP: the test needs network access.\n"),
        Some("the test needs network access".into())
    );
    assert_eq!(give_up_reason("Sorry.\n**i give up** - flaky test"), Some("flaky test".into()));
    assert_eq!(give_up_reason("I give up"), Some(String::new()));
    assert_eq!(give_up_reason(AIDER_ANSWER), None);
}

const UDIFF_ANSWER: &str = "The subtraction should be an addition.

```diff
--- a/calc.py
+++ b/calc.py
@@ -10,7 +10,9 @@ class Calc:
 def add(a, b):
-    return a - b
+    return a + b

 def sub(a, b):
\\ No newline at end of file
```
";

#[test]
fn unified_diff_with_wrong_numbers_blank_context_and_fences() {
    let (deltas, result) = parse(UDIFF, UDIFF_ANSWER);
    let expected = hunk(
        "def add(a, b):\n    return a - b\n\ndef sub(a, b):\n",
        "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n",
    );
    assert_eq!(result, Ok(FilePatch { path: Some("calc.py".into()), hunks: vec![expected] }));
    assert_eq!(
        deltas[..3],
        [
            PatchDelta::File { path: "calc.py".into() },
            PatchDelta::Hunk { hunk: 0 },
            PatchDelta::Line { hunk: 0, side: Side::Context, text: "def add(a, b):".into() }
        ]
    );
    assert!(deltas.contains(&PatchDelta::Line { hunk: 0, side: Side::Context, text: String::new() }));
    assert_eq!(deltas.last(), Some(&PatchDelta::HunkEnd { hunk: 0 }));
}

#[test]
fn a_diff_is_complete_at_its_closing_fence() {
    let mut parser = PatchParser::new(UDIFF);
    let end = UDIFF_ANSWER.rfind("```").unwrap();
    parser.push(&UDIFF_ANSWER[..end]);
    assert!(!parser.is_complete());
    parser.push("```\n");
    assert!(parser.is_complete());
}

#[test]
fn a_hunk_may_start_without_its_at_at_line() {
    let answer = "--- a/calc.py\n+++ b/calc.py\n def add(a, b):\n-    return a - b\n+    return a + b\n";
    assert_eq!(patch(UDIFF, answer), FilePatch { path: Some("calc.py".into()), hunks: vec![add_fix()] });
}

#[test]
fn each_at_at_line_starts_a_hunk() {
    let answer = "--- calc.py\n+++ calc.py\n@@\n-x = 1\n+x = 2\n@@ -40 +40 @@\n y = 0\n-z = 1\n+z = 2\n";
    let patch = patch(UDIFF, answer);
    assert_eq!(patch.hunks, vec![hunk("x = 1\n", "x = 2\n"), hunk("y = 0\nz = 1\n", "y = 0\nz = 2\n")]);
}

#[test]
fn empty_lines_that_end_a_diff_are_not_context() {
    let answer = "--- a/calc.py\n+++ b/calc.py\n@@ @@\n-x = 1\n+x = 2\n\n\nThis fixes x.\n";
    assert_eq!(patch(UDIFF, answer).hunks, vec![hunk("x = 1\n", "x = 2\n")]);
    let at_end = "--- a/calc.py\n+++ b/calc.py\n@@ @@\n-x = 1\n+x = 2\n\n";
    assert_eq!(patch(UDIFF, at_end).hunks, vec![hunk("x = 1\n", "x = 2\n")]);
}

#[test]
fn a_single_header_names_the_file() {
    let only_new = "+++ b/calc.py\n@@\n-x = 1\n+x = 2\n";
    assert_eq!(patch(UDIFF, only_new).path.as_deref(), Some("calc.py"));
    let only_old = "--- a/calc.py\n@@\n-x = 1\n+x = 2\n";
    assert_eq!(patch(UDIFF, only_old).path.as_deref(), Some("calc.py"));
    let created = "--- /dev/null\n+++ b/new.py\n@@ -0,0 +1 @@\n+print('hi')\n";
    assert_eq!(
        patch(UDIFF, created),
        FilePatch { path: Some("new.py".into()), hunks: vec![hunk("", "print('hi')\n")] }
    );
    let deleted = "--- a/old.py\n+++ /dev/null\n@@\n-print('hi')\n";
    assert_eq!(
        patch(UDIFF, deleted),
        FilePatch { path: Some("old.py".into()), hunks: vec![hunk("print('hi')\n", "")] }
    );
}

#[test]
fn git_headers_and_metadata_are_skipped() {
    let answer = "diff --git a/src/calc.py b/src/calc.py\nindex 83db48f..bf269f4 100644\n--- a/src/calc.py\n\
                  +++ b/src/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n";
    let (deltas, result) = parse(UDIFF, answer);
    assert_eq!(result, Ok(FilePatch { path: Some("src/calc.py".into()), hunks: vec![add_fix()] }));
    assert_eq!(deltas.iter().filter(|delta| matches!(delta, PatchDelta::File { .. })).count(), 1);
}

#[test]
fn a_removed_line_that_looks_like_a_header_is_content() {
    let answer = "--- a/q.sql\n+++ b/q.sql\n@@\n--- old comment\n+-- new comment\n SELECT 1;\n";
    assert_eq!(patch(UDIFF, answer).hunks, vec![hunk("-- old comment\nSELECT 1;\n", "-- new comment\nSELECT 1;\n")]);
    let at_end = "--- a/q.sql\n+++ b/q.sql\n@@\n+x\n--- old comment";
    assert_eq!(patch(UDIFF, at_end).hunks, vec![hunk("-- old comment\n", "x\n")]);
}

#[test]
fn a_second_file_in_a_diff_ends_the_patch() {
    let answer = "--- a/calc.py\n+++ b/calc.py\n@@\n-x = 1\n+x = 2\n--- a/utils.py\n+++ b/utils.py\n@@\n-y\n+z\n";
    let mut parser = PatchParser::new(UDIFF);
    parser.push(answer);
    assert!(parser.is_complete());
    assert_eq!(
        parser.finish(),
        Ok(FilePatch { path: Some("calc.py".into()), hunks: vec![hunk("x = 1\n", "x = 2\n")] })
    );
}

#[test]
fn a_diff_fence_without_headers_uses_the_line_before_it() {
    let answer = "calc.py\n```diff\n def add(a, b):\n-    return a - b\n+    return a + b\n```\n";
    assert_eq!(patch(UDIFF, answer), FilePatch { path: Some("calc.py".into()), hunks: vec![add_fix()] });
}

#[test]
fn a_diff_line_without_its_prefix_splits_the_hunk_inside_a_diff_fence() {
    let answer = "```diff\n--- a/calc.py\n+++ b/calc.py\n@@\n-x = 1\n+x = 2\ny = 0\n-z = 1\n+z = 2\n```\n";
    let patch = patch(UDIFF, answer);
    assert_eq!(patch.hunks, vec![hunk("x = 1\n", "x = 2\n"), hunk("z = 1\n", "z = 2\n")]);
}

#[test]
fn either_format_is_read_whatever_was_asked() {
    assert_eq!(patch(SR, UDIFF_ANSWER).path.as_deref(), Some("calc.py"));
    assert_eq!(patch(UDIFF, AIDER_ANSWER).hunks, vec![add_fix()]);
}

#[test]
fn a_diff_of_context_only_changes_nothing() {
    let answer = "--- a/calc.py\n+++ b/calc.py\n@@\n def add(a, b):\n";
    assert_eq!(parse(UDIFF, answer).1, Err(ParseError::NoChange));
}
