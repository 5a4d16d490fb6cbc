//! Sessions one after another in one process, as the desktop app and `fixbox eval` run them: the
//! first starts cold and leaves a warm pool behind, the next starts in a sandbox the pool made while
//! the first ran, and shutting the pool down removes what it kept; on a project with dependencies from
//! PyPI, the pool's sandboxes hold what the first session installed. The model is the loopback server
//! replaying the answer Qwen2.5-Coder-1.5B gave on each sample bug (as in `fix.rs`).
#![expect(clippy::print_stderr, reason = "the sessions' setup lines go to the test log, for when it fails")]

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fixbox_agent::{
    Event, Fix, FixRequest, Limits, ModelSettings, Outcome, SessionSetup, SessionUpdate, Sessions, Setup,
};
use fixbox_e2e::fixtures::{self, Fixture};
use fixbox_e2e::transcripts::{Pace, ReplayServer};
use fixbox_llm::{Metrics, OpenAiClient, RetryPolicy, Route, Router};
use fixbox_store::Store;
use tokio_util::sync::CancellationToken;

use crate::fix::answers;

const FIXTURE: &str = "py-cache-evict-during-iteration";

/// One session on the sample to its end: its outcome, and the lines it said while getting ready.
async fn session(sessions: &Sessions, setup: &SessionSetup) -> Result<(Outcome, Vec<String>)> {
    let (outcome, lines, _) = session_on(&fixtures::get(FIXTURE)?, sessions, setup).await?;
    Ok((outcome, lines))
}

/// One session on `fixture` to its end: its outcome, the lines it said while getting ready, and its
/// events.
async fn session_on(
    fixture: &Fixture,
    sessions: &Sessions,
    setup: &SessionSetup,
) -> Result<(Outcome, Vec<String>, Vec<Event>)> {
    let request = FixRequest {
        repo: fixture.repo.clone(),
        task: fixture.task.clone(),
        test: None,
        setup: Setup::Detect,
        model: ModelSettings::default(),
        limits: Limits { max_iterations: 2, ..Limits::default() },
        allow_test_edits: false,
        bug_tests: Vec::new(),
        share: Vec::new(),
    };
    let mut handle = sessions.start(Fix::prepare(request)?, setup.clone(), CancellationToken::new());
    let (mut lines, mut events) = (Vec::new(), Vec::new());
    while let Some(update) = handle.next().await {
        match update {
            SessionUpdate::Setup { line } => {
                eprintln!("[setup] {line}");
                lines.push(line);
            }
            SessionUpdate::Event { event, .. } => events.push(event),
            _ => {}
        }
    }
    Ok((handle.finish().await?.outcome, lines, events))
}

/// What sessions need, their model the loopback `server`, their store in `data`.
fn replaying(server: &ReplayServer, data: &std::path::Path) -> Result<SessionSetup> {
    let client = OpenAiClient::new(&server.url, "qwen2.5-coder-1.5b-instruct").named("replay");
    let router = Router::new(RetryPolicy::default(), Arc::new(Metrics::default()))
        .with_routes("default", vec![Route::local("replay", Arc::new(client))]);
    Ok(SessionSetup {
        store: Arc::new(Store::open_in(data)?),
        router,
        limits: Default::default(),
        docker: Default::default(),
    })
}

/// Whether Docker still has the container `id`.
fn exists(id: &str) -> Result<bool> {
    let out =
        std::process::Command::new("docker").args(["container", "inspect", "--format", "{{.Id}}", id]).output()?;
    Ok(out.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_session_starts_in_a_sandbox_the_warm_pool_made_and_shutdown_removes_the_pool() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    // The fixing answer, once for each session.
    let script = answers(FIXTURE, &["1", "1"])?;
    let server = ReplayServer::start(script, Pace::Every(Duration::from_millis(1))).await?;
    let data = tempfile::tempdir()?;
    let setup = replaying(&server, data.path())?;
    let sessions = Sessions::new(1).with_warm_pools(1);

    let (outcome, lines) = session(&sessions, &setup).await?;
    ensure!(outcome == Outcome::Fixed, "the first session ended {outcome:?}");
    ensure!(!lines.iter().any(|l| l.contains("warm pool")), "the first session had no pool to start from: {lines:?}");
    ensure!(sessions.warm().wait_until_full(Duration::from_secs(60)).await, "the pool made no sandbox in a minute");
    let ready = sessions.warm().ready_ids();
    ensure!(ready.len() == 1, "one sandbox kept ready, not {ready:?}");

    let (outcome, lines) = session(&sessions, &setup).await?;
    ensure!(outcome == Outcome::Fixed, "the second session ended {outcome:?}");
    ensure!(
        lines.iter().any(|l| l.starts_with("a sandbox from the warm pool, ready in")),
        "the second session did not say it started warm: {lines:?}"
    );
    // It ran in the pool's sandbox, which went with the session.
    ensure!(!exists(&ready[0])?, "the pool's sandbox {} outlived the session that took it", ready[0]);

    ensure!(sessions.warm().wait_until_full(Duration::from_secs(60)).await, "the pool was not refilled");
    let kept = sessions.warm().ready_ids();
    let refilled = kept.first().context("no sandbox kept after the refill")?;
    ensure!(exists(refilled)?);
    sessions.shutdown().await;
    ensure!(!exists(refilled)?, "shutting down left the kept sandbox {refilled}");
    ensure!(sessions.warm().ready_ids().is_empty());
    Ok(())
}

/// On a project whose tests need a package from PyPI: the first session installs it (with network),
/// the second restores what the first installed and leaves a pool whose sandboxes hold it, and the
/// third starts in one of those, restoring nothing, and fixes the bug with the package there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_pool_holds_what_an_earlier_session_installed() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let fixture = fixtures::with_dependencies("py-slugs")?;
    let server =
        ReplayServer::start(answers("py-slugs", &["1", "1", "1"])?, Pace::Every(Duration::from_millis(1))).await?;
    let data = tempfile::tempdir()?;
    let setup = replaying(&server, data.path())?;
    let sessions = Sessions::new(1).with_warm_pools(1);
    let restored = |events: &[Event]| {
        events.iter().find_map(|e| match e {
            Event::SetupRun { restored, output, .. } => Some((*restored, output.clone())),
            _ => None,
        })
    };

    let (outcome, _, events) = session_on(&fixture, &sessions, &setup).await?;
    ensure!(outcome == Outcome::Fixed, "the first session ended {outcome:?}");
    ensure!(matches!(restored(&events), Some((false, _))), "the first session installs: {:?}", restored(&events));
    let (outcome, lines, events) = session_on(&fixture, &sessions, &setup).await?;
    ensure!(outcome == Outcome::Fixed, "the second session ended {outcome:?}");
    ensure!(!lines.iter().any(|l| l.contains("warm pool")), "no pool held the dependencies yet: {lines:?}");
    ensure!(matches!(restored(&events), Some((true, _))), "the second session restores: {:?}", restored(&events));
    ensure!(sessions.warm().wait_until_full(Duration::from_secs(120)).await, "the pool made no sandbox");

    let (outcome, lines, events) = session_on(&fixture, &sessions, &setup).await?;
    ensure!(outcome == Outcome::Fixed, "the third session ended {outcome:?}");
    ensure!(
        lines
            .iter()
            .any(|l| l.starts_with("a sandbox from the warm pool with what an earlier session installed, ready in")),
        "the third session did not start in the pool's sandbox: {lines:?}"
    );
    let (was_restored, said) = restored(&events).context("no setup in the third session")?;
    ensure!(was_restored && said.contains("restored in the warm pool"), "{said}");
    sessions.shutdown().await;
    Ok(())
}
