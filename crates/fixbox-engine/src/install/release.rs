//! Official prebuilt releases on GitHub: the assets for this OS, CPU and GPU (for llama.cpp's CUDA
//! builds, the newest CUDA the driver runs, with its runtime libraries), each checked against the
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
    /// Fetches the release assets of `repo` that `choose` picks from the release's asset names, checks
    /// each one's SHA-256 against the release's `digest`, unpacks them into one folder and returns the
    /// `binary` inside.
    pub(super) async fn install_release(
        &self,
        repo: &str,
        tag: Option<&str>,
        choose: impl Fn(&[String]) -> Option<Vec<String>>,
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
        let names: Vec<String> = release.assets.iter().map(|a| a.name.clone()).collect();
        let chosen = choose(&names).ok_or_else(|| EngineError::NoPrebuilt {
            what: format!("{binary} for {} in {repo} {}", self.platform, release.tag_name),
        })?;
        let assets: Vec<&Asset> =
            chosen.iter().filter_map(|name| release.assets.iter().find(|a| &a.name == name)).collect();
        let name = binary.to_string();
        let home = self.engines_dir.join(&name);
        let dir = home.join(&release.tag_name);
        if let Some(found) = find_below(&dir, &name, 3).into_iter().next() {
            let _ = events.send(InstallEvent::Cached { path: found.clone() });
            return Ok(found);
        }
        let mut files = Vec::new();
        for asset in assets {
            let sha256 = asset
                .digest
                .as_deref()
                .and_then(|d| d.strip_prefix("sha256:"))
                .filter(|h| h.len() == 64)
                .ok_or_else(|| EngineError::Unverifiable { what: asset.name.clone() })?;
            let archive = Archive::of(&asset.name).ok_or_else(|| EngineError::NoPrebuilt {
                what: format!("an archive Fixbox can open ({})", asset.name),
            })?;
            let _ =
                events.send(InstallEvent::Note(format!("downloading {} from {repo} {}", asset.name, release.tag_name)));
            let download = Download::new(
                asset.browser_download_url.clone(),
                self.engines_dir.join(".downloads").join(&asset.name),
                sha256,
            );
            let (tx, forward) = forward_downloads(events);
            let fetched = self.downloader.fetch(&download, &tx, cancel).await;
            drop(tx);
            let _ = forward.await;
            files.push((fetched?, archive));
        }
        let _ = events.send(InstallEvent::Extracting);
        let staging = home.join(format!(".{}.partial", release.tag_name));
        let _ = tokio::fs::remove_dir_all(&staging).await;
        for (file, archive) in &files {
            unpack(file, &staging, *archive).await?;
        }
        if find_below(&staging, &name, 3).into_iter().next().is_none() {
            return Err(EngineError::NoPrebuilt { what: format!("{name} inside {}", chosen.join(" + ")) });
        }
        tokio::fs::rename(&staging, &dir).await.map_err(|e| EngineError::io(&dir, e))?;
        for (file, _) in &files {
            let _ = tokio::fs::remove_file(file).await;
        }
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
    /// The newest CUDA version the NVIDIA driver runs, (major, minor); `None` where unknown.
    pub cuda_driver: Option<(u32, u32)>,
    /// A CUDA toolkit (`nvcc`) to build llama.cpp's CUDA backend with.
    pub cuda_toolkit: bool,
}

impl Platform {
    pub fn current() -> Self {
        Self {
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            nvidia: which::which("nvidia-smi").is_ok(),
            cuda_driver: fixbox_hardware::cuda_driver_version(),
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
    fn new(prefix: &str, contains: &[&str], excludes: &[&str]) -> Self {
        Self {
            prefix: prefix.into(),
            contains: contains.iter().map(|s| s.to_string()).collect(),
            excludes: excludes.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The first of `names` this pattern picks, as the one asset to install.
    pub fn choose(&self, names: &[String]) -> Option<Vec<String>> {
        names.iter().find(|n| self.matches(n)).map(|n| vec![n.clone()])
    }

    /// Whether the release file `name` is the one this pattern picks.
    pub fn matches(&self, name: &str) -> bool {
        let rest = name.strip_prefix("llama-").and_then(|r| r.split_once('-')).map_or(name, |(_, r)| r);
        (name.starts_with(&self.prefix) || rest.starts_with(&self.prefix))
            && self.contains.iter().all(|c| name.contains(c.as_str()))
            && !self.excludes.iter().any(|e| name.contains(e.as_str()))
    }
}

/// The llama.cpp release files to install on `platform`, out of a release's asset `names`: its build
/// (`llama-<tag>-bin-<platform>.<ext>`) and, for a CUDA build on Windows, the CUDA runtime that goes
/// beside it. `None` where upstream builds nothing for it.
pub fn llama_release_assets(platform: &Platform, names: &[String]) -> Option<Vec<String>> {
    if (platform.os.as_str(), platform.arch.as_str(), platform.nvidia) == ("windows", "x86_64", true) {
        // Vulkan, where no CUDA build runs on this driver: it runs on any NVIDIA driver.
        let vulkan = || AssetPattern::new("bin-win-vulkan-x64.", &[], &[]).choose(names);
        if let Some(cuda) = windows_cuda_build(platform.cuda_driver, names).or_else(vulkan) {
            return Some(cuda);
        }
    }
    release_asset_pattern(platform)?.choose(names)
}

/// The CUDA build for Windows with the newest CUDA this driver runs (the oldest, where the driver's
/// CUDA version is unknown), and its runtime libraries: upstream ships those separately
/// (`cudart-llama-bin-win-cuda-<version>-x64.zip`), and the build does not start without them.
fn windows_cuda_build(driver: Option<(u32, u32)>, names: &[String]) -> Option<Vec<String>> {
    let version = |name: &str| -> Option<((u32, u32), String)> {
        let text = name.strip_prefix("llama-")?.split_once("-bin-win-cuda-")?.1.strip_suffix("-x64.zip")?;
        let (major, minor) = text.split_once('.')?;
        Some(((major.parse().ok()?, minor.parse().ok()?), text.to_string()))
    };
    let builds = names.iter().filter_map(|name| version(name).map(|(v, text)| (v, text, name)));
    let runnable = builds.filter(|(v, _, _)| driver.is_none_or(|d| *v <= d));
    let (_, text, build) = match driver {
        Some(_) => runnable.max_by_key(|(v, _, _)| *v),
        None => runnable.min_by_key(|(v, _, _)| *v),
    }?;
    let runtime = format!("cudart-llama-bin-win-cuda-{text}-x64.zip");
    names.contains(&runtime).then(|| vec![build.clone(), runtime])
}

/// The llama.cpp release file for `platform` (`llama-<tag>-bin-<platform>.<ext>`) without a GPU
/// runtime of its own, if upstream builds one.
pub fn release_asset_pattern(platform: &Platform) -> Option<AssetPattern> {
    let pattern = AssetPattern::new;
    match (platform.os.as_str(), platform.arch.as_str(), platform.nvidia) {
        // Upstream's Linux builds are CPU (all variants, picked at run time) or Vulkan; no CUDA build.
        ("linux", "x86_64", false) => Some(pattern("bin-ubuntu-x64.", &[], &[])),
        ("linux", "x86_64", true) => Some(pattern("bin-ubuntu-vulkan-x64.", &[], &[])),
        ("linux", "aarch64", false) => Some(pattern("bin-ubuntu-arm64.", &[], &[])),
        ("linux", "aarch64", true) => Some(pattern("bin-ubuntu-vulkan-arm64.", &[], &[])),
        ("macos", "aarch64", _) => Some(pattern("bin-macos-arm64.", &[], &[])),
        ("macos", "x86_64", _) => Some(pattern("bin-macos-x64.", &[], &[])),
        // The CUDA builds are chosen by the driver's CUDA version (`llama_release_assets`).
        ("windows", "x86_64", _) => Some(pattern("bin-win-cpu-x64.", &[], &[])),
        ("windows", "aarch64", _) => Some(pattern("bin-win-cpu-arm64.", &[], &[])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The asset names of a llama.cpp release, as upstream's release workflow publishes them.
    fn recorded_listing() -> Vec<String> {
        let text = include_str!("../../tests/fixtures/github/llama-cpp-release.json");
        let release: Release = serde_json::from_str(text).unwrap();
        release.assets.into_iter().map(|a| a.name).collect()
    }

    fn platform(os: &str, arch: &str, cuda_driver: Option<(u32, u32)>) -> Platform {
        let nvidia = cuda_driver.is_some();
        Platform { os: os.into(), arch: arch.into(), nvidia, cuda_driver, cuda_toolkit: false }
    }

    #[test]
    fn picks_the_release_files_for_each_platform_from_a_recorded_listing() {
        let names = recorded_listing();
        let pick = |os: &str, arch: &str, driver| llama_release_assets(&platform(os, arch, driver), &names);
        let one = |name: &str| Some(vec![name.to_string()]);
        assert_eq!(pick("linux", "x86_64", None), one("llama-b10621-bin-ubuntu-x64.tar.gz"));
        assert_eq!(pick("linux", "x86_64", Some((12, 8))), one("llama-b10621-bin-ubuntu-vulkan-x64.tar.gz"));
        assert_eq!(pick("linux", "aarch64", None), one("llama-b10621-bin-ubuntu-arm64.tar.gz"));
        assert_eq!(pick("macos", "aarch64", None), one("llama-b10621-bin-macos-arm64.tar.gz"));
        assert_eq!(pick("macos", "x86_64", None), one("llama-b10621-bin-macos-x64.tar.gz"));
        assert_eq!(pick("windows", "x86_64", None), one("llama-b10621-bin-win-cpu-x64.zip"));
        assert_eq!(pick("windows", "aarch64", None), one("llama-b10621-bin-win-cpu-arm64.zip"));
        assert_eq!(pick("freebsd", "x86_64", None), None);
    }

    #[test]
    fn windows_takes_the_newest_cuda_build_its_driver_runs_with_that_cudas_runtime() {
        let names = recorded_listing();
        let windows = |driver| llama_release_assets(&platform("windows", "x86_64", driver), &names).unwrap();
        let cuda = |v: &str| {
            vec![format!("llama-b10621-bin-win-cuda-{v}-x64.zip"), format!("cudart-llama-bin-win-cuda-{v}-x64.zip")]
        };
        // The RTX 4060 reading in fixbox-models' fixtures: driver 591.86, "CUDA Version: 13.1".
        assert_eq!(windows(Some((13, 1))), cuda("12.4"), "a 13.3 build does not start on a 13.1 driver");
        assert_eq!(windows(Some((13, 3))), cuda("13.3"));
        assert_eq!(windows(Some((12, 8))), cuda("12.4"));
        // A driver too old for any CUDA build gets Vulkan, which every NVIDIA driver runs.
        assert_eq!(windows(Some((11, 8))), ["llama-b10621-bin-win-vulkan-x64.zip"]);
        // NVIDIA seen but its CUDA version unknown: the oldest CUDA build, the likeliest to run.
        let unknown = Platform { nvidia: true, ..platform("windows", "x86_64", None) };
        assert_eq!(llama_release_assets(&unknown, &names).unwrap(), cuda("12.4"));
        // A release without the runtime for a build is not half installed.
        let without_runtime: Vec<String> = names.iter().filter(|n| !n.starts_with("cudart-")).cloned().collect();
        let plan = llama_release_assets(&platform("windows", "x86_64", Some((13, 3))), &without_runtime);
        assert_eq!(plan.unwrap(), ["llama-b10621-bin-win-vulkan-x64.zip"]);
    }

    #[test]
    fn an_nvidia_linux_machine_with_cuda_builds_it_and_one_without_takes_vulkan() {
        let linux = |nvidia, cuda_toolkit| Platform {
            os: "linux".into(),
            arch: "x86_64".into(),
            nvidia,
            cuda_driver: None,
            cuda_toolkit,
        };
        assert!(linux(true, true).prefers_cuda_build());
        assert!(!linux(true, false).prefers_cuda_build(), "no toolkit: the Vulkan release");
        assert!(!linux(false, true).prefers_cuda_build(), "no NVIDIA GPU: the CPU release");
        let windows = Platform { os: "windows".into(), ..linux(true, true) };
        assert!(!windows.prefers_cuda_build(), "upstream builds CUDA for Windows");
    }
}
