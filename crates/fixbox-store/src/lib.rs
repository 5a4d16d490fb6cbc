//! Fixbox's local storage: one SQLite file in the platform data dir holding settings, fix sessions and
//! each session's append-only event log, from which a session can be replayed.
//!
//! The file is opened in WAL mode and migrated to the current schema at [`Store::open`]. Every write is
//! one transaction, so an append that returned survives the process being killed right after.
//!
//! Secrets are the exception: [`Keychain`] keeps them in the OS keychain, never in the database.
//!
//! The API is blocking (rusqlite); async callers run it on `spawn_blocking` or a dedicated thread.

/// Overrides the data directory (tests, CI, portable installs). Here, below every module, as errors
/// name it as well as the paths that read it.
pub const DATA_DIR_ENV: &str = "FIXBOX_DATA_DIR";

mod error;
mod events;
mod migrations;
mod paths;
mod secrets;
mod sessions;
mod settings;
mod store;

pub use error::StoreError;
pub use events::StoredEvent;
pub use paths::{DB_FILE_NAME, data_dir, log_file};
pub use secrets::{KEYCHAIN_SERVICE, Keychain, SecretListing};
pub use sessions::{SessionId, SessionSummary};
pub use store::Store;
