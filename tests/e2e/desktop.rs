//! The real desktop app under Xvfb, driven by tauri-driver + WebKitWebDriver: it opens on the wizard's
//! first page (this machine and the models that fit it, each with a why line), runs the doctor through
//! its typed command, and shows the report; a fix session started in the window streams into the diff
//! viewer and is accepted into its folder; its history lists, searches, replays and deletes a real fix
//! session; an evaluation run in the window reports its tasks and opens one's session in the history.
//! Screenshots of each page go to `tests/output/desktop-*`.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::Locator;
use fixbox_agent::Event;
use fixbox_e2e::output_dir;
use fixbox_e2e::transcripts::{Pace, ReplayServer};
use fixbox_e2e::window::{Window, screenshot, wait_for};
use fixbox_patch::{PatchDelta, Side};

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
            // The metrics page sums the session's model call per model and per session, and charts it.
            client.find(Locator::Css("[data-testid=nav-metrics]")).await?.click().await?;
            let model = wait_for(&client, "[data-testid=metrics-model-row]", &out, "no-metrics").await?;
            let text = model.text().await?;
            ensure!(text.contains("qwen2.5-coder-1.5b-instruct"), "per model: {text}");
            let session = client.find(Locator::Css("[data-testid=metrics-session-row]")).await?.text().await?;
            ensure!(session.contains("fix: "), "per session: {session}");
            let points = client.find_all(Locator::Css("[data-testid=metrics-speed-chart] circle")).await?;
            ensure!(points.len() == 1, "the speed chart plots {} calls, not 1", points.len());
            screenshot(&client, &out.join("metrics.png")).await?;

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
            let terminal = terminal_showing(&client, &["✗ 4 passed, 1 failed (exit 1)", "✓ 5 passed"]).await?;
            // The terminal shows its last rows: the end of the run before any change, then the run after the patch.
            ensure!(terminal.contains("✗ 4 passed, 1 failed (exit 1)"), "{terminal}");
            ensure!(terminal.contains("# iteration 1") && terminal.contains("✓ 5 passed"), "{terminal}");
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

/// A session to start in the window: a copy of the sample project, and a data folder whose saved
/// routes lead to a replay of the project's recorded answer, one piece every `pace`.
struct FixInWindow {
    fixture: fixbox_e2e::fixtures::Fixture,
    repo: tempfile::TempDir,
    data: tempfile::TempDir,
    server: ReplayServer,
}

async fn fix_in_window(name: &str, pace: Duration) -> Result<FixInWindow> {
    let fixture = fixbox_e2e::fixtures::get(name)?;
    let repo = tempfile::tempdir()?;
    fixbox_e2e::copy_tree(&fixture.repo, repo.path())?;
    let server = ReplayServer::start(crate::fix::answers(name, &["1"])?, Pace::Every(pace)).await?;
    let data = tempfile::tempdir()?;
    let routes = std::fs::read_to_string(crate::fix::routing_file(data.path(), &server.url)?)?;
    let config = fixbox_llm::RoutesConfig::parse(&routes)?;
    fixbox_agent::setup::Routes::save(&fixbox_store::Store::open_in(data.path())?, Some(&config))?;
    Ok(FixInWindow { fixture, repo, data, server })
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
    let FixInWindow { fixture, repo, data, server } = fix_in_window(FIXTURE, Duration::from_millis(60)).await?;
    let before = std::fs::read_to_string(repo.path().join("cache.py"))?;
    let remembered = |store: &fixbox_store::Store| fixbox_agent::SharedFiles::load(store, repo.path());
    fixbox_agent::SharedFiles::save(&fixbox_store::Store::open_in(data.path())?, repo.path(), &[".env.test".into()])?;

    // The desktop's notification server: the app says there how the session ended.
    let shell = fixbox_e2e::shell::Shell::start().await?;
    let task = fixture.task.clone();

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
            // A project with no dependencies to install says so; the command can still be given.
            let setup = client.find(Locator::Css("[data-testid=fix-setup-detected]")).await?.text().await?;
            ensure!(setup.contains("declare nothing to install"), "{setup}");
            // What is remembered as shared for the folder shows, and what is added is remembered.
            let shown =
                client.execute("return document.querySelector('[data-testid=fix-share]').value", vec![]).await?;
            ensure!(shown == ".env.test", "{shown}");
            client.find(Locator::Css("[data-testid=fix-share]")).await?.send_keys(" certs/*").await?;
            screenshot(&client, &out.join("new.png")).await?;
            client.find(Locator::Css("[data-testid=fix-start]")).await?.click().await?;

            // While the session runs, the viewer's rows grow as the answer streams.
            wait_for(&client, "[data-testid=fix-running]", &out, "not-running").await?;
            let mut counts = Vec::new();
            let mut failing_run_shown = false;
            // A session that never ends fails the test rather than hanging the suite.
            let deadline = std::time::Instant::now() + Duration::from_secs(300);
            while client.find_all(Locator::Css("[data-testid=fix-running]")).await?.len() == 1 {
                ensure!(std::time::Instant::now() < deadline, "the session still runs after 5 minutes");
                // The tests before any change show in the terminal pane while the model answers.
                failing_run_shown =
                    failing_run_shown || terminal_text(&client).await?.contains("FAILED test_cache.py::");
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
            // The terminal pane has the test runs as pytest printed them in the sandbox, and how each ended.
            ensure!(failing_run_shown, "the terminal did not show the failing run while the session ran");
            let terminal = terminal_showing(&client, &["✗ 4 passed, 1 failed (exit 1)", "✓ 5 passed"]).await?;
            ensure!(
                terminal.contains("✗ 4 passed, 1 failed (exit 1)") && terminal.contains("✓ 5 passed"),
                "{terminal}"
            );
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
    let notified = shell.notifications();
    ensure!(notified.len() == 1, "{notified:?}");
    ensure!(notified[0].summary == "Fixed: the tests pass", "{notified:?}");
    ensure!(task.starts_with(notified[0].body.trim_end_matches('…')), "{notified:?}");
    let store = fixbox_store::Store::open_in(data.path())?;
    let sessions = store.list_sessions()?;
    ensure!(sessions.len() == 1, "{} sessions", sessions.len());
    ensure!(remembered(&store)? == [".env.test", "certs/*"], "{:?}", remembered(&store)?);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evaluation_run_in_the_window_reports_each_task_and_opens_its_session() -> Result<()> {
    const FIXTURE: &str = "py-cache-evict-during-iteration";
    let _machine = fixbox_e2e::machine_to_myself().await;
    let out = output_dir("desktop-eval")?;
    let dir = tempfile::tempdir()?;
    let (repos, dataset) = crate::eval::dataset(dir.path())?;
    let server =
        ReplayServer::start(crate::fix::answers(FIXTURE, &["1"])?, Pace::Every(Duration::from_millis(1))).await?;
    let data = tempfile::tempdir()?;
    let routes = std::fs::read_to_string(crate::fix::routing_file(data.path(), &server.url)?)?;
    let config = fixbox_llm::RoutesConfig::parse(&routes)?;
    fixbox_agent::setup::Routes::save(&fixbox_store::Store::open_in(data.path())?, Some(&config))?;

    let (dataset, repos) = (dataset.display().to_string(), repos.display().to_string());
    let window = Window::open(data.path(), &out).await?;
    window
        .check(|client| async move {
            client.find(Locator::Css("[data-testid=nav-evaluate]")).await?.click().await?;
            let route = wait_for(&client, "[data-testid=eval-route] option", &out, "eval-no-routes").await?;
            ensure!(route.text().await?.contains("replay"), "route {:?}", route.text().await?);
            client.find(Locator::Css("[data-testid=eval-dataset]")).await?.send_keys(&dataset).await?;
            client.find(Locator::Css("[data-testid=eval-repos]")).await?.send_keys(&repos).await?;
            client.find(Locator::Css("[data-testid=eval-start]")).await?.click().await?;

            // The run's end: the task the recorded answer fixes, the one whose repository is missing,
            // and the malformed line, said and skipped.
            let summary = wait_for(&client, "[data-testid=eval-summary]", &out, "eval-no-summary").await?;
            let text = summary.text().await?;
            ensure!(text.contains("Resolved 1/2"), "{text}");
            let page = client.find(Locator::Css("[data-testid=eval-page]")).await?.text().await?;
            ensure!(page.contains("skipped: line 2: field repo is missing"), "{page}");
            let rows = client.find_all(Locator::Css("[data-testid=eval-task]")).await?;
            ensure!(rows.len() == 2, "{} task rows", rows.len());
            let rows: Vec<String> = futures::future::try_join_all(rows.iter().map(|r| r.text())).await?;
            ensure!(rows.iter().any(|r| r.contains("sample__cache-1") && r.contains("resolved")), "{rows:?}");
            ensure!(
                rows.iter().any(|r| r.contains("elsewhere__gone-1") && r.contains("repository missing")),
                "{rows:?}"
            );
            screenshot(&client, &out.join("report.png")).await?;

            // The resolved task's session opens in the history, replayed into the session view.
            client.find(Locator::Css("[data-testid=eval-open-session]")).await?.click().await?;
            let outcome = wait_for(&client, "[data-testid=session-outcome]", &out, "eval-no-session").await?;
            ensure!(outcome.text().await?.contains("fixed"), "{}", outcome.text().await?);
            screenshot(&client, &out.join("session.png")).await?;
            Ok(())
        })
        .await
}

/// The rows the session's terminal pane (xterm.js) shows: its last screenful, as the rows scrolled
/// back are not in the page. Nothing while the pane is not there yet: the session view loads on first
/// use, and a fresh machine's first session can be running before it has (the find failed there).
async fn terminal_text(client: &fantoccini::Client) -> Result<String> {
    let rows = client.find_all(Locator::Css("[data-testid=test-output] .xterm-rows")).await?;
    match rows.first() {
        // A pane redrawn between the find and the read is read again at the next poll.
        Some(rows) => Ok(rows.text().await.unwrap_or_default()),
        None => Ok(String::new()),
    }
}

/// The terminal pane's rows once they show every one of `expected`, or as they are after 15 s: xterm.js
/// draws what it is written on a later frame, so a read right after a session can come too early.
async fn terminal_showing(client: &fantoccini::Client, expected: &[&str]) -> Result<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = terminal_text(client).await?;
        if expected.iter().all(|e| text.contains(e)) || std::time::Instant::now() > deadline {
            return Ok(text);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

/// The wizard's first page: this machine as the probe reads it, and recommendations, each with a why
/// and its expected fix rate.
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
        let for_use = pick.attr("data-use").await?.unwrap_or_default();
        let why = pick.find(Locator::Css("[data-testid=why]")).await?.text().await?;
        ensure!(why.contains("needs") && why.contains("(estimate)"), "a pick without its why: {why:?}");
        uses.push(for_use.clone());
        if for_use != "code-fix" {
            continue;
        }
        // Each code-fix pick says what it is expected to fix, as published, or that nobody published it.
        let rate = pick.find(Locator::Css("[data-testid=fix-rate]")).await?.text().await?;
        let published = why.contains("of SWE-bench Verified");
        ensure!(
            if published { rate.contains("% (SWE-bench Verified)") } else { rate == "fix rate unpublished" },
            "the fix rate {rate:?} does not match the why {why:?}"
        );
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

/// Settings: a key typed into the window lands in the real keychain (Secret Service) and never comes
/// back into the DOM, where only its last four characters show; routes that name it by its entry are
/// saved (a route to an unknown provider is refused by name), and the key is in no byte of Fixbox's
/// data; a remote engine's token goes to the keychain and every route tries the engine first; the
/// defaults of new sessions are saved once in range; removing the key takes it out of the keychain.
#[tokio::test(flavor = "multi_thread")]
async fn settings_keep_keys_in_the_keychain_and_show_them_masked() -> Result<()> {
    use fixbox_secret::Secret;
    use fixbox_store::Keychain;

    // A window loads the machine: it takes turns with the tests that measure it (the doctor's probe).
    let _machine = fixbox_e2e::machine_to_myself().await;
    let out = output_dir("desktop-settings")?;
    let data = tempfile::tempdir()?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
    let name = format!("e2e-{}", std::process::id());
    let key = format!("sk-e2e-{stamp:x}-KEY9");
    let token = format!("tok-e2e-{stamp:x}-TOK7");
    // The remote engine's token has a fixed entry: keep a developer's own across the test.
    let remote_entry = fixbox_llm::RoutesConfig::REMOTE_ENGINE_KEY;
    let kept_token = Keychain.get(remote_entry)?;

    let window = Window::open(data.path(), &out).await?;
    let checked = window
        .check(|client| {
            let (out, name, key, token) = (out.clone(), name.clone(), key.clone(), token.clone());
            async move {
                // No model to call: the fix page says so, and its error's code (not its words) offers
                // the page that mends it.
                client.find(Locator::Css("[data-testid=nav-fix]")).await?.click().await?;
                wait_for(&client, "[data-testid=fix-routes-error]", &out, "no-routes-error").await?;
                let mend = wait_for(&client, "[data-testid=fix-mend]", &out, "no-mend").await?;
                ensure!(mend.text().await?.starts_with("Open Setup"), "{:?}", mend.text().await?);
                mend.click().await?;
                wait_for(&client, "[data-testid=machine]", &out, "mend-not-followed").await?;

                client.find(Locator::Css("[data-testid=nav-settings]")).await?.click().await?;
                wait_for(&client, "[data-testid=settings-no-keys]", &out, "no-settings").await?;
                let from = client.find(Locator::Css("[data-testid=settings-routes-from]")).await?.text().await?;
                ensure!(from.contains("no model to call"), "with no routes and no engine: {from:?}");

                // A key: typed once, stored, shown as its last four characters only.
                client.find(Locator::Css("[data-testid=settings-key-name]")).await?.send_keys(&name).await?;
                client.find(Locator::Css("[data-testid=settings-key-value]")).await?.send_keys(&key).await?;
                client.find(Locator::Css("[data-testid=settings-save-key]")).await?.click().await?;
                let row = wait_for(
                    &client,
                    &format!("[data-testid=settings-key][data-name='{name}']"),
                    &out,
                    "key-not-listed",
                )
                .await?;
                let hint = row.find(Locator::Css("[data-testid=settings-key-hint]")).await?.text().await?;
                ensure!(hint == "…KEY9", "the key shows as {hint:?}");
                ensure!(Keychain.get(&name)?.as_ref().map(Secret::expose) == Some(key.as_str()), "not in the keychain");
                nowhere_in_the_dom(&client, &[&key], "…KEY9").await?;

                // Routes that name the key's entry. A route to a provider that does not exist is refused.
                client.find(Locator::Css("[data-testid=settings-add-provider]")).await?.click().await?;
                let provider = wait_for(&client, "[data-testid=settings-provider]", &out, "no-provider-row").await?;
                provider.find(Locator::Css("input[aria-label=Model]")).await?.send_keys("qwen-test").await?;
                provider
                    .find(Locator::Css("[data-testid=settings-provider-key]"))
                    .await?
                    .select_by_label(&name)
                    .await?;
                let order =
                    client.find(Locator::Css("[data-testid=settings-route] input[aria-label=Providers]")).await?;
                order.send_keys("ghost").await?;
                client.find(Locator::Css("[data-testid=settings-save-routes]")).await?.click().await?;
                let refused =
                    wait_for(&client, "[data-testid=settings-routes-status].error", &out, "ghost-saved").await?;
                ensure!(refused.text().await?.contains("`ghost`"), "{}", refused.text().await?);
                order.clear().await?;
                order.send_keys("local").await?;
                client.find(Locator::Css("[data-testid=settings-save-routes]")).await?.click().await?;
                wait_for(&client, "[data-testid=settings-routes-status].ok", &out, "routes-not-saved").await?;
                let from = client.find(Locator::Css("[data-testid=settings-routes-from]")).await?.text().await?;
                ensure!(from.contains("the settings"), "{from:?}");

                // A remote engine: its token to the keychain, the engine first in every route.
                client
                    .find(Locator::Css("[data-testid=settings-remote-url]"))
                    .await?
                    .send_keys("http://10.1.2.3:8080")
                    .await?;
                client.find(Locator::Css("[data-testid=settings-remote-model]")).await?.send_keys("big-coder").await?;
                client.find(Locator::Css("[data-testid=settings-remote-token]")).await?.send_keys(&token).await?;
                client.find(Locator::Css("[data-testid=settings-use-remote]")).await?.click().await?;
                wait_for(&client, "[data-testid=settings-remote-status].ok", &out, "remote-not-saved").await?;
                let field = client.find(Locator::Css("[data-testid=settings-remote-token]")).await?;
                let placeholder = field.attr("placeholder").await?.unwrap_or_default();
                ensure!(placeholder.contains("…TOK7"), "the token field says {placeholder:?}");
                nowhere_in_the_dom(&client, &[&key, &token], "…TOK7").await?;

                // Defaults of new sessions: out of range is refused by name; in range is saved.
                let memory = client.find(Locator::Css("[data-testid=settings-memory]")).await?;
                memory.clear().await?;
                memory.send_keys("100").await?;
                client.find(Locator::Css("[data-testid=settings-save-preferences]")).await?.click().await?;
                let refused =
                    wait_for(&client, "[data-testid=settings-preferences-status].error", &out, "tiny-memory").await?;
                ensure!(refused.text().await?.contains("256 MiB"), "{}", refused.text().await?);
                memory.clear().await?;
                memory.send_keys("1024").await?;
                client.find(Locator::Css("[data-testid=settings-save-preferences]")).await?.click().await?;
                wait_for(&client, "[data-testid=settings-preferences-status].ok", &out, "memory-not-saved").await?;

                // How the local engine starts: the same checks as the setup page's Start.
                let context = client.find(Locator::Css("[data-testid=settings-engine-context]")).await?;
                context.send_keys("100").await?;
                client.find(Locator::Css("[data-testid=settings-save-engine]")).await?.click().await?;
                let refused =
                    wait_for(&client, "[data-testid=settings-engine-status].error", &out, "tiny-context").await?;
                ensure!(refused.text().await?.contains("512 to 1,048,576 tokens"), "{}", refused.text().await?);
                context.clear().await?;
                context.send_keys("4096").await?;
                client.find(Locator::Css("[data-testid=settings-engine-threads]")).await?.send_keys("2").await?;
                client.find(Locator::Css("[data-testid=settings-save-engine]")).await?.click().await?;
                wait_for(&client, "[data-testid=settings-engine-status].ok", &out, "engine-not-saved").await?;
                client.execute("window.scrollTo(0, 0);", vec![]).await?;
                screenshot(&client, &out.join("settings.png")).await?;

                // Removed from the window: gone from the list and from the keychain.
                let row = client.find(Locator::Css(&format!("[data-testid=settings-key][data-name='{name}']"))).await?;
                row.find(Locator::Css("[data-testid=settings-remove-key]")).await?.click().await?;
                wait_for(&client, "[data-testid=settings-keys-status].ok", &out, "key-not-removed").await?;
                ensure!(
                    client.find_all(Locator::Css(&format!("[data-name='{name}']"))).await?.is_empty(),
                    "the removed key is still listed"
                );
                ensure!(Keychain.get(&name)?.is_none(), "the removed key is still in the keychain");
                Ok(())
            }
        })
        .await;

    // Clean up the keychain before judging, so a failed check leaves nothing behind.
    let remote_in_keychain = Keychain.get(remote_entry).map(|s| s.map(|s| s.expose().to_string()));
    let removed = Keychain.delete(&name);
    match kept_token {
        Some(kept) => Keychain.set(remote_entry, &kept)?,
        None => Keychain.delete(remote_entry)?,
    }
    checked?;
    removed?;
    let remote_in_keychain = remote_in_keychain?;

    let store = fixbox_store::Store::open_in(data.path())?;
    let stored = store.setting(fixbox_llm::RoutesConfig::SETTING)?.context("no routes were saved")?;
    let routes = fixbox_llm::RoutesConfig::parse(&stored.to_string())?;
    let remote_and_local: Vec<String> = vec!["remote".into(), "local".into()];
    let local = routes.providers.iter().find(|p| p.name == "local").context("no local provider")?;
    let preferences = fixbox_agent::Preferences::load(&store)?;
    let engine = fixbox_engine::EngineOptions::load(&store)?;
    drop(store);
    let mut data_bytes = Vec::new();
    for file in std::fs::read_dir(data.path())? {
        let path = file?.path();
        if path.is_file() {
            data_bytes.extend(std::fs::read(&path)?);
        }
    }
    let in_data = |secret: &str| data_bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
    ensure!(routes.routes["default"] == remote_and_local, "routes {:?}", routes.routes);
    ensure!(local.api_key.as_deref() == Some(name.as_str()) && local.model == "qwen-test", "{local:?}");
    ensure!(remote_in_keychain.as_deref() == Some(token.as_str()), "the token is not in the keychain");
    ensure!(preferences.sandbox_memory_mib == 1024, "{preferences:?}");
    let saved = fixbox_engine::EngineOptions { context: Some(4096), threads: Some(2), ..Default::default() };
    ensure!(engine == saved, "{engine:?}");
    ensure!(!in_data(&key) && !in_data(&token), "a secret is in Fixbox's data folder");
    ensure!(in_data(&name), "the data folder holds no settings at all (the check above would prove nothing)");
    Ok(())
}

/// Fails when any of `secrets` is in the page: its markup, or the value of any field. `shown` (what the
/// page does show instead) must be there, so a page that failed to render does not pass.
async fn nowhere_in_the_dom(client: &fantoccini::Client, secrets: &[&str], shown: &str) -> Result<()> {
    let page = client
        .execute(
            "return document.documentElement.outerHTML + '\\n' + [...document.querySelectorAll('input, textarea, select')]
                .map((e) => e.value + ' ' + (e.placeholder || '')).join('\\n');",
            vec![],
        )
        .await?;
    let page = page.as_str().context("the page's text is not a string")?;
    for secret in secrets {
        ensure!(!page.contains(secret), "a secret is in the page");
    }
    ensure!(page.contains(shown), "the page does not show {shown:?}");
    Ok(())
}

/// Starting Fixbox again over the same data folder hands over to the running app (which shows its
/// window) and exits at once; with another data folder it runs beside it.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_start_over_the_same_data_hands_over_to_the_running_app() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let out = output_dir("desktop-single-instance")?;
    let (data, other) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let window = Window::open(data.path(), &out).await?;
    let display = window.display().to_string();
    let app = fixbox_e2e::workspace_bin("fixbox-desktop")?;
    window
        .check(|client| async move {
            wait_for(&client, "[data-testid=machine]", &out, "no-window").await?;
            let second = fixbox_e2e::window::start_again(&display, data.path(), &[]).await?;
            ensure!(second.status.success(), "{second:?}");
            let handed_over = fixbox_e2e::wait_until(Duration::from_secs(30), || {
                app_log(data.path()).contains("Fixbox was started again; showing this window instead")
            })
            .await;
            ensure!(handed_over, "the running app did not hear of the second start:\n{}", app_log(data.path()));

            // Another data folder: its own app, whose window opens its own database.
            let mut beside = tokio::process::Command::new(&app)
                .env("FIXBOX_DATA_DIR", other.path())
                .env("DISPLAY", &display)
                .kill_on_drop(true)
                .spawn()?;
            let runs =
                fixbox_e2e::wait_until(Duration::from_secs(60), || other.path().join("fixbox.db").exists()).await;
            let still = beside.try_wait()?.is_none();
            beside.kill().await?;
            ensure!(runs && still, "an app over another data folder did not run beside the first");
            Ok(())
        })
        .await
}

/// Everything the app logged into its data folder so far.
fn app_log(data: &std::path::Path) -> String {
    let Ok(files) = std::fs::read_dir(data.join("logs")) else { return String::new() };
    files.flatten().filter_map(|f| std::fs::read_to_string(f.path()).ok()).collect()
}

/// The process named `name` among `root`'s descendants (Linux: read from /proc).
fn descendant_named(root: u32, name: &str) -> Option<u32> {
    let parent_of = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
    };
    std::fs::read_dir("/proc").ok()?.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()).find(
        |&pid| {
            let named = std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == name);
            let mut at = pid;
            named
                && std::iter::from_fn(|| {
                    at = parent_of(at).filter(|&p| p > 1)?;
                    Some(at)
                })
                .any(|ancestor| ancestor == root)
        },
    )
}

/// The app SIGKILLed while its session runs, with no chance to clean up: the session's events up to
/// the kill are kept, and the app's next start removes the sandbox it left.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn the_app_killed_mid_session_leaves_nothing_after_its_next_start() -> Result<()> {
    const FIXTURE: &str = "py-cache-evict-during-iteration";
    let _machine = fixbox_e2e::machine_to_myself().await;
    let out = output_dir("desktop-killed")?;
    // Slow: the answer is still streaming when the app is killed.
    let FixInWindow { fixture, repo, data, server: _server } =
        fix_in_window(FIXTURE, Duration::from_millis(500)).await?;
    let before = fixbox_e2e::sandboxes()?;

    let window = Window::open(data.path(), &out).await?;
    let again_log = out.join("again.log");
    let driver = window.driver_pid();
    let killed = std::sync::Arc::new(std::sync::Mutex::new(None));
    let killed_in = killed.clone();
    let (folder, task) = (repo.path().display().to_string(), fixture.task.clone());
    // The WebDriver session ends with the app, so closing it fails: what counts is the kill.
    let _ = window
        .check(|client| async move {
            client.find(Locator::Css("[data-testid=nav-fix]")).await?.click().await?;
            wait_for(&client, "[data-testid=fix-route] option", &out, "no-routes").await?;
            client.find(Locator::Css("[data-testid=fix-folder]")).await?.send_keys(&folder).await?;
            client.find(Locator::Css("[data-testid=fix-task]")).await?.send_keys(&task).await?;
            wait_for(&client, "[data-testid=fix-detected]", &out, "not-detected").await?;
            client.find(Locator::Css("[data-testid=fix-start]")).await?.click().await?;
            wait_for(&client, "[data-testid=diff-line]", &out, "not-streaming").await?;
            let app = descendant_named(driver, "fixbox-desktop").context("the app's process is not found")?;
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(app as i32), nix::sys::signal::Signal::SIGKILL)?;
            *killed_in.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(app);
            Ok(())
        })
        .await;
    let app = killed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    ensure!(app.is_some(), "the session did not get to streaming before the kill");
    ensure!(fixbox_e2e::sandboxes()? > before, "the killed app left no sandbox: nothing was tested");

    let store = fixbox_store::Store::open_in(data.path())?;
    let session = store.list_sessions()?.into_iter().next().context("the session was not stored")?;
    let kept = store.events_from(&session.id, 1)?;
    ensure!(kept.iter().any(|e| e.kind == "model.started"), "{:?}", kept.iter().map(|e| &e.kind).collect::<Vec<_>>());
    ensure!(store.integrity_problems()?.is_empty());

    let display = fixbox_e2e::VirtualDisplay::start()?;
    let mut again = tokio::process::Command::new(fixbox_e2e::workspace_bin("fixbox-desktop")?)
        .env("FIXBOX_DATA_DIR", data.path())
        .env("DISPLAY", &display.display)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&again_log)?)
        .kill_on_drop(true)
        .spawn()?;
    let swept =
        fixbox_e2e::wait_until(Duration::from_secs(60), || fixbox_e2e::sandboxes().is_ok_and(|n| n == before)).await;
    again.kill().await?;
    let said = format!("{}{}", app_log(data.path()), std::fs::read_to_string(&again_log).unwrap_or_default());
    ensure!(swept, "the next start did not remove the sandbox:\n{said}");
    ensure!(app_log(data.path()).contains("removed orphaned sandboxes"), "{}", app_log(data.path()));
    Ok(())
}
