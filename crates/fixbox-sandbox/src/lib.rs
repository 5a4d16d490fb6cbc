//! Disposable, hardened Docker workspaces where every command of a fix session runs, driven through
//! the Docker Engine API (bollard) on the local socket or a remote `DOCKER_HOST`.
//!
//! Images are built locally from recipes (`resources/sandbox/`), online from a Dockerfile or offline
//! with debootstrap, and reused by the recipe's hash. This crate owns the one Docker handle; nothing
//! else talks to the Engine.
//!
//! Not for deciding what to run: the fix session does that through the [`Sandbox`] trait.

mod copy;
mod docker_sandbox;
mod error;
mod exec;
mod host;
mod image;
pub mod labels;
mod pool;
mod reaper;
mod recipe;
mod sandbox;
mod secrets;

pub use docker_sandbox::DockerSandbox;
pub use error::SandboxError;
pub use exec::{
    DEFAULT_HARD_TIMEOUT, DEFAULT_OUTPUT_LIMIT, Ending, ExecOutput, ExecRequest, ExecStatus, OutputChunk,
    PartialOutput, RunningExec,
};
pub use host::{DockerVersion, HostAddress, SandboxHost};
pub use image::{BUILD_METHOD_ENV, BuildMethod, ensure_image};
pub use pool::SandboxPool;
pub use reaper::reap_orphans;
pub use recipe::{Recipe, SANDBOX_UID, SANDBOX_USER};
pub use sandbox::{CopyStats, Excludes, FileWrite, Limits, Sandbox, SandboxOptions};
pub use secrets::{is_secret_file, is_withheld, redact_git_config};
