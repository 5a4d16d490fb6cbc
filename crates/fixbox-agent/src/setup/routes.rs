//! Which models answer a session: a routes file, the stored routes, or a local engine.

use std::path::Path;
use std::sync::Arc;

use fixbox_engine::{EngineKind, LocalOllama, Registry, Running};
use fixbox_llm::{KeySource, LlmError, Metrics, PriceTable, ProviderConfig, ProviderKind, Router, RoutesConfig};
use fixbox_secret::Secret;
use fixbox_store::{Keychain, Store};

use crate::AgentError;

/// The routes' API keys, from the OS keychain.
struct KeychainKeys;

impl KeySource for KeychainKeys {
    fn key(&self, name: &str) -> Result<Option<Secret>, LlmError> {
        Keychain.get(name).map_err(|e| LlmError::Key { name: name.into(), reason: e.to_string() })
    }
}

/// Routes and where they came from, said the way a user set them: a file's path, "the settings", "the
/// running llama-server".
#[derive(Debug, Clone)]
pub struct Routes {
    pub config: RoutesConfig,
    pub from: String,
}

impl Routes {
    /// `file` when given; else the routes stored in the settings; else the first local engine Fixbox
    /// runs that is ready; else the coder model of the Ollama the user runs, which `find_ollama` looks
    /// for (only when it comes to that).
    pub fn load(
        file: Option<&Path>,
        store: &Store,
        engines: &Registry,
        find_ollama: impl FnOnce() -> Option<LocalOllama>,
    ) -> Result<Self, AgentError> {
        if let Some(file) = file {
            let text = std::fs::read_to_string(file)
                .map_err(|source| AgentError::Read { path: file.to_path_buf(), source })?;
            let config = RoutesConfig::parse(&text)
                .map_err(|e| AgentError::Config(format!("the routes in {} are invalid: {e}", file.display())))?;
            return Ok(Routes { config, from: file.display().to_string() });
        }
        if let Some(config) = Self::stored(store)? {
            return Ok(Routes { config, from: "the settings".into() });
        }
        if let Some(engine) = engines.running().into_iter().next() {
            return Ok(Self::engine(engine));
        }
        let Some(ollama) = find_ollama() else { return Err(AgentError::NoModel { ollama: None }) };
        let Some(coder) = ollama.coder() else {
            return Err(AgentError::NoModel {
                ollama: Some(format!(
                    "the Ollama at {} has no model that writes code ({}): `ollama pull qwen2.5-coder:7b` gives it one",
                    ollama.url,
                    if ollama.models.is_empty() { "it has none".into() } else { ollama.models.join(", ") }
                )),
            });
        };
        let from = format!("{} on the Ollama {} at {}", coder.model, ollama.version, ollama.url);
        Ok(Routes { from, ..Self::engine(coder) })
    }

    /// The routes to one running local engine, as provider `local`.
    pub fn engine(engine: Running) -> Self {
        let provider = ProviderConfig {
            name: "local".into(),
            kind: if engine.kind == EngineKind::Ollama { ProviderKind::Ollama } else { ProviderKind::Openai },
            base_url: engine.url,
            model: engine.model,
            api_key: None,
            context_window: engine.context,
            price: None,
            local: Some(true),
            key: engine.api_key,
        };
        Routes { config: RoutesConfig::single(provider), from: format!("the running {}", engine.kind) }
    }

    /// The routes saved in the settings, if any.
    pub fn stored(store: &Store) -> Result<Option<RoutesConfig>, AgentError> {
        let Some(value) = store.setting(RoutesConfig::SETTING)?.filter(|v| !v.is_null()) else { return Ok(None) };
        RoutesConfig::parse(&value.to_string()).map(Some).map_err(|e| {
            AgentError::Config(format!("the stored routes are invalid ({e}); set them again in the settings"))
        })
    }

    /// Saves `config` in the settings once it is valid; `None` forgets the saved routes, so sessions
    /// use the running local engine.
    pub fn save(store: &Store, config: Option<&RoutesConfig>) -> Result<(), AgentError> {
        let value = match config {
            Some(config) => {
                config.validate().map_err(|e| AgentError::Config(e.to_string()))?;
                serde_json::to_value(config).map_err(|e| AgentError::Config(e.to_string()))?
            }
            None => serde_json::Value::Null,
        };
        Ok(store.set_setting(RoutesConfig::SETTING, &value)?)
    }

    /// The router for these routes, with their keys read from the OS keychain.
    pub fn router(&self, metrics: Arc<Metrics>) -> Result<Router, AgentError> {
        Ok(Router::from_config(&self.config, &PriceTable::embedded()?, &KeychainKeys, metrics)?)
    }

    /// The routing tasks that have routes of their own (`default`, `fix`, ...), each with its providers in
    /// the order they are tried.
    pub fn tasks(&self) -> Vec<(String, Vec<String>)> {
        self.config.routes.iter().map(|(task, names)| (task.clone(), names.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ollama(models: &[&str]) -> LocalOllama {
        LocalOllama {
            url: "http://127.0.0.1:11434".into(),
            version: "0.5.1".into(),
            models: models.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn with_nothing_else_the_users_ollama_answers_and_is_asked_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let engines = Registry::new(dir.path());
        let routes = Routes::load(None, &store, &engines, || Some(ollama(&["qwen2.5-coder:7b"]))).unwrap();
        assert_eq!(routes.from, "qwen2.5-coder:7b on the Ollama 0.5.1 at http://127.0.0.1:11434");
        let provider = &routes.config.providers[0];
        assert_eq!((provider.kind, provider.model.as_str()), (ProviderKind::Ollama, "qwen2.5-coder:7b"));
        assert_eq!(provider.context_window, Some(16_384), "Ollama is told the context with every request");

        let err = Routes::load(None, &store, &engines, || Some(ollama(&["llama3.2:latest"]))).unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains("has no model that writes code (llama3.2:latest)") && err.contains("ollama pull"),
            "{err}"
        );
        let err = Routes::load(None, &store, &engines, || None).unwrap_err().to_string();
        assert!(err.starts_with("no model to call") && !err.contains("Ollama"), "{err}");

        // Stored routes come first: Ollama is not even asked.
        Routes::save(&store, Some(&routes.config)).unwrap();
        let stored = Routes::load(None, &store, &engines, || panic!("asked Ollama with routes stored")).unwrap();
        assert_eq!(stored.from, "the settings");
    }
}
