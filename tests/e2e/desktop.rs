//! The real desktop app under Xvfb, driven by tauri-driver + WebKitWebDriver: it opens on the wizard's
//! first page (this machine and the models that fit it, each with a why line), runs the doctor through
//! its typed command, and shows the report; a fix session started in the window streams into the diff
//! viewer and is accepted into its folder; its history lists, searches, replays and deletes a real fix
//! session. Screenshots of each page go to `tests/output/desktop-*`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::{ClientBuilder, Locator};
use fixbox_agent::Event;
use fixbox_agent::patch::{PatchDelta, Side};
use fixbox_e2e::transcripts::{Pace, ReplayServer};
use fixbox_e2e::{ChildGuard, VirtualDisplay, free_port, output_dir, wait_for_port, workspace_bin};
use hyper_util::client::legacy::connect::HttpConnector;

/// The app in a real window on a virtual display, with its data in `data`, driven over WebDriver.
struct Window {
    client: fantoccini::Client,
    _driver: ChildGuard,
    _display: VirtualDisplay,
}

impl Window {
    async fn open(data: &Path, out: &Path) -> Result<Self> {
        let app = workspace_bin("fixbox-desktop")?;
        let display = VirtualDisplay::start()?;
        let (port, native_port) = (free_port()?, free_port()?);
        let driver = Command::new("tauri-driver")
            .args(["--port", &port.to_string(), "--native-port", &native_port.to_string()])
            .env("DISPLAY", &display.display)
            .env("FIXBOX_DATA_DIR", data)
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
        Ok(Self { client, _driver: driver, _display: display })
    }

    /// Runs `checks`, then closes the WebDriver session (also when a check failed, so the app exits
    /// with the driver). A WebKit call that never answers (seen with WEBKIT_DISABLE_DMABUF_RENDERER=1:
    /// screenshots hang) fails the test instead of hanging CI.
    async fn check<F: Future<Output = Result<()>>>(self, checks: impl FnOnce(fantoccini::Client) -> F) -> Result<()> {
        let result = tokio::time::timeout(Duration::from_secs(180), checks(self.client.clone()))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the window stopped answering WebDriver within 180 s")));
        self.client.close().await?;
        result
    }
}

/// The window as a PNG, once what the DOM holds now has been painted: WebKit's screenshot shows the
/// last painted frame, which can be a step behind the DOM a check just read.
async fn screenshot(client: &fantoccini::Client, path: &Path) -> Result<()> {
    client
        .execute_async(
            "const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => done()));",
            vec![],
        )
        .await?;
    let png = client.screenshot().await?;
    ensure!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    std::fs::write(path, png)?;
    Ok(())
}

/// Waits for `css`; when it does not come, keeps what the window showed instead as `out/<name>.*`.
async fn wait_for(
    client: &fantoccini::Client,
    css: &str,
    out: &Path,
    name: &str,
) -> Result<fantoccini::elements::Element> {
    match client.wait().at_most(Duration::from_secs(90)).for_element(Locator::Css(css)).await {
        Ok(element) => Ok(element),
        Err(err) => {
            if let Ok(png) = client.screenshot().await {
                let _ = std::fs::write(out.join(format!("{name}.png")), png);
            }
            if let Ok(html) = client.source().await {
                let _ = std::fs::write(out.join(format!("{name}.html")), html);
            }
            Err(err).with_context(|| format!("{css} did not appear in the window (see {name}.*)"))
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_window_shows_the_doctor_report() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let out = output_dir("desktop-doctor")?;
    let data = tempfile::tempdir()?;
    let window = Window::open(data.path(), &out).await?;
    window.check(|client| async move { check_report(&client, &out).await }).await?;

    let logs = std::fs::read_dir(data.path().join("logs"))?.count();
    ensure!(logs > 0, "the app wrote no log file into its data dir");
    Ok(())
}

/// A real fix session (`fixbox fix`, sandbox, tests, replayed model answers) lands in the history; the
/// window lists it, finds it by search, replays it into the diff viewer, and deletes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_fix_session_is_in_the_history_replays_into_the_diff_viewer_and_deletes() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let out = output_dir("desktop-history")?;
    let run = crate::fix::record("py-cache-evict-during-iteration", &["1"]).await?;
    // The lines the model's answer added, as the session streamed them.
    let (_, events, _) = run.report()?;
    let expected: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::PatchDelta { delta: PatchDelta::Line { side: Side::Replace, text, .. }, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    ensure!(!expected.is_empty(), "the recorded session streamed no added line");
    let window = Window::open(run.data.path(), &out).await?;
    window
        .check(|client| async move {
            client.find(Locator::Css("[data-testid=nav-history]")).await?.click().await?;
            let row = wait_for(&client, "[data-testid=history-row]", &out, "no-history").await?;
            let text = row.text().await?;
            ensure!(text.contains("fixed: the tests pass") && text.contains("1 it"), "{text}");
            screenshot(&client, &out.join("history.png")).await?;

            // Search narrows the list; a search that matches nothing says so.
            let search = client.find(Locator::Css("[data-testid=history-search]")).await?;
            search.send_keys("no such session").await?;
            wait_for(&client, "[data-testid=history-empty]", &out, "search-kept-rows").await?;
            search.clear().await?;
            search.send_keys("cache").await?;
            let row = wait_for(&client, "[data-testid=history-row]", &out, "search-lost-row").await?;

            // Replayed: the patch streams into the viewer, highlighted, and ends applied.
            row.find(Locator::Css("[data-testid=history-replay]")).await?.click().await?;
            let outcome = wait_for(&client, "[data-testid=session-outcome]", &out, "no-replay").await?;
            ensure!(outcome.text().await?.contains("fixed"), "{}", outcome.text().await?);
            let tab = client.find(Locator::Css("[data-testid=diff-tab]")).await?.text().await?;
            ensure!(tab.starts_with("cache.py"), "tab {tab:?}");
            let status = client.find(Locator::Css("[data-testid=patch-status]")).await?.text().await?;
            ensure!(status == "applied", "patch status {status:?}");
            let lines = client.find_all(Locator::Css("[data-testid=diff-line]")).await?;
            ensure!(lines.len() >= 2, "{} diff lines", lines.len());
            let mut added = Vec::new();
            for line in &lines {
                if line.attr("class").await?.unwrap_or_default().contains("replace") {
                    let code = line.find(Locator::Css(".code")).await?.html(true).await?;
                    added.push(code);
                }
            }
            let shown: Vec<String> = added.iter().map(|html| unhighlight(html)).collect();
            ensure!(shown == expected, "the viewer added {shown:?}, the session streamed {expected:?}");
            let timeline = client.find(Locator::Css("[data-testid=timeline]")).await?.text().await?;
            ensure!(timeline.contains("tests before any change: 4 passed, 1 failed"), "{timeline}");
            screenshot(&client, &out.join("session.png")).await?;

            // Delete, two steps: it leaves the list and the log.
            client.find(Locator::XPath("//button[contains(., 'All sessions')]")).await?.click().await?;
            let row = wait_for(&client, "[data-testid=history-row]", &out, "no-row-after-replay").await?;
            row.find(Locator::Css("[data-testid=history-delete]")).await?.click().await?;
            row.find(Locator::Css("[data-testid=history-delete-confirm]")).await?.click().await?;
            wait_for(&client, "[data-testid=history-empty]", &out, "not-deleted").await?;
            Ok(())
        })
        .await?;
    let store = fixbox_store::Store::open_in(run.data.path())?;
    ensure!(store.list_sessions()?.is_empty(), "the deleted session is still in the store");
    Ok(())
}

/// A fix session started in the window: the folder's test command is detected, Auto-fix runs the
/// session (real sandbox and pytest; the model's recorded answer replayed at a visible pace, from the
/// routes in the settings), the diff viewer grows while the answer streams, the session ends fixed,
/// Accept writes the fix into the folder, and the history lists the session.
#[tokio::test(flavor = "multi_thread")]
async fn a_fix_session_started_in_the_window_streams_and_is_accepted() -> Result<()> {
    const FIXTURE: &str = "py-cache-evict-during-iteration";
    let _machine = fixbox_e2e::machine_to_myself().await;
    let out = output_dir("desktop-fix")?;
    let fixture = fixbox_e2e::fixtures::get(FIXTURE)?;
    let repo = tempfile::tempdir()?;
    crate::fix::copy_dir(&fixture.repo, repo.path())?;
    let before = std::fs::read_to_string(repo.path().join("cache.py"))?;
    let script = crate::fix::answers(FIXTURE, &["1"])?;
    let server = ReplayServer::start(script, Pace::Every(Duration::from_millis(60))).await?;
    let data = tempfile::tempdir()?;
    let routes = std::fs::read_to_string(crate::fix::routing_file(data.path(), &server.url)?)?;
    let config = fixbox_llm::RoutingConfig::parse(&routes)?;
    fixbox_store::Store::open_in(data.path())?
        .set_setting(fixbox_llm::RoutingConfig::SETTING, &serde_json::to_value(&config)?)?;

    let folder = repo.path().display().to_string();
    let window = Window::open(data.path(), &out).await?;
    window
        .check(|client| async move {
            client.find(Locator::Css("[data-testid=nav-fix]")).await?.click().await?;
            let route = wait_for(&client, "[data-testid=fix-route] option", &out, "no-routes").await?;
            ensure!(route.text().await?.contains("replay"), "route {:?}", route.text().await?);
            let input = client.find(Locator::Css("[data-testid=fix-folder]")).await?;
            input.send_keys(&folder).await?;
            // The folder is read when the field is left, as a typed path is complete then.
            client.find(Locator::Css("[data-testid=fix-task]")).await?.send_keys(&fixture.task).await?;
            let detected = wait_for(&client, "[data-testid=fix-detected]", &out, "not-detected").await?;
            ensure!(detected.text().await?.contains("pytest"), "{}", detected.text().await?);
            screenshot(&client, &out.join("new.png")).await?;
            client.find(Locator::Css("[data-testid=fix-start]")).await?.click().await?;

            // While the session runs, the viewer's rows grow as the answer streams.
            wait_for(&client, "[data-testid=fix-running]", &out, "not-running").await?;
            let mut counts = Vec::new();
            while client.find_all(Locator::Css("[data-testid=fix-running]")).await?.len() == 1 {
                let rows = client.find_all(Locator::Css("[data-testid=diff-line]")).await?.len();
                if counts.last() != Some(&rows) {
                    counts.push(rows);
                    if rows == 1 {
                        screenshot(&client, &out.join("streaming.png")).await?;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // The answer's edit is one line out and one line in: each row appears as its line completes.
            ensure!(counts.starts_with(&[0, 1, 2]), "the viewer did not grow while the answer streamed: {counts:?}");
            let outcome = wait_for(&client, "[data-testid=session-outcome]", &out, "no-outcome").await?;
            ensure!(outcome.text().await?.contains("fixed"), "{}", outcome.text().await?);
            let status = client.find(Locator::Css("[data-testid=patch-status]")).await?.text().await?;
            ensure!(status == "applied", "patch status {status:?}");
            screenshot(&client, &out.join("fixed.png")).await?;

            client.find(Locator::Css("[data-testid=fix-accept]")).await?.click().await?;
            let notice = wait_for(&client, "[data-testid=fix-notice]", &out, "not-accepted").await?;
            ensure!(notice.text().await?.contains("cache.py"), "{}", notice.text().await?);

            client.find(Locator::Css("[data-testid=nav-history]")).await?.click().await?;
            let row = wait_for(&client, "[data-testid=history-row]", &out, "not-in-history").await?;
            ensure!(row.text().await?.contains("fixed: the tests pass"), "{}", row.text().await?);
            Ok(())
        })
        .await?;
    let store = fixbox_store::Store::open_in(data.path())?;
    let sessions = store.list_sessions()?;
    ensure!(sessions.len() == 1, "{} sessions", sessions.len());
    let report = fixbox_agent::SessionReport::from_events(&store.events_from(&sessions[0].id, 1)?)
        .context("not a fix session")?;
    let after = std::fs::read_to_string(repo.path().join("cache.py"))?;
    ensure!(after != before, "Accept did not change cache.py");
    for added in report.diff.lines().filter(|l| l.starts_with('+') && !l.starts_with("+++")) {
        ensure!(after.contains(&added[1..]), "cache.py lacks the fix's line {added:?}");
    }
    ensure!(server.requests().len() == 1, "{} model requests", server.requests().len());
    Ok(())
}

async fn check_report(client: &fantoccini::Client, out: &std::path::Path) -> Result<()> {
    // The doctor runs real checks (Docker, keychain, GPUs...); the verdict appears when all answered.
    let verdict = wait_for(client, "[data-testid=doctor-verdict]", out, "no-doctor-report").await?;
    screenshot(client, &out.join("doctor.png")).await?;

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

/// A highlighted line's text: its markup removed and its entities decoded (what WebDriver's text would
/// give, but with the leading spaces it trims kept).
fn unhighlight(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}
