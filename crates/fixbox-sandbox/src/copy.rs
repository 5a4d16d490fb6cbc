//! Directories as tar archives, for moving them into and out of a sandbox with bytes and modes intact.

use std::path::{Path, PathBuf};

use crate::secrets::{is_withheld, redact_git_config};
use crate::{CopyStats, Excludes, FileWrite, SANDBOX_UID, SandboxError};

/// Packs `root` into a tar archive, skipping what its `.gitignore` files exclude (also outside a git
/// repository), directories named in `excludes` and, unless told otherwise, files holding
/// credentials. Symlinks are stored as links, modes as they are.
pub(crate) fn pack(root: &Path, excludes: &Excludes) -> Result<(Vec<u8>, CopyStats), SandboxError> {
    let io_err = |path: &Path, source: std::io::Error| SandboxError::Copy { path: path.display().to_string(), source };
    if !root.is_dir() {
        return Err(io_err(root, std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory")));
    }
    let skip: Vec<String> = excludes.dir_names.clone();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .require_git(false)
        .parents(false)
        .ignore(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |entry| {
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            !(is_dir && skip.iter().any(|name| entry.file_name() == name.as_str()))
        })
        .build();
    let mut archive = tar::Builder::new(Vec::new());
    archive.follow_symlinks(false);
    let mut stats = CopyStats::default();
    for entry in walker {
        let entry = entry.map_err(|e| io_err(root, std::io::Error::other(e.to_string())))?;
        let path = entry.path();
        let Ok(relative) = path.strip_prefix(root) else { continue };
        if relative.as_os_str().is_empty() {
            continue;
        }
        let metadata = std::fs::symlink_metadata(path).map_err(|e| io_err(path, e))?;
        if metadata.is_file() {
            let path_text = relative.to_string_lossy().replace('\\', "/");
            if excludes.withhold_secrets && is_withheld(&path_text, &excludes.shared) {
                stats.withheld += 1;
                continue;
            }
            stats.files += 1;
            stats.bytes += metadata.len();
            if excludes.withhold_secrets && relative == Path::new(".git/config") {
                let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
                let redacted = redact_git_config(&text);
                let mut header = tar::Header::new_gnu();
                header.set_metadata(&metadata);
                header.set_size(redacted.len() as u64);
                archive.append_data(&mut header, relative, redacted.as_bytes()).map_err(|e| io_err(path, e))?;
                continue;
            }
        }
        archive.append_path_with_name(path, relative).map_err(|e| io_err(path, e))?;
    }
    let bytes = archive.into_inner().map_err(|e| io_err(root, e))?;
    Ok((bytes, stats))
}

/// Packs files given in memory, owned by the sandbox's user so it can change them again.
pub(crate) fn pack_files(files: &[FileWrite]) -> Result<Vec<u8>, SandboxError> {
    let mut archive = tar::Builder::new(Vec::new());
    // The sandbox unpacks with `--touch`, so this is only what other readers of the archive see.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for file in files {
        let io_err = |source: std::io::Error| SandboxError::Copy { path: file.path.clone(), source };
        let mut header = tar::Header::new_gnu();
        header.set_size(file.content.len() as u64);
        header.set_mode(if file.executable { 0o755 } else { 0o644 });
        header.set_uid(u64::from(SANDBOX_UID));
        header.set_gid(u64::from(SANDBOX_UID));
        header.set_mtime(now);
        header.set_entry_type(tar::EntryType::Regular);
        // `append_data` refuses absolute paths and `..`, so a file cannot land outside `to`.
        archive.append_data(&mut header, &file.path, file.content.as_slice()).map_err(io_err)?;
    }
    archive.into_inner().map_err(|source| SandboxError::Copy { path: "(files)".into(), source })
}

/// Unpacks an archive made inside the sandbox into `to`, in one pass as it is read, with its modes.
/// The archive is untrusted: each entry is unpacked only inside `to` (the tar crate refuses absolute
/// paths, `..` and writes through links out). Directories get their modes last, so that a read-only one
/// does not refuse the files inside it.
pub(crate) fn unpack(archive: impl std::io::Read, to: &Path) -> Result<CopyStats, SandboxError> {
    let io_err = |source: std::io::Error| SandboxError::Copy { path: to.display().to_string(), source };
    std::fs::create_dir_all(to).map_err(io_err)?;
    let mut stats = CopyStats::default();
    let mut reader = tar::Archive::new(archive);
    reader.set_preserve_permissions(true);
    reader.set_preserve_mtime(true);
    reader.set_overwrite(true);
    let mut directories = Vec::new();
    for entry in reader.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            let path = entry.path().map_err(io_err)?.into_owned();
            let mode = entry.header().mode().map_err(io_err)?;
            directories.push((path, mode));
            continue;
        }
        if kind.is_file() {
            stats.files += 1;
            stats.bytes += entry.header().size().map_err(io_err)?;
        }
        entry.unpack_in(to).map_err(io_err)?;
    }
    // Deepest first, as a directory made read-only would refuse its subdirectories' modes.
    directories.sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
    for (path, mode) in directories {
        let Some(relative) = inside(&path) else { continue };
        let dir = to.join(relative);
        std::fs::create_dir_all(&dir).map_err(io_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode & 0o7777)).map_err(io_err)?;
        }
        #[cfg(not(unix))]
        let _ = mode;
    }
    Ok(stats)
}

/// A tar entry's path as a relative path with no `..`, or `None` for one that would leave the target.
fn inside(path: &Path) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::Normal(name) => relative.push(name),
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    Some(relative)
}

/// The bytes of an archive arriving in chunks from an async task, read as one stream on a blocking
/// thread.
pub(crate) struct ChunkReader {
    chunks: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    current: bytes::Bytes,
}

impl ChunkReader {
    pub(crate) fn new(chunks: tokio::sync::mpsc::Receiver<bytes::Bytes>) -> Self {
        Self { chunks, current: bytes::Bytes::new() }
    }
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder holding `files` (path, content).
    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            std::fs::create_dir_all(dir.path().join(path).parent().unwrap()).unwrap();
            std::fs::write(dir.path().join(path), content).unwrap();
        }
        dir
    }

    #[test]
    fn gitignored_files_and_build_dirs_stay_out_but_dot_git_comes_along() {
        let dir = tree(&[
            (".gitignore", "*.log\nbuild/\n"),
            (".git/HEAD", "ref: refs/heads/main\n"),
            ("src/lib.py", "x = 1\n"),
            ("debug.log", "noise"),
            ("build/out.bin", "artifact"),
            ("target/debug/app", "artifact"),
            ("web/node_modules/left-pad/index.js", "module.exports = 1"),
        ]);
        let root = dir.path();
        let (archive, stats) = pack(root, &Excludes::default()).unwrap();
        let mut names: Vec<String> = tar::Archive::new(archive.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(names, [".git", ".git/HEAD", ".gitignore", "src", "src/lib.py", "web"]);
        assert_eq!(stats.files, 3);
    }

    #[test]
    fn credentials_stay_on_the_host_unless_the_user_lets_them_in() {
        let dir = tree(&[
            (".env", "TOKEN=canary\n"),
            (".env.example", "TOKEN=\n"),
            ("deploy/id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\n"),
            (".git/config", "[remote \"origin\"]\n\turl = https://ci:canary@example.com/r.git\n"),
            ("app.py", "x = 1\n"),
        ]);
        let root = dir.path();
        let files = |excludes: &Excludes| {
            let (archive, stats) = pack(root, excludes).unwrap();
            let mut files = std::collections::BTreeMap::new();
            for entry in tar::Archive::new(archive.as_slice()).entries().unwrap() {
                let mut entry = entry.unwrap();
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
                if entry.header().entry_type().is_file() {
                    files.insert(entry.path().unwrap().display().to_string(), text);
                }
            }
            (files, stats)
        };
        let (kept, stats) = files(&Excludes::default());
        assert_eq!(kept.keys().collect::<Vec<_>>(), [".env.example", ".git/config", "app.py"]);
        assert_eq!(kept[".git/config"], "[remote \"origin\"]\n\turl = https://example.com/r.git\n");
        assert_eq!(stats.withheld, 2);
        let (all, _) = files(&Excludes { withhold_secrets: false, ..Excludes::default() });
        assert_eq!(all.len(), 5);
        assert!(all[".git/config"].contains("ci:canary@"));
    }

    #[test]
    fn unpacking_refuses_paths_outside_the_target() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(4);
        header.set_mode(0o644);
        // `append_data` would refuse this name; write it into the header raw, as a hostile archive would.
        header.as_old_mut().name[..13].copy_from_slice(b"../escaped.tx");
        header.set_cksum();
        builder.append(&header, &b"evil"[..]).unwrap();
        let archive = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("out");
        let _ = unpack(archive.as_slice(), &to);
        assert!(!dir.path().join("escaped.tx").exists());
    }
}
