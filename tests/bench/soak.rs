//! Soak: `fixbox fix` sessions as separate processes against the real Docker sandbox and one SQLite
//! store, with a loopback server replaying a recorded answer of Qwen2.5-Coder-1.5B in place of the
//! model, several at a time, and one in ten killed with SIGKILL mid-session. Then one more session
//! (whose start reaps what the killed ones left) and the counts: sandboxes left before and after it,
//! engines running, temp entries left, and the event log checked: SQLite's integrity check, every
//! session's events numbered without a gap, every session not killed finished and fixed.
//!
//! Run: `cargo bench -p fixbox-e2e --bench soak [-- SESSIONS [AT_ONCE]]` (default 100 and 4; the
//! machine's session cap is raised to AT_ONCE), after
//! building the CLI (`cargo build -p fixbox-cli`); `FIXBOX_BIN` names another `fixbox` binary. Under
//! `cargo test` it runs 10 sessions, 2 at a time.
#![expect(clippy::print_stdout, reason = "a benchmark prints its report")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use fixbox_agent::{Outcome, SessionReport};
use fixbox_e2e::transcripts::{self, Pace, ReplayServer};
use fixbox_store::Store;

const FIXTURE: &str = "py-cache-evict-during-iteration";
/// Every this many sessions, one is killed.
const KILL_EVERY: usize = 10;

#[tokio::main]
async fn main() -> Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let numbers: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sessions = numbers.first().copied().unwrap_or(if bench { 100 } else { 10 });
    let at_once = numbers.get(1).copied().unwrap_or(if bench { 4 } else { 2 });
    let bin = match std::env::var_os("FIXBOX_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => fixbox_bin()?,
    };
    let fixture = fixbox_e2e::fixtures::get(FIXTURE)?;
    let answer = transcripts::load(
        &fixbox_e2e::workspace_root().join("tests/fixtures/transcripts").join(format!("{FIXTURE}.json")),
    )?
    .remove("1")
    .context("no recorded answer 1")?;
    // Paced so that a session streams for about a second and a kill lands in any phase.
    let server = ReplayServer::start(vec![answer; sessions * 2 + 1], Pace::Every(Duration::from_millis(15))).await?;
    let data = tempfile::tempdir()?;
    let model = "qwen2.5-coder-1.5b-instruct";
    let routes = fixbox_e2e::routes_file(data.path(), "replay", &format!("{}/v1", server.url), model, 8192)?;
    // The sessions' own temp folder, so that what they leave there is theirs alone.
    let temp = data.path().join("tmp");
    std::fs::create_dir(&temp)?;
    let sandboxes_before = fixbox_e2e::sandboxes()?;
    println!(
        "{sessions} sessions of `fixbox fix` on {FIXTURE}, {at_once} at a time, one in {KILL_EVERY} killed (SIGKILL)"
    );

    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(at_once));
    let mut runs = Vec::new();
    for i in 0..sessions {
        let permit = gate.clone().acquire_owned().await?;
        let mut command = fix_command(&bin, &fixture.repo, &fixture.task, data.path(), &routes);
        // This machine's own cap may be lower: the soak is about `at_once` sessions side by side.
        command.env("FIXBOX_MAX_SESSIONS", at_once.to_string());
        // Spread the kills over a session's phases: setup, tests, the model's stream, the tests after.
        let kill_after =
            (i % KILL_EVERY == KILL_EVERY - 1).then(|| Duration::from_millis(300 + (i as u64 * 397) % 2700));
        runs.push(tokio::spawn(async move {
            let _permit = permit;
            run(command, kill_after).await
        }));
    }
    let mut exits = BTreeMap::<String, usize>::new();
    let mut killed = 0;
    for run in runs {
        let (exit, was_killed) = run.await??;
        killed += usize::from(was_killed);
        *exits.entry(exit).or_default() += 1;
    }
    let wall = started.elapsed();
    let left_by_kills = fixbox_e2e::sandboxes()?.saturating_sub(sandboxes_before);

    // One more session: its start removes the sandboxes of owners that are gone.
    let (exit, _) = run(fix_command(&bin, &fixture.repo, &fixture.task, data.path(), &routes), None).await?;
    ensure!(exit == "exit 0", "the last session ended with {exit}");
    let left = fixbox_e2e::sandboxes()?.saturating_sub(sandboxes_before);
    let engines = processes_named(&["llama-server", "ollama", "vllm"]);
    let temp_left: Vec<String> =
        std::fs::read_dir(&temp)?.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    let log = check_store(data.path())?;

    println!("\n| figure | value |\n|---|---|");
    println!("| sessions (and one after) | {sessions} (+1) |");
    println!("| killed with SIGKILL | {killed} |");
    println!("| exits | {} |", exits.iter().map(|(e, n)| format!("{e}: {n}")).collect::<Vec<_>>().join(", "));
    println!("| wall time | {:.0} s ({:.1} s a session) |", wall.as_secs_f64(), wall.as_secs_f64() / sessions as f64);
    println!("| sandboxes left by the killed, before the next start | {left_by_kills} |");
    println!("| sandboxes left after the next start | {left} |");
    println!("| engines running | {engines} |");
    println!("| temp entries left | {} {:?} |", temp_left.len(), temp_left);
    println!("| SQLite integrity check | {} |", log.integrity);
    println!("| sessions in the store | {} |", log.sessions);
    println!("| sessions finished / fixed | {} / {} |", log.finished, log.fixed);
    println!("| sessions ended by a kill (no finish event) | {} |", log.unfinished);
    println!("| killed in their setup, before anything was stored | {} |", (sessions + 1).saturating_sub(log.sessions));
    println!("| event numbering gaps | {} |", log.gaps);
    ensure!(log.integrity == "ok" && log.gaps == 0, "the event log is damaged");
    // A session killed in its setup has nothing stored yet; every other one is.
    ensure!(log.sessions + killed > sessions, "{} sessions stored, {} started", log.sessions, sessions + 1);
    ensure!(log.fixed >= sessions + 1 - killed, "a session that was not killed did not fix: {exits:?}");
    ensure!(left == 0 && engines == 0 && temp_left.is_empty(), "something was left behind");
    Ok(())
}

fn fixbox_bin() -> Result<PathBuf> {
    // Benchmarks build into `release`, tests into `debug`: use whichever CLI was built last.
    let exe = std::env::current_exe()?;
    let target = exe.ancestors().nth(3).context("no target dir")?;
    let built: Vec<PathBuf> =
        ["debug", "release"].iter().map(|p| target.join(p).join("fixbox")).filter(|p| p.exists()).collect();
    built
        .into_iter()
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .context("build the CLI first: cargo build -p fixbox-cli")
}

fn fix_command(bin: &Path, repo: &Path, task: &str, data: &Path, routes: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(bin);
    command
        .env("FIXBOX_DATA_DIR", data)
        .env("TMPDIR", data.join("tmp"))
        .env("NO_COLOR", "1")
        .arg("fix")
        .arg(repo)
        .args(["--task", task, "--routes"])
        .arg(routes)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs a session to its end, or SIGKILLs it after `kill_after`: how it ended (with what it printed
/// when that was a failure), and whether it was killed.
async fn run(mut command: tokio::process::Command, kill_after: Option<Duration>) -> Result<(String, bool)> {
    let child = command.spawn()?;
    let pid = child.id().context("no pid")?;
    let output = child.wait_with_output();
    let output = match kill_after {
        None => output.await?,
        Some(after) => {
            tokio::pin!(output);
            match tokio::time::timeout(after, &mut output).await {
                Ok(output) => output?,
                Err(_) => {
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL)?;
                    output.await?;
                    return Ok(("killed".into(), true));
                }
            }
        }
    };
    let exit = output.status.code().map_or_else(|| "signal".into(), |c| format!("exit {c}"));
    if exit != "exit 0" {
        let said = String::from_utf8_lossy(&output.stderr);
        println!("{exit}: {}", said.lines().rev().take(5).collect::<Vec<_>>().join(" | "));
    }
    Ok((exit, false))
}

fn processes_named(names: &[&str]) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .filter(|comm| names.iter().any(|n| comm.trim() == *n))
        .count()
}

struct LogCheck {
    integrity: String,
    sessions: usize,
    finished: usize,
    fixed: usize,
    unfinished: usize,
    gaps: usize,
}

fn check_store(data: &Path) -> Result<LogCheck> {
    let store = Store::open_in(data)?;
    let problems = store.integrity_problems()?;
    let integrity = if problems.is_empty() { "ok".to_string() } else { problems.join("; ") };
    let mut check = LogCheck { integrity, sessions: 0, finished: 0, fixed: 0, unfinished: 0, gaps: 0 };
    for session in store.list_sessions()? {
        check.sessions += 1;
        let events = store.events_from(&session.id, 1)?;
        check.gaps += events.iter().enumerate().filter(|(i, e)| e.seq != *i as u64 + 1).count();
        match SessionReport::from_events(&events).and_then(|r| r.outcome) {
            Some(outcome) => {
                check.finished += 1;
                check.fixed += usize::from(outcome == Outcome::Fixed);
            }
            None => check.unfinished += 1,
        }
    }
    Ok(check)
}
