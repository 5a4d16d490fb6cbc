//! Labels on every container Fixbox creates, so that it can find its own and remove leftovers.

/// Present (value `1`) on every Fixbox sandbox container.
pub const SANDBOX: &str = "dev.fixbox.sandbox";
/// The process id of the Fixbox process that owns the container.
pub const OWNER_PID: &str = "dev.fixbox.owner-pid";
/// The host that process runs on (a remote Engine is shared by several machines).
pub const OWNER_HOST: &str = "dev.fixbox.owner-host";
/// The recipe image the container runs.
pub const IMAGE: &str = "dev.fixbox.image";
