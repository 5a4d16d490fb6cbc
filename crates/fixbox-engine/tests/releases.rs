//! The prebuilt-release install path (llama.cpp's and Ollama's GitHub releases), against a loopback
//! server that answers GitHub's REST API with the recorded release (tests/fixtures/github) and serves
//! archives laid out as upstream's are, holding a stand-in executable.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test helpers: a failure stops the test with its message")]

#[path = "../../fixbox-models/tests/support/loopback.rs"]
#[expect(dead_code, reason = "the misbehaving modes are for the download tests")]
mod loopback;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fixbox_engine::{
    Engine, EngineError, InstallEvent, Installer, LlamaServer, LlamaSource, Ollama, Platform, llama_release_assets,
};
use fixbox_models::{Downloader, RetryPolicy};
use loopback::{Loopback, Mode, hex_sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A tar archive of `(path, mode, content)` entries.
fn tar(entries: &[(&str, u32, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, mode, content) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(*mode);
        header.set_cksum();
        builder.append_data(&mut header, path, content.as_bytes()).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Publishes the recorded release `fixture` at `api_path`: the asset named `asset` is served from this
/// server with `digest` (the others keep their placeholder digests and upstream URLs, which must not be
/// touched).
fn publish_release(server: &Loopback, fixture: &str, api_path: &str, asset: &str, bytes: Vec<u8>, digest: &str) {
    publish_assets(server, fixture, api_path, &[(asset, bytes, digest.to_string())]);
}

/// [`publish_release`] for several assets, each `(name, bytes, digest)`.
fn publish_assets(server: &Loopback, fixture: &str, api_path: &str, assets: &[(&str, Vec<u8>, String)]) {
    let text = std::fs::read_to_string(Path::new("tests/fixtures/github").join(fixture)).unwrap();
    let mut release: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (asset, bytes, digest) in assets {
        let url = server.route(&format!("/download/{asset}"), Arc::new(bytes.clone()));
        let entry = release["assets"].as_array_mut().unwrap().iter_mut().find(|a| a["name"] == *asset).unwrap();
        entry["browser_download_url"] = url.into();
        entry["digest"] = format!("sha256:{digest}").into();
        entry["size"] = bytes.len().into();
    }
    server.route(api_path, Arc::new(release.to_string().into_bytes()));
}

/// A zip archive of `(path, content)` entries, as upstream's Windows assets are.
fn zip(entries: &[(&str, &str)]) -> Vec<u8> {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (path, content) in entries {
        writer.start_file(*path, zip::write::SimpleFileOptions::default().unix_permissions(0o755)).unwrap();
        writer.write_all(content.as_bytes()).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

fn installer(engines: &Path, server: &Loopback) -> Installer {
    let mut installer = Installer::new(engines, Downloader::new(RetryPolicy::default()).unwrap());
    installer.github_api = server.base.clone();
    installer.llama_source = LlamaSource::Prebuilt;
    installer.llama_release = Some("b10621".into());
    installer
}

async fn install(engine: &dyn Engine, installer: &Installer) -> (Result<PathBuf, EngineError>, Vec<InstallEvent>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let result = engine.install(installer, &tx, &CancellationToken::new()).await;
    drop(tx);
    let mut events = Vec::new();
    while let Some(event) = rx.recv().await {
        events.push(event);
    }
    (result, events)
}

/// The asset upstream builds for this machine, as the installer picks it.
fn llama_asset_for_this_machine() -> String {
    let text = std::fs::read_to_string("tests/fixtures/github/llama-cpp-release.json").unwrap();
    let release: serde_json::Value = serde_json::from_str(&text).unwrap();
    let names: Vec<String> =
        release["assets"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_string()).collect();
    let chosen =
        llama_release_assets(&Platform::current(), &names).expect("upstream builds llama.cpp for this platform");
    let [asset] = chosen.as_slice() else { panic!("one asset for this machine, not {chosen:?}") };
    assert!(asset.ends_with(".tar.gz"), "{asset}");
    asset.clone()
}

const STAND_IN: &str = "#!/bin/sh\necho \"version: 10621 (stand-in)\"\n";

#[tokio::test]
async fn llama_server_is_installed_from_the_release_for_this_machine_and_reused() {
    let server = Loopback::start(Mode::Normal).await;
    let asset = llama_asset_for_this_machine();
    // Upstream's archives hold `build/bin/` (older) or `llama-b<N>/` (newer) with the shared libraries.
    let archive = gzip(&tar(&[
        ("llama-b10621/llama-server", 0o755, STAND_IN),
        ("llama-b10621/libggml-base.so", 0o644, "not really a library"),
        ("llama-b10621/LICENSE", 0o644, "MIT"),
    ]));
    let digest = hex_sha256(&archive);
    publish_release(
        &server,
        "llama-cpp-release.json",
        "/repos/ggml-org/llama.cpp/releases/tags/b10621",
        &asset,
        archive,
        &digest,
    );
    let engines = tempfile::tempdir().unwrap();
    let installer = installer(engines.path(), &server);

    let (binary, events) = install(&LlamaServer, &installer).await;
    let binary = binary.unwrap();
    assert_eq!(binary, engines.path().join("llama-server/b10621/llama-b10621/llama-server"));
    let output = std::process::Command::new(&binary).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "version: 10621 (stand-in)\n");
    assert!(binary.with_file_name("libggml-base.so").is_file(), "the libraries stay beside the binary");
    assert!(events.iter().any(|e| matches!(e, InstallEvent::Download(_))), "{events:?}");
    assert!(matches!(events.last(), Some(InstallEvent::Installed { .. })), "{events:?}");
    let leftovers: Vec<_> = std::fs::read_dir(engines.path().join(".downloads")).unwrap().collect();
    assert!(leftovers.is_empty(), "the archive is removed once unpacked: {leftovers:?}");

    // A second install finds it; only the release is asked for again.
    let downloads_before = server.heads.lock().unwrap().iter().filter(|h| h.starts_with("GET /download/")).count();
    let (again, events) = install(&LlamaServer, &installer).await;
    assert_eq!(again.unwrap(), binary);
    assert_eq!(events, [InstallEvent::Cached { path: binary }]);
    let downloads_after = server.heads.lock().unwrap().iter().filter(|h| h.starts_with("GET /download/")).count();
    assert_eq!(downloads_before, downloads_after);
}

/// What a Windows machine with an NVIDIA driver for CUDA 13.1 gets: the CUDA 12.4 build (13.3 would
/// not start on that driver) and CUDA 12.4's runtime libraries unpacked beside it. The archives are
/// served here as zips laid out as upstream's (everything at the top); the install runs on this machine
/// with the platform set to that one.
#[tokio::test]
async fn a_windows_cuda_build_is_installed_with_the_cuda_runtime_its_driver_runs() {
    let server = Loopback::start(Mode::Normal).await;
    let build = zip(&[("llama-server", STAND_IN), ("ggml-cuda.dll", "not really a library")]);
    let runtime = zip(&[("cudart64_12.dll", "not really a library"), ("cublas64_12.dll", "nor this")]);
    let (build_digest, runtime_digest) = (hex_sha256(&build), hex_sha256(&runtime));
    publish_assets(
        &server,
        "llama-cpp-release.json",
        "/repos/ggml-org/llama.cpp/releases/tags/b10621",
        &[
            ("llama-b10621-bin-win-cuda-12.4-x64.zip", build, build_digest),
            ("cudart-llama-bin-win-cuda-12.4-x64.zip", runtime, runtime_digest),
        ],
    );
    let engines = tempfile::tempdir().unwrap();
    let mut installer = installer(engines.path(), &server);
    installer.platform = Platform {
        os: "windows".into(),
        arch: "x86_64".into(),
        nvidia: true,
        cuda_driver: Some((13, 1)),
        cuda_toolkit: false,
    };

    let (binary, events) = install(&LlamaServer, &installer).await;
    let binary = binary.unwrap();
    assert_eq!(binary, engines.path().join("llama-server/b10621/llama-server"));
    for library in ["ggml-cuda.dll", "cudart64_12.dll", "cublas64_12.dll"] {
        assert!(binary.with_file_name(library).is_file(), "{library} is not beside the binary");
    }
    let downloads: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            InstallEvent::Note(note) => note.strip_prefix("downloading "),
            _ => None,
        })
        .collect();
    assert_eq!(
        downloads,
        [
            "llama-b10621-bin-win-cuda-12.4-x64.zip from ggml-org/llama.cpp b10621",
            "cudart-llama-bin-win-cuda-12.4-x64.zip from ggml-org/llama.cpp b10621"
        ],
        "{events:?}"
    );
}

#[tokio::test]
async fn a_release_asset_that_does_not_match_its_digest_is_not_installed() {
    let server = Loopback::start(Mode::Normal).await;
    let asset = llama_asset_for_this_machine();
    let archive = gzip(&tar(&[("llama-b10621/llama-server", 0o755, STAND_IN)]));
    let wrong = hex_sha256(b"another file");
    publish_release(
        &server,
        "llama-cpp-release.json",
        "/repos/ggml-org/llama.cpp/releases/tags/b10621",
        &asset,
        archive,
        &wrong,
    );
    let engines = tempfile::tempdir().unwrap();

    let (result, _) = install(&LlamaServer, &installer(engines.path(), &server)).await;
    let message = result.unwrap_err().to_string();
    assert!(message.contains(&wrong) && message.contains("deleted"), "{message}");
    assert!(!engines.path().join("llama-server/b10621").exists(), "nothing is installed from a bad download");

    // Without the digest GitHub gives, the asset cannot be checked, so it is not taken.
    let unverifiable = Loopback::start(Mode::Normal).await;
    let text = std::fs::read_to_string("tests/fixtures/github/llama-cpp-release.json").unwrap();
    let mut release: serde_json::Value = serde_json::from_str(&text).unwrap();
    for entry in release["assets"].as_array_mut().unwrap() {
        entry.as_object_mut().unwrap().remove("digest");
    }
    unverifiable.route("/repos/ggml-org/llama.cpp/releases/tags/b10621", Arc::new(release.to_string().into_bytes()));
    let (result, _) = install(&LlamaServer, &installer(engines.path(), &unverifiable)).await;
    assert!(matches!(result, Err(EngineError::Unverifiable { .. })), "{result:?}");
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[tokio::test]
async fn ollama_is_installed_from_its_zstd_release_archive() {
    let server = Loopback::start(Mode::Normal).await;
    // Ollama's Linux archive: `bin/ollama` and its runners under `lib/ollama/`.
    let archive = tar(&[
        ("bin/ollama", 0o755, "#!/bin/sh\necho \"ollama version is 0.32.15\"\n"),
        ("lib/ollama/libggml-base.so", 0o644, "not really a library"),
    ]);
    let archive = ruzstd::encoding::compress_to_vec(archive.as_slice(), ruzstd::encoding::CompressionLevel::Fastest);
    let digest = hex_sha256(&archive);
    publish_release(
        &server,
        "ollama-release.json",
        "/repos/ollama/ollama/releases/latest",
        "ollama-linux-amd64.tar.zst",
        archive,
        &digest,
    );
    let engines = tempfile::tempdir().unwrap();

    let (binary, _) = install(&Ollama, &installer(engines.path(), &server)).await;
    let binary = binary.unwrap();
    assert_eq!(binary, engines.path().join("ollama/v0.32.15/bin/ollama"));
    let output = std::process::Command::new(&binary).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "ollama version is 0.32.15\n");
    let heads = server.heads.lock().unwrap().clone();
    assert!(!heads.iter().any(|h| h.contains("rocm")), "the ROCm build is not fetched: {heads:?}");
}
