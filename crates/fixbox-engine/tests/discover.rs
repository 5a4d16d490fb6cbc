//! Discovery over real executables: stand-ins that print what each engine prints for `--version`.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use fixbox_engine::{EngineError, EngineKind, Origin, SearchPaths, discover, installed_in};

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

#[tokio::test]
async fn an_engine_older_than_fixbox_needs_is_refused_naming_both_versions() {
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin");
    stand_in(&bin.join("llama-server"), "echo 'version: 3500 (d00d00)' >&2").unwrap();
    stand_in(&bin.join("ollama"), "echo 'ollama version is 0.1.32'").unwrap();
    let search = SearchPaths { engines_dir: None, path: Some(bin.clone().into_os_string()) };
    for (kind, said) in [
        (EngineKind::LlamaServer, "it says \"version: 3500 (d00d00)\"; Fixbox needs build b4000 or later"),
        (EngineKind::Ollama, "it says \"ollama version is 0.1.32\"; Fixbox needs 0.3.0 or later"),
    ] {
        let err = installed_in(&search, kind).await.unwrap_err();
        assert!(matches!(err, EngineError::TooOld { .. }), "{err}");
        assert!(err.to_string().contains(said), "{err}");
        assert!(err.to_string().ends_with("install a current one, or update it"), "{err}");
    }
    stand_in(&bin.join("llama-server"), "echo 'version: 10621 (0a1b2c3)' >&2").unwrap();
    assert_eq!(installed_in(&search, EngineKind::LlamaServer).await.unwrap(), bin.join("llama-server"));
    // A build outside llama.cpp's releases names no build number: not refused for what it cannot tell.
    stand_in(&bin.join("llama-server"), "echo 'version: 0.6.0-dev (build 0, commit unknown)' >&2").unwrap();
    stand_in(&bin.join("ollama"), "echo 'ollama version is 0.12.3'").unwrap();
    assert_eq!(installed_in(&search, EngineKind::LlamaServer).await.unwrap(), bin.join("llama-server"));
    assert_eq!(installed_in(&search, EngineKind::Ollama).await.unwrap(), bin.join("ollama"));
}
