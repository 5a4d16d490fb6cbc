//! The `fixbox` command: a thin front end that turns arguments into calls on the Fixbox crates and
//! renders what comes back.

mod ask;
mod doctor;
mod engine;
mod eval;
mod fix;
mod github;
mod hw;
mod keys;
mod logging;
mod models;
mod pull_request;
mod remedy;
mod render;
mod routes;
mod serve;
mod sessions;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "fixbox", version, about = "Fix bugs in real repositories with local LLMs")]
struct Cli {
    /// Show the log's lines on stderr as well (they always go to the log file).
    #[arg(short, long, global = true)]
    verbose: bool,
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
    Routes(routes::RoutesCommand),
    /// API keys and tokens in the OS keychain.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// An OpenAI-compatible endpoint in front of the routes, and Prometheus metrics (--metrics).
    Serve(serve::ServeArgs),
    /// Fix a bug: a model patches a sandboxed copy of the repository until its tests pass.
    Fix(Box<fix::FixArgs>),
    /// Evaluate on a dataset of real bugs (SWE-bench format): sessions, judged by their hidden tests.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// GitHub: list a repository's open issues; open a pull request a session left waiting.
    #[command(subcommand)]
    Github(github::GithubCommand),
    /// Fix sessions: list, show, replay, export.
    #[command(subcommand)]
    Sessions(sessions::SessionsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let supervisor = matches!(&cli.command, Command::Engine(command) if command.is_supervisor());
    let _log_guard = logging::init(supervisor || cli.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            fail(&anyhow::anyhow!(err).context("cannot start the async runtime"));
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
            Command::Routes(command) => routes::run(command).await,
            Command::Keys(command) => keys::run(command).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Fix(args) => fix::run(*args).await,
            Command::Eval(command) => eval::run(command).await,
            Command::Sessions(command) => sessions::run(command).await,
            Command::Github(command) => github::run(command).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            fail(&err);
            ExitCode::FAILURE
        }
    }
}

/// The command's error: one line on stderr (stdout stays for output, `--json`), and in the log; then
/// what to do next, where that is a command.
#[allow(clippy::print_stderr, reason = "the error is what the command says last")]
fn fail(err: &anyhow::Error) {
    let said = said(err);
    tracing::error!("{said}");
    eprintln!("error: {said}");
    if let Some(remedy) = remedy::for_error(err) {
        eprintln!("hint: {remedy}");
    }
}

/// The error and its causes, each cause once: most of our errors already quote their cause.
fn said(err: &anyhow::Error) -> String {
    let mut said = err.to_string();
    for cause in err.chain().skip(1).map(ToString::to_string) {
        if !said.contains(&cause) {
            said = format!("{said}: {cause}");
        }
    }
    said
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_already_quoted_is_not_said_again() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "recording failed: {}", self.0)
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = anyhow::Error::new(Outer(std::io::Error::other("disk full"))).context("the session stopped");
        assert_eq!(super::said(&err), "the session stopped: recording failed: disk full");
    }
}
