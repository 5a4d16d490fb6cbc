use proptest::prelude::*;

use super::*;

fn hunk(search: &str, replace: &str) -> Hunk {
    Hunk { search: search.into(), replace: replace.into() }
}

fn apply_default(content: &str, hunks: &[Hunk]) -> Result<Applied, ApplyError> {
    apply(content, hunks, &ApplyOptions::default())
}

const CALC: &str = "import math\n\ndef add(a, b):\n    return a - b\n\ndef sub(a, b):\n    return a - b\n";

#[test]
fn exact_lines_are_replaced() {
    let fix = hunk("def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n");
    let applied = apply_default(CALC, &[fix]).unwrap();
    assert_eq!(applied.content, CALC.replacen("a - b", "a + b", 1));
    assert_eq!(applied.matches, vec![HunkMatch { hunk: 0, kind: MatchKind::Exact, first_line: 3, similarity: 1.0 }]);
}

#[test]
fn a_hunk_goes_to_the_first_match_after_the_previous_one() {
    let hunks = [
        hunk("def sub(a, b):\n", "def subtract(a, b):\n"),
        hunk("    return a - b\n", "    return a - b  # checked\n"),
    ];
    let applied = apply_default(CALC, &hunks).unwrap();
    assert_eq!(
        applied.content,
        "import math\n\ndef add(a, b):\n    return a - b\n\ndef subtract(a, b):\n    return a - b  # checked\n"
    );
    assert_eq!(applied.matches[1].first_line, 7);

    let before = [hunk("def sub(a, b):\n", "def subtract(a, b):\n"), hunk("import math\n", "import cmath\n")];
    let applied = apply_default(CALC, &before).unwrap();
    assert!(applied.content.starts_with("import cmath\n"), "a hunk before the previous one is still found");
}

#[test]
fn trimmed_lines_match_and_the_replacement_is_reindented() {
    let file = "class Calc:\n    def add(self, a, b):  \n        return a - b\n";
    let dedented = hunk("def add(self, a, b):\n    return a - b\n", "def add(self, a, b):\n\n    return a + b\n");
    let applied = apply_default(file, &[dedented]).unwrap();
    assert_eq!(applied.content, "class Calc:\n    def add(self, a, b):\n\n        return a + b\n");
    assert_eq!(applied.matches[0].kind, MatchKind::Whitespace);

    let indented = hunk(
        "      def add(self, a, b):\n          return a - b\n",
        "      def add(self, a, b):\n          return a + b\n",
    );
    let applied = apply_default(file, &[indented]).unwrap();
    assert_eq!(applied.content, "class Calc:\n    def add(self, a, b):\n        return a + b\n");
}

#[test]
fn uneven_indentation_differences_leave_the_replacement_as_written() {
    let file = "if x:\n    y = 1\n";
    let applied = apply_default(file, &[hunk("if x:\ny = 1\n", "if x:\n    y = 2\n")]).unwrap();
    assert_eq!(applied.content, "if x:\n    y = 2\n");
}

const TOTAL: &str =
    "def total(items):\n    result = 0\n    for item in items:\n        result += item.price\n    return result\n";

#[test]
fn a_similar_window_over_the_threshold_is_replaced() {
    let typo = hunk(
        "    for item in items:\n        result += item.prices\n",
        "    for item in items:\n        result += item.price * item.qty\n",
    );
    let applied = apply_default(TOTAL, &[typo]).unwrap();
    assert_eq!(applied.content, TOTAL.replace("item.price\n", "item.price * item.qty\n"));
    let found = &applied.matches[0];
    assert_eq!((found.kind, found.first_line), (MatchKind::Fuzzy, 3));
    assert!(found.similarity >= 0.85 && found.similarity < 1.0);
}

#[test]
fn a_fuzzy_window_may_be_a_line_longer_and_is_reindented() {
    let file = "class A:\n    def f(self):\n        x = load_configuration()\n\n        return validate(x)\n";
    let dropped_blank = hunk(
        "def f(self):\n    x = load_configuration()\n    return validate(x)\n",
        "def f(self):\n    x = load_configuration()\n    return validate(x, strict=True)\n",
    );
    let applied = apply_default(file, &[dropped_blank]).unwrap();
    assert_eq!(
        applied.content,
        "class A:\n    def f(self):\n        x = load_configuration()\n        return validate(x, strict=True)\n"
    );
    assert_eq!((applied.matches[0].kind, applied.matches[0].first_line), (MatchKind::Fuzzy, 2));
}

#[test]
fn a_window_under_the_threshold_is_no_match_with_what_is_missing_and_closest() {
    let wrong = hunk("    for thing in things:\n        result += item.price\n", "    pass\n");
    let error = apply_default(TOTAL, std::slice::from_ref(&wrong)).unwrap_err();
    let ApplyError::NoMatch { hunk, missing, closest } = &error else { panic!("{error:?}") };
    assert_eq!(*hunk, 0);
    assert_eq!(missing, &["    for thing in things:"]);
    let closest = closest.as_ref().unwrap();
    assert_eq!(closest.first_line, 3);
    assert_eq!(closest.lines, ["    for item in items:", "        result += item.price"]);
    assert!(closest.similarity < 0.85);

    let feedback = error.feedback("calc.py");
    assert!(feedback.starts_with("Edit 1 for calc.py was not applied: its SEARCH lines do not match the file.\n"));
    assert!(feedback.contains("These SEARCH lines are not in calc.py:\n        for thing in things:\n"));
    assert!(feedback.contains("The closest part of calc.py is lines 3-4:\n```\n    for item in items:\n"));
    assert!(feedback.ends_with("Copy the SEARCH lines exactly from the file."));

    let lenient = ApplyOptions { fuzzy_threshold: 0.5 };
    assert_eq!(apply(TOTAL, &[wrong], &lenient).unwrap().matches[0].kind, MatchKind::Fuzzy);
}

#[test]
fn lines_present_but_apart_are_reported_as_out_of_order() {
    let exact_only = ApplyOptions { fuzzy_threshold: 1.0 };
    let error = apply(CALC, &[hunk("import math\ndef sub(a, b):\n", "")], &exact_only).unwrap_err();
    assert!(matches!(&error, ApplyError::NoMatch { missing, .. } if missing.is_empty()));
    assert!(error.feedback("calc.py").contains("is in calc.py, but not together in this order"));
    let udiff = error.feedback_in("calc.py", EditFormat::UnifiedDiff);
    assert!(udiff.contains("its unchanged and - lines do not match"));
}

#[test]
fn long_feedback_lists_are_capped() {
    let search: String = (0..30).map(|i| format!("missing line {i}\n")).collect();
    let error = apply_default("a\n", &[hunk(&search, "")]).unwrap_err();
    let feedback = error.feedback("a.txt");
    assert!(feedback.contains("    ... and 18 more\n"));
    assert!(!feedback.contains("missing line 12\n"));
}

#[test]
fn crlf_files_keep_crlf() {
    let applied = apply_default("a\r\nb\r\nc\r\n", &[hunk("b\n", "B\nB2\n")]).unwrap();
    assert_eq!(applied.content, "a\r\nB\r\nB2\r\nc\r\n");
    let applied = apply_default("a\r\nb", &[hunk("b\n", "b\nc\n")]).unwrap();
    assert_eq!(applied.content, "a\r\nb\r\nc");
}

#[test]
fn a_file_without_a_final_newline_keeps_it_that_way() {
    let applied = apply_default("a\nb", &[hunk("a\nb\n", "a\nc\n")]).unwrap();
    assert_eq!(applied.content, "a\nc");
    assert_eq!(applied.matches[0].kind, MatchKind::Exact);
    assert_eq!(apply_default("a\nb", &[hunk("b\n", "b\nc\n")]).unwrap().content, "a\nb\nc");
    assert_eq!(apply_default("a\nb\n", &[hunk("b\n", "c\n")]).unwrap().content, "a\nc\n");
}

#[test]
fn an_empty_search_creates_a_file_only_where_there_is_none() {
    let applied = apply_default("", &[hunk("", "print('hi')\n")]).unwrap();
    assert_eq!(applied.content, "print('hi')\n");
    assert_eq!(applied.matches[0].first_line, 1);
    assert_eq!(apply_default(CALC, &[hunk("", "x\n")]), Err(ApplyError::EmptySearchOnExistingFile { hunk: 0 }));
    assert!(ApplyError::EmptySearchOnExistingFile { hunk: 0 }.feedback("calc.py").contains("calc.py already exists"));
}

#[test]
fn deleting_every_line_leaves_an_empty_file() {
    assert_eq!(apply_default("a\nb\n", &[hunk("a\nb\n", "")]).unwrap().content, "");
}

fn content_of(lines: &[String], crlf: bool, final_newline: bool) -> String {
    let eol = if crlf { "\r\n" } else { "\n" };
    let mut content = lines.join(eol);
    if final_newline && !lines.is_empty() {
        content.push_str(eol);
    }
    content
}

proptest! {
    #[test]
    fn an_exact_slice_is_spliced_at_its_first_occurrence(
        lines in prop::collection::vec("[abc]{0,2}", 1..20),
        at in any::<prop::sample::Index>(),
        len in 1usize..5,
        replacement in prop::collection::vec("[abcd]{0,2}", 0..5),
        crlf in any::<bool>(),
        final_newline in any::<bool>(),
    ) {
        // Without a final newline, a last empty line would read back as a final newline.
        let final_newline = final_newline || lines.last().is_some_and(String::is_empty);
        let content = content_of(&lines, crlf, final_newline);
        let start = at.index(lines.len());
        let search = &lines[start..(start + len).min(lines.len())];
        let hunk = Hunk {
            search: search.iter().map(|line| format!("{line}\n")).collect(),
            replace: replacement.iter().map(|line| format!("{line}\n")).collect(),
        };
        let first = (0..lines.len()).find(|&i| lines[i..].starts_with(search)).unwrap();
        let mut expected = lines[..first].to_vec();
        expected.extend(replacement.iter().cloned());
        expected.extend(lines[first + search.len()..].iter().cloned());

        let applied = apply(&content, &[hunk], &ApplyOptions::default()).unwrap();
        // A file of one unterminated line shows no line ending; new lines then get '\n'.
        let crlf = crlf && content.contains('\n');
        prop_assert_eq!(applied.content, content_of(&expected, crlf, final_newline));
        let found = HunkMatch { hunk: 0, kind: MatchKind::Exact, first_line: first + 1, similarity: 1.0 };
        prop_assert_eq!(applied.matches, vec![found]);
    }
}

proptest! {
    #[test]
    fn any_hunks_apply_or_fail_without_panicking(
        lines in prop::collection::vec("[ \ta-c\u{3000}é]{0,6}", 0..12),
        hunks in prop::collection::vec(
            (prop::collection::vec("[ \ta-c\u{3000}é]{0,6}", 0..4), prop::collection::vec("[ a-d]{0,4}", 0..4)),
            1..4,
        ),
        crlf in any::<bool>(),
        threshold in 0.0f64..1.0,
    ) {
        let content = content_of(&lines, crlf, true);
        let hunks: Vec<Hunk> = hunks
            .into_iter()
            .map(|(search, replace)| Hunk {
                search: search.iter().map(|line| format!("{line}\n")).collect(),
                replace: replace.iter().map(|line| format!("{line}\n")).collect(),
            })
            .collect();
        if let Ok(applied) = apply(&content, &hunks, &ApplyOptions { fuzzy_threshold: threshold }) {
            prop_assert_eq!(applied.matches.len(), hunks.len());
            // An empty file has no line ending style to keep.
            let crlf = crlf && !content.is_empty();
            prop_assert!(!crlf || applied.content.matches('\n').count() == applied.content.matches("\r\n").count());
        }
    }
}
