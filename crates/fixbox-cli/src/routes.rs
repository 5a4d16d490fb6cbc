//! Which models `fixbox ask` and `fixbox serve` call: `--routes FILE`, else the routes stored with
//! `fixbox routes set`, else the local engine `fixbox engine start` is running, else the coder model
//! of an Ollama the user runs. `fixbox routes` shows and stores them.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "printing is what a command does")]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use fixbox_agent::setup::Routes;
use fixbox_engine::LocalOllama;
use fixbox_llm::{Metrics, Router, RoutesConfig};
use fixbox_store::Store;

#[derive(Debug, Subcommand)]
pub enum RoutesCommand {
    /// The routes in use, and where they come from.
    Show,
    /// Store the routes in FILE (TOML: [[providers]] and [routes]; see the README) as the settings'.
    Set { file: PathBuf },
    /// Forget the stored routes (the running local engine is used again).
    Clear,
}

pub async fn run(command: RoutesCommand) -> anyhow::Result<ExitCode> {
    let store = Store::open_default()?;
    match command {
        RoutesCommand::Show => {
            let routes = tokio::task::spawn_blocking(move || load(None, &store)).await??;
            eprintln!("routes from {}", routes.from);
            println!("{}", toml::to_string_pretty(&routes.config)?);
        }
        RoutesCommand::Set { file } => {
            let config = read_file(&file)?;
            Routes::save(&store, Some(&config))?;
            eprintln!("stored the routes from {}: {}", file.display(), summary(&config));
        }
        RoutesCommand::Clear => {
            Routes::save(&store, None)?;
            eprintln!("cleared the stored routes");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_file(file: &Path) -> anyhow::Result<RoutesConfig> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    RoutesConfig::parse(&text).with_context(|| format!("in {}", file.display()))
}

fn summary(config: &RoutesConfig) -> String {
    config.routes.iter().map(|(task, names)| format!("{task}: {}", names.join(" → "))).collect::<Vec<_>>().join("; ")
}

/// The routes and where they came from. Blocking (it may ask Ollama): call it off the
/// async threads.
fn load(file: Option<&Path>, store: &Store) -> anyhow::Result<Routes> {
    let engines = fixbox_engine::Registry::new(fixbox_store::data_dir()?);
    let find_ollama = || tokio::runtime::Handle::current().block_on(LocalOllama::find_here());
    Ok(Routes::load(file, store, &engines, find_ollama)?)
}

/// The router for those settings, its keys read from the OS keychain.
pub async fn router(file: Option<PathBuf>, metrics: Arc<Metrics>) -> anyhow::Result<(Router, String)> {
    tokio::task::spawn_blocking(move || {
        let routes = load(file.as_deref(), &Store::open_default()?)?;
        Ok((routes.router(metrics)?, routes.from))
    })
    .await
    .context("reading the routes crashed")?
}
