//! Sessions one after another in one process, as the desktop app and `fixbox eval` run them: the
//! first starts cold and leaves a warm pool behind, the next starts in a sandbox the pool made while
//! the first ran, and shutting the pool down removes what it kept. The model is the loopback server
//! replaying the answer Qwen2.5-Coder-1.5B gave on the sample bug (as in `fix.rs`).
#![expect(clippy::print_stderr, reason = "the sessions' setup lines go to the test log, for when it fails")]

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fixbox_agent::{Fix, FixRequest, Limits, ModelSettings, Outcome, SessionSetup, SessionUpdate, Sessions, Setup};
use fixbox_e2e::fixtures;
use fixbox_e2e::transcripts::{Pace, ReplayServer};
use fixbox_llm::{Metrics, OpenAiClient, RetryPolicy, Route, Router};
use fixbox_store::Store;
use tokio_util::sync::CancellationToken;

use crate::fix::answers;

const FIXTURE: &str = "py-cache-evict-during-iteration";

/// One session on the sample to its end: its outcome, and the lines it said while getting ready.
async fn session(sessions: &Sessions, setup: &SessionSetup) -> Result<(Outcome, Vec<String>)> {
    let fixture = fixtures::get(FIXTURE)?;
    let request = FixRequest {
        repo: fixture.repo.clone(),
        task: fixture.task.clone(),
        test: None,
        setup: Setup::Detect,
        model: ModelSettings::default(),
        limits: Limits { max_iterations: 2, ..Limits::default() },
        allow_test_edits: false,
        share: Vec::new(),
    };
    let mut handle = sessions.start(Fix::prepare(request)?, setup.clone(), CancellationToken::new());
    let mut lines = Vec::new();
    while let Some(update) = handle.next().await {
        if let SessionUpdate::Setup { line } = update {
            eprintln!("[setup] {line}");
            lines.push(line);
        }
    }
    Ok((handle.finish().await?.outcome, lines))
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
    let client = OpenAiClient::new(&server.url, "qwen2.5-coder-1.5b-instruct").named("replay");
    let router = Router::new(RetryPolicy::default(), Arc::new(Metrics::default()))
        .with_routes("default", vec![Route::local("replay", Arc::new(client))]);
    let data = tempfile::tempdir()?;
    let setup = SessionSetup {
        store: Arc::new(Store::open_in(data.path())?),
        router,
        limits: Default::default(),
        docker: Default::default(),
    };
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
