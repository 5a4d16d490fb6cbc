//! Discovery over real executables: stand-ins that print what each engine prints for `--version`.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use fixbox_engine::{EngineKind, Origin, SearchPaths, discover};

/// An executable shell script at `path` that runs `script`.
fn stand_in(path: &Path, script: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(path.parent().unwrap_or(path))?;
    std::fs::write(path, format!("#!/bin/sh\n{script}\n"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[tokio::test]
async fn finds_fixbox_installs_and_path_engines_with_their_versions() {
    let root = tempfile::tempdir().unwrap();
    let engines = root.path().join("engines");
    let bin = root.path().join("bin");
    stand_in(
        &engines.join("llama.cpp/b4567/llama-server"),
        "echo 'version: 4567 (0a1b2c3)' >&2; echo 'built with cc for x86_64-linux-gnu' >&2",
    )
    .unwrap();
    stand_in(
        &bin.join("ollama"),
        "echo 'Warning: could not connect to a running Ollama instance'; echo 'ollama version is 0.5.7'",
    )
    .unwrap();
    stand_in(&bin.join("vllm"), "sleep 30").unwrap(); // hangs: found, but no version
    std::fs::write(bin.join("llama-server"), "not executable").unwrap();

    let search = SearchPaths { engines_dir: Some(engines.clone()), path: Some(bin.clone().into_os_string()) };
    let found = discover(&search).await;
    let summary: Vec<_> = found.iter().map(|e| (e.kind, e.origin, e.version.as_deref())).collect();
    assert_eq!(
        summary,
        vec![
            (EngineKind::LlamaServer, Origin::Fixbox, Some("version: 4567 (0a1b2c3)")),
            (EngineKind::Ollama, Origin::Path, Some("ollama version is 0.5.7")),
            (EngineKind::Vllm, Origin::Path, None),
        ]
    );
    assert_eq!(found[0].path, engines.join("llama.cpp/b4567/llama-server"));
}

#[tokio::test]
async fn nothing_installed_finds_nothing() {
    let root = tempfile::tempdir().unwrap();
    let search = SearchPaths { engines_dir: Some(root.path().join("missing")), path: Some(root.path().into()) };
    assert!(discover(&search).await.is_empty());
}
