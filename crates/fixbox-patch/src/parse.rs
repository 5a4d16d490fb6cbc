//! The streaming parser of a model's answer into one [`FilePatch`].
//!
//! It reads both formats whatever it was asked for, since small models drift between them, and
//! tolerates what they really write: markdown fences around and inside blocks, file names decorated in
//! a dozen ways, marker lengths from 5 to 9, `SEARCH` and `REPLACE` as lone labels over two fenced
//! blocks instead of markers, a one-line edit told in a sentence ("The SEARCH line is `x`. The REPLACE
//! line should be `y`."), diffs with wrong or missing `@@` numbers and dropped leading spaces on blank
//! context lines, prose before and after. Only whole lines are interpreted, so
//! any split of the answer into fragments gives the same deltas and the same patch.

mod lines;
#[cfg(test)]
mod tests;

use std::mem;

use super::{EditFormat, FilePatch, Hunk, PatchDelta, Side};
use lines::{DiffHeader, DiffPath, Fence, Label, Marker, code_after, header_path, is_git_metadata};

/// Why an answer gave no patch to apply. The messages are written to the model, as feedback.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Your answer contained no edit block. Answer with exactly one SEARCH/REPLACE block for one file.")]
    NoPatch,
    #[error("Your edit changes nothing: its SEARCH and REPLACE parts are identical. Put the fixed code in REPLACE.")]
    NoChange,
    #[error(
        "Your answer was cut off before the edit block ended (no >>>>>>> REPLACE line). \
         Answer again with shorter SEARCH/REPLACE blocks."
    )]
    Unterminated,
    #[error(
        "Edit block {} has no ======= line between its SEARCH and REPLACE parts. \
         Write <<<<<<< SEARCH, the lines to find, =======, the new lines, >>>>>>> REPLACE.",
        hunk + 1
    )]
    MissingDivider { hunk: usize },
    #[error(
        "Edit block {} has a SEARCH part but no REPLACE part. \
         Write <<<<<<< SEARCH, the lines to find, =======, the new lines, >>>>>>> REPLACE.",
        hunk + 1
    )]
    MissingReplace { hunk: usize },
}

impl ParseError {
    /// What to tell a model that was asked for `format`.
    pub fn feedback(&self, format: EditFormat) -> String {
        match (self, format) {
            (ParseError::NoPatch, EditFormat::UnifiedDiff) => "Your answer contained no diff. Answer with exactly one \
                unified diff for one file: --- a/path, +++ b/path, then @@ hunks."
                .to_owned(),
            (ParseError::NoChange, EditFormat::UnifiedDiff) => {
                "Your diff changes nothing: it has no line starting with - or +. Mark removed lines with - and \
                 added lines with +."
                    .to_owned()
            }
            _ => self.to_string(),
        }
    }
}

/// Finds "I GIVE UP" (any case) in an answer and returns the rest of its line, trimmed: the model's reason.
pub fn give_up_reason(answer: &str) -> Option<String> {
    const PHRASE: &str = "i give up";
    // ASCII lowercasing keeps byte offsets, so a hit in the copy is a hit in the answer.
    let at = answer.to_ascii_lowercase().find(PHRASE)?;
    let rest = &answer[at + PHRASE.len()..];
    let line = rest.split('\n').next().unwrap_or_default();
    Some(line.trim_matches(|c: char| c.is_whitespace() || matches!(c, ':' | '*' | '-' | '.')).to_owned())
}

/// Where the parser is in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between blocks: prose, fences, headers.
    Outside,
    /// After `<<<<<<< SEARCH`.
    Search,
    /// After a labelled search block's closing fence, waiting for its `REPLACE` label and fence.
    Between,
    /// After `=======`, or inside the fence after a `REPLACE` label.
    Replace,
    /// Inside a unified-diff hunk.
    Diff,
}

/// Parses a model's streamed answer into one [`FilePatch`], reporting [`PatchDelta`]s as lines complete.
///
/// Work is linear in the answer's length: each fragment is scanned once for line ends and only the
/// unfinished last line is kept.
#[derive(Debug)]
pub struct PatchParser {
    format: EditFormat,
    /// The unfinished last line.
    partial: String,
    state: State,
    /// The hunk being read; its number is `begun - 1`.
    current: Hunk,
    begun: usize,
    hunks: Vec<Hunk>,
    path: Option<String>,
    /// A file name read on the line before a block (or before its fence), not yet claimed by one.
    candidate: Option<String>,
    /// A `SEARCH` or `REPLACE` label on the line before a fence.
    label: Option<Label>,
    /// The hunk being read is two fenced blocks under labels: fences, not markers, end its parts.
    labelled: bool,
    /// The code after `SEARCH` in a sentence, waiting for the code after `REPLACE`.
    prose_search: Option<String>,
    in_fence: bool,
    /// Inside a ```` ```diff ```` fence: `-`/`+`/` ` lines start a hunk even without headers.
    diff_fence: bool,
    /// A `---`/`+++`/`diff --git` header was read: `-`/`+`/` ` lines that follow start a hunk.
    diff_headers: bool,
    /// The path of a `---` line waiting for its `+++` line.
    old_path: Option<DiffPath>,
    /// A `--- x` line inside a hunk: a new file's header if `+++` follows, else a removed `-- x` line.
    held_old: Option<String>,
    /// Empty lines inside a hunk: context if the hunk goes on, the end of the diff if it does not.
    blank_run: usize,
    malformed: Option<ParseError>,
    unterminated: bool,
    complete: bool,
    closed: bool,
}

impl PatchParser {
    pub fn new(format: EditFormat) -> Self {
        PatchParser {
            format,
            partial: String::new(),
            state: State::Outside,
            current: Hunk::default(),
            begun: 0,
            hunks: Vec::new(),
            path: None,
            candidate: None,
            label: None,
            labelled: false,
            prose_search: None,
            in_fence: false,
            diff_fence: false,
            diff_headers: false,
            old_path: None,
            held_old: None,
            blank_run: 0,
            malformed: None,
            unterminated: false,
            complete: false,
            closed: false,
        }
    }

    /// The format the model was asked for.
    pub fn format(&self) -> EditFormat {
        self.format
    }

    /// Feeds the next fragment of the answer; returns the deltas of the lines it completed.
    pub fn push(&mut self, text: &str) -> Vec<PatchDelta> {
        let mut out = Vec::new();
        if self.complete || self.closed {
            return out;
        }
        let mut rest = text;
        while let Some(end) = rest.find('\n') {
            let (head, tail) = (&rest[..end], &rest[end + 1..]);
            if self.partial.is_empty() {
                self.line(head, &mut out);
            } else {
                let mut line = mem::take(&mut self.partial);
                line.push_str(head);
                self.line(&line, &mut out);
            }
            rest = tail;
            if self.complete {
                return out;
            }
        }
        self.partial.push_str(rest);
        out
    }

    /// True once a patch with a finished hunk has been read and something after it showed the patch is
    /// over: a closing fence, prose, or another file's header. The rest of the answer is then ignored,
    /// so the caller can stop the stream.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Whether the answer so far ends inside a search/replace block's replacement (its `=======` read,
    /// its `>>>>>>> REPLACE` not): where a server that stops at that marker, and leaves it out, leaves
    /// the answer.
    pub fn in_replace(&self) -> bool {
        self.state == State::Replace && !self.complete
    }

    /// Ends the stream: interprets the unfinished last line and closes an open diff hunk, returning their
    /// deltas. [`finish`](Self::finish) does this too; call it first when a view needs those last deltas.
    pub fn close(&mut self) -> Vec<PatchDelta> {
        let mut out = Vec::new();
        if self.closed {
            return out;
        }
        if !self.complete && !self.partial.is_empty() {
            let line = mem::take(&mut self.partial);
            self.line(&line, &mut out);
        }
        self.closed = true;
        if self.complete {
            return out;
        }
        if let Some(held) = self.held_old.take() {
            self.diff_content(Side::Search, &held[1..], &mut out);
        }
        match self.state {
            State::Diff => self.end_diff_hunk(&mut out),
            State::Search | State::Replace => self.unterminated = true,
            State::Between => self.missing_replace(&mut out),
            State::Outside => {}
        }
        out
    }

    /// The patch, once the stream has ended.
    pub fn finish(mut self) -> Result<FilePatch, ParseError> {
        self.close();
        if self.unterminated {
            return Err(ParseError::Unterminated);
        }
        if let Some(error) = self.malformed {
            return Err(error);
        }
        if self.hunks.is_empty() {
            return Err(ParseError::NoPatch);
        }
        let hunks: Vec<Hunk> = self.hunks.into_iter().filter(|hunk| hunk.search != hunk.replace).collect();
        if hunks.is_empty() {
            return Err(ParseError::NoChange);
        }
        Ok(FilePatch { path: self.path, hunks })
    }

    fn line(&mut self, line: &str, out: &mut Vec<PatchDelta>) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        match self.state {
            State::Outside => self.outside_line(line, out),
            State::Search => self.search_line(line, out),
            State::Between => self.between_line(line, out),
            State::Replace => self.replace_line(line, out),
            State::Diff => self.diff_line(line, out),
        }
    }

    fn outside_line(&mut self, line: &str, out: &mut Vec<PatchDelta>) {
        if let Some(fence) = Fence::parse(line) {
            return self.fence(fence, out);
        }
        if !self.in_fence {
            if let Some(label) = Label::parse(line) {
                self.label = Some(label);
                return;
            }
            if self.hunks.is_empty() && self.prose_edit(line, out) {
                return;
            }
        }
        if !line.trim().is_empty() {
            self.label = None;
        }
        match Marker::parse(line) {
            Some(Marker::Search) => {
                if self.begin_hunk(out) {
                    self.state = State::Search;
                }
                return;
            }
            // A stray divider or end marker says nothing about where the patch ends.
            Some(Marker::Divider | Marker::Replace) => return,
            None => {}
        }
        if let Some(header) = DiffHeader::parse(line) {
            return self.diff_header(header, out);
        }
        if line.starts_with("@@") {
            if self.begin_diff_hunk(out) {
                self.state = State::Diff;
            }
            return;
        }
        if (self.diff_headers || self.diff_fence) && line.starts_with([' ', '-', '+']) {
            if self.begin_diff_hunk(out) {
                self.state = State::Diff;
                self.diff_line(line, out);
            }
            return;
        }
        if line.trim().is_empty() || (self.diff_headers && is_git_metadata(line)) {
            return;
        }
        if let Some(path) = header_path(line) {
            // Inside a fence a lone `os.path` may be code: there the block it heads decides.
            let other_file = self.path.as_ref().is_some_and(|current| *current != path);
            if other_file && !self.hunks.is_empty() && !self.in_fence {
                self.complete = true;
            } else {
                self.candidate = Some(path);
            }
            return;
        }
        self.candidate = None;
        // Inside a fence the line is code, not prose: a comment between blocks, or a diff line that lost
        // its prefix. Only the closing fence ends the patch there.
        if !self.in_fence {
            self.diff_headers = false;
            self.complete = !self.hunks.is_empty();
        }
    }

    fn fence(&mut self, fence: Fence<'_>, out: &mut Vec<PatchDelta>) {
        if fence.is_bare() && self.in_fence {
            self.in_fence = false;
            self.diff_fence = false;
            self.candidate = None;
            self.complete = !self.hunks.is_empty();
            return;
        }
        self.in_fence = true;
        self.diff_fence = fence.is_diff();
        if let Some(path) = fence.path() {
            self.candidate = Some(path);
        }
        if self.label.take() == Some(Label::Search) && self.begin_hunk(out) {
            self.labelled = true;
            self.state = State::Search;
        }
    }

    /// A one-line edit told in prose: the code after `SEARCH`, then (on this line or a later one) the
    /// code after `REPLACE`. Returns whether the line was part of such an edit (a file named before it
    /// stays the candidate for it).
    fn prose_edit(&mut self, line: &str, out: &mut Vec<PatchDelta>) -> bool {
        let mut rest = line;
        if let Some((search, end)) = code_after(line, "SEARCH") {
            self.prose_search = Some(search.to_owned());
            rest = &line[end..];
        }
        let Some((replace, _)) = code_after(rest, "REPLACE") else { return rest.len() < line.len() };
        let Some(search) = self.prose_search.take() else { return false };
        if self.begin_hunk(out) {
            self.block_line(Side::Search, &search, out);
            self.block_line(Side::Replace, replace, out);
            self.end_block(out);
        }
        true
    }

    /// Names the patch's file; a different file after a finished hunk ends the patch instead. Returns
    /// whether the patch goes on.
    fn name_file(&mut self, path: String, out: &mut Vec<PatchDelta>) -> bool {
        match &self.path {
            Some(current) if *current == path => true,
            Some(_) if !self.hunks.is_empty() => {
                self.complete = true;
                false
            }
            _ => {
                out.push(PatchDelta::File { path: path.clone() });
                self.path = Some(path);
                true
            }
        }
    }

    /// Starts a hunk for the file named just before it, if any. Returns whether it started.
    fn begin_hunk(&mut self, out: &mut Vec<PatchDelta>) -> bool {
        if let Some(path) = self.candidate.take()
            && !self.name_file(path, out)
        {
            return false;
        }
        self.current = Hunk::default();
        out.push(PatchDelta::Hunk { hunk: self.begun });
        self.begun += 1;
        true
    }

    fn begin_diff_hunk(&mut self, out: &mut Vec<PatchDelta>) -> bool {
        // Only a `---` line was written: it names the file unless it is /dev/null.
        if let Some(DiffPath::Path(path)) = self.old_path.take() {
            self.candidate = Some(path);
        }
        self.diff_headers = true;
        self.blank_run = 0;
        self.begin_hunk(out)
    }

    fn diff_header(&mut self, header: DiffHeader, out: &mut Vec<PatchDelta>) {
        self.diff_headers = true;
        self.candidate = None;
        match header {
            DiffHeader::Git(path) => {
                self.old_path = None;
                if let Some(path) = path {
                    self.name_file(path, out);
                }
            }
            DiffHeader::Old(path) => self.old_path = Some(path),
            DiffHeader::New(path) => {
                let path = match (path, self.old_path.take()) {
                    (DiffPath::Path(path), _) | (DiffPath::DevNull, Some(DiffPath::Path(path))) => path,
                    (DiffPath::DevNull, _) => return,
                };
                self.name_file(path, out);
            }
        }
    }

    fn search_line(&mut self, line: &str, out: &mut Vec<PatchDelta>) {
        if self.labelled && Fence::parse(line).is_some_and(Fence::is_bare) {
            self.in_fence = false;
            self.state = State::Between;
            return;
        }
        match Marker::parse(line) {
            Some(Marker::Divider) => self.state = State::Replace,
            Some(Marker::Search) if self.current.search.is_empty() => {}
            Some(marker @ (Marker::Search | Marker::Replace)) => {
                self.malformed.get_or_insert(ParseError::MissingDivider { hunk: self.begun - 1 });
                out.push(PatchDelta::HunkEnd { hunk: self.begun - 1 });
                self.state = State::Outside;
                if marker == Marker::Search {
                    self.outside_line(line, out);
                }
            }
            None if Fence::parse(line).is_some() => {}
            None => self.block_line(Side::Search, line, out),
        }
    }

    /// Between a labelled search block and its replacement: the `REPLACE` label, then its fence.
    fn between_line(&mut self, line: &str, out: &mut Vec<PatchDelta>) {
        match (Label::parse(line), Fence::parse(line)) {
            (Some(label), _) => self.label = Some(label),
            (_, Some(_)) if self.label == Some(Label::Replace) => {
                self.label = None;
                self.in_fence = true;
                self.state = State::Replace;
            }
            _ if line.trim().is_empty() => {}
            _ => {
                self.missing_replace(out);
                self.outside_line(line, out);
            }
        }
    }

    fn missing_replace(&mut self, out: &mut Vec<PatchDelta>) {
        self.malformed.get_or_insert(ParseError::MissingReplace { hunk: self.begun - 1 });
        out.push(PatchDelta::HunkEnd { hunk: self.begun - 1 });
        self.labelled = false;
        self.label = None;
        self.state = State::Outside;
    }

    fn replace_line(&mut self, line: &str, out: &mut Vec<PatchDelta>) {
        match (Marker::parse(line), Fence::parse(line)) {
            (Some(Marker::Replace), _) => self.end_block(out),
            // The end marker was forgotten: the next block, or the fence closing this one, ends it.
            (Some(Marker::Search), _) => {
                self.end_block(out);
                self.outside_line(line, out);
            }
            (_, Some(fence)) if fence.is_bare() => {
                self.end_block(out);
                self.outside_line(line, out);
            }
            (_, Some(_)) => {}
            _ => self.block_line(Side::Replace, line, out),
        }
    }

    fn block_line(&mut self, side: Side, line: &str, out: &mut Vec<PatchDelta>) {
        let text = match side {
            Side::Search => &mut self.current.search,
            Side::Replace | Side::Context => &mut self.current.replace,
        };
        text.push_str(line);
        text.push('\n');
        out.push(PatchDelta::Line { hunk: self.begun - 1, side, text: line.to_owned() });
    }

    fn end_block(&mut self, out: &mut Vec<PatchDelta>) {
        out.push(PatchDelta::HunkEnd { hunk: self.begun - 1 });
        self.labelled = false;
        self.hunks.push(mem::take(&mut self.current));
        self.state = State::Outside;
    }

    fn diff_line(&mut self, line: &str, out: &mut Vec<PatchDelta>) {
        if let Some(held) = self.held_old.take() {
            if let Some(DiffHeader::New(_)) = DiffHeader::parse(line) {
                self.end_diff_hunk(out);
                if let Some(DiffHeader::Old(path)) = DiffHeader::parse(&held) {
                    self.old_path = Some(path);
                }
                return self.outside_line(line, out);
            }
            self.diff_content(Side::Search, &held[1..], out);
        }
        match line.as_bytes().first() {
            None => self.blank_run += 1,
            Some(b' ') => self.diff_content(Side::Context, &line[1..], out),
            Some(b'-') if matches!(DiffHeader::parse(line), Some(DiffHeader::Old(_))) => {
                self.held_old = Some(line.to_owned());
            }
            Some(b'-') => self.diff_content(Side::Search, &line[1..], out),
            Some(b'+') => self.diff_content(Side::Replace, &line[1..], out),
            Some(b'\\') => {}
            Some(b'@') if line.starts_with("@@") => {
                self.end_diff_hunk(out);
                if self.begin_diff_hunk(out) {
                    self.state = State::Diff;
                }
            }
            Some(_) => {
                self.end_diff_hunk(out);
                self.outside_line(line, out);
            }
        }
    }

    /// One line of a diff hunk; the empty lines before it were context with their space dropped.
    fn diff_content(&mut self, side: Side, text: &str, out: &mut Vec<PatchDelta>) {
        for _ in 0..mem::take(&mut self.blank_run) {
            self.diff_content(Side::Context, "", out);
        }
        if side != Side::Replace {
            self.current.search.push_str(text);
            self.current.search.push('\n');
        }
        if side != Side::Search {
            self.current.replace.push_str(text);
            self.current.replace.push('\n');
        }
        out.push(PatchDelta::Line { hunk: self.begun - 1, side, text: text.to_owned() });
    }

    fn end_diff_hunk(&mut self, out: &mut Vec<PatchDelta>) {
        self.blank_run = 0;
        out.push(PatchDelta::HunkEnd { hunk: self.begun - 1 });
        self.hunks.push(mem::take(&mut self.current));
        self.state = State::Outside;
    }
}
