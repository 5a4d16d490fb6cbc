//! Local model engines — llama.cpp's `llama-server`, Ollama and vLLM: finding the ones installed,
//! and (as it grows) installing, launching on 127.0.0.1, supervising and stopping them.
//!
//! Not for talking to a running engine: that is the model client's job.

mod discover;

pub use discover::{ENGINES_DIR_ENV, EngineKind, InstalledEngine, Origin, SearchPaths, discover, engines_dir};
