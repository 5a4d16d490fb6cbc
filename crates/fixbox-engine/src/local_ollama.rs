//! An Ollama the user runs themselves, not one Fixbox started: found where `OLLAMA_HOST` (or its
//! default, 127.0.0.1:11434) says, with the coder model a session would use from it.

use std::time::Duration;

use fixbox_models::{Catalog, CatalogModel, Role, Source};

use crate::{EngineKind, OllamaClient, Running};

/// Ollama's own default address.
const DEFAULT_ADDRESS: &str = "127.0.0.1:11434";
/// The context asked for a coder model the catalog does not know.
const UNKNOWN_MODEL_CONTEXT: u32 = 8192;

/// An Ollama that answered, and the models it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOllama {
    pub url: String,
    pub version: String,
    pub models: Vec<String>,
}

/// The URL of the Ollama `OLLAMA_HOST` names (`host:port`, `:port`, `host` or a URL, as Ollama itself
/// reads it), or of its default address.
pub fn ollama_url(ollama_host: Option<&str>) -> String {
    let host = ollama_host.map(str::trim).filter(|h| !h.is_empty()).unwrap_or(DEFAULT_ADDRESS);
    let (scheme, rest) = match host.split_once("://") {
        Some((scheme, rest)) => (scheme, rest.trim_end_matches('/')),
        None => ("http", host.trim_end_matches('/')),
    };
    let (name, port) = match rest.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() => (name, port),
        _ => (rest, "11434"),
    };
    // Listening on every address means this machine can reach it on loopback.
    let name = match name {
        "" | "0.0.0.0" => "127.0.0.1",
        "[::]" => "[::1]",
        other => other,
    };
    format!("{scheme}://{name}:{port}")
}

impl LocalOllama {
    /// The Ollama at `url`, if one answers there within two seconds.
    pub async fn find(url: &str) -> Option<Self> {
        let client = OllamaClient::new(url);
        let ask = async {
            let version = client.version().await.ok()?;
            let models = client.models().await.ok()?.into_iter().map(|m| m.name).collect();
            Some(Self { url: url.to_string(), version, models })
        };
        tokio::time::timeout(Duration::from_secs(2), ask).await.ok().flatten()
    }

    /// The Ollama this machine's `OLLAMA_HOST` names, if one answers.
    pub async fn find_here() -> Option<Self> {
        Self::find(&ollama_url(std::env::var("OLLAMA_HOST").ok().as_deref())).await
    }

    /// The model a session uses from this Ollama: of the catalog's coders it has (by their Ollama
    /// tag, or the tag without its quantization, as `ollama pull qwen2.5-coder:7b` names it), the one
    /// published to fix the most, at the catalog's context; else a model whose name says it writes
    /// code, at 8k. Ollama is told the context with every request, so nothing is cut silently.
    pub fn coder(&self) -> Option<Running> {
        let catalog = Catalog::embedded().ok()?;
        let mut coders: Vec<&CatalogModel> = catalog.models.iter().filter(|m| m.role == Role::Coder).collect();
        let rate = |m: &CatalogModel| m.swe_bench_verified.as_ref().map_or(-1.0, |s| s.percent);
        coders.sort_by(|a, b| rate(b).total_cmp(&rate(a)).then(b.parameters.cmp(&a.parameters)));
        let known = coders.iter().find_map(|model| {
            let here = self.models.iter().find(|name| ollama_tags(model).any(|tag| same_model(name, tag)))?;
            Some((here.clone(), model.context_recommended))
        });
        let (model, context) = known.or_else(|| {
            let coder = self.models.iter().find(|name| ["coder", "devstral"].iter().any(|w| name.contains(w)))?;
            Some((coder.clone(), UNKNOWN_MODEL_CONTEXT))
        })?;
        Some(Running { kind: EngineKind::Ollama, url: self.url.clone(), model, context: Some(context), api_key: None })
    }
}

fn ollama_tags(model: &CatalogModel) -> impl Iterator<Item = &str> {
    model.quants.iter().flat_map(|q| &q.sources).filter_map(|source| match source {
        Source::Ollama { model } => Some(model.as_str()),
        _ => None,
    })
}

/// Whether the local model `name` is the catalog's `tag`: the same, or its short form
/// (`qwen2.5-coder:7b` for `qwen2.5-coder:7b-instruct-q4_K_M`).
fn same_model(name: &str, tag: &str) -> bool {
    let name = name.strip_prefix("library/").unwrap_or(name);
    name == tag || tag.strip_prefix(name).is_some_and(|rest| rest.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_host_is_read_as_ollama_reads_it() {
        assert_eq!(ollama_url(None), "http://127.0.0.1:11434");
        assert_eq!(ollama_url(Some("")), "http://127.0.0.1:11434");
        assert_eq!(ollama_url(Some("0.0.0.0")), "http://127.0.0.1:11434");
        assert_eq!(ollama_url(Some("0.0.0.0:8080")), "http://127.0.0.1:8080");
        assert_eq!(ollama_url(Some(":11500")), "http://127.0.0.1:11500");
        assert_eq!(ollama_url(Some("https://ollama.lan/")), "https://ollama.lan:11434");
        assert_eq!(ollama_url(Some("http://10.0.0.5:9000")), "http://10.0.0.5:9000");
    }

    fn ollama(models: &[&str]) -> LocalOllama {
        LocalOllama {
            url: "http://127.0.0.1:11434".into(),
            version: "0.5.1".into(),
            models: models.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn the_coder_published_to_fix_the_most_is_used_at_its_catalog_context() {
        let catalog = Catalog::embedded().unwrap();
        let both = ollama(&["llama3.2:latest", "qwen2.5-coder:7b", "qwen2.5-coder:14b-instruct-q4_K_M"]);
        let running = both.coder().unwrap();
        assert_eq!((running.kind, running.model.as_str()), (EngineKind::Ollama, "qwen2.5-coder:14b-instruct-q4_K_M"));
        assert_eq!(running.context, Some(catalog.model("qwen2.5-coder-14b-instruct").unwrap().context_recommended));
        // The short tag a user pulls is the catalog's model too.
        let short = ollama(&["qwen2.5-coder:7b"]).coder().unwrap();
        assert_eq!((short.model.as_str(), short.context), ("qwen2.5-coder:7b", Some(16_384)));
        assert!(!same_model("qwen2.5-coder:7", "qwen2.5-coder:7b-instruct-q4_K_M"));
        // A coder the catalog does not know is used at 8k; no coder at all is none.
        let unknown = ollama(&["llama3.2:latest", "starcoder2:3b"]).coder().unwrap();
        assert_eq!((unknown.model.as_str(), unknown.context), ("starcoder2:3b", Some(8192)));
        assert_eq!(ollama(&["llama3.2:latest", "deepseek-r1:latest"]).coder(), None);
    }
}
