//! Small text helpers shared by prompts and events.

/// `text` cut to at most `max` characters by removing its middle, with the cut marked; the start
/// (what ran) and the end (how it ended) are what a reader needs.
pub fn cut_middle(text: &str, max: usize) -> String {
    cut(text, max / 3, max - max / 3)
}

/// `text` cut to its first `head` and last `tail` characters where it is longer, with the cut marked.
pub fn cut(text: &str, head: usize, tail: usize) -> String {
    let count = text.chars().count();
    if count <= head + tail {
        return text.to_string();
    }
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(count - tail).collect();
    format!("{start}\n[... {} characters cut ...]\n{end}", count - head - tail)
}

/// The first `shown` of `names` and how many more: `a, b, c and 234 more`.
pub fn first_of(names: &[String], shown: usize) -> String {
    match names.len().checked_sub(shown) {
        Some(more) if more > 0 => format!("{} and {more} more", names[..shown].join(", ")),
        _ => names.join(", "),
    }
}

/// `word` as one word of a POSIX shell command: in single quotes, each of its own closed and escaped.
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_keeps_both_ends_and_says_so() {
        let text = "a".repeat(50) + &"b".repeat(50);
        let cut = cut_middle(&text, 30);
        assert!(cut.starts_with("aaaaaaaaaa") && cut.ends_with("bbbbbbbbbb"), "{cut}");
        assert!(cut.contains("70 characters cut"), "{cut}");
        assert_eq!(cut_middle("short", 30), "short");
    }

    #[test]
    fn a_quoted_word_stays_one_word() {
        assert_eq!(shell_quote("t.py::test_p[x - y]"), "'t.py::test_p[x - y]'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn a_long_list_names_its_first_and_counts_the_rest() {
        let names: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
        assert_eq!(first_of(&names, 3), "t0, t1, t2 and 2 more");
        assert_eq!(first_of(&names[..3], 3), "t0, t1, t2");
        assert_eq!(first_of(&[], 3), "");
    }
}
