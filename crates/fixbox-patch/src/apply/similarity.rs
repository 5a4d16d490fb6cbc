//! How alike two texts are: `2 * lcs / (len_a + len_b)` over characters, the ratio
//! `similar::TextDiff::from_chars(a, b).ratio()` reports (a minimal diff keeps a longest common
//! subsequence), computed here with a bit-parallel LCS because fuzzy matching scores every window of a
//! file and a full diff per window is quadratic in the window's length.

use std::collections::HashMap;

/// The text every window is compared with, as one bit mask per distinct character over the positions
/// where it occurs (Hyyrö, "Bit-parallel LCS-length computation revisited", 2004).
#[derive(Debug)]
pub(super) struct Pattern {
    len: usize,
    words: usize,
    /// `words` masks per distinct character, one row after another.
    masks: Vec<u64>,
    /// Row of an ASCII character, plus one; 0 when it does not occur.
    ascii_rows: [usize; 128],
    other_rows: HashMap<char, usize>,
}

impl Pattern {
    pub fn new(text: &str) -> Self {
        let len = text.chars().count();
        let words = len.div_ceil(64);
        let mut pattern = Pattern { len, words, masks: Vec::new(), ascii_rows: [0; 128], other_rows: HashMap::new() };
        for (position, c) in text.chars().enumerate() {
            let row = match pattern.row_of(c) {
                Some(row) => row,
                None => {
                    let row = pattern.masks.len() / words;
                    pattern.masks.resize(pattern.masks.len() + words, 0);
                    match ascii(c) {
                        Some(code) => pattern.ascii_rows[code] = row + 1,
                        None => {
                            pattern.other_rows.insert(c, row + 1);
                        }
                    }
                    row
                }
            };
            pattern.masks[row * words + position / 64] |= 1 << (position % 64);
        }
        pattern
    }

    /// The length in characters.
    pub fn len(&self) -> usize {
        self.len
    }

    fn row_of(&self, c: char) -> Option<usize> {
        let key = match ascii(c) {
            Some(code) => self.ascii_rows[code],
            None => self.other_rows.get(&c).copied().unwrap_or(0),
        };
        key.checked_sub(1)
    }

    /// The similarity of `text` (given as its characters and their count) to the pattern.
    pub fn similarity(&self, text: impl Iterator<Item = char>, text_len: usize) -> f64 {
        let total = self.len + text_len;
        if total == 0 {
            return 1.0;
        }
        2.0 * self.lcs(text) as f64 / total as f64
    }

    /// The length of a longest common subsequence of `text` and the pattern, in `len(text) * words` steps.
    fn lcs(&self, text: impl Iterator<Item = char>) -> usize {
        if self.len == 0 {
            return 0;
        }
        // A zero bit at position i of `v` marks where the LCS of the text so far and the pattern's
        // first i + 1 characters grows by one.
        let mut v = vec![u64::MAX; self.words];
        for c in text {
            let Some(row) = self.row_of(c) else { continue };
            let masks = &self.masks[row * self.words..(row + 1) * self.words];
            let mut carry = false;
            for (word, mask) in v.iter_mut().zip(masks) {
                let matched = *word & mask;
                let (sum, overflow) = word.overflowing_add(matched);
                let (sum, overflow_carry) = sum.overflowing_add(u64::from(carry));
                carry = overflow || overflow_carry;
                *word = sum | (*word & !mask);
            }
        }
        // Bits past the pattern's end only ever receive carries: they are ignored.
        let ones: usize = v
            .iter()
            .enumerate()
            .map(|(index, word)| {
                let bits = (self.len - index * 64).min(64);
                let valid = if bits == 64 { u64::MAX } else { (1 << bits) - 1 };
                (word & valid).count_ones() as usize
            })
            .sum();
        self.len - ones
    }
}

fn ascii(c: char) -> Option<usize> {
    c.is_ascii().then_some(c as usize)
}

/// Characters are counted into this many buckets for [`similarity_bound`].
pub(super) const BUCKETS: usize = 128;

pub(super) type Counts = [u32; BUCKETS];

pub(super) fn count(counts: &mut Counts, text: &str, add: bool) {
    for c in text.chars() {
        let bucket = &mut counts[c as usize % BUCKETS];
        *bucket = if add { *bucket + 1 } else { *bucket - 1 };
    }
}

/// An upper bound of the similarity: a character can be matched only as often as it occurs in both
/// texts, and sharing buckets only loosens that.
pub(super) fn similarity_bound(a: &Counts, len_a: usize, b: &Counts, len_b: usize) -> f64 {
    if len_a + len_b == 0 {
        return 1.0;
    }
    let shared: u32 = a.iter().zip(b).map(|(x, y)| *x.min(y)).sum();
    2.0 * f64::from(shared) / (len_a + len_b) as f64
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use similar::TextDiff;

    use super::*;

    fn counts_of(text: &str) -> Counts {
        let mut counts = [0; BUCKETS];
        count(&mut counts, text, true);
        counts
    }

    #[test]
    fn identical_and_disjoint_texts() {
        let pattern = Pattern::new("return a - b");
        assert_eq!(pattern.similarity("return a - b".chars(), 12), 1.0);
        assert_eq!(pattern.similarity("XYZ".chars(), 3), 0.0);
        assert_eq!(Pattern::new("").similarity("".chars(), 0), 1.0);
    }

    proptest! {
        #[test]
        fn the_ratio_is_similars_and_the_bound_is_above_it(
            a in "[ab\\né日 ]{0,150}",
            b in "[abc\\né日 ]{0,150}",
        ) {
            let (len_a, len_b) = (a.chars().count(), b.chars().count());
            let ratio = Pattern::new(&a).similarity(b.chars(), len_b);
            let expected = f64::from(TextDiff::from_chars(a.as_str(), b.as_str()).ratio());
            prop_assert!((ratio - expected).abs() < 1e-6, "{} vs {}", ratio, expected);
            prop_assert!(similarity_bound(&counts_of(&a), len_a, &counts_of(&b), len_b) >= ratio);
        }
    }
}
