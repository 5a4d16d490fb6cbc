//! What to do next, in this command line's words. The crates' errors say what happened and what to do
//! in the domain's terms ("install it first"); where doing it is a `fixbox` command or flag, this adds
//! that line (the desktop app adds its own, naming the button).

use fixbox_agent::AgentError;
use fixbox_engine::{ClientError, EngineError};
use fixbox_llm::LlmError;
use fixbox_models::{CatalogError, DownloadError};

/// The command that mends `err`, where one does: the first of its causes that has one.
pub fn for_error(err: &anyhow::Error) -> Option<String> {
    err.chain().find_map(|cause| {
        if let Some(err) = cause.downcast_ref::<AgentError>() {
            agent(err)
        } else if let Some(err) = cause.downcast_ref::<EngineError>() {
            engine(err)
        } else if let Some(err) = cause.downcast_ref::<LlmError>() {
            llm(err)
        } else if let Some(err) = cause.downcast_ref::<DownloadError>() {
            download(err)
        } else if let Some(err) = cause.downcast_ref::<CatalogError>() {
            catalog(err)
        } else if let Some(ClientError::Unreachable { .. }) = cause.downcast_ref::<ClientError>() {
            Some("`fixbox engine status` shows which engines run".into())
        } else {
            None
        }
    })
}

fn agent(err: &AgentError) -> Option<String> {
    match err {
        AgentError::NoTestCommand { .. } => Some("pass it with --test \"<command>\"".into()),
        AgentError::NoModel { .. } => Some(
            "`fixbox engine start --model qwen2.5-coder-1.5b-instruct` starts one; `fixbox routes set FILE` sets routes"
                .into(),
        ),
        AgentError::Model(err) => llm(err),
        _ => None,
    }
}

fn engine(err: &EngineError) -> Option<String> {
    match err {
        EngineError::NotInstalled { kind } | EngineError::TooOld { kind, .. } => {
            Some(format!("`fixbox engine install {kind}` installs a current one"))
        }
        EngineError::NeedsModelFile { name, .. } => Some(format!("`fixbox models pull {name}` downloads it")),
        EngineError::Download(err) => download(err),
        _ => None,
    }
}

fn llm(err: &LlmError) -> Option<String> {
    match err {
        LlmError::Auth { .. } => {
            Some("`fixbox keys set <entry>` stores the key, under the entry the route's `api_key` names".into())
        }
        LlmError::Key { name, .. } => Some(format!("`fixbox keys set {name}` stores it")),
        LlmError::Config(_) | LlmError::NoRoute(_) => Some("`fixbox routes show` shows the routes in use".into()),
        _ => None,
    }
}

fn download(err: &DownloadError) -> Option<String> {
    match err {
        DownloadError::NotInstalled { .. } => Some("`fixbox models list` shows the models here".into()),
        DownloadError::NotThatModel { .. } => Some("pass another name with --as NAME".into()),
        DownloadError::Catalog(err) => catalog(err),
        _ => None,
    }
}

fn catalog(err: &CatalogError) -> Option<String> {
    match err {
        CatalogError::UnknownModel { .. } => Some("`fixbox models list` shows the catalog".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remedy_is_found_through_the_causes_and_the_wrappers() {
        let missing = anyhow::Error::new(EngineError::NotInstalled { kind: fixbox_engine::EngineKind::LlamaServer })
            .context("cannot start the engine");
        assert_eq!(for_error(&missing).as_deref(), Some("`fixbox engine install llama-server` installs a current one"));

        let key = LlmError::Key { name: "openrouter".into(), reason: "the keyring is locked".into() };
        let wrapped = anyhow::Error::new(AgentError::Model(key));
        assert_eq!(for_error(&wrapped).as_deref(), Some("`fixbox keys set openrouter` stores it"));

        assert_eq!(for_error(&anyhow::anyhow!("disk full")), None);
    }
}
