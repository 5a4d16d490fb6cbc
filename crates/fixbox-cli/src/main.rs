//! The `fixbox` command: a thin front end that turns arguments into calls on the Fixbox crates and
//! renders what comes back.

mod ask;
mod doctor;
mod engine;
mod fix;
mod hw;
mod keys;
mod models;
mod render;
mod routing;
mod serve;
mod sessions;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "fixbox", version, about = "Fix bugs in real repositories with local LLMs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check that Fixbox can work on this machine: Docker, keychain, GPUs, memory, data dir, engines.
    Doctor(doctor::DoctorArgs),
    /// This machine's CPU, memory, GPUs and disk, and the models that fit it, with why.
    Hw(hw::HwArgs),
    /// The model catalog and the models on this machine.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Local engines: install, start, stop, status, logs.
    #[command(subcommand)]
    Engine(engine::EngineCommand),
    /// Ask a model one question through the routes; the answer streams, its usage and cost follow.
    Ask(ask::AskArgs),
    /// Which models are called, in what order, per task.
    #[command(subcommand)]
    Routes(routing::RoutesCommand),
    /// API keys and tokens in the OS keychain.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// An OpenAI-compatible endpoint in front of the routes, and Prometheus metrics (--metrics).
    Serve(serve::ServeArgs),
    /// Fix a bug: a model patches a sandboxed copy of the repository until its tests pass.
    Fix(fix::FixArgs),
    /// Fix sessions: list, show, replay, export.
    #[command(subcommand)]
    Sessions(sessions::SessionsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(%err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Doctor(args) => doctor::run(args).await,
            Command::Hw(args) => hw::run(args).await,
            Command::Models(command) => models::run(command).await,
            Command::Engine(command) => engine::run(command).await,
            Command::Ask(args) => ask::run(args).await,
            Command::Routes(command) => routing::run(command).await,
            Command::Keys(command) => keys::run(command).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Fix(args) => fix::run(args).await,
            Command::Sessions(command) => sessions::run(command).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, so stdout stays for output (`--json`). `RUST_LOG` picks what is logged.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}
