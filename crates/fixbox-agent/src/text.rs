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
}
