//! Which engine: llama.cpp's llama-server, Ollama or vLLM.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "kebab-case")]
pub enum EngineKind {
    LlamaServer,
    Ollama,
    Vllm,
}

impl EngineKind {
    pub const ALL: [Self; 3] = [Self::LlamaServer, Self::Ollama, Self::Vllm];

    /// The port the engine listens on by default (Fixbox starts there and moves up when it is taken).
    pub fn default_port(self) -> u16 {
        match self {
            Self::LlamaServer => 8080,
            Self::Ollama => 11434,
            Self::Vllm => 8000,
        }
    }

    /// The executable's name, without the platform's extension.
    pub fn binary(self) -> &'static str {
        match self {
            Self::LlamaServer => "llama-server",
            Self::Ollama => "ollama",
            Self::Vllm => "vllm",
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.binary())
    }
}

impl std::str::FromStr for EngineKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.binary() == s || (s == "llama.cpp" && *k == Self::LlamaServer))
            .ok_or_else(|| format!("no engine {s:?}; use llama-server, ollama or vllm"))
    }
}
