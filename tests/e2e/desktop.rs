//! The real desktop app under Xvfb, driven by tauri-driver + WebKitWebDriver: it opens, runs the
//! doctor through its typed command, and shows the report.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::{ClientBuilder, Locator};
use fixbox_e2e::{ChildGuard, VirtualDisplay, free_port, output_dir, wait_for_port, workspace_bin};
use hyper_util::client::legacy::connect::HttpConnector;

#[tokio::test(flavor = "multi_thread")]
async fn the_window_shows_the_doctor_report() -> Result<()> {
    let out = output_dir("desktop-doctor")?;
    let app = workspace_bin("fixbox-desktop")?;
    let data = tempfile::tempdir()?;
    let display = VirtualDisplay::start()?;

    let (port, native_port) = (free_port()?, free_port()?);
    let driver = Command::new("tauri-driver")
        .args(["--port", &port.to_string(), "--native-port", &native_port.to_string()])
        .env("DISPLAY", &display.display)
        .env("FIXBOX_DATA_DIR", data.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(out.join("tauri-driver.log"))?)
        .spawn()
        .context("cannot start tauri-driver: scripts/setup installs it (cargo install tauri-driver)")?;
    let mut driver = ChildGuard::new("tauri-driver", driver);
    // tauri-driver listens at once but drops requests until its WebKitWebDriver child listens too.
    wait_for_port(port, &mut driver, Duration::from_secs(30))?;
    wait_for_port(native_port, &mut driver, Duration::from_secs(30))?;

    let mut caps = serde_json::Map::new();
    caps.insert("tauri:options".into(), serde_json::json!({ "application": app }));
    // Plain HTTP: tauri-driver listens on loopback only.
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await?;
    // A WebKit call that never answers (seen with WEBKIT_DISABLE_DMABUF_RENDERER=1: screenshots hang)
    // must fail the test, not hang CI.
    let result = tokio::time::timeout(Duration::from_secs(180), check_report(&client, &out))
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the window stopped answering WebDriver within 180 s")));
    // Always close the session, also when a check failed, so the app exits with the driver.
    client.close().await?;
    result?;

    let logs = std::fs::read_dir(data.path().join("logs"))?.count();
    ensure!(logs > 0, "the app wrote no log file into its data dir");
    Ok(())
}

async fn check_report(client: &fantoccini::Client, out: &std::path::Path) -> Result<()> {
    // The doctor runs real checks (Docker, keychain, GPUs...); the verdict appears when all answered.
    let verdict = client
        .wait()
        .at_most(Duration::from_secs(90))
        .for_element(Locator::Css("[data-testid=doctor-verdict]"))
        .await
        .context("the doctor report did not appear in the window")?;
    let screenshot = client.screenshot().await?;
    std::fs::write(out.join("doctor.png"), &screenshot)?;
    ensure!(screenshot.starts_with(b"\x89PNG"), "the screenshot is not a PNG");

    let checks = client.find_all(Locator::Css("li[data-check]")).await?;
    let mut ids = Vec::new();
    for check in &checks {
        ids.push(check.attr("data-check").await?.unwrap_or_default());
    }
    ensure!(ids == ["docker", "keychain", "gpu", "memory", "cpu", "data-dir", "engines"], "{ids:?}");

    let docker = client.find(Locator::Css("li[data-check=docker]")).await?;
    ensure!(docker.attr("data-status").await?.as_deref() == Some("ok"), "docker check: {}", docker.text().await?);
    let text = docker.text().await?;
    ensure!(text.contains("Docker Engine") && text.contains("reachable"), "{text}");
    ensure!(!verdict.text().await?.is_empty());
    Ok(())
}
