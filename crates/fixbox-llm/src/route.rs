//! The routes: the providers a user has, and per task the order to try them in. Stored as
//! the setting [`RoutesConfig::SETTING`]; API keys are named here and live in the keychain.

use std::collections::BTreeMap;
use std::time::Duration;

use fixbox_secret::Secret;
use serde::{Deserialize, Serialize};

use crate::client::Timeouts;
use crate::error::LlmError;
use crate::retry::RetryPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI's chat-completions API: llama-server, vLLM, OpenAI, OpenRouter, ...
    Openai,
    /// Ollama's native API.
    Ollama,
    Mistral,
}

/// One model behind one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// What routes call it, and how records and metrics name it.
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub model: String,
    /// The keychain entry holding its API key (`fixbox keys set <entry>`), never the key itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Tokens; a request that cannot fit skips this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// The price-table entry to price it by; default: the model's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    /// Runs on this machine: costs nothing (its equivalent cloud cost is reported). Default: the
    /// server is on loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<bool>,
    /// The key itself, for a server this machine started whose key lives with it (a local engine's,
    /// from its registry entry); never read from or written to a file.
    #[serde(skip)]
    #[cfg_attr(feature = "specta", specta(skip))]
    pub key: Option<Secret>,
}

impl ProviderConfig {
    pub fn is_local(&self) -> bool {
        self.local.unwrap_or_else(|| {
            let host = crate::http::host_of(&self.base_url);
            let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h).to_string();
            matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]")
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    pub max_retries: u32,
    pub first_wait_ms: u64,
    pub max_wait_ms: u64,
    pub max_retry_after_s: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        let policy = RetryPolicy::default();
        Self {
            max_retries: policy.max_retries,
            first_wait_ms: policy.first_wait.as_millis() as u64,
            max_wait_ms: policy.max_wait.as_millis() as u64,
            max_retry_after_s: policy.max_retry_after.as_secs(),
        }
    }
}

impl From<RetrySettings> for RetryPolicy {
    fn from(s: RetrySettings) -> Self {
        Self {
            max_retries: s.max_retries,
            first_wait: Duration::from_millis(s.first_wait_ms),
            max_wait: Duration::from_millis(s.max_wait_ms),
            max_retry_after: Duration::from_secs(s.max_retry_after_s),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutSettings {
    pub connect_s: f64,
    pub first_token_s: f64,
    pub idle_s: f64,
}

impl Default for TimeoutSettings {
    fn default() -> Self {
        let t = Timeouts::default();
        Self {
            connect_s: t.connect.as_secs_f64(),
            first_token_s: t.first_token.as_secs_f64(),
            idle_s: t.idle.as_secs_f64(),
        }
    }
}

impl TimeoutSettings {
    pub(crate) fn timeouts(&self) -> Result<Timeouts, LlmError> {
        let secs = |name: &str, s: f64| {
            Duration::try_from_secs_f64(s).ok().filter(|d| !d.is_zero()).ok_or_else(|| {
                LlmError::Config(format!("timeouts.{name} must be a positive number of seconds, not {s}"))
            })
        };
        Ok(Timeouts {
            connect: secs("connect_s", self.connect_s)?,
            first_token: secs("first_token_s", self.first_token_s)?,
            idle: secs("idle_s", self.idle_s)?,
        })
    }
}

/// Providers, and per task the providers to try, first to last resort. A task without a route of its
/// own takes `default`'s.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(deny_unknown_fields)]
pub struct RoutesConfig {
    pub providers: Vec<ProviderConfig>,
    pub routes: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub retry: RetrySettings,
    #[serde(default)]
    pub timeouts: TimeoutSettings,
}

impl RoutesConfig {
    /// The settings key it is stored under.
    pub const SETTING: &'static str = "llm.routing";

    /// One provider as the `default` route.
    pub fn single(provider: ProviderConfig) -> Self {
        let routes = BTreeMap::from([("default".to_string(), vec![provider.name.clone()])]);
        Self {
            providers: vec![provider],
            routes,
            retry: RetrySettings::default(),
            timeouts: TimeoutSettings::default(),
        }
    }

    /// The provider name a remote engine (an OpenAI-compatible server on another machine: a GPU box
    /// running llama-server or vLLM) is stored under.
    pub const REMOTE_ENGINE: &'static str = "remote";
    /// The keychain entry of the remote engine's token.
    pub const REMOTE_ENGINE_KEY: &'static str = "remote-engine";

    /// The remote engine these routes call, if any.
    pub fn remote_engine(&self) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name == Self::REMOTE_ENGINE)
    }

    /// These routes with the engine at `url` serving `model` first in every route; the providers that
    /// were there stay as its fallbacks. `url` may leave out the API's `/v1`. Its token is the keychain
    /// entry [`Self::REMOTE_ENGINE_KEY`].
    pub fn with_remote_engine(mut self, url: &str, model: &str) -> Result<Self, LlmError> {
        let url = url.trim().trim_end_matches('/');
        let base_url = if url.ends_with("/v1") { url.to_string() } else { format!("{url}/v1") };
        let model = model.trim();
        if model.is_empty() {
            return Err(LlmError::Config(
                "say which model the remote engine serves (its name in the engine's /v1/models)".into(),
            ));
        }
        let remote = ProviderConfig {
            name: Self::REMOTE_ENGINE.into(),
            kind: ProviderKind::Openai,
            base_url,
            model: model.into(),
            api_key: Some(Self::REMOTE_ENGINE_KEY.into()),
            context_window: None,
            price: None,
            // Self-hosted: it costs nothing per token, as a local engine does.
            local: Some(true),
            key: None,
        };
        self.providers.retain(|p| p.name != Self::REMOTE_ENGINE);
        self.providers.insert(0, remote);
        self.routes.entry("default".into()).or_default();
        for route in self.routes.values_mut() {
            route.retain(|name| name != Self::REMOTE_ENGINE);
            route.insert(0, Self::REMOTE_ENGINE.into());
        }
        self.validate()?;
        Ok(self)
    }

    /// These routes without the remote engine; `None` when nothing else is left to route to.
    pub fn without_remote_engine(mut self) -> Option<Self> {
        self.providers.retain(|p| p.name != Self::REMOTE_ENGINE);
        for route in self.routes.values_mut() {
            route.retain(|name| name != Self::REMOTE_ENGINE);
        }
        self.routes.retain(|_, route| !route.is_empty());
        self.validate().ok().map(|()| self)
    }

    /// Reads TOML (a file a user writes) or JSON (the stored setting).
    pub fn parse(text: &str) -> Result<Self, LlmError> {
        let config: Self = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| LlmError::Config(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| LlmError::Config(e.to_string()))?
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), LlmError> {
        let mut names = std::collections::BTreeSet::new();
        for provider in &self.providers {
            if !names.insert(provider.name.as_str()) {
                return Err(LlmError::Config(format!("two providers are named `{}`", provider.name)));
            }
            if !provider.base_url.starts_with("http://") && !provider.base_url.starts_with("https://") {
                return Err(LlmError::Config(format!(
                    "provider `{}`: base_url `{}` must start with http:// or https://",
                    provider.name, provider.base_url
                )));
            }
        }
        for (task, route) in &self.routes {
            if route.is_empty() {
                return Err(LlmError::Config(format!("route `{task}` names no provider")));
            }
            if let Some(unknown) = route.iter().find(|name| !names.contains(name.as_str())) {
                return Err(LlmError::Config(format!(
                    "route `{task}` names `{unknown}`, which is not among the providers ({})",
                    names.iter().copied().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        if !self.routes.contains_key("default") {
            return Err(LlmError::Config("there is no `default` route".into()));
        }
        self.timeouts.timeouts().map(|_| ())
    }
}

/// Where API keys come from: the OS keychain, or (in tests of what cannot reach one) a fixed set.
pub trait KeySource: Send + Sync {
    fn key(&self, name: &str) -> Result<Option<Secret>, LlmError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[[providers]]
name = "cloud"
kind = "openai"
base_url = "https://openrouter.ai/api/v1"
model = "qwen/qwen-2.5-coder-32b-instruct"
api_key = "openrouter"
context_window = 32768

[[providers]]
name = "local"
kind = "openai"
base_url = "http://127.0.0.1:8080/v1"
model = "qwen2.5-coder-7b-instruct"
context_window = 16384

[routes]
default = ["local", "cloud"]
long_context = ["cloud", "local"]

[retry]
max_retries = 2
"#;

    #[test]
    fn a_toml_routing_file_parses_validates_and_round_trips_as_json() {
        let config = RoutesConfig::parse(EXAMPLE).unwrap();
        assert_eq!(config.routes["long_context"], ["cloud", "local"]);
        assert_eq!(config.retry.max_retries, 2);
        assert_eq!(config.retry.first_wait_ms, 500, "unset fields keep their defaults");
        assert!(!config.providers[0].is_local() && config.providers[1].is_local());
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(RoutesConfig::parse(&json).unwrap(), config);
    }

    #[test]
    fn a_remote_engine_goes_first_in_every_route_and_comes_out_again() {
        let config = RoutesConfig::parse(EXAMPLE).unwrap();
        let with = config.clone().with_remote_engine("http://10.0.0.5:8080/", "qwen2.5-coder-32b").unwrap();
        let remote = with.remote_engine().unwrap();
        assert_eq!(remote.base_url, "http://10.0.0.5:8080/v1");
        assert_eq!(remote.api_key.as_deref(), Some(RoutesConfig::REMOTE_ENGINE_KEY), "a keychain entry, not a key");
        assert!(remote.is_local(), "self-hosted costs nothing per token");
        assert_eq!(with.routes["default"], ["remote", "local", "cloud"]);
        assert_eq!(with.routes["long_context"], ["remote", "cloud", "local"]);
        let again = with.clone().with_remote_engine("http://10.0.0.6:8080/v1", "other").unwrap();
        assert_eq!(again.routes["default"], ["remote", "local", "cloud"], "replaced, not added twice");
        assert_eq!(again.providers.iter().filter(|p| p.name == "remote").count(), 1);
        assert_eq!(with.without_remote_engine(), Some(config));

        let alone = RoutesConfig::default().with_remote_engine("https://gpu.lan", "m").unwrap();
        assert_eq!(alone.routes["default"], ["remote"]);
        assert_eq!(alone.without_remote_engine(), None, "nothing left to route to");
        let err = RoutesConfig::default().with_remote_engine("gpu.lan:8080", "m").unwrap_err().to_string();
        assert!(err.contains("http://"), "{err}");
        assert!(RoutesConfig::default().with_remote_engine("http://gpu.lan", " ").is_err());
    }

    #[test]
    fn mistakes_are_named() {
        let unknown = EXAMPLE.replace(r#"long_context = ["cloud", "local"]"#, r#"long_context = ["clod"]"#);
        let err = RoutesConfig::parse(&unknown).unwrap_err().to_string();
        assert!(err.contains("`clod`") && err.contains("cloud, local"), "{err}");
        let no_default = EXAMPLE.replace("default =", "short =");
        assert!(RoutesConfig::parse(&no_default).unwrap_err().to_string().contains("no `default` route"));
        let key_value =
            EXAMPLE.replace("model = \"qwen2.5-coder-7b-instruct\"", "model = \"m\"\napi_key_value = \"sk-1\"");
        assert!(RoutesConfig::parse(&key_value).unwrap_err().to_string().contains("api_key_value"));
    }
}
