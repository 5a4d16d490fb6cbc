//! `fixbox fix` and `fixbox sessions` as a user runs them: a real Docker sandbox running the sample
//! projects' real tests, a real SQLite event log, and, in place of the model, a loopback
//! OpenAI-compatible server replaying answers Qwen2.5-Coder-1.5B really gave on llama-server
//! (`tests/fixtures/transcripts/`, recorded by `cargo bench --bench fix` with `FIXBOX_RECORD_DIR`).
//! Also: every sample project fails its tests as shipped and passes them with its reference fix,
//! applied by Fixbox's own patch engine in the sandbox.
#![expect(clippy::print_stderr, reason = "what fixbox printed goes to the test log, for when a test fails")]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fixbox_agent::{Event, Outcome, SessionReport, TestReport, WORKSPACE};
use fixbox_e2e::fixtures::{self, Fixture};
use fixbox_e2e::transcripts::{self, Answer, Pace, ReplayServer};
use fixbox_e2e::workspace_bin;
use fixbox_patch::{ApplyOptions, EditFormat, PatchDelta, PatchParser, apply};
use fixbox_sandbox::{FileWrite, Sandbox};
use fixbox_store::Store;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A finished `fixbox fix` run.
pub(crate) struct Run {
    status: std::process::ExitStatus,
    stdout: String,
    /// The data folder the session is stored in.
    pub(crate) data: tempfile::TempDir,
    server: ReplayServer,
}

impl Run {
    pub(crate) fn report(&self) -> Result<(fixbox_store::SessionId, Vec<Event>, SessionReport)> {
        let store = Store::open_in(self.data.path())?;
        let session = store.list_sessions()?.into_iter().next().context("no session was recorded")?;
        let stored = store.events_from(&session.id, 1)?;
        let report = SessionReport::from_events(&stored).context("not a fix session")?;
        Ok((session.id, stored.iter().filter_map(Event::from_stored).collect(), report))
    }
}

/// Answers recorded on `fixture`, by their number in the recording.
pub(crate) fn answers(fixture: &str, numbers: &[&str]) -> Result<Vec<Answer>> {
    let path = fixbox_e2e::workspace_root().join("tests/fixtures/transcripts").join(format!("{fixture}.json"));
    let all = transcripts::load(&path)?;
    numbers.iter().map(|n| all.get(*n).cloned().with_context(|| format!("{fixture} has no answer {n}"))).collect()
}

/// Routes to the replay server at `url`, as the model the answers were recorded from.
pub(crate) fn routing_file(dir: &Path, url: &str) -> Result<PathBuf> {
    fixbox_e2e::routes_file(dir, "replay", &format!("{url}/v1"), "qwen2.5-coder-1.5b-instruct", 8192)
}

/// Waits until the session in `store` has recorded an event of `kind` (at most two minutes).
async fn wait_for_event(store: &Store, kind: &str) -> Result<()> {
    let started = std::time::Instant::now();
    loop {
        if let Some(session) = store.list_sessions()?.first()
            && store.events_from(&session.id, 1)?.iter().any(|e| e.kind == kind)
        {
            return Ok(());
        }
        ensure!(started.elapsed() < Duration::from_secs(120), "the session recorded no {kind}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn fix_command(fixture: &Fixture, data: &Path, routes: &Path, args: &[&str]) -> Result<tokio::process::Command> {
    let mut cmd = tokio::process::Command::new(workspace_bin("fixbox")?);
    cmd.env("FIXBOX_DATA_DIR", data)
        .env("NO_COLOR", "1")
        .arg("fix")
        .arg(&fixture.repo)
        .args(["--task", &fixture.task, "--routes"])
        .arg(routes)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    Ok(cmd)
}

/// `fixbox fix` on `fixture` with the model's answers replayed from `script`.
async fn fix(fixture: &str, script: Vec<Answer>, args: &[&str]) -> Result<Run> {
    let fixture = fixtures::get(fixture)?;
    let server = ReplayServer::start(script, Pace::Every(Duration::from_millis(1))).await?;
    let data = tempfile::tempdir()?;
    let routes = routing_file(data.path(), &server.url)?;
    let output = fix_command(&fixture, data.path(), &routes, args)?.output().await?;
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    Ok(Run { status: output.status, stdout, data, server })
}

/// A session that fixed `fixture` with the recorded answers `numbers`, stored in its own data folder.
pub(crate) async fn record(fixture: &str, numbers: &[&str]) -> Result<Run> {
    let run = fix(fixture, answers(fixture, numbers)?, &[]).await?;
    ensure!(run.status.code() == Some(0), "fixbox fix exited with {:?}", run.status);
    Ok(run)
}

fn outcome(report: &SessionReport) -> Result<&Outcome> {
    report.outcome.as_ref().context("the session did not finish")
}

/// The user messages of the `n`th chat request (0-based) the model server got.
fn user_messages(run: &Run, n: usize) -> Result<String> {
    let requests = run.server.requests();
    let request = requests.get(n).with_context(|| format!("no request {n}"))?;
    let messages = request["messages"].as_array().context("no messages")?;
    Ok(messages
        .iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n---\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_in_one_patch_then_listed_shown_replayed_and_exported() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    const FIXTURE: &str = "py-cache-evict-during-iteration";
    let run = fix(FIXTURE, answers(FIXTURE, &["1"])?, &[]).await?;
    ensure!(run.status.code() == Some(0), "fixbox fix exited with {:?}", run.status);
    let (id, events, report) = run.report()?;
    ensure!(*outcome(&report)? == Outcome::Fixed);
    ensure!(report.iterations == 1 && report.patches_applied == 1 && report.calls.len() == 1);
    ensure!(report.tests_before.as_ref().is_some_and(|t| !t.ok && t.failed.len() == 1), "{:?}", report.tests_before);
    ensure!(report.tests_after.as_ref().is_some_and(|t| t.ok), "{:?}", report.tests_after);
    // The patch streamed as lines before it was applied.
    let first_delta = events.iter().position(|e| matches!(e, Event::PatchDelta { .. })).context("no patch deltas")?;
    let applied = events.iter().position(|e| matches!(e, Event::PatchApplied { .. })).context("not applied")?;
    ensure!(first_delta < applied);
    // The live view saw every hunk it was shown begin also end.
    let deltas: Vec<_> = events
        .iter()
        .filter_map(|e| if let Event::PatchDelta { delta, .. } = e { Some(delta) } else { None })
        .collect();
    let begun = deltas.iter().filter(|d| matches!(d, PatchDelta::Hunk { .. })).count();
    let ended = deltas.iter().filter(|d| matches!(d, PatchDelta::HunkEnd { .. })).count();
    ensure!(begun > 0 && begun == ended, "{begun} hunks began, {ended} ended");
    // Each test run's output streamed in before its summary, and is the output the summary keeps.
    for iteration in [0, 1] {
        let streamed: String = events
            .iter()
            .filter_map(|e| match e {
                Event::TestsOutput { iteration: i, text } if *i == iteration => Some(text.as_str()),
                _ => None,
            })
            .collect();
        let summary = events
            .iter()
            .find_map(|e| match e {
                Event::TestsRun { iteration: i, summary } if *i == iteration => Some(summary),
                _ => None,
            })
            .context("no test run")?;
        ensure!(!streamed.is_empty() && streamed == summary.output, "run {iteration} streamed {streamed:?}");
        let last_output =
            events.iter().rposition(|e| matches!(e, Event::TestsOutput { iteration: i, .. } if *i == iteration));
        let run_at = events.iter().position(|e| matches!(e, Event::TestsRun { iteration: i, .. } if *i == iteration));
        ensure!(last_output < run_at, "run {iteration}'s output came after its summary");
    }
    ensure!(run.stdout.contains("fixed: the tests pass") && run.stdout.contains("+++ b/cache.py"), "{}", run.stdout);
    // The request followed the defaults, and the sampling reached the server.
    let request = &run.server.requests()[0];
    ensure!(request["temperature"].as_f64().is_some_and(|t| (t - 0.15).abs() < 1e-6), "{request}");
    ensure!(request["max_tokens"] == 2048 && request["stream"] == true, "{request}");
    ensure!(request["stop"][0] == ">>>>>>> REPLACE", "{request}");

    let sessions = |args: &[&str]| -> Result<std::process::Output> {
        Ok(std::process::Command::new(workspace_bin("fixbox")?)
            .env("FIXBOX_DATA_DIR", run.data.path())
            .env("NO_COLOR", "1")
            .arg("sessions")
            .args(args)
            .output()?)
    };
    let list = String::from_utf8(sessions(&["list"])?.stdout)?;
    ensure!(list.contains(id.as_str()) && list.contains("fixed"), "{list}");
    let show = String::from_utf8(sessions(&["show", &id.as_str()[..13]])?.stdout)?;
    ensure!(show.contains("tests before: 4 passed, 1 failed") && show.contains("+++ b/cache.py"), "{show}");
    // A replay prints what the live run printed.
    let replay = String::from_utf8(sessions(&["replay", id.as_str()])?.stdout)?;
    ensure!(replay == run.stdout, "replay differs from the live run:\n{replay}");

    let out = tempfile::tempdir()?;
    let export = sessions(&["export", id.as_str(), "--out", &out.path().display().to_string()])?;
    ensure!(export.status.success(), "{export:?}");
    let patch = out.path().join(format!("{id}.patch"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join(format!("{id}.json")))?)?;
    ensure!(json["report"]["outcome"]["outcome"] == "fixed", "{json}");
    // The exported patch applies to the user's repository with git.
    let copy = tempfile::tempdir()?;
    fixbox_e2e::copy_tree(&fixtures::get(FIXTURE)?.repo, copy.path())?;
    let git = |args: &[&str]| std::process::Command::new("git").current_dir(copy.path()).args(args).output();
    git(&["init", "-q"])?;
    let applied = git(&["apply", "--check", "-v", &patch.display().to_string()])?;
    ensure!(applied.status.success(), "git apply --check: {}", String::from_utf8_lossy(&applied.stderr));
    Ok(())
}

/// py-paginate's answers 2 then 1, as Qwen2.5-Coder-1.5B gave them to the first prompt in two runs:
/// first an explanation with no edit in it, rejected and answered with what an edit looks like; then
/// the one-line edit told in a sentence, applied (re-indented to the file's) and passing the tests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_after_a_failed_patch() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    const FIXTURE: &str = "py-paginate-off-by-one";
    let run = fix(FIXTURE, answers(FIXTURE, &["2", "1"])?, &[]).await?;
    ensure!(run.status.code() == Some(0), "fixbox fix exited with {:?}", run.status);
    let (_, events, report) = run.report()?;
    ensure!(*outcome(&report)? == Outcome::Fixed, "{:?}", report.outcome);
    ensure!(report.iterations == 2 && report.patches_rejected == 1 && report.patches_applied == 1, "{report:?}");
    let second = user_messages(&run, 1)?;
    ensure!(second.contains("Your answer contained no edit block"), "{second}");
    let applied = events.iter().find_map(|e| match e {
        Event::PatchApplied { path, diff, matches, .. } => Some((path.clone(), diff.clone(), matches.clone())),
        _ => None,
    });
    let (path, diff, matches) = applied.context("no patch was applied")?;
    ensure!(path == "pages.py", "{path}");
    ensure!(diff.contains("+    return list(range(1, page_count(total, per_page) + 1))"), "{diff}");
    ensure!(matches.len() == 1 && matches[0].kind == fixbox_patch::MatchKind::Whitespace, "{matches:?}");
    ensure!(report.tests_after.as_ref().is_some_and(|t| t.ok), "{:?}", report.tests_after);
    Ok(())
}

/// js-slugify's answers 2, 3, 1: the first applies but breaks tests that passed, so it is undone
/// (and the model is told which, and that the tests still fail); the second is a block whose SEARCH
/// and REPLACE are the same, refused with why; the third applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_that_breaks_tests_and_one_that_changes_nothing_are_explained_to_the_model() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    const FIXTURE: &str = "js-slugify";
    let run = fix(FIXTURE, answers(FIXTURE, &["2", "3", "1"])?, &["--max-iterations", "3"]).await?;
    ensure!(run.status.code() == Some(1), "{:?}", run.status);
    let (_, events, report) = run.report()?;
    ensure!(*outcome(&report)? == Outcome::MaxIterations, "{:?}", report.outcome);
    ensure!(report.patches_applied == 2 && report.patches_rejected == 1, "{report:?}");
    let second = user_messages(&run, 1)?;
    ensure!(
        second.contains("Your edit to slugify.js was undone, as it broke tests that passed")
            && second.contains("The tests still fail"),
        "{second}"
    );
    let rejected = events.iter().find_map(|e| match e {
        Event::PatchRejected { feedback, .. } => Some(feedback.clone()),
        _ => None,
    });
    ensure!(rejected.as_ref().is_some_and(|f| f.contains("Your edit changes nothing")), "{rejected:?}");
    ensure!(events.iter().any(|e| matches!(e, Event::PatchUndone { .. })), "the breaking edit was not undone");
    let third = user_messages(&run, 2)?;
    ensure!(third.contains("Your edit was not applied") && third.contains("changes nothing"), "{third}");
    Ok(())
}

/// js-slugify as recorded: two edits that apply but do not fix it, then the same unchanged block
/// three times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_failure_three_times_stops_the_loop() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    const FIXTURE: &str = "js-slugify";
    let run = fix(FIXTURE, answers(FIXTURE, &["1", "2", "3", "4", "5"])?, &[]).await?;
    ensure!(run.status.code() == Some(1), "{:?}", run.status);
    let (_, _, report) = run.report()?;
    ensure!(matches!(outcome(&report)?, Outcome::Stuck { .. }), "{:?}", report.outcome);
    ensure!(report.iterations == 5 && run.server.requests().len() == 5, "{} iterations", report.iterations);
    // The same failure twice in a row raised the temperature a step for the last try.
    let temperatures: Vec<f64> = run.server.requests().iter().filter_map(|r| r["temperature"].as_f64()).collect();
    ensure!(temperatures.len() == 5 && temperatures[4] > temperatures[3], "{temperatures:?}");
    ensure!(temperatures[..4].iter().all(|t| (t - 0.15).abs() < 1e-6), "{temperatures:?}");
    ensure!(run.stdout.contains("same failure"), "{}", run.stdout);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_stops_the_session_before_a_call_that_could_exceed_it() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    const FIXTURE: &str = "js-slugify";
    let run = fix(FIXTURE, answers(FIXTURE, &["1", "2"])?, &["--budget-tokens", "6000"]).await?;
    ensure!(run.status.code() == Some(1), "{:?}", run.status);
    let (_, _, report) = run.report()?;
    ensure!(matches!(outcome(&report)?, Outcome::Budget { .. }), "{:?}", report.outcome);
    ensure!(report.calls.len() == 1 && run.server.requests().len() == 1, "{} calls", report.calls.len());
    ensure!(run.stdout.contains("budget"), "{}", run.stdout);
    Ok(())
}

/// Reports, after the tests, what the sandbox holds of the repository's secret files and which
/// environment variables it has: if a canary reached the sandbox, this puts it in the output.
const PROBE: &str = r#"import os, pathlib

def pytest_terminal_summary(terminalreporter):
    here = pathlib.Path(__file__).parent
    files = {p: (here / p).read_text() if (here / p).exists() else "absent" for p in [".env", "deploy/id_ed25519", ".git/config"]}
    terminalreporter.write_line("FIXBOX-PROBE files=%r env=%r" % (files, dict(os.environ)))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_the_repository_and_the_host_environment_reach_no_sandbox_prompt_log_or_store() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    const FIXTURE: &str = "py-cache-evict-during-iteration";
    const CANARIES: [&str; 4] = ["canary-dotenv-5e1f", "canary-key-93b0", "canary-git-41c7", "canary-hostenv-0d2a"];
    let mut fixture = fixtures::get(FIXTURE)?;
    let work = tempfile::tempdir()?;
    for file in ["cache.py", "test_cache.py"] {
        std::fs::copy(fixture.repo.join(file), work.path().join(file))?;
    }
    std::fs::write(work.path().join("conftest.py"), PROBE)?;
    std::fs::write(work.path().join(".env"), format!("API_TOKEN={}\n", CANARIES[0]))?;
    std::fs::create_dir(work.path().join("deploy"))?;
    let key = format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n", CANARIES[1]);
    std::fs::write(work.path().join("deploy/id_ed25519"), key)?;
    let git = |args: &[&str]| std::process::Command::new("git").arg("-C").arg(work.path()).args(args).status();
    ensure!(git(&["init", "-q"])?.success());
    ensure!(git(&["remote", "add", "origin", &format!("https://ci:{}@example.com/r.git", CANARIES[2])])?.success());
    fixture.repo = work.path().to_path_buf();

    let server = ReplayServer::start(answers(FIXTURE, &["1"])?, Pace::Every(Duration::from_millis(1))).await?;
    let data = tempfile::tempdir()?;
    let routes = routing_file(data.path(), &server.url)?;
    let mut command = fix_command(&fixture, data.path(), &routes, &[])?;
    let output = command.env("FIXBOX_CANARY_TOKEN", CANARIES[3]).output().await?;
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let run = Run { status: output.status, stdout: printed.clone(), data, server };
    ensure!(run.status.code() == Some(0), "{printed}");
    let (_, events, report) = run.report()?;
    ensure!(*outcome(&report)? == Outcome::Fixed, "{:?}", report.outcome);

    // The probe ran in the sandbox, saw no secret file, and a remote without its credentials.
    let seen = serde_json::to_string(&events)?;
    ensure!(seen.contains("FIXBOX-PROBE"), "the probe did not run");
    ensure!(seen.contains(r#"'.env': 'absent'"#) && seen.contains(r#"'deploy/id_ed25519': 'absent'"#), "{seen}");
    ensure!(seen.contains("url = https://example.com/r.git"), "{seen}");

    // Nowhere: the prompts, what fixbox printed, and every file of its data folder (SQLite, logs).
    let mut places = fixbox_e2e::files_under(run.data.path())?;
    places.push(("the prompts".to_string(), serde_json::to_string(&run.server.requests())?.into_bytes()));
    places.push(("what fixbox printed".into(), printed.into_bytes()));
    let found = fixbox_e2e::found_in(&places, &CANARIES);
    ensure!(found.is_empty(), "{found:?}");
    ensure!(places.len() > 3, "the data folder holds the store: {:?}", places.iter().map(|p| &p.0).collect::<Vec<_>>());

    // What the user shares goes in; the rest stays out.
    let server = ReplayServer::start(answers(FIXTURE, &["1"])?, Pace::Every(Duration::from_millis(1))).await?;
    let data = tempfile::tempdir()?;
    let routes = routing_file(data.path(), &server.url)?;
    let output =
        fix_command(&fixture, data.path(), &routes, &["--share", "deploy/*", "--remember-share"])?.output().await?;
    let run = Run { status: output.status, stdout: String::new(), data, server };
    let (_, events, _) = run.report()?;
    let seen = serde_json::to_string(&events)?;
    ensure!(seen.contains(CANARIES[1]) && !seen.contains(CANARIES[0]), "{seen}");

    // Remembered for the repository: the next session shares it unasked, and says so.
    let server = ReplayServer::start(answers(FIXTURE, &["1"])?, Pace::Every(Duration::from_millis(1))).await?;
    let routes = routing_file(run.data.path(), &server.url)?;
    let output = fix_command(&fixture, run.data.path(), &routes, &[])?.output().await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(stderr.contains("as remembered for this repository: deploy/*"), "{stderr}");
    let run = Run { status: output.status, stdout: String::new(), data: run.data, server };
    let (_, events, _) = run.report()?;
    let seen = serde_json::to_string(&events)?;
    ensure!(seen.contains(CANARIES[1]) && !seen.contains(CANARIES[0]), "{seen}");
    Ok(())
}

/// A repository as they come: 100,000 files, a binary, a text file that is not UTF-8, links that point
/// out of it (to the host's `/etc/passwd` and to a folder holding a canary), and a submodule's
/// checkout. The session fixes its bug; nothing outside is read through the links into a prompt, an
/// event, the store or what is printed; the first prompt stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_repository_with_binaries_links_out_and_a_submodule_is_fixed_reading_nothing_outside() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    const FIXTURE: &str = "py-cache-evict-during-iteration";
    const CANARY: &str = "canary-outside-7c1e";
    const FILES: usize = 100_000;
    let mut fixture = fixtures::get(FIXTURE)?;
    let work = tempfile::tempdir()?;
    let root = work.path();
    for file in ["cache.py", "test_cache.py"] {
        std::fs::copy(fixture.repo.join(file), root.join(file))?;
    }
    for i in 0..FILES {
        let dir = root.join(format!("data/part-{:03}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir_all(&dir)?;
        }
        std::fs::write(dir.join(format!("row-{i}.txt")), format!("{i}\n"))?;
    }
    std::fs::create_dir_all(root.join("assets"))?;
    std::fs::write(root.join("assets/logo.png"), [0x89, b'P', b'N', b'G', 0, 0, 0, 13, 0xff, 0xfe])?;
    std::fs::write(root.join("assets/notes-latin1.txt"), b"caf\xe9 cr\xe8me\n")?;
    let outside = tempfile::tempdir()?;
    std::fs::write(outside.path().join("secret.py"), format!("TOKEN = '{CANARY}'\n"))?;
    std::os::unix::fs::symlink(outside.path(), root.join("linked"))?;
    std::os::unix::fs::symlink(outside.path().join("secret.py"), root.join("settings.py"))?;
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd"))?;
    std::fs::create_dir_all(root.join("vendor/lib"))?;
    std::fs::write(root.join("vendor/lib/.git"), "gitdir: ../../.git/modules/vendor/lib\n")?;
    std::fs::write(root.join("vendor/lib/lib.py"), "def helper():\n    return 1\n")?;
    // What the sandbox sees through the links, in the tests' output: they must not reach the host.
    let probe = r#"import pathlib

def pytest_terminal_summary(terminalreporter):
    here = pathlib.Path(__file__).parent
    seen = {p: (here / p).read_text() if (here / p).exists() else "absent" for p in ["settings.py", "linked/secret.py"]}
    terminalreporter.write_line("FIXBOX-PROBE %r %d files" % (seen, sum(1 for _ in here.glob("data/*/*.txt"))))
"#;
    std::fs::write(root.join("conftest.py"), probe)?;
    fixture.repo = root.to_path_buf();

    let server = ReplayServer::start(answers(FIXTURE, &["1"])?, Pace::Every(Duration::from_millis(1))).await?;
    let data = tempfile::tempdir()?;
    let routes = routing_file(data.path(), &server.url)?;
    let output = fix_command(&fixture, data.path(), &routes, &[])?.output().await?;
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let run = Run { status: output.status, stdout: printed.clone(), data, server };
    ensure!(run.status.code() == Some(0), "{printed}");
    let (_, events, report) = run.report()?;
    ensure!(*outcome(&report)? == Outcome::Fixed, "{:?}", report.outcome);
    let copied = events.iter().find_map(|e| match e {
        Event::SandboxReady { files, .. } => Some(*files),
        _ => None,
    });
    ensure!(copied.is_some_and(|n| n > FILES as u64), "copied {copied:?}");
    let first = report.calls.first().map(|c| c.usage.prompt).context("no call")?;
    ensure!(first < 4_000, "the first prompt took {first} tokens");
    let seen = serde_json::to_string(&events)?;
    let probed = format!("FIXBOX-PROBE {{'settings.py': 'absent', 'linked/secret.py': 'absent'}} {FILES} files");
    let said: String = seen.split("FIXBOX-PROBE").nth(1).unwrap_or("").chars().take(200).collect();
    ensure!(seen.contains(&probed), "the probe saw otherwise: {said}");

    let mut places = fixbox_e2e::files_under(run.data.path())?;
    places.push(("the prompts".to_string(), serde_json::to_string(&run.server.requests())?.into_bytes()));
    places.push(("what fixbox printed".into(), printed.into_bytes()));
    let found = fixbox_e2e::found_in(&places, &[CANARY]);
    ensure!(found.is_empty(), "{found:?}");
    Ok(())
}

/// A tmpfs of `size` mounted on a folder while this lives.
struct Mounted(PathBuf);

impl Mounted {
    fn tmpfs(at: &Path, size: &str) -> Result<Self> {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()?;
        ensure!(status.success(), "could not mount a tmpfs on {} (this test needs root)", at.display());
        Ok(Self(at.to_path_buf()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_store_ends_the_session_saying_so_and_leaves_no_sandbox() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    const FIXTURE: &str = "py-cache-evict-during-iteration";
    let fixture = fixtures::get(FIXTURE)?;
    let data = tempfile::tempdir()?;
    let _disk = Mounted::tmpfs(data.path(), "8m")?;
    let elsewhere = tempfile::tempdir()?;
    // Slow enough that the disk is full before the answer ends.
    let server = ReplayServer::start(answers(FIXTURE, &["1"])?, Pace::Every(Duration::from_millis(40))).await?;
    let routes = routing_file(elsewhere.path(), &server.url)?;
    let before = fixbox_e2e::sandboxes()?;
    let child = fix_command(&fixture, data.path(), &routes, &[])?.spawn()?;

    let store = Store::open_in(data.path())?;
    wait_for_event(&store, "model.started").await?;
    let filler = data.path().join("filler");
    let mut file = std::fs::File::create(&filler)?;
    let block = vec![0u8; 64 << 10];
    while std::io::Write::write_all(&mut file, &block).is_ok() {}
    drop(file);

    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output()).await??;
    std::fs::remove_file(&filler)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");
    ensure!(!output.status.success(), "the session cannot have finished: {stderr}");
    ensure!(stderr.contains("the disk of the data folder is full"), "{stderr}");
    ensure!(fixbox_e2e::sandboxes()? == before, "the sandbox was left behind");
    // What was recorded before is intact and readable.
    ensure!(store.integrity_problems()?.is_empty(), "{:?}", store.integrity_problems()?);
    let session = store.list_sessions()?.into_iter().next().context("no session")?;
    ensure!(store.events_from(&session.id, 1)?.len() >= 3);
    Ok(())
}

/// The real engine (llama-server with SmolLM2, supervised as Fixbox supervises it) is killed with
/// SIGKILL while a session's model call runs: the call fails with its reason recorded, the supervisor
/// brings the engine back, and the session goes on or ends saying why; no sandbox is left.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_killed_mid_call_fails_that_call_and_the_session_ends_cleanly() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let engine = fixbox_e2e::models::smollm2(4096, 1).await?;
    let fixture = fixtures::get("py-cache-evict-during-iteration")?;
    let data = tempfile::tempdir()?;
    let routes = fixbox_e2e::routes_file(data.path(), "engine", &format!("{}/v1", engine.url), "smollm2", 4096)?;
    let before = fixbox_e2e::sandboxes()?;
    let args = ["--max-iterations", "2", "--max-tokens", "1024", "--context", "4096"];
    let child = fix_command(&fixture, data.path(), &routes, &args)?.spawn()?;
    let store = Store::open_in(data.path())?;
    wait_for_event(&store, "model.started").await?;
    // In the prompt's processing or the answer's stream: SmolLM2 answers within a second or two.
    let pid = engine.pid().context("the engine runs no process")?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL)?;

    let output = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output()).await??;
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    eprintln!("{printed}");
    let session = store.list_sessions()?.into_iter().next().context("no session")?;
    let stored = store.events_from(&session.id, 1)?;
    let report = SessionReport::from_events(&stored).context("not a fix session")?;
    let outcome = report.outcome.clone().context("the session did not finish")?;
    let failed_tries: Vec<String> = stored
        .iter()
        .filter_map(Event::from_stored)
        .filter_map(|e| if let Event::ModelCall { record, .. } = e { Some(record.attempts) } else { None })
        .flatten()
        .map(|a| a.message)
        .collect();
    let ended_on_the_model = matches!(&outcome, Outcome::Error { message } if message.contains("model"));
    ensure!(
        !failed_tries.is_empty() || ended_on_the_model,
        "the kill left no trace: {outcome:?}, calls {:?}",
        report.calls
    );
    eprintln!("outcome {outcome:?}; failed tries {failed_tries:?}");
    ensure!(fixbox_e2e::sandboxes()? == before, "the sandbox was left behind");
    ensure!(engine.pid().is_some_and(|now| now != pid), "the supervisor did not bring the engine back");
    engine.stop().await;
    Ok(())
}

/// Restarts this machine's Docker daemon: through systemd where it runs it, else as `scripts/setup`
/// starts it (detached, logging to /var/log/fixbox-dockerd.log). Waits until it answers again.
fn restart_docker() -> Result<()> {
    let answers = || std::process::Command::new("docker").arg("info").output().is_ok_and(|o| o.status.success());
    if Path::new("/run/systemd/system").is_dir() {
        ensure!(std::process::Command::new("systemctl").args(["restart", "docker"]).status()?.success());
    } else {
        std::process::Command::new("pkill").args(["-TERM", "-x", "dockerd"]).status()?;
        let gone = std::time::Instant::now();
        while std::process::Command::new("pgrep").args(["-x", "dockerd"]).status()?.success() {
            ensure!(gone.elapsed() < Duration::from_secs(60), "dockerd did not stop");
            std::thread::sleep(Duration::from_millis(200));
        }
        let start = "nohup dockerd >>/var/log/fixbox-dockerd.log 2>&1 &";
        ensure!(std::process::Command::new("sh").args(["-c", start]).status()?.success());
    }
    let started = std::time::Instant::now();
    while !answers() {
        ensure!(started.elapsed() < Duration::from_secs(60), "Docker did not answer within 60 s of its restart");
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

/// Docker restarted while a session runs: the session ends saying the sandbox failed (its container
/// stopped with the daemon), what it recorded is kept, and the next session's start removes the
/// container it left.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_restarted_mid_session_ends_it_saying_so_and_the_next_start_removes_its_sandbox() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    const FIXTURE: &str = "py-cache-evict-during-iteration";
    let fixture = fixtures::get(FIXTURE)?;
    let data = tempfile::tempdir()?;
    // The answer streams for several seconds: the restart lands while the model answers.
    let script = answers(FIXTURE, &["1", "1"])?;
    let server = ReplayServer::start(script, Pace::Every(Duration::from_millis(100))).await?;
    let routes = routing_file(data.path(), &server.url)?;
    let before = fixbox_e2e::sandboxes()?;
    let child = fix_command(&fixture, data.path(), &routes, &[])?.spawn()?;
    let store = Store::open_in(data.path())?;
    wait_for_event(&store, "model.started").await?;
    tokio::task::spawn_blocking(restart_docker).await??;

    let output = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output()).await??;
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    eprintln!("{printed}");
    let session = store.list_sessions()?.into_iter().next().context("no session")?;
    let stored = store.events_from(&session.id, 1)?;
    let report = SessionReport::from_events(&stored).context("not a fix session")?;
    match report.outcome.as_ref().context("the session did not finish")? {
        Outcome::Error { message } => {
            ensure!(message.contains("its container stopped (Docker was restarted"), "{message}")
        }
        // Docker came back before the session's next step needed it: it went on.
        Outcome::Fixed => {}
        other => anyhow::bail!("unexpected outcome {other:?}"),
    }
    ensure!(store.integrity_problems()?.is_empty());

    // The next session starts by removing what the last one left, and works.
    let next = fix(FIXTURE, answers(FIXTURE, &["1"])?, &[]).await?;
    ensure!(next.status.code() == Some(0), "the session after the restart: {:?}", next.status);
    ensure!(fixbox_e2e::sandboxes()? == before, "a sandbox was left behind");
    Ok(())
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_cleanly_and_keeps_the_session() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let fixture = fixtures::get("py-cache-evict-during-iteration")?;
    let script = answers("py-cache-evict-during-iteration", &["1"])?;
    // The answer streams a few events, then the model stalls mid-patch.
    let server = ReplayServer::start(script, Pace::StallAfter(12)).await?;
    let data = tempfile::tempdir()?;
    let routes = routing_file(data.path(), &server.url)?;
    let mut child = fix_command(&fixture, data.path(), &routes, &[])?.spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(300), async {
        while let Some(line) = lines.next_line().await? {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("── iteration 1") {
                return Ok::<_, anyhow::Error>(());
            }
        }
        anyhow::bail!("fixbox fix ended before its first model call:\n{seen}")
    })
    .await
    .context("no model call within 300 s")??;
    // Wait until the stalled answer has streamed its first events.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = nix::unistd::Pid::from_raw(child.id().context("no pid")? as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)?;
    let status =
        tokio::time::timeout(Duration::from_secs(60), child.wait()).await.context("fixbox fix did not stop")??;
    ensure!(status.code() == Some(130), "exit status {status:?}");

    let store = Store::open_in(data.path())?;
    let session = store.list_sessions()?.into_iter().next().context("the session was not kept")?;
    let events: Vec<Event> = store.events_from(&session.id, 1)?.iter().filter_map(Event::from_stored).collect();
    ensure!(
        matches!(events.last(), Some(Event::SessionFinished { outcome: Outcome::Cancelled, .. })),
        "{:?}",
        events.last()
    );
    let sandbox = events
        .iter()
        .find_map(|e| match e {
            Event::SandboxReady { sandbox, .. } => Some(sandbox.clone()),
            _ => None,
        })
        .context("no sandbox")?;
    // The sandbox is gone.
    let left =
        std::process::Command::new("docker").args(["ps", "-aq", "--filter", &format!("id={sandbox}")]).output()?;
    ensure!(String::from_utf8_lossy(&left.stdout).trim().is_empty(), "sandbox {sandbox} was left behind");
    Ok(())
}

/// A project that needs a package from PyPI the sandbox image lacks: the first session detects how it
/// installs, installs it with network (cut after), fixes the bug with its tests importing the package,
/// and keeps what it installed; the second session on the same data restores that in a sandbox that
/// never had network, installing nothing, and fixes it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_from_pypi_are_installed_once_and_the_next_session_restores_them() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let fixture = fixtures::with_dependencies("py-slugs")?;
    let data = tempfile::tempdir()?;
    for restored in [false, true] {
        let server = ReplayServer::start(answers("py-slugs", &["1"])?, Pace::Every(Duration::from_millis(1))).await?;
        let routes = routing_file(data.path(), &server.url)?;
        let output = fix_command(&fixture, data.path(), &routes, &[])?.output().await?;
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        eprintln!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        ensure!(output.status.code() == Some(0), "fixbox fix exited with {:?}", output.status);
        let store = Store::open_in(data.path())?;
        let session = store.list_sessions()?.into_iter().next().context("no session was recorded")?;
        let stored = store.events_from(&session.id, 1)?;
        let report = SessionReport::from_events(&stored).context("not a fix session")?;
        ensure!(*outcome(&report)? == Outcome::Fixed, "{:?}", report.outcome);
        let setup = stored.iter().filter_map(Event::from_stored).find_map(|e| match e {
            Event::SetupRun { command, exit_code, restored, output, .. } => {
                Some((command, exit_code, restored, output))
            }
            _ => None,
        });
        let (command, exit_code, was_restored, printed) = setup.context("no setup ran")?;
        ensure!(command.contains("pip install -e ."), "the detected setup: {command}");
        ensure!((exit_code, was_restored) == (Some(0), restored), "{exit_code:?} {was_restored}: {printed}");
        if restored {
            ensure!(stdout.contains("restored from an earlier session") && stdout.contains("no network"), "{stdout}");
        } else {
            ensure!(printed.contains("Successfully installed") && printed.contains("text-unidecode"), "{printed}");
            // The app showed pip's output as it came, not only its end.
            let streamed: String = stored
                .iter()
                .filter_map(Event::from_stored)
                .filter_map(|e| match e {
                    Event::SetupOutput { text } => Some(text),
                    _ => None,
                })
                .collect();
            ensure!(streamed.contains("Collecting text-unidecode"), "{streamed}");
        }
    }
    let kept = std::fs::read_dir(data.path().join("environments"))?.count();
    ensure!(kept == 1, "{kept} archives kept, one expected");
    Ok(())
}

/// Each sample project's tests fail as shipped with exactly its `failing` tests, and pass once its
/// reference fix is applied, by Fixbox's own diff parser and patch engine, in a real sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_project_fails_as_shipped_and_passes_with_its_fix() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    for fixture in fixtures::all()? {
        let plan = fixbox_agent::detect(&fixture.repo)?;
        let sandbox =
            fixbox_agent::setup::sandbox(&Default::default(), &plan.recipe, Default::default(), false, &|line| {
                eprintln!("[image] {line}")
            })
            .await?
            .sandbox;
        sandbox.copy_in(&fixture.repo, WORKSPACE, &fixbox_sandbox::Excludes::default()).await?;
        let timeout = Duration::from_secs(300);
        let before = TestReport::run(&sandbox, &plan, timeout).await?;
        let mut failing = before.failing();
        failing.sort();
        let mut expected = fixture.failing.clone();
        expected.sort();
        ensure!(failing == expected, "{}: failing {failing:?}, expected {expected:?}\n{}", fixture.name, before.output);

        let repo = fixbox_agent::Repo::load(&fixture.repo)?;
        let mut writes = Vec::new();
        for file_patch in split_diff(&fixture.fix_patch) {
            let mut parser = PatchParser::new(EditFormat::UnifiedDiff);
            parser.push(&file_patch);
            let patch = parser.finish()?;
            let path = patch.path.clone().context("the reference patch names its files")?;
            let applied = apply(repo.current(&path).unwrap_or(""), &patch.hunks, &ApplyOptions::default())?;
            writes.push(FileWrite { path, content: applied.content.into_bytes(), executable: false });
        }
        ensure!(writes.len() == fixture.files.len(), "{}: patched {} files", fixture.name, writes.len());
        sandbox.write_files(WORKSPACE, &writes).await?;
        let after = TestReport::run(&sandbox, &plan, timeout).await?;
        ensure!(
            after.ok() && after.regressions(&before).is_empty(),
            "{}: after the fix\n{}",
            fixture.name,
            after.output
        );
        sandbox.destroy().await?;
        eprintln!(
            "{}: {} failing before, all {} passing after",
            fixture.name,
            failing.len(),
            after.with(fixbox_agent::TestOutcome::Passed).len()
        );
    }
    Ok(())
}

/// A multi-file unified diff, one piece per file.
fn split_diff(diff: &str) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    for line in diff.lines() {
        if line.starts_with("diff --git")
            || (line.starts_with("--- ") && pieces.last().is_none_or(|p| p.contains("\n@@")))
        {
            pieces.push(String::new());
        }
        if let Some(piece) = pieces.last_mut() {
            piece.push_str(line);
            piece.push('\n');
        }
    }
    pieces
}
