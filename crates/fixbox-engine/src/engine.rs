//! The `Engine` trait and its three engines: how each is installed, what command serves a model with
//! Fixbox's recommended parameters, and where it says it is ready. Supervision is the same for all
//! (see [`crate::supervisor`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use fixbox_secret::Secret;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::install::{InstallEvent, Installer};
use crate::{EngineError, EngineKind};

/// What model to serve: a GGUF file (llama-server, vLLM) or a name the engine resolves (Ollama, vLLM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    File(PathBuf),
    Named(String),
}

/// How to launch an engine. [`LaunchSpec::new`] gives Fixbox's defaults for a model.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchSpec {
    pub model: ModelRef,
    /// The model name clients use (`--alias`, `--served-model-name`).
    pub served_name: String,
    pub host: IpAddr,
    pub port: u16,
    /// Required for any `host` other than loopback.
    pub api_key: Option<Secret>,
    pub context: u32,
    /// Layers on the GPU; 0 runs on the CPU.
    pub gpu_layers: u32,
    /// Layers whose mixture-of-experts weights stay in system memory (llama-server `--n-cpu-moe`).
    pub expert_layers_in_ram: u32,
    /// The KV cache's element type (llama-server `--cache-type-k/v`).
    pub kv_cache: fixbox_hardware::fit::KvType,
    /// Requests served at once (llama-server slots, vLLM `--max-num-seqs`, `OLLAMA_NUM_PARALLEL`).
    pub parallel: u32,
    /// CPU threads; `None` lets the engine decide.
    pub threads: Option<u32>,
    /// vLLM: the share of VRAM it may take.
    pub gpu_memory_utilization: f32,
    /// Ollama: how long a model stays loaded after its last request (`OLLAMA_KEEP_ALIVE`).
    pub keep_alive: String,
    /// Ollama: where it keeps models (`OLLAMA_MODELS`).
    pub models_dir: Option<PathBuf>,
    /// llama-server: guess the next tokens from what the context already holds and check them in one
    /// batch (speculative decoding by n-gram lookup). The answer is the same but for rounding (a
    /// batch of drafted tokens is checked in one step); one that copies code from the prompt, as an
    /// edit does, comes faster.
    pub ngram_drafts: bool,
}

impl LaunchSpec {
    /// Loopback, one slot, the engine's default port, CPU only; callers set context and GPU layers
    /// from the fit calculator.
    pub fn new(kind: EngineKind, model: ModelRef, served_name: impl Into<String>, context: u32) -> Self {
        Self {
            model,
            served_name: served_name.into(),
            host: IpAddr::from([127, 0, 0, 1]),
            port: kind.default_port(),
            api_key: None,
            context,
            gpu_layers: 0,
            expert_layers_in_ram: 0,
            kv_cache: fixbox_hardware::fit::KvType::F16,
            parallel: 1,
            threads: None,
            gpu_memory_utilization: 0.9,
            keep_alive: "30m".into(),
            models_dir: None,
            ngram_drafts: true,
        }
    }

    /// Gives an engine that takes API keys a fresh one, unless it has one. Its clients read it from
    /// the registry; a web page that rebinds its own name to 127.0.0.1 cannot, so it is refused. Ollama
    /// takes no keys and stays open to this machine.
    pub fn lock_to_clients(&mut self, kind: EngineKind) {
        if kind != EngineKind::Ollama && self.api_key.is_none() {
            self.api_key = Some(Secret::generate());
        }
    }

    /// Refuses a non-loopback address without an API key.
    pub fn check(&self, kind: EngineKind) -> Result<(), EngineError> {
        if !self.host.is_loopback() && self.api_key.is_none() {
            return Err(EngineError::NeedsApiKey { host: self.host });
        }
        if !self.host.is_loopback() && kind == EngineKind::Ollama {
            return Err(EngineError::NoApiKeySupport { kind });
        }
        Ok(())
    }

    pub fn model_file(&self, kind: EngineKind) -> Result<&Path, EngineError> {
        match &self.model {
            ModelRef::File(path) => Ok(path),
            ModelRef::Named(name) => Err(EngineError::NeedsModelFile { kind, name: name.clone() }),
        }
    }
}

/// A program, its arguments and the environment it adds.
#[derive(Clone, PartialEq, Eq)]
pub struct LaunchCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl std::fmt::Debug for LaunchCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<_> = self
            .env
            .iter()
            .map(|(k, v)| if k.contains("KEY") { format!("{k}=***") } else { format!("{k}={v}") })
            .collect();
        f.debug_struct("LaunchCommand")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &env)
            .finish()
    }
}

/// One kind of local engine.
pub trait Engine: std::fmt::Debug + Send + Sync {
    fn kind(&self) -> EngineKind;

    /// Puts the engine's executable in place (or finds it there) and returns its path.
    fn install<'a>(
        &'a self,
        installer: &'a Installer,
        events: &'a mpsc::UnboundedSender<InstallEvent>,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<PathBuf, EngineError>>;

    /// The command that serves `spec` with the executable at `binary`.
    fn command(&self, binary: &Path, spec: &LaunchSpec) -> Result<LaunchCommand, EngineError>;

    /// The path that answers 200 once the model is loaded.
    fn health_path(&self) -> &'static str;
}

/// The engine of `kind`.
pub fn engine(kind: EngineKind) -> Box<dyn Engine> {
    match kind {
        EngineKind::LlamaServer => Box::new(LlamaServer),
        EngineKind::Ollama => Box::new(Ollama),
        EngineKind::Vllm => Box::new(Vllm),
    }
}

/// llama.cpp's `llama-server`.
#[derive(Debug, Clone, Copy)]
pub struct LlamaServer;

/// Tokens of a cached prompt prefix llama-server may reuse by shifting the KV cache.
const CACHE_REUSE: u32 = 256;

/// llama-server keeps the KV states of earlier prompts in host memory and resumes a request from the
/// one that shares most of it. It looks there only when a request shares less than this share of its
/// tokens with what its slot holds; by default (0.1) a prompt that shares no more than the system
/// prompt and the issue with the last one stays in the slot, and one that goes back to a region of
/// code asked about two requests ago is computed again from the issue on. At 0.99 every request that
/// is not nearly the slot's own is matched against the cache too: a copy of the slot's state (tens of
/// MB, milliseconds) for seconds of prefill on a CPU.
const SLOT_SIMILARITY: &str = "0.99";

/// The host-memory prompt cache's size, MiB (llama-server's default is 8192, on top of what the fit
/// calculator plans for): about 70,000 tokens of a 1.5B model's KV, 35,000 of a 7B's.
const PROMPT_CACHE_MIB: u32 = 2048;

/// n-gram drafts ([`LaunchSpec::ngram_drafts`]): the last 3 tokens looked up in the context, and the
/// 16 that followed them there drafted. A short key finds the code an edit copies as soon as it
/// starts a line; a short draft wastes little where the answer departs from it. `--bench drafts`
/// measures the gain.
const NGRAM_DRAFT: [&str; 6] =
    ["--spec-type", "ngram-simple", "--spec-ngram-simple-size-n", "3", "--spec-ngram-simple-size-m", "16"];

impl Engine for LlamaServer {
    fn kind(&self) -> EngineKind {
        EngineKind::LlamaServer
    }

    fn install<'a>(
        &'a self,
        installer: &'a Installer,
        events: &'a mpsc::UnboundedSender<InstallEvent>,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<PathBuf, EngineError>> {
        Box::pin(installer.install_llama_server(events, cancel))
    }

    fn command(&self, binary: &Path, spec: &LaunchSpec) -> Result<LaunchCommand, EngineError> {
        let model = spec.model_file(self.kind())?;
        let mut args = vec![
            "--model".into(),
            model.display().to_string(),
            "--alias".into(),
            spec.served_name.clone(),
            "--host".into(),
            spec.host.to_string(),
            "--port".into(),
            spec.port.to_string(),
            "--ctx-size".into(),
            // Each slot gets ctx/parallel tokens: give every slot the whole context.
            (spec.context * spec.parallel.max(1)).to_string(),
            "--n-gpu-layers".into(),
            spec.gpu_layers.to_string(),
            "--parallel".into(),
            spec.parallel.max(1).to_string(),
            "--cache-reuse".into(),
            CACHE_REUSE.to_string(),
            "--slot-prompt-similarity".into(),
            SLOT_SIMILARITY.into(),
            "--cache-ram".into(),
            PROMPT_CACHE_MIB.to_string(),
            "--metrics".into(),
            "--slots".into(),
        ];
        if let Some(threads) = spec.threads {
            args.extend(["--threads".into(), threads.to_string()]);
        }
        if spec.expert_layers_in_ram > 0 {
            args.extend(["--n-cpu-moe".into(), spec.expert_layers_in_ram.to_string()]);
        }
        let kv = match spec.kv_cache {
            fixbox_hardware::fit::KvType::F16 => None,
            fixbox_hardware::fit::KvType::Q8_0 => Some("q8_0"),
            fixbox_hardware::fit::KvType::Q4_0 => Some("q4_0"),
        };
        if let Some(kv) = kv {
            // A quantized V cache needs flash attention.
            args.extend(["--cache-type-k", kv, "--cache-type-v", kv, "--flash-attn", "on"].map(String::from));
        }
        if spec.ngram_drafts {
            args.extend(NGRAM_DRAFT.map(String::from));
        }
        if spec.gpu_layers == 0 {
            // On the CPU llama.cpp repacks most weights for its SIMD kernels; from a memory map it would
            // keep the mapped originals resident too (1.1 GB + 0.6 GB for Qwen2.5-Coder-1.5B Q4_K_M).
            // Read into memory, each weight is held once, as the fit calculator counts it.
            args.extend(["--load-mode".into(), "none".into()]);
        }
        let env = spec.api_key.iter().map(|key| ("LLAMA_API_KEY".to_string(), key.expose().to_string())).collect();
        Ok(LaunchCommand { program: binary.into(), args, env })
    }

    fn health_path(&self) -> &'static str {
        "/health"
    }
}

/// Ollama (`ollama serve`), configured through its environment.
#[derive(Debug, Clone, Copy)]
pub struct Ollama;

impl Engine for Ollama {
    fn kind(&self) -> EngineKind {
        EngineKind::Ollama
    }

    fn install<'a>(
        &'a self,
        installer: &'a Installer,
        events: &'a mpsc::UnboundedSender<InstallEvent>,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<PathBuf, EngineError>> {
        Box::pin(installer.install_ollama(events, cancel))
    }

    fn command(&self, binary: &Path, spec: &LaunchSpec) -> Result<LaunchCommand, EngineError> {
        let mut env = vec![
            ("OLLAMA_HOST".to_string(), format!("{}:{}", spec.host, spec.port)),
            ("OLLAMA_KEEP_ALIVE".to_string(), spec.keep_alive.clone()),
            ("OLLAMA_NUM_PARALLEL".to_string(), spec.parallel.max(1).to_string()),
            ("OLLAMA_CONTEXT_LENGTH".to_string(), spec.context.to_string()),
        ];
        if let Some(dir) = &spec.models_dir {
            env.push(("OLLAMA_MODELS".to_string(), dir.display().to_string()));
        }
        Ok(LaunchCommand { program: binary.into(), args: vec!["serve".into()], env })
    }

    fn health_path(&self) -> &'static str {
        "/"
    }
}

/// vLLM's OpenAI-compatible server (`vllm serve`), Linux with CUDA.
#[derive(Debug, Clone, Copy)]
pub struct Vllm;

impl Engine for Vllm {
    fn kind(&self) -> EngineKind {
        EngineKind::Vllm
    }

    fn install<'a>(
        &'a self,
        installer: &'a Installer,
        events: &'a mpsc::UnboundedSender<InstallEvent>,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<PathBuf, EngineError>> {
        Box::pin(installer.install_vllm(events, cancel))
    }

    fn command(&self, binary: &Path, spec: &LaunchSpec) -> Result<LaunchCommand, EngineError> {
        let model = match &spec.model {
            ModelRef::File(path) => path.display().to_string(),
            ModelRef::Named(name) => name.clone(),
        };
        let args = vec![
            "serve".into(),
            model,
            "--served-model-name".into(),
            spec.served_name.clone(),
            "--host".into(),
            spec.host.to_string(),
            "--port".into(),
            spec.port.to_string(),
            "--max-model-len".into(),
            spec.context.to_string(),
            "--max-num-seqs".into(),
            spec.parallel.max(1).to_string(),
            "--gpu-memory-utilization".into(),
            format!("{:.2}", spec.gpu_memory_utilization),
            "--enable-prefix-caching".into(),
        ];
        let env = spec.api_key.iter().map(|key| ("VLLM_API_KEY".to_string(), key.expose().to_string())).collect();
        Ok(LaunchCommand { program: binary.into(), args, env })
    }

    fn health_path(&self) -> &'static str {
        "/health"
    }
}
