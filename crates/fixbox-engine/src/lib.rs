//! Local model engines — llama.cpp's `llama-server`, Ollama and vLLM: finding the ones installed,
//! installing them, launching one on 127.0.0.1 (or, with an API key, another address) with Fixbox's
//! recommended parameters, supervising it (restarts with backoff, health checks) and stopping it; and
//! the engine-management side of Ollama's and vLLM's HTTP APIs.
//!
//! Not for chatting with a running engine: that is the model client's job.

mod clients;
mod discover;
mod engine;
mod error;
mod event;
mod install;
mod kind;
mod local_ollama;
mod options;
mod port;
mod registry;
mod supervisor;

pub use clients::{ClientError, OllamaClient, OllamaDetails, OllamaModel, OllamaPullProgress, VllmClient, VllmModel};
pub use discover::{
    ENGINES_DIR_ENV, InstalledEngine, Origin, SearchPaths, discover, engines_dir, installed, installed_in,
};
pub use engine::{Engine, LaunchCommand, LaunchSpec, LlamaServer, ModelRef, Ollama, Vllm, engine};
pub use error::EngineError;
pub use event::EngineEvent;
pub use install::{
    AssetPattern, InstallEvent, Installer, LLAMA_SOURCE_VERSION, LlamaSource, Platform, VLLM_VERSION, build_flags,
    llama_release_assets, release_asset_pattern,
};
pub use kind::EngineKind;
pub use local_ollama::{LocalOllama, ollama_url};
pub use options::{EngineOptions, LaunchPlan};
pub use port::{PortChoice, PortHolder, Taken, choose_port, holder_of, is_free};
pub use registry::{EngineState, EngineStatus, Registry, Running, is_alive};
pub use supervisor::{Launcher, RunningEngine, SuperviseOptions, log_tail, start};
