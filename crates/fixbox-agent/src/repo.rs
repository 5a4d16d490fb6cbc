//! The repository as the agent sees it: its text files, their symbols (the repo map a prompt starts
//! with), the files a test failure points at, and the changes made so far.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use similar::TextDiff;

use crate::AgentError;

/// Files larger than this are listed but not read: a prompt could not hold them anyway.
const MAX_FILE_BYTES: u64 = 256 * 1024;
/// The most files read; past it the rest of a huge repository is listed only.
const MAX_FILES_READ: usize = 5_000;

/// Directory names never read (the sandbox does not copy them either).
const SKIPPED_DIRS: &[&str] =
    &[".git", "target", "node_modules", ".venv", "venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".tox"];

#[derive(Debug, Clone)]
struct File {
    original: Option<String>,
    current: Option<String>,
    executable: bool,
}

/// A repository's text files, as they were and as the session changed them. The user's folder is only
/// read: changes live here and in the sandbox.
#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
    files: BTreeMap<String, File>,
}

impl Repo {
    /// Reads `root`'s text files, skipping what `.gitignore` excludes, dependency folders and files
    /// holding credentials.
    pub fn load(root: &Path) -> Result<Self, AgentError> {
        if !root.is_dir() {
            return Err(AgentError::NotARepo { path: root.to_path_buf() });
        }
        let walker = ignore::WalkBuilder::new(root)
            .hidden(false)
            .git_ignore(true)
            .require_git(false)
            .parents(false)
            .ignore(false)
            .sort_by_file_name(|a, b| a.cmp(b))
            .filter_entry(|e| {
                !(e.file_type().is_some_and(|t| t.is_dir()) && SKIPPED_DIRS.iter().any(|d| e.file_name() == *d))
            })
            .build();
        let mut files = BTreeMap::new();
        for entry in walker.flatten() {
            let path = entry.path();
            let Ok(metadata) = entry.metadata() else { continue };
            let Some(relative) = relative_path(root, path) else { continue };
            // Credentials are not copied into the sandbox, and never read into a prompt.
            if !metadata.is_file() || fixbox_sandbox::is_withheld(&relative, &[]) || files.len() >= MAX_FILES_READ {
                continue;
            }
            let content = if metadata.len() <= MAX_FILE_BYTES {
                std::fs::read(path).map_err(|source| AgentError::Read { path: path.to_path_buf(), source })?
            } else {
                Vec::new()
            };
            // Binary files (a NUL in them) are listed as absent text: a patch cannot target them.
            let text = (!content.contains(&0)).then(|| String::from_utf8(content).ok()).flatten();
            files
                .insert(relative, File { original: text.clone(), current: text, executable: is_executable(&metadata) });
        }
        Ok(Self { root: root.to_path_buf(), files })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every file's path, relative, with `/`.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.iter().filter(|(_, f)| f.current.is_some()).map(|(p, _)| p.as_str())
    }

    /// A file's text as the session has it now; `None` when it does not exist (or is not text).
    pub fn current(&self, path: &str) -> Option<&str> {
        self.files.get(path).and_then(|f| f.current.as_deref())
    }

    pub fn is_executable(&self, path: &str) -> bool {
        self.files.get(path).is_some_and(|f| f.executable)
    }

    /// Records a file's new text.
    pub fn set(&mut self, path: &str, content: String) {
        let file =
            self.files.entry(path.to_string()).or_insert(File { original: None, current: None, executable: false });
        file.current = Some(content);
    }

    /// The paths changed so far.
    pub fn changed(&self) -> Vec<&str> {
        self.files.iter().filter(|(_, f)| f.original != f.current).map(|(p, _)| p.as_str()).collect()
    }

    /// The lines of `path` (0-based, in its current text) where the session's changes start, at most
    /// `max`.
    pub fn changed_lines(&self, path: &str, max: usize) -> Vec<usize> {
        let Some(file) = self.files.get(path) else { return Vec::new() };
        let (old, new) = (file.original.as_deref().unwrap_or(""), file.current.as_deref().unwrap_or(""));
        TextDiff::from_lines(old, new)
            .ops()
            .iter()
            .filter(|op| op.tag() != similar::DiffTag::Equal)
            .map(|op| op.new_range().start)
            .take(max)
            .collect()
    }

    /// Every change against the original files, as a unified diff that `git apply` (and `patch -p1`)
    /// accept.
    pub fn diff(&self) -> String {
        self.diff_where(|_| true)
    }

    /// [`Repo::diff`] without the changes to `paths`.
    pub fn diff_except(&self, paths: &[&str]) -> String {
        self.diff_where(|p| !paths.contains(&p))
    }

    /// [`Repo::diff`] of `paths` alone.
    pub fn diff_only(&self, paths: &[&str]) -> String {
        self.diff_where(|p| paths.contains(&p))
    }

    fn diff_where(&self, keep: impl Fn(&str) -> bool) -> String {
        let mut out = String::new();
        for path in self.changed().into_iter().filter(|p| keep(p)) {
            let file = &self.files[path];
            out.push_str(&file_diff(path, file.original.as_deref(), file.current.as_deref()));
        }
        out
    }

    /// A map of the repository for a prompt: each file and the definitions in it, one per line, cut
    /// to `max_chars` (the cut said).
    pub fn map(&self, max_chars: usize) -> String {
        let mut out = String::new();
        for (path, file) in &self.files {
            let mut entry = format!("{path}\n");
            if let Some(text) = &file.current {
                for symbol in symbols(path, text) {
                    let _ = writeln!(entry, "  {symbol}");
                }
            }
            if out.len() + entry.len() > max_chars {
                let _ = writeln!(out, "[... the map is cut here to fit the context ...]");
                break;
            }
            out.push_str(&entry);
        }
        out
    }

    /// Whether a top-level module name is the project's own: a `NAME.py` or a `NAME/` folder anywhere in
    /// it (`src/NAME/` too).
    pub fn has_module(&self, name: &str) -> bool {
        let (file, folder) = (format!("{name}.py"), format!("{name}/"));
        self.paths().any(|p| {
            p == file || p.ends_with(&format!("/{file}")) || p.starts_with(&folder) || p.contains(&format!("/{folder}"))
        })
    }

    /// The files `output` (a test run's) names, in the order it first names them.
    pub fn mentioned_in(&self, output: &str) -> Vec<String> {
        let mut found: Vec<(usize, &str)> =
            self.paths().filter_map(|path| output.find(path).map(|at| (at, path))).collect();
        found.sort();
        found.into_iter().map(|(_, p)| p.to_string()).collect()
    }

    /// The files that define a symbol `text` names (identifiers of 3+ characters), most named first.
    pub fn defining(&self, text: &str) -> Vec<String> {
        let words: std::collections::BTreeSet<&str> =
            text.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| w.len() >= 3).collect();
        let mut scored: Vec<(usize, &str)> = self
            .files
            .iter()
            .filter_map(|(path, f)| {
                let text = f.current.as_deref()?;
                let hits =
                    symbols(path, text).iter().filter(|s| symbol_name(s).is_some_and(|n| words.contains(n))).count();
                (hits > 0).then_some((hits, path.as_str()))
            })
            .collect();
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        scored.into_iter().map(|(_, p)| p.to_string()).collect()
    }
}

/// Whether `path` is source code (by its extension), as opposed to configuration, data or docs: a
/// test run's output names `setup.cfg` in its header, and that is no place to fix a bug.
pub fn is_code(path: &str) -> bool {
    const CODE: &[&str] = &[
        "py", "pyi", "js", "mjs", "cjs", "jsx", "ts", "tsx", "rs", "go", "java", "kt", "rb", "php", "c", "h", "cc",
        "cpp", "hpp", "cs", "swift", "scala",
    ];
    path.rsplit_once('.').is_some_and(|(_, ext)| CODE.contains(&ext))
}

/// Whether `path` is a test file, which a fix must not change.
pub fn is_test_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    path.split('/').any(|part| part == "tests" || part == "test" || part == "__tests__")
        || name.starts_with("test_")
        || name.ends_with("_test.py")
        || name.ends_with("_test.go")
        || name.contains(".test.")
        || name.contains(".spec.")
        || matches!(name, "conftest.py" | "test.py" | "tests.py")
}

/// A path a patch may name: relative, inside the repository, no `..`.
pub fn safe_path(path: &str) -> Option<String> {
    let path = path.trim().trim_start_matches("./");
    let p = Path::new(path);
    if path.is_empty() || p.is_absolute() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(path.replace('\\', "/"))
}

/// Where `path` (a [`safe_path`]) is under `root` on disk, when writing it stays inside `root`: each
/// part of it that exists is a directory, a file, or a link that resolves inside `root`. A repository
/// may hold a link to anywhere (`vendor -> /usr/lib/...`); a patch must not write through it.
pub fn inside(root: &Path, path: &str) -> Result<PathBuf, String> {
    let outside = |why: String| format!("{path} {why}, which leads outside the folder");
    let real_root = root.canonicalize().map_err(|e| format!("{} cannot be read: {e}", root.display()))?;
    let mut at = root.to_path_buf();
    for part in path.split('/') {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(format!("{} cannot be read: {e}", at.display())),
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&at).map_or_else(|_| "?".into(), |t| t.display().to_string());
                let via = format!("goes through the link {} -> {target}", relative_path(root, &at).unwrap_or_default());
                match at.canonicalize() {
                    Ok(real) if real.starts_with(&real_root) => {}
                    _ => return Err(outside(via)),
                }
            }
            Ok(_) => {}
        }
    }
    Ok(root.join(path))
}

fn relative_path(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let parts: Vec<String> = relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(unix)]
fn is_executable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    false
}

/// One file's change as a unified diff with git's `a/` `b/` prefixes.
pub fn file_diff(path: &str, before: Option<&str>, after: Option<&str>) -> String {
    let (old, new) = (before.unwrap_or(""), after.unwrap_or(""));
    let old_name = if before.is_some() { format!("a/{path}") } else { "/dev/null".into() };
    let new_name = if after.is_some() { format!("b/{path}") } else { "/dev/null".into() };
    TextDiff::from_lines(old, new).unified_diff().context_radius(3).header(&old_name, &new_name).to_string()
}

/// The definitions in a file, one line each, indented as nested.
fn symbols(path: &str, text: &str) -> Vec<String> {
    let ext = path.rsplit('.').next().unwrap_or("");
    let starts: &[&str] = match ext {
        "py" => &["def ", "async def ", "class "],
        "rs" => &[
            "fn ",
            "pub fn ",
            "pub(crate) fn ",
            "struct ",
            "pub struct ",
            "enum ",
            "pub enum ",
            "trait ",
            "pub trait ",
            "impl",
        ],
        "js" | "mjs" | "cjs" | "ts" | "tsx" | "jsx" => &[
            "function ",
            "export function ",
            "async function ",
            "export async function ",
            "class ",
            "export class ",
            "export const ",
            "const ",
        ],
        "go" => &["func ", "type "],
        _ => return Vec::new(),
    };
    text.lines()
        .filter_map(|line| {
            let indent = line.len() - line.trim_start().len();
            let trimmed = line.trim_start();
            if indent > 8 || !starts.iter().any(|s| trimmed.starts_with(s)) {
                return None;
            }
            // `const x = 1` is not a definition worth mapping; `const f = (a) =>` is.
            let is_const = trimmed.starts_with("const ") || trimmed.starts_with("export const ");
            if is_const && !trimmed.contains("=>") && !trimmed.contains("function") {
                return None;
            }
            let head = trimmed.split(['{', ':']).next().unwrap_or(trimmed).trim_end();
            let head = if ext == "py" { trimmed.trim_end_matches(':') } else { head };
            Some(format!("{}{}", " ".repeat(indent.min(8) / 2), head.trim_end()))
        })
        .collect()
}

/// `def paginate(items, page)` → `paginate`.
fn symbol_name(symbol: &str) -> Option<&str> {
    let keywords = [
        "pub",
        "pub(crate)",
        "async",
        "export",
        "def",
        "class",
        "fn",
        "function",
        "struct",
        "enum",
        "trait",
        "impl",
        "const",
        "func",
        "type",
    ];
    symbol
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '(' || c == ')'))
        .flat_map(|w| w.split(['(', ')']))
        .find(|w| !w.is_empty() && !keywords.contains(w))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A folder holding `files` (paths with their folders, and text).
    pub(crate) fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    }

    /// A repository on disk with `files`, read.
    pub(crate) fn repo(files: &[(&str, &str)]) -> (tempfile::TempDir, Repo) {
        let dir = folder(files);
        let repo = Repo::load(dir.path()).unwrap();
        (dir, repo)
    }

    const PAGES: &str = "def paginate(items, page, size=10):\n    start = page * size\n    return items[start:start + size]\n\n\nclass Pager:\n    def pages(self):\n        return 1\n";

    #[test]
    fn the_map_lists_files_and_their_definitions() {
        let (_dir, repo) = repo(&[
            ("pages.py", PAGES),
            ("tests/test_pages.py", "def test_one():\n    pass\n"),
            ("README.md", "# x\n"),
        ]);
        let map = repo.map(10_000);
        assert_eq!(
            map,
            "README.md\npages.py\n  def paginate(items, page, size=10)\n  class Pager\n    def pages(self)\ntests/test_pages.py\n  def test_one()\n"
        );
        assert!(repo.map(30).contains("cut here"));
    }

    #[test]
    fn failures_point_at_files_and_symbols() {
        let (_dir, repo) = repo(&[("pages.py", PAGES), ("tests/test_pages.py", "def test_one():\n    pass\n")]);
        let output = "tests/test_pages.py:9: in test_one\n    paginate(x)\npages.py:3: AssertionError";
        assert_eq!(repo.mentioned_in(output), vec!["tests/test_pages.py", "pages.py"]);
        assert_eq!(repo.defining("paginate() returns the wrong page"), vec!["pages.py"]);
    }

    #[test]
    fn changes_diff_against_the_originals() {
        let (dir, mut repo) = repo(&[("pages.py", PAGES)]);
        assert!(repo.diff().is_empty());
        repo.set("pages.py", PAGES.replace("page * size", "(page - 1) * size"));
        repo.set("new.py", "X = 1\n".into());
        let diff = repo.diff();
        assert!(diff.contains("--- a/pages.py\n+++ b/pages.py\n"), "{diff}");
        assert!(diff.contains("-    start = page * size\n+    start = (page - 1) * size\n"), "{diff}");
        assert!(diff.contains("--- /dev/null\n+++ b/new.py\n"), "{diff}");
        // The user's folder is untouched.
        assert_eq!(std::fs::read_to_string(dir.path().join("pages.py")).unwrap(), PAGES);
    }

    #[test]
    fn patch_paths_stay_inside_and_tests_are_recognised() {
        assert_eq!(safe_path("./src/a.py").as_deref(), Some("src/a.py"));
        assert_eq!(safe_path("../etc/passwd"), None);
        assert_eq!(safe_path("/etc/passwd"), None);
        assert!(is_test_file("tests/test_pages.py") && is_test_file("slug.test.js") && is_test_file("x_test.go"));
        assert!(!is_test_file("pages.py") && !is_test_file("src/lib.rs"));
        assert!(is_test_file("test.py"), "python-slugify's tests are one test.py at its root");
    }
}
