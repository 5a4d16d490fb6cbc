//! Any split of an answer into fragments parses like the whole answer, in linear time.

use proptest::prelude::*;

use super::*;

/// Answers, well-formed and not, that every split of the stream must parse alike.
const SAMPLES: &[&str] = &[
    AIDER_ANSWER,
    UDIFF_ANSWER,
    BLOCK,
    "**src/naïve.py**\n~~~python\n<<<<<<< SEARCH\n    s = \"héllo wörld\"\n=======\n    s = \"日本語 🦀\"\n\
     >>>>>>> REPLACE\n~~~\nDone ✅",
    "calc.py\n```\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n",
    "<<<<<<< SEARCH\nx = 1\n>>>>>>> REPLACE\n",
    "--- a/q.sql\r\n+++ b/q.sql\r\n@@ -1 +1 @@\r\n--- old\r\n+-- new ©\r\n\r\n SELECT 1;\r\n",
    "calc.py\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\nutils.py\n<<<<<<< SEARCH\nc\n=======\nd\n>>>>>>> REPLACE",
    "I GIVE UP: the test needs the network",
    "```diff\n-a\n+b\n\n\n```",
    LABELLED_ANSWER,
    PROSE_ANSWER,
    "x.py\nSEARCH: `a`\nand then\nREPLACE: ``b `c` ``\nSEARCH\n```\nd\n```\n",
];

/// Lines small models write, to build answers from at random.
const FRAGMENTS: &[&str] = &[
    "",
    "calc.py",
    "**utils.py**",
    "```",
    "```python",
    "```diff",
    "~~~",
    "<<<<<<< SEARCH",
    "=======",
    ">>>>>>> REPLACE",
    "--- a/calc.py",
    "+++ b/calc.py",
    "--- /dev/null",
    "+++ b/other.py",
    "diff --git a/calc.py b/calc.py",
    "index 1234..5678 100644",
    "@@ -1,3 +1,3 @@",
    "@@",
    " context",
    "-removed ü",
    "+added 日本",
    "--- removed comment",
    "\\ No newline at end of file",
    "    indented code",
    "Here is the fix:",
    "I GIVE UP: no idea",
    "x = 1\r",
    "SEARCH",
    "**Replace:**",
    "The SEARCH line is `x = 1`.",
    "The REPLACE line should be `x = 2`.",
];

fn split_at_cuts<'a>(answer: &'a str, cuts: &[usize]) -> Vec<&'a str> {
    let mut cuts: Vec<usize> = cuts
        .iter()
        .map(|&cut| {
            let mut at = cut % (answer.len() + 1);
            while !answer.is_char_boundary(at) {
                at -= 1;
            }
            at
        })
        .collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for at in cuts.into_iter().chain([answer.len()]) {
        pieces.push(&answer[from..at]);
        from = at;
    }
    pieces
}

proptest! {
    #[test]
    fn any_split_parses_like_the_whole(
        sample in 0..SAMPLES.len(),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
        udiff in any::<bool>(),
    ) {
        let answer = SAMPLES[sample];
        let format = if udiff { UDIFF } else { SR };
        let mut parser = PatchParser::new(format);
        let mut deltas = Vec::new();
        for piece in split_at_cuts(answer, &cuts) {
            deltas.extend(parser.push(piece));
        }
        let complete = parser.is_complete();
        deltas.extend(parser.close());

        let mut whole = PatchParser::new(format);
        let mut whole_deltas = whole.push(answer);
        prop_assert_eq!(complete, whole.is_complete());
        whole_deltas.extend(whole.close());
        prop_assert_eq!(deltas, whole_deltas);
        prop_assert_eq!(parser.finish(), whole.finish());
    }

    #[test]
    fn answers_made_of_any_lines_parse_alike_split_or_whole(
        lines in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..30),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        udiff in any::<bool>(),
    ) {
        let answer = lines.join("\n");
        let format = if udiff { UDIFF } else { SR };
        let mut parser = PatchParser::new(format);
        let mut deltas = Vec::new();
        for piece in split_at_cuts(&answer, &cuts) {
            deltas.extend(parser.push(piece));
        }
        deltas.extend(parser.close());
        prop_assert_eq!((deltas, parser.finish()), parse(format, &answer));
    }

    #[test]
    fn char_by_char_parses_like_the_whole(sample in 0..SAMPLES.len()) {
        let answer = SAMPLES[sample];
        let mut parser = PatchParser::new(SR);
        let mut deltas = Vec::new();
        let mut buf = [0; 4];
        for c in answer.chars() {
            deltas.extend(parser.push(c.encode_utf8(&mut buf)));
        }
        deltas.extend(parser.close());
        prop_assert_eq!((deltas, parser.finish()), parse(SR, answer));
    }
}

#[test]
fn a_megabyte_answer_fed_a_char_at_a_time_keeps_only_one_line() {
    let mut answer = String::from("Here is the fix:\n\nbig.py\n```python\n<<<<<<< SEARCH\n");
    let lines = 12_000;
    for i in 0..lines {
        answer.push_str(&format!("    value_{i} = compute(\"é{i}\", limit={i})  # keep\n"));
    }
    answer.push_str("=======\n");
    for i in 0..lines {
        answer.push_str(&format!("    value_{i} = compute(\"é{i}\", limit={})  # fixed\n", i + 1));
    }
    answer.push_str(">>>>>>> REPLACE\n```\n");
    assert!(answer.len() > 1_000_000);

    let mut parser = PatchParser::new(SR);
    let mut delta_count = 0;
    let mut buf = [0; 4];
    let longest_line = answer.lines().map(str::len).max().unwrap_or_default();
    for c in answer.chars() {
        delta_count += parser.push(c.encode_utf8(&mut buf)).len();
        assert!(parser.partial.len() <= longest_line);
    }
    assert!(parser.is_complete());
    assert_eq!(delta_count, 2 * lines + 3);
    let patch = parser.finish().unwrap();
    assert_eq!(patch.hunks[0].search.lines().count(), lines);
}
