//! The real desktop app under Xvfb, driven by tauri-driver + WebKitWebDriver: it opens on the wizard's
//! first page (this machine and the models that fit it, each with a why line), runs the doctor through
//! its typed command, and shows the report.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::{ClientBuilder, Locator};
use fixbox_e2e::{ChildGuard, VirtualDisplay, free_port, output_dir, wait_for_port, workspace_bin};
use hyper_util::client::legacy::connect::HttpConnector;

#[tokio::test(flavor = "multi_thread")]
async fn the_window_shows_the_doctor_report() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
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
    let verdict = match client
        .wait()
        .at_most(Duration::from_secs(90))
        .for_element(Locator::Css("[data-testid=doctor-verdict]"))
        .await
    {
        Ok(verdict) => verdict,
        Err(err) => {
            // What the window showed instead, for whoever reads the failure.
            if let Ok(png) = client.screenshot().await {
                let _ = std::fs::write(out.join("no-doctor-report.png"), png);
            }
            if let Ok(html) = client.source().await {
                let _ = std::fs::write(out.join("no-doctor-report.html"), html);
            }
            return Err(err).context("the doctor report did not appear in the window (see no-doctor-report.*)");
        }
    };
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
    check_machine_page(client, out).await
}

/// The wizard's first page: this machine as the probe reads it, and recommendations, each with a why.
async fn check_machine_page(client: &fantoccini::Client, out: &std::path::Path) -> Result<()> {
    let cpu = client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("[data-testid=machine-cpu]"))
        .await
        .context("the machine page did not show the CPU")?;
    let threads = std::thread::available_parallelism()?.get();
    let text = cpu.text().await?;
    ensure!(text.contains(&format!("{threads} threads")), "{text}");
    let picks = client.find_all(Locator::Css("li[data-testid=pick]")).await?;
    ensure!(!picks.is_empty(), "no model is recommended for this machine");
    let mut uses = Vec::new();
    for pick in &picks {
        uses.push(pick.attr("data-use").await?.unwrap_or_default());
        let why = pick.find(Locator::Css("[data-testid=why]")).await?.text().await?;
        ensure!(why.contains("needs") && why.contains("(estimate)"), "a pick without its why: {why:?}");
    }
    ensure!(uses.iter().any(|u| u == "code-fix"), "no code-fix pick: {uses:?}");
    let machine = client.find(Locator::Css("[data-testid=machine]")).await?;
    std::fs::write(out.join("machine.png"), machine.screenshot().await?)?;
    Ok(())
}
