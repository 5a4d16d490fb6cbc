//! Official prebuilt releases on GitHub: the asset for this OS, CPU and GPU, checked against the
//! release's SHA-256 digest.

use std::path::PathBuf;

use fixbox_models::Download;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::archive::{Archive, unpack};
use super::{InstallEvent, Installer, forward_downloads};
use crate::EngineError;
use crate::discover::find_below;

impl Installer {
    /// Fetches the release asset of `repo` matching `pattern`, checks its SHA-256 against the
    /// release's `digest`, unpacks it and returns the `binary` inside.
    pub(super) async fn install_release(
        &self,
        repo: &str,
        tag: Option<&str>,
        pattern: &AssetPattern,
        binary: &str,
        events: &mpsc::UnboundedSender<InstallEvent>,
        cancel: &CancellationToken,
    ) -> Result<PathBuf, EngineError> {
        let api = self.github_api.trim_end_matches('/');
        let url = match tag {
            Some(tag) => format!("{api}/repos/{repo}/releases/tags/{tag}"),
            None => format!("{api}/repos/{repo}/releases/latest"),
        };
        let release: Release = self.downloader.fetch_json(&url, "github").await?;
        let asset =
            release.assets.iter().find(|a| pattern.matches(&a.name)).ok_or_else(|| EngineError::NoPrebuilt {
                what: format!("{binary} for {} in {repo} {}", Platform::current(), release.tag_name),
            })?;
        let sha256 = asset
            .digest
            .as_deref()
            .and_then(|d| d.strip_prefix("sha256:"))
            .filter(|h| h.len() == 64)
            .ok_or_else(|| EngineError::Unverifiable { what: asset.name.clone() })?;
        let name = binary.to_string();
        let home = self.engines_dir.join(&name);
        let dir = home.join(&release.tag_name);
        if let Some(found) = find_below(&dir, &name, 3).into_iter().next() {
            let _ = events.send(InstallEvent::Cached { path: found.clone() });
            return Ok(found);
        }
        let archive = Archive::of(&asset.name)
            .ok_or_else(|| EngineError::NoPrebuilt { what: format!("an archive Fixbox can open ({})", asset.name) })?;
        let _ = events.send(InstallEvent::Note(format!("downloading {} from {repo} {}", asset.name, release.tag_name)));
        let download = Download::new(
            asset.browser_download_url.clone(),
            self.engines_dir.join(".downloads").join(&asset.name),
            sha256,
        );
        let (tx, forward) = forward_downloads(events);
        let fetched = self.downloader.fetch(&download, &tx, cancel).await;
        drop(tx);
        let _ = forward.await;
        let file = fetched?;
        let _ = events.send(InstallEvent::Extracting);
        let staging = home.join(format!(".{}.partial", release.tag_name));
        let _ = tokio::fs::remove_dir_all(&staging).await;
        unpack(&file, &staging, archive).await?;
        if find_below(&staging, &name, 3).into_iter().next().is_none() {
            return Err(EngineError::NoPrebuilt { what: format!("{name} inside {}", asset.name) });
        }
        tokio::fs::rename(&staging, &dir).await.map_err(|e| EngineError::io(&dir, e))?;
        let _ = tokio::fs::remove_file(&file).await;
        let found = find_below(&dir, &name, 3)
            .into_iter()
            .next()
            .ok_or_else(|| EngineError::NoPrebuilt { what: name.clone() })?;
        let _ = events.send(InstallEvent::Installed { path: found.clone() });
        Ok(found)
    }
}

#[derive(Deserialize)]
struct Release {
    tag_name: String,
    assets: Vec<Asset>,
}

#[derive(Deserialize)]
struct Asset {
    name: String,
    browser_download_url: String,
    digest: Option<String>,
}

/// This machine as release assets are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub nvidia: bool,
    /// A CUDA toolkit (`nvcc`) to build llama.cpp's CUDA backend with.
    pub cuda_toolkit: bool,
}

impl Platform {
    pub fn current() -> Self {
        Self {
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            nvidia: which::which("nvidia-smi").is_ok(),
            cuda_toolkit: which::which("nvcc").is_ok(),
        }
    }

    /// Whether `auto` should build llama-server with CUDA rather than take the prebuilt release: on
    /// Linux with an NVIDIA GPU and a CUDA toolkit, as upstream builds only CPU and Vulkan there and
    /// CUDA is the faster backend on NVIDIA cards.
    pub fn prefers_cuda_build(&self) -> bool {
        self.os == "linux" && self.nvidia && self.cuda_toolkit
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}{}", self.os, self.arch, if self.nvidia { " with an NVIDIA GPU" } else { "" })
    }
}

/// Which release file fits: its name starts with `prefix`, contains each of `contains` and none of
/// `excludes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetPattern {
    pub prefix: String,
    pub contains: Vec<String>,
    pub excludes: Vec<String>,
}

impl AssetPattern {
    /// Whether the release file `name` is the one this pattern picks.
    pub fn matches(&self, name: &str) -> bool {
        let rest = name.strip_prefix("llama-").and_then(|r| r.split_once('-')).map_or(name, |(_, r)| r);
        (name.starts_with(&self.prefix) || rest.starts_with(&self.prefix))
            && self.contains.iter().all(|c| name.contains(c.as_str()))
            && !self.excludes.iter().any(|e| name.contains(e.as_str()))
    }
}

/// The llama.cpp release file for `platform` (`llama-<tag>-bin-<platform>.<ext>`), if upstream builds one.
pub fn release_asset_pattern(platform: &Platform) -> Option<AssetPattern> {
    let pattern = |prefix: &str, contains: &[&str], excludes: &[&str]| AssetPattern {
        prefix: prefix.into(),
        contains: contains.iter().map(|s| s.to_string()).collect(),
        excludes: excludes.iter().map(|s| s.to_string()).collect(),
    };
    match (platform.os.as_str(), platform.arch.as_str(), platform.nvidia) {
        // Upstream's Linux builds are CPU (all variants, picked at run time) or Vulkan; no CUDA build.
        ("linux", "x86_64", false) => Some(pattern("bin-ubuntu-x64.", &[], &[])),
        ("linux", "x86_64", true) => Some(pattern("bin-ubuntu-vulkan-x64.", &[], &[])),
        ("linux", "aarch64", false) => Some(pattern("bin-ubuntu-arm64.", &[], &[])),
        ("macos", "aarch64", _) => Some(pattern("bin-macos-arm64.", &[], &[])),
        ("macos", "x86_64", _) => Some(pattern("bin-macos-x64.", &[], &[])),
        ("windows", "x86_64", true) => Some(pattern("bin-win-cuda-", &["x64"], &[])),
        ("windows", "x86_64", false) => Some(pattern("bin-win-cpu-x64.", &[], &[])),
        ("windows", "aarch64", _) => Some(pattern("bin-win-cpu-arm64.", &[], &[])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_release_file_for_each_platform() {
        let names = [
            "llama-b10621-bin-ubuntu-x64.tar.gz",
            "llama-b10621-bin-ubuntu-vulkan-x64.tar.gz",
            "llama-b10621-bin-macos-arm64.tar.gz",
            "llama-b10621-bin-win-cpu-x64.zip",
            "llama-b10621-bin-win-cuda-12.4-x64.zip",
            "cudart-llama-bin-win-cuda-12.4-x64.zip",
        ];
        let pick = |os: &str, arch: &str, nvidia: bool| {
            let pattern =
                release_asset_pattern(&Platform { os: os.into(), arch: arch.into(), nvidia, cuda_toolkit: false })?;
            names.iter().find(|n| pattern.matches(n)).copied()
        };
        assert_eq!(pick("linux", "x86_64", false), Some("llama-b10621-bin-ubuntu-x64.tar.gz"));
        assert_eq!(pick("linux", "x86_64", true), Some("llama-b10621-bin-ubuntu-vulkan-x64.tar.gz"));
        assert_eq!(pick("macos", "aarch64", false), Some("llama-b10621-bin-macos-arm64.tar.gz"));
        assert_eq!(pick("windows", "x86_64", false), Some("llama-b10621-bin-win-cpu-x64.zip"));
        assert_eq!(pick("windows", "x86_64", true), Some("llama-b10621-bin-win-cuda-12.4-x64.zip"));
        assert_eq!(pick("freebsd", "x86_64", false), None);
    }

    #[test]
    fn an_nvidia_linux_machine_with_cuda_builds_it_and_one_without_takes_vulkan() {
        let linux = |nvidia, cuda_toolkit| Platform { os: "linux".into(), arch: "x86_64".into(), nvidia, cuda_toolkit };
        assert!(linux(true, true).prefers_cuda_build());
        assert!(!linux(true, false).prefers_cuda_build(), "no toolkit: the Vulkan release");
        assert!(!linux(false, true).prefers_cuda_build(), "no NVIDIA GPU: the CPU release");
        let windows = Platform { os: "windows".into(), ..linux(true, true) };
        assert!(!windows.prefers_cuda_build(), "upstream builds CUDA for Windows");
    }
}
