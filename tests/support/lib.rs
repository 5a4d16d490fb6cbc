//! What the whole-product tests share: finding the built binaries, an output folder per test, and
//! real helper processes (Xvfb, tauri-driver) that are killed when dropped.

mod display;
pub mod docker_tls;
pub mod faults;
pub mod fixtures;
pub mod github;
pub mod hostile;
pub mod models;
mod process;
pub mod shell;
pub mod transcripts;
pub mod window;

pub use display::VirtualDisplay;
pub use process::{ChildGuard, free_port, wait_for_port};

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

/// Taken by the tests that load this machine (engines generating, sandboxes running tests, their images
/// building on a fresh machine) and those that measure it (the hardware probe's memory bandwidth, hence
/// its speed estimates): they take turns, so a probe never reads a machine busy with another test's
/// work. (On a fresh machine the sample projects' image builds overlapped the desktop's probe, and no
/// model was recommended.)
pub async fn machine_to_myself() -> tokio::sync::MutexGuard<'static, ()> {
    MACHINE.lock().await
}

/// [`machine_to_myself`] for a test outside any async runtime.
pub fn machine_to_myself_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    MACHINE.blocking_lock()
}

static MACHINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// A binary of this workspace, built by the same `cargo` run into the same profile dir as this test
/// (`<target>/<profile>/deps/e2e-…` runs next to `<target>/<profile>/<name>`).
pub fn workspace_bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(Path::parent).context("test binary has no profile dir")?;
    let bin = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        bin.exists(),
        "{} is not built: run scripts/test, or `cargo build --workspace --features fixbox-desktop/custom-protocol` first",
        bin.display()
    );
    Ok(bin)
}

/// Copies the files and folders under `from` into `to`, which exists.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Every file under `dir`, as (path, bytes).
pub fn files_under(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir)?.flatten() {
            match entry.file_type()? {
                t if t.is_dir() => dirs.push(entry.path()),
                t if t.is_file() => files.push((entry.path().display().to_string(), std::fs::read(entry.path())?)),
                _ => {}
            }
        }
    }
    Ok(files)
}

/// Where each of `secrets` appears among `places` (a name and its bytes), as "SECRET in PLACE": what a
/// canary test expects to be empty.
pub fn found_in(places: &[(String, Vec<u8>)], secrets: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (place, bytes) in places {
        for secret in secrets {
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                found.push(format!("{secret} in {place}"));
            }
        }
    }
    found
}

/// Fixbox sandbox containers on the Docker Engine, running or not (through the docker CLI, so the
/// count does not depend on the code under test).
pub fn sandboxes() -> Result<usize> {
    let filter = format!("label={}=1", fixbox_sandbox::labels::SANDBOX);
    let out = std::process::Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output()?;
    ensure!(out.status.success(), "docker ps: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).lines().count())
}

/// A routes file in `dir` with one local OpenAI-compatible provider `name` at `base_url` (ending in
/// `/v1`) serving `model` with a `context` window, as the only route.
pub fn routes_file(dir: &Path, name: &str, base_url: &str, model: &str, context: u32) -> Result<PathBuf> {
    let path = dir.join("routes.toml");
    std::fs::write(
        &path,
        format!(
            "[[providers]]\nname = \"{name}\"\nkind = \"openai\"\nbase_url = \"{base_url}\"\nmodel = \"{model}\"\ncontext_window = {context}\nlocal = true\n\n[routes]\ndefault = [\"{name}\"]\n"
        ),
    )?;
    Ok(path)
}

/// A fresh, empty folder for one test's artifacts (screenshots, logs): `tests/output/<test>`. It is
/// kept after the run so a person can look at what the test saw.
pub fn output_dir(test: &str) -> Result<PathBuf> {
    let dir = workspace_root().join("tests/output").join(test);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Checks `done` every 200 ms until it holds or `limit` has passed; whether it held.
pub async fn wait_until(limit: std::time::Duration, done: impl Fn() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    done()
}
