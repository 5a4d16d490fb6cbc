//! Settings: the model routes (providers, and per task the order to try them), a remote engine, the API
//! keys in the OS keychain, the defaults of new sessions and their sandboxes, and where Fixbox keeps its
//! data. A key's value comes in once, goes to the keychain, and never comes back out: the window only
//! ever gets its name and last four characters.

use fixbox_agent::Preferences;
use fixbox_agent::setup::Routes;
use fixbox_llm::RoutesConfig;
use fixbox_secret::Secret;
use fixbox_store::{Keychain, Store};
use serde::Serialize;

use super::{blocking, load_routes, open_store};
use crate::error::IpcError;
use fixbox_engine::EngineOptions;

/// Everything the settings page shows.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct SettingsView {
    /// The routes saved in the settings; `None` when sessions use the running engine instead.
    pub routes: Option<RoutesConfig>,
    /// Where a session's routes come from now: "the settings", "the running llama-server".
    pub routes_from: Option<String>,
    /// Why a session has no routes now, and what to do.
    pub routes_problem: Option<String>,
    pub keys: Vec<KeyListing>,
    pub preferences: Preferences,
    /// How the local engine starts next time.
    pub engine: EngineOptions,
    pub data_dir: String,
}

/// A key as the window may see it.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct KeyListing {
    pub name: String,
    /// `…` and the last four characters; `None` when the keychain no longer has it.
    pub hint: Option<String>,
}

fn view(store: &Store) -> Result<SettingsView, IpcError> {
    let data_dir = fixbox_store::data_dir()?;
    let (routes_from, routes_problem) = match load_routes(store) {
        Ok(routes) => (Some(routes.from), None),
        Err(err) => (None, Some(err.to_string())),
    };
    let keys = Keychain.list(store)?.into_iter().map(|key| KeyListing { name: key.name, hint: key.hint }).collect();
    let preferences = Preferences::load(store)?;
    let engine = EngineOptions::load(store)?;
    Ok(SettingsView {
        routes: Routes::stored(store)?,
        routes_from,
        routes_problem,
        keys,
        preferences,
        engine,
        data_dir: data_dir.display().to_string(),
    })
}

fn save_routes(store: &Store, routes: Option<&RoutesConfig>) -> Result<(), IpcError> {
    Routes::save(store, routes).map_err(|e| IpcError { message: format!("not saved: {e}"), ..e.into() })
}

#[tauri::command]
#[specta::specta]
pub async fn settings_get() -> Result<SettingsView, IpcError> {
    blocking(|| view(&open_store()?)).await
}

/// Saves the routes, once they are valid (every route names known providers, there is a `default`).
#[tauri::command]
#[specta::specta]
pub async fn settings_save_routes(routes: RoutesConfig) -> Result<SettingsView, IpcError> {
    blocking(move || {
        let store = open_store()?;
        save_routes(&store, Some(&routes))?;
        view(&store)
    })
    .await
}

/// Forgets the saved routes: sessions use the local engine Fixbox runs.
#[tauri::command]
#[specta::specta]
pub async fn settings_reset_routes() -> Result<SettingsView, IpcError> {
    blocking(|| {
        let store = open_store()?;
        save_routes(&store, None)?;
        view(&store)
    })
    .await
}

/// Routes every task to the engine at `url` first, with what answered before as its fallbacks. The
/// token goes to the keychain; `None` keeps the one stored.
#[tauri::command]
#[specta::specta]
pub async fn settings_use_remote_engine(
    url: String,
    model: String,
    token: Option<String>,
) -> Result<SettingsView, IpcError> {
    blocking(move || {
        let store = open_store()?;
        let token = token.filter(|t| !t.trim().is_empty()).map(|t| Secret::new(t.trim()));
        if token.is_none() && Keychain.get(RoutesConfig::REMOTE_ENGINE_KEY)?.is_none() {
            return Err(IpcError::invalid("give the engine's token (the API key it was started with)"));
        }
        let current = load_routes(&store).map(|r| r.config).unwrap_or_default();
        let routes =
            current.with_remote_engine(&url, &model).map_err(|e| IpcError::invalid(format!("not saved: {e}")))?;
        if let Some(token) = token {
            Keychain.store(&store, RoutesConfig::REMOTE_ENGINE_KEY, &token)?;
        }
        save_routes(&store, Some(&routes))?;
        view(&store)
    })
    .await
}

/// Takes the remote engine out of the routes (its token stays in the keychain until removed).
#[tauri::command]
#[specta::specta]
pub async fn settings_drop_remote_engine() -> Result<SettingsView, IpcError> {
    blocking(|| {
        let store = open_store()?;
        if let Some(routes) = Routes::stored(&store)? {
            // Nothing left to route to: the running engine answers again.
            save_routes(&store, routes.without_remote_engine().as_ref())?;
        }
        view(&store)
    })
    .await
}

/// Stores a key in the OS keychain under `name`.
#[tauri::command]
#[specta::specta]
pub async fn settings_save_key(name: String, value: String) -> Result<SettingsView, IpcError> {
    blocking(move || {
        let value = value.trim();
        if value.is_empty() {
            return Err(IpcError::invalid(format!("no value was given for `{name}`: paste the key, then save")));
        }
        let store = open_store()?;
        Keychain.store(&store, name.trim(), &Secret::new(value))?;
        view(&store)
    })
    .await
}

/// Removes the key stored under `name` from the keychain.
#[tauri::command]
#[specta::specta]
pub async fn settings_remove_key(name: String) -> Result<SettingsView, IpcError> {
    blocking(move || {
        let store = open_store()?;
        Keychain.remove(&store, &name)?;
        view(&store)
    })
    .await
}

/// The defaults of a new session (the fix page starts from them).
#[tauri::command]
#[specta::specta]
pub async fn settings_preferences() -> Result<Preferences, IpcError> {
    blocking(|| Preferences::load(&open_store()?).map_err(IpcError::from)).await
}

/// Saves the defaults of new sessions and their sandboxes, once each is in range.
#[tauri::command]
#[specta::specta]
pub async fn settings_save_preferences(preferences: Preferences) -> Result<SettingsView, IpcError> {
    blocking(move || {
        let store = open_store()?;
        preferences.save(&store).map_err(|e| IpcError { message: format!("not saved: {e}"), ..e.into() })?;
        view(&store)
    })
    .await
}

/// Saves how the local engine starts the next time the setup page starts it.
#[tauri::command]
#[specta::specta]
pub async fn settings_save_engine_options(options: EngineOptions) -> Result<SettingsView, IpcError> {
    blocking(move || {
        let store = open_store()?;
        options.save(&store).map_err(|e| IpcError { message: format!("not saved: {e}"), ..e.into() })?;
        view(&store)
    })
    .await
}
