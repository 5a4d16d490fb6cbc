use std::path::Path;
use std::time::Duration;

use crate::{ExecRequest, ExecStatus, SandboxError};

/// Where a fix session runs its commands: a disposable workspace with the repo copied in.
///
/// A fix session sees only this trait, so a sandbox on a remote host or in a Kubernetes pod is
/// another implementation, not a rewrite.
pub trait Sandbox: Send + Sync {
    /// A short id for logs and events.
    fn id(&self) -> &str;

    /// Runs a command. Returns when it ends, or at its soft timeout with what it printed so far.
    fn exec(&self, request: ExecRequest) -> impl Future<Output = Result<ExecStatus, SandboxError>> + Send;

    /// Copies the directory `from` (minus `excludes` and what its `.gitignore` files exclude) into
    /// `to` inside the sandbox, keeping bytes and file modes.
    fn copy_in(
        &self,
        from: &Path,
        to: &str,
        excludes: &Excludes,
    ) -> impl Future<Output = Result<CopyStats, SandboxError>> + Send;

    /// Writes `files` (paths relative to `to`, folders created as needed) into `to` inside the sandbox,
    /// replacing files already there.
    fn write_files(&self, to: &str, files: &[FileWrite]) -> impl Future<Output = Result<(), SandboxError>> + Send;

    /// Copies the directory `from` inside the sandbox into `to` on this machine, keeping bytes and modes.
    fn copy_out(&self, from: &str, to: &Path) -> impl Future<Output = Result<CopyStats, SandboxError>> + Send;

    /// Packs `paths` (absolute, inside the sandbox; files or folders) into a tar archive at `to` on
    /// this machine, keeping modes; returns its size in bytes.
    fn save(&self, paths: &[String], to: &Path) -> impl Future<Output = Result<u64, SandboxError>> + Send;

    /// Unpacks an archive [`save`](Self::save) made (at `from` on this machine) where its files were.
    fn restore(&self, from: &Path) -> impl Future<Output = Result<(), SandboxError>> + Send;

    /// Cuts the sandbox off the network for good (one made with
    /// [`keep_network`](SandboxOptions::keep_network), once its setup is done).
    fn cut_network(&self) -> impl Future<Output = Result<(), SandboxError>> + Send;

    /// Removes the sandbox and everything in it.
    fn destroy(self) -> impl Future<Output = Result<(), SandboxError>> + Send;
}

/// What of a repository is not copied into a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excludes {
    /// Directory names skipped wherever they are: build output and installed dependencies, which the
    /// sandbox rebuilds for its own platform.
    pub dir_names: Vec<String>,
    /// Whether files holding credentials stay out and `.git/config` loses its credentials (see
    /// [`is_withheld`](crate::is_withheld)); on by default.
    pub withhold_secrets: bool,
    /// Patterns of files that go in although their names look like credentials (the user's say).
    pub shared: Vec<String>,
}

impl Default for Excludes {
    fn default() -> Self {
        let names = ["target", "node_modules", ".venv", "venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".tox"];
        Self { dir_names: names.into_iter().map(String::from).collect(), withhold_secrets: true, shared: Vec::new() }
    }
}

/// A file to write into a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWrite {
    /// Relative, with `/`.
    pub path: String,
    pub content: Vec<u8>,
    pub executable: bool,
}

/// What a copy moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CopyStats {
    pub files: u64,
    pub bytes: u64,
    /// Files left out because they hold credentials.
    pub withheld: u64,
}

/// Resource limits of one sandbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub memory_bytes: u64,
    /// CPUs, fractional allowed.
    pub cpus: f64,
    /// Processes and threads.
    pub pids: i64,
    /// Size of the `/workspace` tmpfs.
    pub workspace_bytes: u64,
    /// Size of the `/tmp` tmpfs.
    pub tmp_bytes: u64,
}

impl Limits {
    /// `memory_bytes` of memory, its disks sized from it: `/workspace` half and `/tmp` a quarter. Their
    /// files are memory too, so together they stay below the limit: a full disk ends as "No space left
    /// on device", which the tests report, not as an out-of-memory kill.
    pub fn with_memory(memory_bytes: u64) -> Self {
        Self { memory_bytes, cpus: 2.0, pids: 512, workspace_bytes: memory_bytes / 2, tmp_bytes: memory_bytes / 4 }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::with_memory(2 << 30)
    }
}

/// How to make a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The image tag (see [`ensure_image`](crate::ensure_image)).
    pub image: String,
    pub limits: Limits,
    /// An alternative OCI runtime, e.g. `runsc` (gVisor); it must be installed in the Engine.
    pub runtime: Option<String>,
    /// Commands run with network access right after start (installing dependencies); the network is
    /// cut before the sandbox is handed over.
    pub setup: Vec<ExecRequest>,
    /// Hand the sandbox over with its network, for a setup that needs the repository copied in first;
    /// the caller cuts it with [`Sandbox::cut_network`].
    pub keep_network: bool,
    /// How long creating and starting the container may take.
    pub start_timeout: Duration,
}

impl SandboxOptions {
    /// Whether the sandbox starts on the network (for its setup).
    pub fn has_network(&self) -> bool {
        !self.setup.is_empty() || self.keep_network
    }

    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            limits: Limits::default(),
            runtime: None,
            setup: Vec::new(),
            keep_network: false,
            start_timeout: Duration::from_secs(60),
        }
    }
}
