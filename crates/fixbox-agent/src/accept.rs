//! Accepting a session's result: writing its diff into the folder the session was made from. The
//! session ran on a copy, so the folder may have changed since; every hunk must then still match
//! exactly, or nothing is written.

use std::path::Path;

use fixbox_patch::{ApplyOptions, EditFormat, MatchKind, PatchParser, apply};

use crate::AgentError;
use crate::repo::{inside, safe_path};

/// Applies `diff` (a session's final, `git apply`-able diff) to the files under `folder`, all or
/// nothing: every file is checked first, then each is replaced in one rename. Returns the paths written.
pub fn accept(folder: &Path, diff: &str) -> Result<Vec<String>, AgentError> {
    let refuse = |path: &str, why: &str| {
        AgentError::Config(format!(
            "{path} {why} since the session started, so the fix was not written to {}: export the patch and \
             apply it by hand, or run the session again",
            folder.display()
        ))
    };
    let mut planned = Vec::new();
    for section in file_sections(diff) {
        let mut parser = PatchParser::new(EditFormat::UnifiedDiff);
        parser.push(section);
        let patch =
            parser.finish().map_err(|e| AgentError::Config(format!("the session's diff is unreadable: {e}")))?;
        let named = patch.path.as_deref().unwrap_or_default();
        let path = safe_path(named)
            .ok_or_else(|| AgentError::Config(format!("the session's diff names {named:?}, outside the folder")))?;
        let file = inside(folder, &path).map_err(|why| {
            AgentError::Config(format!("{why}: the fix was not written; export the patch and apply it by hand"))
        })?;
        let creates = section.starts_with("--- /dev/null");
        let current = match std::fs::read_to_string(&file) {
            Ok(_) if creates => return Err(refuse(&path, "was created")),
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && creates => String::new(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(refuse(&path, "was deleted")),
            Err(source) => return Err(AgentError::Read { path: file, source }),
        };
        let exact = ApplyOptions { fuzzy_threshold: 1.0 };
        let applied = apply(&current, &patch.hunks, &exact).map_err(|_| refuse(&path, "was changed"))?;
        if applied.matches.iter().any(|m| m.kind != MatchKind::Exact) {
            return Err(refuse(&path, "was changed"));
        }
        planned.push((path, file, applied.content));
    }
    for (_, file, content) in &planned {
        write_replacing(file, content).map_err(|source| AgentError::Read { path: file.clone(), source })?;
    }
    Ok(planned.into_iter().map(|(path, _, _)| path).collect())
}

/// The diff cut at each file's `---` header.
fn file_sections(diff: &str) -> Vec<&str> {
    let mut starts = Vec::new();
    let mut offset = 0;
    let mut lines = diff.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("--- ") && lines.peek().is_some_and(|next| next.starts_with("+++ ")) {
            starts.push(offset);
        }
        offset += line.len();
    }
    starts.iter().enumerate().map(|(i, &from)| &diff[from..starts.get(i + 1).copied().unwrap_or(diff.len())]).collect()
}

/// Writes `content` next to `file`, then renames it over `file` (keeping its permissions).
fn write_replacing(file: &Path, content: &str) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension("fixbox-accept.tmp");
    std::fs::write(&tmp, content)?;
    if let Ok(metadata) = std::fs::metadata(file) {
        std::fs::set_permissions(&tmp, metadata.permissions())?;
    }
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::file_diff;
    use crate::repo::tests::folder;

    const PAGES: &str = "def a():\n    return 1\n\n\ndef b():\n    return list(range(1, n))\n";
    const FIXED: &str = "def a():\n    return 1\n\n\ndef b():\n    return list(range(1, n + 1))\n";

    #[test]
    fn a_diff_of_changed_and_new_files_is_written() {
        let dir = folder(&[("src/pages.py", PAGES)]);
        let diff = file_diff("src/pages.py", Some(PAGES), Some(FIXED)) + &file_diff("new.py", None, Some("x = 1\n"));
        assert_eq!(accept(dir.path(), &diff).unwrap(), vec!["src/pages.py", "new.py"]);
        assert_eq!(std::fs::read_to_string(dir.path().join("src/pages.py")).unwrap(), FIXED);
        assert_eq!(std::fs::read_to_string(dir.path().join("new.py")).unwrap(), "x = 1\n");
    }

    #[test]
    fn a_folder_changed_since_is_left_untouched() {
        let edited = PAGES.replace("range(1, n)", "range(0, n)");
        let dir = folder(&[("a.py", "x = 1\n"), ("pages.py", &edited)]);
        let diff =
            file_diff("a.py", Some("x = 1\n"), Some("x = 2\n")) + &file_diff("pages.py", Some(PAGES), Some(FIXED));
        let err = accept(dir.path(), &diff).unwrap_err().to_string();
        assert!(err.starts_with("pages.py was changed since the session started"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.path().join("a.py")).unwrap(), "x = 1\n", "nothing is written");
        std::fs::remove_file(dir.path().join("pages.py")).unwrap();
        assert!(accept(dir.path(), &diff).unwrap_err().to_string().contains("pages.py was deleted"));
    }

    #[test]
    fn a_diff_that_names_a_path_outside_is_refused() {
        let dir = folder(&[]);
        let diff = file_diff("../evil.py", None, Some("x\n"));
        assert!(accept(dir.path(), &diff).unwrap_err().to_string().contains("outside the folder"));
    }

    #[cfg(unix)]
    #[test]
    fn a_diff_through_a_link_out_of_the_folder_writes_nothing() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("kept.py"), PAGES).unwrap();
        let dir = folder(&[("a.py", "x = 1\n")]);
        std::os::unix::fs::symlink(outside.path(), dir.path().join("vendor")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("kept.py"), dir.path().join("pages.py")).unwrap();
        for diff in [
            file_diff("vendor/escaped.py", None, Some("x\n")),
            file_diff("vendor/kept.py", Some(PAGES), Some(FIXED)),
            file_diff("pages.py", Some(PAGES), Some(FIXED)),
        ] {
            let diff = file_diff("a.py", Some("x = 1\n"), Some("x = 2\n")) + &diff;
            let err = accept(dir.path(), &diff).unwrap_err().to_string();
            assert!(err.contains("leads outside the folder"), "{err}");
        }
        assert!(!outside.path().join("escaped.py").exists());
        assert_eq!(std::fs::read_to_string(outside.path().join("kept.py")).unwrap(), PAGES);
        assert_eq!(std::fs::read_to_string(dir.path().join("a.py")).unwrap(), "x = 1\n", "nothing is written");

        // A link that stays inside the folder is followed.
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("src"), dir.path().join("lib")).unwrap();
        assert_eq!(accept(dir.path(), &file_diff("lib/new.py", None, Some("y\n"))).unwrap(), vec!["lib/new.py"]);
        assert_eq!(std::fs::read_to_string(dir.path().join("src/new.py")).unwrap(), "y\n");
    }

    #[test]
    fn an_empty_diff_writes_nothing() {
        assert_eq!(accept(folder(&[]).path(), "").unwrap(), Vec::<String>::new());
    }
}
