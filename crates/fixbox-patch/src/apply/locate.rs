//! Finding a hunk's search lines in a file: exactly, up to whitespace, or by similarity.

use super::MatchKind;
use super::similarity::{BUCKETS, Pattern, count, similarity_bound};

/// A run of the file's lines.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Window {
    /// 0-based.
    pub start: usize,
    pub len: usize,
    pub similarity: f64,
}

/// Where a hunk goes and how to fit its replacement there.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Found {
    pub window: Window,
    pub kind: MatchKind,
    pub indent: Indent,
}

/// How the model's indentation differs from the file's, to be undone in its replacement lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Indent {
    Same,
    /// The model dropped this prefix from every line.
    Add(String),
    /// The model added this prefix to every line.
    Remove(String),
}

impl Indent {
    /// Shifts one replacement line; blank lines stay as written.
    pub fn apply(&self, line: &str) -> String {
        match self {
            Indent::Add(prefix) if !line.trim().is_empty() => format!("{prefix}{line}"),
            Indent::Remove(prefix) => line.strip_prefix(prefix.as_str()).unwrap_or(line).to_owned(),
            _ => line.to_owned(),
        }
    }

    /// The shift that turns `search`'s leading whitespace into `file`'s, if one is a suffix of the other.
    fn between(file: &str, search: &str) -> Option<Indent> {
        if let Some(prefix) = file.strip_suffix(search) {
            Some(if prefix.is_empty() { Indent::Same } else { Indent::Add(prefix.to_owned()) })
        } else {
            search.strip_suffix(file).map(|prefix| Indent::Remove(prefix.to_owned()))
        }
    }

    /// The one shift shared by every non-blank pair of lines, or [`Indent::Same`] when they disagree.
    fn shared<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Indent {
        let mut shared = None;
        for (file, search) in pairs.filter(|(file, _)| !file.trim().is_empty()) {
            match (Indent::between(leading(file), leading(search)), &shared) {
                (Some(shift), None) => shared = Some(shift),
                (Some(shift), Some(seen)) if shift == *seen => {}
                _ => return Indent::Same,
            }
        }
        shared.unwrap_or(Indent::Same)
    }
}

fn leading(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

/// The leading whitespace all non-blank lines share.
fn common_indent<'a>(lines: &[&'a str]) -> &'a str {
    let mut lines = lines.iter().filter(|line| !line.trim().is_empty());
    let Some(first) = lines.next() else { return "" };
    lines.fold(leading(first), |common, line| {
        let shared = common.bytes().zip(line.bytes()).take_while(|(a, b)| a == b).count();
        // Whitespace is ASCII here, except for rare Unicode spaces: back off to a char boundary.
        let mut end = shared;
        while !common.is_char_boundary(end) {
            end -= 1;
        }
        &common[..end]
    })
}

/// Locates `search` in `file`, preferring a match at or after line `from`. On failure, the most similar
/// window of the file, if the file has lines.
pub(super) fn locate(file: &[&str], search: &[&str], from: usize, threshold: f64) -> Result<Found, Option<Window>> {
    let window = |start| Window { start, len: search.len(), similarity: 1.0 };
    if let Some(start) = find(file, search, from, |a, b| a == b) {
        return Ok(Found { window: window(start), kind: MatchKind::Exact, indent: Indent::Same });
    }
    if let Some(start) = find(file, search, from, |a, b| a.trim() == b.trim()) {
        let pairs = file[start..start + search.len()].iter().copied().zip(search.iter().copied());
        return Ok(Found { window: window(start), kind: MatchKind::Whitespace, indent: Indent::shared(pairs) });
    }
    let closest = most_similar(file, search, from);
    match closest {
        Some(window) if window.similarity >= threshold => {
            let file_indent = common_indent(&file[window.start..window.start + window.len]);
            let indent = Indent::between(file_indent, common_indent(search)).unwrap_or(Indent::Same);
            Ok(Found { window, kind: MatchKind::Fuzzy, indent })
        }
        _ => Err(closest),
    }
}

/// The first start of `search` at or after `from`, else before it.
fn find(file: &[&str], search: &[&str], from: usize, eq: impl Fn(&str, &str) -> bool) -> Option<usize> {
    let last = file.len().checked_sub(search.len())?;
    let from = from.min(last + 1);
    (from..=last)
        .chain(0..from)
        .find(|&start| file[start..start + search.len()].iter().zip(search).all(|(a, b)| eq(a, b)))
}

/// Most steps of the bit-parallel LCS spent on one hunk, once a first window has been scored: enough
/// for any window of a file a model can edit, while a whole file pasted as SEARCH into a far larger
/// one cannot stall the session. Counted in steps, not time, so results do not depend on the machine.
const WORK_BUDGET: usize = 50_000_000;

/// The window most similar to `search`, trying its length and one line more or fewer. Ties go to a
/// window at or after `from`, then to one of the search's length, then to the earliest.
fn most_similar(file: &[&str], search: &[&str], from: usize) -> Option<Window> {
    let target = joined_trimmed(search);
    let pattern = Pattern::new(&target);
    let mut target_counts = [0; BUCKETS];
    count(&mut target_counts, &target, true);
    let trimmed: Vec<&str> = file.iter().map(|line| line.trim()).collect();
    let chars: Vec<usize> = trimmed.iter().map(|line| line.chars().count()).collect();

    // Every window with an upper bound of its similarity, from counts slid along the file.
    let mut candidates = Vec::new();
    let lengths = [search.len(), search.len() - 1, search.len() + 1];
    for len in lengths.into_iter().filter(|len| (1..=file.len()).contains(len)) {
        let mut counts = [0; BUCKETS];
        counts[usize::from(b'\n')] = u32::try_from(len - 1).unwrap_or(u32::MAX);
        let mut text_len = len - 1;
        for (line, line_chars) in trimmed.iter().zip(&chars).take(len) {
            count(&mut counts, line, true);
            text_len += line_chars;
        }
        for start in 0..=file.len() - len {
            if start > 0 {
                count(&mut counts, trimmed[start - 1], false);
                count(&mut counts, trimmed[start + len - 1], true);
                text_len = text_len - chars[start - 1] + chars[start + len - 1];
            }
            let bound = similarity_bound(&counts, text_len, &target_counts, pattern.len());
            candidates.push(Candidate { bound, text_len, window: Window { start, len, similarity: 0.0 } });
        }
    }

    let preference = |window: &Window| (window.start < from, window.len != search.len(), window.start);
    candidates.sort_by(|a, b| b.bound.total_cmp(&a.bound));
    let mut best: Option<Window> = None;
    let mut budget = WORK_BUDGET;
    for Candidate { bound, text_len, mut window } in candidates {
        let cost = text_len.max(1) * pattern.len().div_ceil(64).max(1);
        // Sorted by bound: once it is below the best, no window left can beat it.
        if best.is_some_and(|best| bound < best.similarity || cost > budget) {
            break;
        }
        budget = budget.saturating_sub(cost);
        let text = trimmed[window.start..window.start + window.len]
            .iter()
            .enumerate()
            .flat_map(|(index, line)| (index > 0).then_some('\n').into_iter().chain(line.chars()));
        window.similarity = pattern.similarity(text, text_len);
        let better = best.is_none_or(|best| {
            window.similarity > best.similarity
                || (window.similarity == best.similarity && preference(&window) < preference(&best))
        });
        if better {
            best = Some(window);
        }
    }
    best
}

#[derive(Debug)]
struct Candidate {
    bound: f64,
    /// The window's length in characters, trimmed lines joined with '\n'.
    text_len: usize,
    window: Window,
}

fn joined_trimmed(lines: &[&str]) -> String {
    let mut text = String::new();
    for (index, line) in lines.iter().enumerate() {
        if index > 0 {
            text.push('\n');
        }
        text.push_str(line.trim());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indentation_shift_is_shared_or_nothing() {
        let pairs = [("        a", "    a"), ("", ""), ("            b", "        b")];
        assert_eq!(Indent::shared(pairs.into_iter()), Indent::Add("    ".into()));
        let pairs = [("  a", "    a"), ("    b", "      b")];
        assert_eq!(Indent::shared(pairs.into_iter()), Indent::Remove("  ".into()));
        let pairs = [("        a", "    a"), ("  b", "b")];
        assert_eq!(Indent::shared(pairs.into_iter()), Indent::Same);
    }

    #[test]
    fn common_indent_of_non_blank_lines() {
        assert_eq!(common_indent(&["    a", "", "        b"]), "    ");
        assert_eq!(common_indent(&["\t a", "\tb"]), "\t");
        assert_eq!(common_indent(&[]), "");
    }

    #[test]
    fn find_prefers_a_match_at_or_after_from() {
        let file = ["x", "y", "x", "y"];
        assert_eq!(find(&file, &["x", "y"], 1, |a, b| a == b), Some(2));
        assert_eq!(find(&file, &["x", "y"], 3, |a, b| a == b), Some(0));
        assert_eq!(find(&file, &["x", "y", "x", "y", "x"], 0, |a, b| a == b), None);
    }
}
