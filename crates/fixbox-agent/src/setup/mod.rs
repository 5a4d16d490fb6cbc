//! What a front end does before a session runs, the same way from the CLI and the desktop app: which
//! models answer (the routes), and a hardened sandbox with the image the repository's tests need.

mod routes;
mod sandbox;

pub use routes::Routes;
pub use sandbox::{RUNTIME_ENV, Sandboxed, WarmPools, sandbox};
