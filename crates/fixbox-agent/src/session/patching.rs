//! The search/replace and diff formats' answers: the patch parsed from one, checked, and applied to
//! its file.

use fixbox_patch::{ApplyOptions, FilePatch, Hunk, ParseError, PatchParser, apply};
use fixbox_sandbox::Sandbox;

use super::Run;
use crate::AgentError;
use crate::event::Event;
use crate::repo::{Repo, file_diff, inside, is_test_file, safe_path};

/// A patch applied to its file: the file's new text, and its text before (`None`: a new file).
pub(super) struct Applied {
    pub(super) path: String,
    pub(super) content: String,
    pub(super) before: Option<String>,
}

/// A patch that could not be used, and what the model is told.
pub(super) struct Rejected {
    pub(super) path: Option<String>,
    pub(super) feedback: String,
    /// Identifies the failure for the stuck-loop check.
    pub(super) fingerprint: String,
}

impl Rejected {
    pub(super) fn new(path: Option<&str>, feedback: impl Into<String>) -> Self {
        let feedback = feedback.into();
        Self { path: path.map(str::to_string), fingerprint: format!("rejected {path:?}: {feedback}"), feedback }
    }
}

impl<S: Sandbox> Run<'_, S> {
    /// The answer's patch applied to its file; or why not.
    pub(super) fn patch(
        &mut self,
        parser: Box<PatchParser>,
        text: &str,
    ) -> Result<Result<Applied, Rejected>, AgentError> {
        let patch = match parser.finish() {
            Ok(patch) => patch,
            // Small models often answer with the whole file instead of an edit: take it as one.
            Err(ParseError::NoPatch) => match whole_file(text, &self.repo) {
                Some(patch) => patch,
                None => return Ok(Err(Rejected::new(None, ParseError::NoPatch.feedback(self.format)))),
            },
            Err(err) => return Ok(Err(Rejected::new(None, err.feedback(self.format)))),
        };
        let path = match self.resolve(&patch) {
            Ok(path) => path,
            Err(rejected) => return Ok(Err(rejected)),
        };
        if let Err(why) = inside(self.repo.root(), &path) {
            return Ok(Err(Rejected::new(Some(&path), format!("{why}: edit the repository's own files."))));
        }
        if is_test_file(&path) && !self.request.allow_test_edits {
            return Ok(Err(Rejected::new(
                Some(&path),
                format!("{path} is a test file, and the tests must not change: fix the code they test."),
            )));
        }
        let before = self.repo.current(&path).map(str::to_string);
        if before.is_none() && patch.hunks.iter().any(|h| !h.search.is_empty()) {
            return Ok(Err(Rejected::new(
                Some(&path),
                format!("There is no file {path}. Use a path from the repository map."),
            )));
        }
        let options = ApplyOptions { fuzzy_threshold: self.request.model.fuzzy_threshold };
        if let [hunk] = patch.hunks.as_slice()
            && before.as_deref() == Some(hunk.replace.as_str())
        {
            return Ok(Err(Rejected::new(
                Some(&path),
                format!(
                    "Your answer repeats {path} without a change. Change the lines that cause the failure, as an edit block."
                ),
            )));
        }
        let applied = match apply(before.as_deref().unwrap_or(""), &patch.hunks, &options) {
            Ok(applied) => applied,
            Err(err) => return Ok(Err(Rejected::new(Some(&path), err.feedback_in(&path, self.format)))),
        };
        let diff = file_diff(&path, before.as_deref(), Some(&applied.content));
        self.log.record(Event::PatchApplied {
            iteration: self.iteration,
            path: path.clone(),
            matches: applied.matches,
            diff,
        })?;
        self.repo.set(&path, applied.content.clone());
        Ok(Ok(Applied { path, content: applied.content, before }))
    }

    /// The repository file a patch is for: the one it names (also by a shorter path, `pages.py` for
    /// `src/pages.py`), or when it names none, the one file its search text is in.
    fn resolve(&self, patch: &FilePatch) -> Result<String, Rejected> {
        // The one file holding the search lines (indentation aside), for a patch that names no file
        // or one that does not exist (a small model may copy a placeholder path).
        let holder = || {
            let search = patch.hunks.iter().map(|h| h.search.as_str()).find(|s| !s.trim().is_empty())?;
            let wanted: Vec<&str> = search.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            let holding: Vec<&str> = self
                .repo
                .paths()
                .filter(|p| {
                    let lines: Vec<&str> = self.repo.current(p).unwrap_or("").lines().map(str::trim).collect();
                    wanted.iter().all(|l| lines.contains(l))
                })
                .collect();
            match holding.as_slice() {
                [one] => Some(one.to_string()),
                _ => None,
            }
        };
        let Some(named) = patch.path.as_deref() else {
            return holder().ok_or_else(|| {
                Rejected::new(
                    None,
                    "Your edit does not name its file: write the file's path on the line before the block.",
                )
            });
        };
        let Some(path) = safe_path(named) else {
            return Err(Rejected::new(
                Some(named),
                format!("{named} is outside the repository: use a path from the repository map."),
            ));
        };
        if self.repo.current(&path).is_some() {
            return Ok(path);
        }
        let suffix = format!("/{path}");
        let longer: Vec<&str> = self.repo.paths().filter(|p| p.ends_with(&suffix)).collect();
        Ok(match longer.as_slice() {
            [one] => one.to_string(),
            _ => holder().unwrap_or(path),
        })
    }
}

/// An answer that is a file's path and then its whole new text in a fence, as an edit replacing the
/// file; `None` unless the path is a file of the repository.
fn whole_file(text: &str, repo: &Repo) -> Option<FilePatch> {
    let lines: Vec<&str> = text.lines().collect();
    let is_fence = |l: &str| l.trim_start().starts_with("```") || l.trim_start().starts_with("~~~");
    let open = lines.iter().position(|l| is_fence(l))?;
    let close = open + 1 + lines[open + 1..].iter().position(|l| is_fence(l))?;
    let named = lines.get(open.checked_sub(1)?)?.trim().trim_matches(|c: char| "*#`'\": ".contains(c));
    let named = named.strip_prefix("File").map_or(named, |rest| rest.trim_start_matches([':', ' ']));
    let path = safe_path(named)?;
    let current = repo.current(&path)?;
    let mut content: String = lines[open + 1..close].iter().map(|l| format!("{l}\n")).collect();
    if !current.ends_with('\n') {
        content.pop();
    }
    Some(FilePatch { path: Some(path), hunks: vec![Hunk { search: current.to_string(), replace: content }] })
}
