//! What one line of a model's answer is, read on its own: a markdown fence, a search/replace marker, a
//! diff header, a file name. The parser's state decides what the line means.

/// A markdown code fence line (```` ``` ```` or `~~~`, with its info string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fence<'a> {
    /// What follows the fence characters, trimmed: `python`, `diff`, `python:calc.py`.
    pub info: &'a str,
}

impl<'a> Fence<'a> {
    pub fn parse(line: &'a str) -> Option<Self> {
        let trimmed = line.trim_start();
        let fence_char = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
        let rest = trimmed.trim_start_matches(fence_char);
        if trimmed.len() - rest.len() < 3 {
            return None;
        }
        Some(Fence { info: rest.trim() })
    }

    /// A fence that only closes or opens, with no language or file name.
    pub fn is_bare(self) -> bool {
        self.info.is_empty()
    }

    /// ```` ```diff ```` and friends: `-`/`+`/` ` lines inside are a diff even without headers.
    pub fn is_diff(self) -> bool {
        let language = self.info.split([':', ' ']).next().unwrap_or_default();
        matches!(language.to_ascii_lowercase().as_str(), "diff" | "patch" | "udiff")
    }

    /// A file name carried by the info string: ```` ```python:calc.py ````, ```` ```python calc.py ```` or
    /// ```` ```calc.py ````.
    pub fn path(self) -> Option<String> {
        header_path(self.info.rsplit([':', ' ']).next().unwrap_or_default())
    }
}

/// A search/replace marker: 5 to 9 of the same character at the start, then anything but that character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Marker {
    /// `<<<<<<< SEARCH`
    Search,
    /// `=======`
    Divider,
    /// `>>>>>>> REPLACE`
    Replace,
}

impl Marker {
    pub fn parse(line: &str) -> Option<Self> {
        let trimmed = line.trim_start();
        let (marker, marker_char) = match trimmed.as_bytes().first()? {
            b'<' => (Marker::Search, '<'),
            b'=' => (Marker::Divider, '='),
            b'>' => (Marker::Replace, '>'),
            _ => return None,
        };
        let rest = trimmed.trim_start_matches(marker_char);
        // The character run is ASCII, so its length in bytes is its length in characters.
        (5..=9).contains(&(trimmed.len() - rest.len())).then_some(marker)
    }
}

/// A line that only labels the fenced code block after it, in place of a marker: `SEARCH`, `**Replace:**`,
/// `### SEARCH`. Small models write these when they keep the words of the format and drop its markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Label {
    Search,
    Replace,
}

impl Label {
    /// A lone `SEARCH` or `REPLACE` (any case, decorated), or a short line of prose that introduces
    /// its block with the word in capitals and a colon: "The SEARCH lines are:".
    pub fn parse(line: &str) -> Option<Self> {
        /// Longer than this, a line ending in a colon is a sentence about the code, not a label.
        const PROSE_LABEL_CHARS: usize = 40;
        let word = strip_decoration(line.trim().trim_start_matches('#'));
        if word.eq_ignore_ascii_case("search") {
            return Some(Label::Search);
        }
        if word.eq_ignore_ascii_case("replace") {
            return Some(Label::Replace);
        }
        let introduces = line.trim().trim_end_matches(['*', ' ']).ends_with(':');
        let prose = Some(word).filter(|p| introduces && p.len() <= PROSE_LABEL_CHARS)?;
        let has = |label: &str| prose.split(|c: char| !c.is_alphanumeric()).any(|w| w == label);
        match (has("SEARCH"), has("REPLACE")) {
            (true, false) => Some(Label::Search),
            (false, true) => Some(Label::Replace),
            _ => None,
        }
    }
}

/// The inline code span that follows `keyword` (a whole word, as written) closely in a line of prose,
/// and the byte offset in `line` just past that span: in "The SEARCH line is `x = 1`." the span after
/// `SEARCH` is `x = 1`. The gap between word and span is at most [`PROSE_GAP`] characters of prose.
pub(super) fn code_after<'a>(line: &'a str, keyword: &str) -> Option<(&'a str, usize)> {
    /// How far a span may follow its keyword: "line should be", "block is now", not another sentence.
    const PROSE_GAP: usize = 32;
    let word_char = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    let at = loop {
        let at = from + line[from..].find(keyword)?;
        let end = at + keyword.len();
        let before = line[..at].chars().next_back().is_none_or(|c| !word_char(c));
        let after = line[end..].chars().next().is_none_or(|c| !word_char(c));
        if before && after {
            break end;
        }
        from = end;
    };
    let open = at + line[at..].find('`')?;
    if line[at..open].chars().count() > PROSE_GAP {
        return None;
    }
    let body = line[open..].trim_start_matches('`');
    let ticks = line.len() - open - body.len();
    let close = body.find(&line[open..open + ticks])?;
    let code = &body[..close];
    // Markdown drops one space at each end of a span that needs it (``` `` `x` `` ```).
    let code = match (ticks > 1, code.strip_prefix(' ').and_then(|c| c.strip_suffix(' '))) {
        (true, Some(inner)) => inner,
        _ => code,
    };
    (!code.trim().is_empty()).then_some((code, open + ticks + close + ticks))
}

/// A unified-diff file header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DiffHeader {
    /// `diff --git a/x b/x`: the `b` path.
    Git(Option<String>),
    /// `--- a/x`
    Old(DiffPath),
    /// `+++ b/x`
    New(DiffPath),
}

/// The path of a `---`/`+++` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DiffPath {
    /// `/dev/null`: the file is created (as the old path) or deleted (as the new path).
    DevNull,
    Path(String),
}

impl DiffHeader {
    pub fn parse(line: &str) -> Option<Self> {
        if let Some(rest) = line.strip_prefix("diff --git ") {
            return Some(DiffHeader::Git(rest.split_whitespace().last().and_then(diff_path)));
        }
        let (rest, new) = match (line.strip_prefix("--- "), line.strip_prefix("+++ ")) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => return None,
        };
        // A timestamp may follow the path after a tab; paths with spaces are not worth the ambiguity.
        let token = rest.split('\t').next().unwrap_or_default().split_whitespace().next()?;
        let path = if token == "/dev/null" { DiffPath::DevNull } else { DiffPath::Path(diff_path(token)?) };
        Some(if new { DiffHeader::New(path) } else { DiffHeader::Old(path) })
    }
}

/// Git metadata between `diff --git` and `---`, never content.
pub(super) fn is_git_metadata(line: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "index ",
        "new file mode",
        "deleted file mode",
        "old mode",
        "new mode",
        "similarity index",
        "rename from",
        "rename to",
    ];
    PREFIXES.iter().any(|prefix| line.starts_with(prefix))
}

/// The path of a diff header token: `a/src/x.py` → `src/x.py`.
fn diff_path(token: &str) -> Option<String> {
    let path = header_path(token)?;
    Some(path.strip_prefix("a/").or_else(|| path.strip_prefix("b/")).unwrap_or(&path).to_owned())
}

/// The file a header line names: `calc.py`, `**calc.py**`, `### calc.py`, `File: calc.py`,
/// `# File: src/x.py`, `` `calc.py` ``, `calc.py:`. `None` for anything that is not a lone path.
pub(super) fn header_path(line: &str) -> Option<String> {
    let line = line.trim().trim_start_matches('#');
    let line = strip_decoration(line);
    let line = strip_label(line).map_or(line, strip_decoration);
    looks_like_path(line).then(|| {
        let path = line.replace('\\', "/");
        path.strip_prefix("./").map_or_else(|| path.clone(), str::to_owned)
    })
}

fn strip_decoration(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || matches!(c, '*' | '`' | '"' | '\'' | ':'))
}

fn strip_label(text: &str) -> Option<&str> {
    const LABELS: &[&str] = &["file:", "filename:", "file name:", "path:", "filepath:"];
    LABELS.iter().find_map(|label| {
        let head = text.get(..label.len())?;
        head.eq_ignore_ascii_case(label).then(|| &text[label.len()..])
    })
}

/// A single token with a `.` or `/` in it, made of path characters, that is neither a sentence end nor a
/// number: `calc.py`, `src/x.py`, `.github/ci.yml`; not `Done.`, `1.5`, `e.g.`.
fn looks_like_path(text: &str) -> bool {
    let path_char = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '\\' | '+' | '@' | '~');
    !text.is_empty()
        && text.chars().all(path_char)
        && text.contains(['.', '/', '\\'])
        && text.chars().any(char::is_alphabetic)
        && !text.ends_with(['.', '/'])
        && !text.starts_with(['-', '+'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_variants_name_the_file() {
        for line in [
            "calc.py",
            "**calc.py**",
            "### calc.py",
            "File: calc.py",
            "`calc.py`",
            "calc.py:",
            "**`calc.py`**:",
            "./calc.py",
            "'calc.py'",
        ] {
            assert_eq!(header_path(line).as_deref(), Some("calc.py"), "{line}");
        }
        assert_eq!(header_path("# File: src/x.py").as_deref(), Some("src/x.py"));
        assert_eq!(header_path("src\\x.py").as_deref(), Some("src/x.py"));
    }

    #[test]
    fn prose_is_not_a_header() {
        for line in ["Here is the fix:", "Done.", "1.5", "def add(a, b):", "e.g.", "Makefile", "-x.py", ""] {
            assert_eq!(header_path(line), None, "{line}");
        }
    }

    #[test]
    fn labels_are_lone_words() {
        for line in ["SEARCH", "**SEARCH**", "### Search", "search:", "**SEARCH:**", " SEARCH "] {
            assert_eq!(Label::parse(line), Some(Label::Search), "{line}");
        }
        assert_eq!(Label::parse("REPLACE"), Some(Label::Replace));
        for line in ["The SEARCH lines are:", "**REPLACE with:**"] {
            assert!(Label::parse(line).is_some(), "{line}");
        }
        assert_eq!(Label::parse("The REPLACE lines are:"), Some(Label::Replace));
        for line in [
            "SEARCH block",
            "Search the code",
            "<<<<<<< SEARCH",
            "researched",
            "",
            "The search lines are:",
            "SEARCH and REPLACE:",
            "Here is the SEARCH/REPLACE block that fixes the failing test:",
        ] {
            assert_eq!(Label::parse(line), None, "{line}");
        }
    }

    #[test]
    fn code_follows_its_keyword_in_prose() {
        let line = "The SEARCH line is `a(1)`. The REPLACE line should be `a(2)`.";
        let (search, end) = code_after(line, "SEARCH").unwrap();
        assert_eq!(search, "a(1)");
        assert_eq!(&line[end..], ". The REPLACE line should be `a(2)`.");
        assert_eq!(code_after(&line[end..], "REPLACE").map(|(code, _)| code), Some("a(2)"));
        assert_eq!(code_after("SEARCH: `` x = `y` ``", "SEARCH").map(|(code, _)| code), Some("x = `y`"));
        for line in [
            "RESEARCH `x`",
            "SEARCHING `x`",
            "SEARCH `x",
            "SEARCH ``",
            "a SEARCH/REPLACE block is one way to describe a change, see `x`",
        ] {
            assert_eq!(code_after(line, "SEARCH"), None, "{line}");
        }
    }

    #[test]
    fn markers_take_5_to_9_characters_and_any_label() {
        assert_eq!(Marker::parse("<<<<<<< SEARCH"), Some(Marker::Search));
        assert_eq!(Marker::parse("<<<<< SEARCH  "), Some(Marker::Search));
        assert_eq!(Marker::parse("<<<<<<<<<"), Some(Marker::Search));
        assert_eq!(Marker::parse("======="), Some(Marker::Divider));
        assert_eq!(Marker::parse(">>>>>>> REPLACE"), Some(Marker::Replace));
        assert_eq!(Marker::parse("<<<< SEARCH"), None);
        assert_eq!(Marker::parse("=========="), None);
        assert_eq!(Marker::parse("== x"), None);
    }

    #[test]
    fn fences_carry_language_and_file() {
        let fence = Fence::parse("```python:calc.py").unwrap();
        assert_eq!(fence.path().as_deref(), Some("calc.py"));
        assert!(!fence.is_diff());
        assert_eq!(Fence::parse("```calc.py").unwrap().path().as_deref(), Some("calc.py"));
        assert_eq!(Fence::parse("``` python src/calc.py").unwrap().path().as_deref(), Some("src/calc.py"));
        assert_eq!(Fence::parse("```python").unwrap().path(), None);
        assert!(Fence::parse("~~~diff").unwrap().is_diff());
        assert!(Fence::parse("```").unwrap().is_bare());
        assert_eq!(Fence::parse("``x"), None);
    }

    #[test]
    fn diff_headers_drop_prefixes_and_timestamps() {
        assert_eq!(
            DiffHeader::parse("--- a/src/x.py\t2024-01-01"),
            Some(DiffHeader::Old(DiffPath::Path("src/x.py".into())))
        );
        assert_eq!(DiffHeader::parse("+++ b/calc.py"), Some(DiffHeader::New(DiffPath::Path("calc.py".into()))));
        assert_eq!(DiffHeader::parse("--- /dev/null"), Some(DiffHeader::Old(DiffPath::DevNull)));
        assert_eq!(DiffHeader::parse("diff --git a/x.py b/x.py"), Some(DiffHeader::Git(Some("x.py".into()))));
        assert_eq!(DiffHeader::parse("--- Summary ---"), None);
        assert_eq!(DiffHeader::parse("--- a/Makefile"), Some(DiffHeader::Old(DiffPath::Path("Makefile".into()))));
    }
}
