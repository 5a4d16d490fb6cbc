//! The Linux installer: the .deb that `scripts/package` makes (scripts/test makes it from the debug
//! build) is installed with apt in a clean Debian 12 container (the image Fixbox builds for its Python
//! sandboxes, run as root with network for apt), and the app starts from it under Xvfb: its window
//! comes up and is kept as a screenshot; the `fixbox` command beside it runs.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use fixbox_sandbox::{BuildMethod, Recipe, SandboxHost, ensure_image};

/// The newest .deb under the debug build's bundle folder.
fn package() -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| fixbox_e2e::workspace_root().join("target"));
    let dir = target.join("debug/bundle/deb");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("no {}: run `scripts/package --debug` first (scripts/test does)", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    debs.pop().with_context(|| format!("no .deb in {}: run `scripts/package --debug` first", dir.display()))
}

/// A container removed when dropped.
struct Container(String);

impl Container {
    fn exec(&self, script: &str) -> Result<String> {
        let out = Command::new("docker").args(["exec", &self.0, "sh", "-c", script]).output()?;
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        ensure!(out.status.success(), "`{script}` failed in the container:\n{said}");
        Ok(said)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deb_installs_on_a_clean_debian_and_the_app_starts_from_it() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let out = fixbox_e2e::output_dir("installer")?;
    let deb = package()?;
    let docker = SandboxHost::connect().await?;
    let image = ensure_image(&docker, &Recipe::builtin("python")?, BuildMethod::from_env()?, &|_| {}).await?;
    let name = format!("fixbox-installer-test-{}", std::process::id());
    let folder = deb.parent().context("the package has a folder")?;
    let run = Command::new("docker")
        .args(["run", "-d", "--name", &name, "--user", "0", "--entrypoint", "sleep", "-v"])
        .arg(format!("{}:/pkg:ro", folder.display()))
        .args([&image, "3600"])
        .output()?;
    ensure!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let container = Container(name);

    let file = deb.file_name().context("a file name")?.to_string_lossy().into_owned();
    container.exec(&format!(
        "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
         /pkg/{file} xvfb xauth x11-utils x11-apps netpbm dbus >/tmp/apt.log 2>&1 || (tail -20 /tmp/apt.log; exit 1)"
    ))?;
    let version = container.exec("fixbox --version")?;
    ensure!(version.starts_with("fixbox "), "{version}");
    let desktop = container.exec("cat /usr/share/applications/Fixbox.desktop")?;
    ensure!(desktop.contains("Exec=fixbox-desktop %u") && desktop.contains("x-scheme-handler/fixbox"), "{desktop}");

    // The app from the package, in a window on a virtual display.
    let shown = container.exec(
        "Xvfb :99 -screen 0 1100x760x24 >/tmp/xvfb.log 2>&1 &
         sleep 1
         export DISPLAY=:99 FIXBOX_DATA_DIR=/tmp/fixbox-data
         dbus-run-session -- fixbox-desktop >/tmp/app.log 2>&1 &
         for i in $(seq 1 60); do xwininfo -root -tree | grep -q '\"Fixbox\": (\"fixbox-desktop\"' && break; sleep 1; done
         xwininfo -root -tree | grep '\"Fixbox\"' || (cat /tmp/app.log; exit 1)
         sleep 3
         xwd -root -display :99 | xwdtopnm 2>/dev/null | pnmtopng > /tmp/window.png",
    )?;
    ensure!(shown.contains("1100x760"), "the window is not up at its size: {shown}");
    let copy = Command::new("docker")
        .args(["cp", &format!("{}:/tmp/window.png", container.0)])
        .arg(out.join("window.png"))
        .output()?;
    ensure!(copy.status.success(), "{}", String::from_utf8_lossy(&copy.stderr));
    let png = std::fs::read(out.join("window.png"))?;
    ensure!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "the screenshot is empty ({} bytes)", png.len());
    Ok(())
}
