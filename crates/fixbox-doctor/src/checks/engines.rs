use fixbox_engine::{Origin, SearchPaths, discover};

use crate::{Check, CheckId};

pub(crate) async fn engines() -> Check {
    let found = discover(&SearchPaths::from_env()).await;
    if found.is_empty() {
        return Check::warn(
            CheckId::Engines,
            "no local engine found (llama-server, ollama, vllm)",
            "put llama.cpp's llama-server, ollama or vllm on PATH, or install one into Fixbox's engines dir \
             (set FIXBOX_ENGINES_DIR to use another)",
        );
    }
    let lines = found.iter().map(|e| {
        let origin = match e.origin {
            Origin::Fixbox => "installed by Fixbox",
            Origin::Path => "on PATH",
        };
        format!(
            "{}: {} ({origin}; {})",
            e.kind.binary(),
            e.path.display(),
            e.version.as_deref().unwrap_or("version unknown")
        )
    });
    let mut names: Vec<&str> = found.iter().map(|e| e.kind.binary()).collect();
    names.dedup();
    Check::ok(CheckId::Engines, format!("found {}", names.join(", "))).with_details(lines)
}
