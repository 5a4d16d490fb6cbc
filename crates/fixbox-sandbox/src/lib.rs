//! Disposable, hardened Docker workspaces where every command of a fix session runs, driven through
//! the Docker Engine API (bollard) on the local socket or a remote `DOCKER_HOST`.
//!
//! This crate owns the one Docker handle; nothing else talks to the Engine.
//!
//! Not for deciding what to run: the session engine does that through the `Sandbox` seam.

mod engine;
mod error;

pub use engine::{DockerEngine, EngineVersion};
pub use error::SandboxError;
