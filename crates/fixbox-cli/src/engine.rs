//! `fixbox engine install|start|stop|status|logs`.
//!
//! `start` runs the supervisor in the background: it launches itself again with `--foreground`, in its
//! own session, and waits until that says the engine is ready (or why it is not). The running supervisor
//! keeps `<data dir>/engines/<engine>.json` up to date; `stop`, `status` and `logs` read it.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "printing is what a command does")]

use std::io::{Read as _, Seek as _, Write as _};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use fixbox_engine::{
    EngineKind, EngineOptions, InstallEvent, Installer, LaunchPlan, LaunchSpec, LlamaSource, ModelRef, SuperviseOptions,
};
use fixbox_hardware::fit::KvType;
use fixbox_models::{Catalog, Downloader, RetryPolicy};
use fixbox_secret::Secret;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use crate::models::{cancel_on_ctrl_c, say};

#[derive(Debug, clap::Subcommand)]
pub enum EngineCommand {
    /// Install an engine (llama-server: the prebuilt release, or built from source).
    Install {
        #[arg(default_value = "llama-server")]
        engine: EngineKind,
        /// llama-server only: auto, prebuilt or source.
        #[arg(long, default_value = "auto")]
        from: From,
    },
    /// Start an engine serving a model, supervised in the background.
    Start(StartArgs),
    /// Stop a running engine.
    Stop {
        #[arg(default_value = "llama-server")]
        engine: EngineKind,
    },
    /// What runs, where, and whether it answers.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The engine's log.
    Logs {
        #[arg(default_value = "llama-server")]
        engine: EngineKind,
        /// How many lines from the end.
        #[arg(short = 'n', long, default_value_t = 40)]
        lines: usize,
        /// Keep printing what is appended.
        #[arg(short, long)]
        follow: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum From {
    Auto,
    Prebuilt,
    Source,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    #[arg(long, default_value = "llama-server")]
    engine: EngineKind,
    /// A model in `fixbox models list` (llama-server), or the engine's own model name (Ollama, vLLM).
    #[arg(long)]
    model: String,
    #[arg(long)]
    quant: Option<String>,
    /// Default: the engine's usual port, or the next free one.
    #[arg(long)]
    port: Option<u16>,
    /// Anything but loopback makes the engine require an API key (kept in the keychain).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Context length (default: as saved in the app's engine settings, else the catalog's recommendation).
    #[arg(long)]
    ctx: Option<u32>,
    /// Layers on the GPU (default: as saved, else as many as fit on this machine's GPU; 0: the CPU).
    #[arg(long)]
    gpu_layers: Option<u32>,
    /// The KV cache's type: f16, q8_0 or q4_0 (default: as saved, else f16, or q8_0 where only that puts
    /// the whole model on the GPU).
    #[arg(long, value_parser = parse_kv)]
    kv_cache: Option<KvType>,
    #[arg(long, default_value_t = 1)]
    parallel: u32,
    /// CPU threads (default: as saved, else the engine decides).
    #[arg(long)]
    threads: Option<u32>,
    /// llama-server: answer without n-gram drafts (speculative decoding by lookup in the context, on
    /// by default: the same answers, an edit that copies code faster).
    #[arg(long)]
    no_ngram_drafts: bool,
    /// Run the supervisor in this process instead of the background.
    #[arg(long)]
    foreground: bool,
}

use fixbox_engine::{EngineState, EngineStatus, is_alive as alive};

impl EngineCommand {
    /// Whether this is an engine's supervisor (`start --foreground`), whose stderr is its log file.
    pub fn is_supervisor(&self) -> bool {
        matches!(self, Self::Start(args) if args.foreground)
    }
}

/// The state files of the engines `fixbox engine start` supervises, in the data folder.
fn registry() -> anyhow::Result<fixbox_engine::Registry> {
    Ok(fixbox_engine::Registry::new(fixbox_store::data_dir()?))
}

fn log_path(kind: EngineKind) -> anyhow::Result<PathBuf> {
    Ok(registry()?.log_path(kind))
}

fn read_state(kind: EngineKind) -> anyhow::Result<Option<EngineState>> {
    let registry = registry()?;
    registry.read(kind).with_context(|| format!("cannot read {}", registry.state_path(kind).display()))
}

pub async fn run(command: EngineCommand) -> anyhow::Result<ExitCode> {
    match command {
        EngineCommand::Install { engine, from } => install(engine, from).await.map(|path| {
            println!("{engine} is at {}", path.display());
            ExitCode::SUCCESS
        }),
        EngineCommand::Start(args) if args.foreground => supervise(args).await,
        EngineCommand::Start(args) => start_background(args).await,
        EngineCommand::Stop { engine } => stop(engine).await,
        EngineCommand::Status { json } => status(json).await,
        EngineCommand::Logs { engine, lines, follow } => logs(engine, lines, follow).await,
    }
}

async fn install(kind: EngineKind, from: From) -> anyhow::Result<PathBuf> {
    let dir =
        fixbox_engine::engines_dir().context("no cache dir for engines on this system; set FIXBOX_ENGINES_DIR")?;
    let mut installer = Installer::new(dir, Downloader::new(RetryPolicy::default())?);
    installer.llama_source = match from {
        From::Auto => LlamaSource::Auto,
        From::Prebuilt => LlamaSource::Prebuilt,
        From::Source => LlamaSource::Source,
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = cancel_on_ctrl_c();
    let render = tokio::spawn(async move {
        let bar = ProgressBar::new(100);
        while let Some(event) = rx.recv().await {
            match event {
                InstallEvent::Download(event) => crate::models::show(&bar, &event),
                InstallEvent::Note(note) => say(&bar, note),
                InstallEvent::Extracting => say(&bar, "unpacking"),
                InstallEvent::Configuring { .. } => {
                    bar.set_style(
                        ProgressStyle::with_template("building {bar:40} {pos}% ({elapsed})")
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    bar.set_length(100);
                    bar.set_position(0);
                    say(&bar, "configuring the build (this takes several minutes)");
                }
                InstallEvent::Building { percent } => {
                    bar.set_position(percent.into());
                    if bar.is_hidden() && percent % 10 == 0 {
                        say(&bar, format!("building: {percent}%"));
                    }
                }
                InstallEvent::Cached { path } => say(&bar, format!("reusing {}", path.display())),
                InstallEvent::Installed { .. } => {}
            }
        }
        bar.finish_and_clear();
    });
    let result = fixbox_engine::engine(kind).install(&installer, &tx, &cancel).await;
    drop(tx);
    let _ = render.await;
    Ok(result?)
}

#[cfg(windows)]
const DETACHED_PROCESS: u32 = 0x0000_0008;
#[cfg(windows)]
const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;

async fn start_background(args: StartArgs) -> anyhow::Result<ExitCode> {
    for line in registry()?.sweep_orphans() {
        eprintln!("{line}");
    }
    if let Some(state) = read_state(args.engine)?
        && alive(state.supervisor_pid)
    {
        bail!(
            "{} is already running ({}, pid {}); `fixbox engine stop {}` first",
            args.engine,
            state.url.unwrap_or_default(),
            state.supervisor_pid,
            args.engine
        );
    }
    // Fail here, in the terminal, for what can be checked before launching.
    fixbox_engine::installed(args.engine).await?;
    let (model, context) = model_of(&args)?;
    if let Some(plan) = launch_plan(&args, &model, context)? {
        println!("placing the model: {}", plan.why);
    }
    let log = log_path(args.engine)?;
    let supervisor_log = log.with_extension("supervisor.log");
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let out = std::fs::OpenOptions::new().create(true).append(true).open(&supervisor_log)?;
    let err = out.try_clone()?;
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command.args(std::env::args_os().skip(1)).arg("--foreground");
    command.stdin(Stdio::null()).stdout(out).stderr(err);
    // Its own process group (Unix) or detached from this console (Windows): closing the terminal does
    // not stop the engine; `fixbox engine stop` does.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    #[cfg(windows)]
    std::os::windows::process::CommandExt::creation_flags(&mut command, DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP);
    let child = command.spawn().context("cannot start the engine's supervisor")?;
    let pid = child.id();
    println!("starting {} (supervisor pid {pid}, log {})", args.engine, log.display());
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message("loading the model");
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let state = read_state(args.engine)?.filter(|s| s.supervisor_pid == pid);
        match state {
            Some(state) if state.status == EngineStatus::Ready => {
                bar.finish_and_clear();
                println!("{} is ready at {} serving {}", args.engine, state.url.unwrap_or_default(), state.model);
                if let Some(message) = state.message {
                    println!("{message}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            Some(state) if state.status == EngineStatus::Failed => {
                bar.finish_and_clear();
                bail!("{}", state.message.unwrap_or_else(|| "the engine did not start".into()));
            }
            _ if !alive(pid) => {
                bar.finish_and_clear();
                let tail = fixbox_engine::log_tail(&supervisor_log);
                bail!("the supervisor exited; its log {}:\n{tail}", supervisor_log.display());
            }
            _ => {}
        }
    }
}

/// The model to serve and its default context.
fn model_of(args: &StartArgs) -> anyhow::Result<(ModelRef, u32)> {
    let catalog = Catalog::embedded()?;
    let context = catalog.model(&args.model).map(|m| m.context_recommended).unwrap_or(8192);
    if args.engine != EngineKind::LlamaServer {
        return Ok((ModelRef::Named(args.model.clone()), context));
    }
    let installed = crate::models::store()?.find(&args.model, args.quant.as_deref())?.ok_or_else(|| {
        anyhow::anyhow!("{} is not on this machine; `fixbox models pull {}` first", args.model, args.model)
    })?;
    Ok((ModelRef::File(installed.path), context))
}

/// The launch of a llama-server model file on this machine: the options saved in the app's engine
/// settings, these flags over them, the rest from the fit. `None` for a model an engine names itself.
fn launch_plan(args: &StartArgs, model: &ModelRef, recommended: u32) -> anyhow::Result<Option<LaunchPlan>> {
    let ModelRef::File(file) = model else { return Ok(None) };
    let saved = EngineOptions::load(&fixbox_store::Store::open_default()?)?;
    let options = EngineOptions {
        context: args.ctx.or(saved.context),
        gpu_layers: args.gpu_layers.or(saved.gpu_layers),
        threads: args.threads.or(saved.threads),
        kv_cache: args.kv_cache.or(saved.kv_cache),
    };
    options.check()?;
    Ok(Some(options.launch_here(file, recommended)?))
}

fn parse_kv(text: &str) -> Result<KvType, String> {
    serde_json::from_value(serde_json::Value::from(text))
        .map_err(|_| format!("{text:?} is not a KV cache type: f16, q8_0 or q4_0"))
}

/// The supervisor itself: starts the engine, records its state, restarts it, stops it on SIGTERM/Ctrl+C.
async fn supervise(args: StartArgs) -> anyhow::Result<ExitCode> {
    let kind = args.engine;
    let binary = fixbox_engine::installed(kind).await?;
    let (model, context) = model_of(&args)?;
    let plan = launch_plan(&args, &model, context)?;
    let mut spec = LaunchSpec::new(kind, model, args.model.clone(), args.ctx.unwrap_or(context));
    match &plan {
        Some(plan) => plan.apply(&mut spec),
        None => {
            spec.gpu_layers = args.gpu_layers.unwrap_or(0);
            spec.threads = args.threads;
        }
    }
    spec.host = args.host;
    spec.port = args.port.unwrap_or(kind.default_port());
    spec.parallel = args.parallel;
    spec.ngram_drafts = !args.no_ngram_drafts;
    let mut key_note = None;
    if !args.host.is_loopback() {
        let name = format!("engine-{kind}");
        let key = match fixbox_store::Keychain.get(&name)? {
            Some(key) => key,
            None => {
                let key = Secret::generate();
                fixbox_store::Keychain.set(&name, &key)?;
                key
            }
        };
        spec.api_key = Some(key);
        key_note = Some(format!(
            "clients need the API key kept in the keychain as {name} (service {})",
            fixbox_store::KEYCHAIN_SERVICE
        ));
    } else {
        spec.lock_to_clients(kind);
    }
    let log = log_path(kind)?;
    let launcher = fixbox_engine::Launcher::new(
        Arc::from(fixbox_engine::engine(kind)),
        &binary,
        spec,
        log,
        SuperviseOptions::default(),
    )
    .registered(&registry()?, &args.model, key_note.into_iter().collect());
    let mut events = launcher.subscribe();
    // A request left by a stop that found no supervisor must not stop this one.
    let _ = std::fs::remove_file(registry()?.stop_request_path(kind));
    let mut running = launcher.start().await?;
    let stop = running.stop_token();
    let requests = registry()?;
    tokio::spawn(async move {
        #[cfg(unix)]
        let terminated = async {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => term.recv().await,
                Err(_) => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let terminated = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = terminated => {}
            _ = tokio::signal::ctrl_c() => {}
            () = requests.stop_requested(kind) => {}
        }
        stop.cancel();
    });
    // The supervisor's own log (the background start sends stderr there): each event as a JSON line.
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            eprintln!("{}", serde_json::to_string(&event).unwrap_or_default());
        }
    });
    running.wait().await;
    Ok(ExitCode::SUCCESS)
}

async fn stop(kind: EngineKind) -> anyhow::Result<ExitCode> {
    let Some(state) = read_state(kind)? else {
        println!("{kind} is not running");
        return Ok(ExitCode::SUCCESS);
    };
    if alive(state.supervisor_pid) {
        registry()?.request_stop(kind)?;
        #[cfg(unix)]
        if let Ok(pid) = i32::try_from(state.supervisor_pid) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
        for _ in 0..100 {
            if !alive(state.supervisor_pid) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if alive(state.supervisor_pid) {
            bail!(
                "the supervisor (pid {}) did not stop within 20 s; see `fixbox engine logs {kind}`",
                state.supervisor_pid
            );
        }
    }
    let _ = registry()?.remove(kind);
    println!("{kind} stopped");
    Ok(ExitCode::SUCCESS)
}

/// An engine as `fixbox engine status` shows it: its state file (less its key), and what was found on
/// asking it.
#[derive(serde::Serialize)]
struct StatusRow {
    #[serde(flatten)]
    state: EngineState,
    /// Whether clients must send a key (which `fixbox keys` shows the hint of).
    locked: bool,
    /// Why the state file's status is not the whole truth: its supervisor died, or it stopped answering.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<&'static str>,
}

async fn status(json: bool) -> anyhow::Result<ExitCode> {
    let client = fixbox_models::http_client_builder().no_proxy().timeout(Duration::from_secs(3)).build()?;
    let mut rows = Vec::new();
    for kind in EngineKind::ALL {
        let Some(mut state) = read_state(kind)? else { continue };
        let locked = state.api_key.take().is_some();
        let mut problem = None;
        if !alive(state.supervisor_pid) {
            problem = Some("not running (stale state)");
        } else if let Some(url) = &state.url {
            let health = format!("{url}{}", fixbox_engine::engine(kind).health_path());
            let answers = matches!(client.get(&health).send().await, Ok(r) if r.status().is_success());
            if state.status == EngineStatus::Ready && !answers {
                problem = Some("not answering");
            }
        }
        rows.push(StatusRow { state, locked, problem });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("no engine is running; `fixbox engine start --model <id>` starts one");
    } else {
        for StatusRow { state, problem, .. } in rows {
            let url = state.url.as_deref().unwrap_or("-");
            let pid = state.engine_pid.map_or_else(|| "-".to_string(), |p| p.to_string());
            let status = problem.map_or_else(|| state.status.to_string(), String::from);
            println!("{:<13} {status:<10} {url}  model {}  pid {pid}", state.engine.to_string(), state.model);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn logs(kind: EngineKind, lines: usize, follow: bool) -> anyhow::Result<ExitCode> {
    let path = log_path(kind)?;
    let mut file = std::fs::File::open(&path)
        .with_context(|| format!("{kind} has no log yet ({}); it has not been started", path.display()))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let all: Vec<&str> = text.lines().collect();
    let mut out = std::io::stdout().lock();
    for line in &all[all.len().saturating_sub(lines)..] {
        writeln!(out, "{line}")?;
    }
    drop(out);
    if follow {
        let mut at = file.stream_position()?;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            let len = std::fs::metadata(&path)?.len();
            if len > at {
                let mut file = std::fs::File::open(&path)?;
                file.seek(std::io::SeekFrom::Start(at))?;
                let mut more = String::new();
                file.read_to_string(&mut more)?;
                print!("{more}");
                at = len;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
