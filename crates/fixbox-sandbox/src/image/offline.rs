//! The offline build: a Debian root filesystem made with debootstrap from a Debian mirror (reachable
//! where no container registry is), streamed as a tar into the Engine's image import.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::TryStreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::recipe::{IMAGE_CONFIG, SANDBOX_UID, SANDBOX_USER};
use crate::{Recipe, SandboxError, SandboxHost};

/// The Debian mirror debootstrap downloads from (`FIXBOX_DEBIAN_MIRROR` overrides it).
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// debootstrap needs root (it creates device nodes and chroots) and Linux.
#[cfg(target_os = "linux")]
pub(crate) fn available() -> bool {
    nix::unistd::geteuid().is_root() && debootstrap_path().is_some()
}

/// Elsewhere images are built from their Dockerfile.
#[cfg(not(target_os = "linux"))]
pub(crate) fn available() -> bool {
    false
}

/// Where debootstrap is: on PATH, or in /usr/sbin, which a non-root PATH often lacks.
fn debootstrap_path() -> Option<PathBuf> {
    which::which("debootstrap").ok().or_else(|| {
        let sbin = PathBuf::from("/usr/sbin/debootstrap");
        sbin.is_file().then_some(sbin)
    })
}

pub(crate) async fn build(
    host: &SandboxHost,
    recipe: &Recipe,
    tag: &str,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), SandboxError> {
    if !available() {
        return Err(SandboxError::build(
            tag,
            "the offline build needs Linux, root and debootstrap (`apt-get install debootstrap`); \
             where a registry is reachable, set FIXBOX_SANDBOX_BUILD=online instead",
        ));
    }
    let work = tempfile::Builder::new()
        .prefix("fixbox-rootfs-")
        .tempdir_in(std::env::var_os("FIXBOX_BUILD_DIR").map_or_else(std::env::temp_dir, Into::into))
        .map_err(|e| SandboxError::build(tag, format!("cannot make a build folder: {e}")))?;
    let rootfs = work.path().join("rootfs");
    let program = debootstrap_path().ok_or_else(|| SandboxError::build(tag, "debootstrap is not installed"))?;
    root_filesystem(&program, recipe, &rootfs, tag, progress).await?;
    add_sandbox_user(&rootfs).map_err(|e| SandboxError::build(tag, format!("cannot add the sandbox user: {e}")))?;
    progress("importing the root filesystem into Docker");
    import(host, &rootfs, tag).await
}

/// A minimal Debian (debootstrap's minbase), then the recipe's packages installed by apt inside it. apt,
/// not debootstrap's `--include`, resolves their dependencies: debootstrap's own resolver misses
/// alternatives and virtual packages, which leaves packages such as rustc and npm unconfigured.
async fn root_filesystem(
    program: &Path,
    recipe: &Recipe,
    rootfs: &Path,
    tag: &str,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), SandboxError> {
    let mirror = std::env::var("FIXBOX_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.to_string());
    let mut bootstrap = tokio::process::Command::new(program);
    bootstrap.arg("--variant=minbase").arg(&recipe.suite).arg(rootfs).arg(&mirror);
    run_logged(bootstrap, "debootstrap", &format!("debootstrap from {mirror}"), tag, progress).await?;

    // apt inside the new root resolves names with the host's resolver; the image does not keep it.
    let resolv = rootfs.join("etc/resolv.conf");
    std::fs::copy("/etc/resolv.conf", &resolv)
        .map_err(|e| SandboxError::build(tag, format!("cannot give the build the host's DNS settings: {e}")))?;
    let mut install = tokio::process::Command::new("chroot");
    install
        .arg(rootfs)
        .args([
            "sh",
            "-c",
            "apt-get update -q && apt-get install -y -q --no-install-recommends \"$@\" && apt-get clean",
        ])
        .arg("apt-get")
        .args(&recipe.packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let installed =
        run_logged(install, "apt", &format!("installing {} from {mirror}", recipe.packages.join(" ")), tag, progress)
            .await;
    std::fs::write(&resolv, "")
        .map_err(|e| SandboxError::build(tag, format!("cannot clear the build's DNS settings: {e}")))?;
    installed
}

/// Runs a build step, passing its output lines on as progress; on failure the error holds the end of
/// its error output.
async fn run_logged(
    mut command: tokio::process::Command,
    name: &str,
    what: &str,
    tag: &str,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), SandboxError> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SandboxError::build(tag, format!("cannot run {name}: {e}")))?;
    let stderr = child.stderr.take();
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        }
        text
    });
    if let Some(stdout) = child.stdout.take() {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            progress(&format!("{name}: {line}"));
        }
    }
    let status = child.wait().await.map_err(|e| SandboxError::build(tag, format!("{name}: {e}")))?;
    let stderr = stderr_task.await.unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(if stderr.contains("No space left on device") {
            SandboxError::OutOfDisk { what: format!("building {tag}") }
        } else {
            SandboxError::build(tag, format!("{what} failed ({status}): {}", tail.join(" / ")))
        });
    }
    Ok(())
}

/// The non-root user commands run as, and a clean image: no apt caches.
fn add_sandbox_user(rootfs: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let append = |file: &str, line: String| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().append(true).open(rootfs.join(file))?;
        writeln!(f, "{line}")
    };
    append("etc/passwd", format!("{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_UID}:Fixbox sandbox:/tmp:/bin/sh"))?;
    append("etc/group", format!("{SANDBOX_USER}:x:{SANDBOX_UID}:"))?;
    std::fs::create_dir_all(rootfs.join("workspace"))?;
    for cache in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let dir = rootfs.join(cache);
        for entry in std::fs::read_dir(&dir)?.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(())
}

/// Streams `tar -C rootfs -c .` into `POST /images/create?fromSrc=-`, with the image settings.
async fn import(host: &SandboxHost, rootfs: &Path, tag: &str) -> Result<(), SandboxError> {
    let mut tar = tokio::process::Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SandboxError::build(tag, format!("cannot run tar: {e}")))?;
    let stdout = tar.stdout.take().ok_or_else(|| SandboxError::build(tag, "tar has no stdout"))?;
    let body = tokio_util::io::ReaderStream::new(stdout);
    let (repo, version) = tag.split_once(':').unwrap_or((tag, "latest"));
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(version)
        .changes(IMAGE_CONFIG.iter().map(|s| (*s).to_string()).collect())
        .build();
    let result: Result<Vec<_>, _> =
        host.docker().create_image(Some(options), Some(bollard::body_try_stream(body)), None).try_collect().await;
    let tar_status = tar.wait().await.map_err(|e| SandboxError::build(tag, format!("tar: {e}")))?;
    result.map_err(|e| classify_import_error(tag, &e.to_string()))?;
    if !tar_status.success() {
        return Err(SandboxError::build(tag, format!("tar of the root filesystem failed ({tar_status})")));
    }
    Ok(())
}

fn classify_import_error(tag: &str, message: &str) -> SandboxError {
    if message.contains("no space left on device") {
        SandboxError::OutOfDisk { what: format!("importing {tag}") }
    } else {
        SandboxError::build(tag, format!("the Engine refused the image import: {message}"))
    }
}
