//! `fixbox keys`: API keys and tokens in the OS keychain. Values are read from a prompt that does not
//! echo (or from stdin when it is not a terminal), never from the command line, where shell history
//! and process lists would keep them.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "printing is what a command does")]

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use fixbox_secret::Secret;
use fixbox_store::{Keychain, Store};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Store a key under NAME (e.g. openai, mistral, openrouter, github, huggingface); the value is
    /// read from a hidden prompt, or from stdin.
    Set { name: String },
    /// The stored keys: names and last four characters only.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove the key stored under NAME.
    Rm { name: String },
}

pub async fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    // Keychain calls block on D-Bus (and may wait for an unlock prompt): off the async runtime.
    tokio::task::spawn_blocking(move || run_blocking(command)).await.context("the keychain call crashed")?
}

fn run_blocking(command: KeysCommand) -> anyhow::Result<ExitCode> {
    let store = Store::open_default()?;
    match command {
        KeysCommand::Set { name } => {
            let value = read_value(&name)?;
            Keychain.store(&store, &name, &Secret::new(value))?;
            eprintln!("stored `{name}` in the OS keychain");
        }
        KeysCommand::List { json } => {
            // Without a keychain every stored key would read as gone: say why instead.
            Keychain.probe()?;
            let listed = Keychain.list(&store)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&listed)?);
            } else if listed.is_empty() {
                eprintln!("no keys stored; add one with `fixbox keys set NAME`");
            } else {
                for key in listed {
                    let hint = key.hint.as_deref().unwrap_or("(gone from the keychain)");
                    println!("{:<20} {hint}", key.name);
                }
            }
        }
        KeysCommand::Rm { name } => {
            if Keychain.remove(&store, &name)? {
                eprintln!("removed `{name}`");
            } else {
                eprintln!("there was no key `{name}`");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_value(name: &str) -> anyhow::Result<String> {
    let value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("value for `{name}` (not shown): "))?
    } else {
        let mut value = String::new();
        std::io::stdin().read_to_string(&mut value)?;
        value
    };
    let value = value.trim_end_matches(['\r', '\n']).to_string();
    if value.trim().is_empty() {
        bail!(
            "no value was given for `{name}`; type or pipe it in (e.g. `printenv OPENAI_API_KEY | fixbox keys set {name}`)"
        );
    }
    Ok(value)
}
