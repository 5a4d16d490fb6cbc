//! `fixbox eval` as a user runs it, on a dataset this test makes from a sample project: a git repository
//! with a real history (the bug at the base commit, then the commit that fixes it and adds the test that
//! shows it), judged in real sandboxes. The model is the loopback server replaying an answer
//! Qwen2.5-Coder-1.5B really gave on this bug (as in `fix.rs`).
#![expect(clippy::print_stderr, reason = "what fixbox printed goes to the test log, for when a test fails")]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use fixbox_agent::Event;
use fixbox_e2e::fixtures;
use fixbox_e2e::transcripts::{Pace, ReplayServer};
use fixbox_e2e::workspace_bin;
use fixbox_eval::{Category, Mode, Report};
use serde_json::json;

use crate::fix::{answers, routing_file};

const FIXTURE: &str = "py-cache-evict-during-iteration";
/// Its transcript given as an issue: the test the model wrote, then its fix.
const ISSUE: &str = "py-cache-evict-during-iteration-issue";
const FAILING: &str = "test_cache.py::test_evict_drops_only_expired_entries";

/// A folder of repositories with the sample's history, and a dataset over it: its task, one whose
/// repository is missing, and a malformed line.
pub(crate) fn dataset(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let fixture = fixtures::get(FIXTURE)?;
    let repos = dir.join("repos");
    let repo = repos.join("sample+cache");
    std::fs::create_dir_all(&repo)?;
    let git = |args: &[&str]| -> Result<String> {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
            .args(args)
            .current_dir(&repo)
            .output()?;
        ensure!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    };
    git(&["init", "-q"])?;
    // The base: the bug, and the tests as they were before the one that shows it.
    let tests = std::fs::read_to_string(fixture.repo.join("test_cache.py"))?;
    let cut = tests.find("\n\ndef test_evict_drops_only_expired_entries").context("the sample's test moved")?;
    std::fs::copy(fixture.repo.join("cache.py"), repo.join("cache.py"))?;
    std::fs::write(repo.join("test_cache.py"), format!("{}\n", &tests[..cut]))?;
    git(&["add", "."])?;
    git(&["commit", "-qm", "a TTL cache"])?;
    let base = git(&["rev-parse", "HEAD"])?;
    // The fix, and its test.
    std::fs::write(repo.join("fix.patch"), &fixture.fix_patch)?;
    git(&["apply", "fix.patch"])?;
    std::fs::remove_file(repo.join("fix.patch"))?;
    std::fs::write(repo.join("test_cache.py"), &tests)?;
    git(&["commit", "-qam", "evict_expired: iterate over a copy"])?;
    let patch = git(&["diff", &base, "HEAD", "--", "cache.py"])? + "\n";
    let test_patch = git(&["diff", &base, "HEAD", "--", "test_cache.py"])? + "\n";

    let task = json!({
        "instance_id": "sample__cache-1",
        "repo": "sample/cache",
        "base_commit": base,
        "problem_statement": fixture.task,
        "FAIL_TO_PASS": [FAILING],
        "PASS_TO_PASS": [
            "test_cache.py::test_get_before_expiry",
            "test_cache.py::test_get_after_expiry",
            "test_cache.py::test_missing_key_gives_default",
            "test_cache.py::test_evict_with_nothing_expired",
        ],
        "test_patch": test_patch,
        "patch": patch,
        "install": "true",
        "test_cmd": "python3 -m pytest -rA -p no:cacheprovider test_cache.py",
    });
    let mut elsewhere = task.clone();
    elsewhere["instance_id"] = json!("elsewhere__gone-1");
    elsewhere["repo"] = json!("elsewhere/gone");
    let path = dir.join("dataset.jsonl");
    std::fs::write(&path, format!("{task}\n{{\"instance_id\": \"broken\"}}\n{elsewhere}\n"))?;
    Ok((repos, path))
}

/// `fixbox eval run` with `args`; its report. `--out` is given relative to the folder it runs in, as a
/// user types it.
fn eval(data: &Path, dataset: &Path, repos: &Path, out: &Path, args: &[&str]) -> Result<(Report, String)> {
    let output = Command::new(workspace_bin("fixbox")?)
        .env("FIXBOX_DATA_DIR", data)
        .current_dir(out.parent().context("out has no parent")?)
        .args(["eval", "run"])
        .arg(dataset)
        .arg("--repos")
        .arg(repos)
        .arg("--out")
        .arg(out.file_name().context("out has no name")?)
        .args(args)
        .output()?;
    let (stdout, stderr) = (String::from_utf8(output.stdout)?, String::from_utf8(output.stderr)?);
    eprintln!("{stdout}\n{stderr}");
    ensure!(output.status.success(), "fixbox eval exited with {:?}", output.status);
    let report: Report = serde_json::from_str(&std::fs::read_to_string(out.join("report.json"))?)?;
    Ok((report, stderr))
}

/// `fixbox eval run` on `dataset` into `out`, its data in `dir`, for a test to run in the background.
fn eval_command(dir: &Path, dataset: &Path, repos: &Path, out: &Path) -> Result<tokio::process::Command> {
    let mut command = tokio::process::Command::new(workspace_bin("fixbox")?);
    command.env("FIXBOX_DATA_DIR", dir.join("data")).args(["eval", "run"]).arg(dataset);
    command.arg("--repos").arg(repos).arg("--out").arg(out);
    Ok(command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_judges_the_gold_fix_and_a_session_by_the_hidden_tests() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let dir = tempfile::tempdir()?;
    let (repos, dataset) = dataset(dir.path())?;
    let data = dir.path().join("data");

    // The task's own fix resolves it; a bad line and a missing repository are said and the run goes on.
    let gold = dir.path().join("gold");
    let (report, said) = eval(&data, &dataset, &repos, &gold, &["--mode", "gold"])?;
    ensure!(said.contains("line 2: field repo is missing; skipped"), "{said}");
    let by_id = |report: &Report, id: &str| report.tasks.iter().find(|t| t.instance_id == id).cloned();
    let task = by_id(&report, "sample__cache-1").context("no result for the sample")?;
    ensure!(task.resolved && task.category == Category::Resolved, "{task:?}");
    let gone = by_id(&report, "elsewhere__gone-1").context("no result for the missing repository")?;
    ensure!(!gone.resolved && gone.category == Category::NoRepo, "{gone:?}");
    ensure!(report.totals.resolved == 1 && report.totals.tasks == 2, "{:?}", report.totals);
    for file in ["report.md", "report.svg", "predictions.jsonl"] {
        ensure!(gold.join(file).is_file(), "no {file}");
    }
    let predictions = std::fs::read_to_string(gold.join("predictions.jsonl"))?;
    let sample = predictions.lines().find(|l| l.contains("sample__cache-1")).context("no prediction for the sample")?;
    let sample: serde_json::Value = serde_json::from_str(sample)?;
    ensure!(sample["model_patch"].as_str().is_some_and(|p| p.contains("list(self._entries.items())")), "{sample}");

    // With the test given, the session fixes it (the recorded answer) and the hidden tests agree.
    let server =
        ReplayServer::start(answers(FIXTURE, &["1"])?, Pace::Every(std::time::Duration::from_millis(1))).await?;
    let routes = routing_file(dir.path(), &server.url)?;
    let routing = ["--routes", routes.to_str().context("path")?, "--instance", "sample__cache-1"];
    let tests = dir.path().join("tests");
    let (report, _) = eval(&data, &dataset, &repos, &tests, &[&["--mode", "tests"][..], &routing[..]].concat())?;
    let task = &report.tasks[0];
    ensure!(task.resolved && task.claimed_fixed && task.session.is_some(), "{task:?}");
    ensure!(task.outcome.as_ref().is_some_and(|o| o.is_fixed()), "{task:?}");
    ensure!(report.totals.claims_confirmed == 1, "{:?}", report.totals);

    // Given the issue alone, its tests pass before any change: the model first writes a test that
    // shows the bug (the recorded one, which expects a wrong count), then the fix. The hidden tests
    // resolve the fix; the session does not claim it, as its own test still fails.
    let server =
        ReplayServer::start(answers(ISSUE, &["1", "2"])?, Pace::Every(std::time::Duration::from_millis(1))).await?;
    let issue_routes = dir.path().join("issue-routes");
    std::fs::create_dir_all(&issue_routes)?;
    let routes = routing_file(&issue_routes, &server.url)?;
    let routing = ["--routes", routes.to_str().context("path")?, "--instance", "sample__cache-1"];
    let issue = dir.path().join("issue");
    let issue_args = [&["--mode", "issue", "--max-iterations", "1"][..], &routing[..]].concat();
    let (report, _) = eval(&data, &dataset, &repos, &issue, &issue_args)?;
    let task = &report.tasks[0];
    ensure!(report.mode == Mode::Issue && task.resolved && !task.claimed_fixed, "{task:?}");
    ensure!(server.requests().len() == 2, "{} model calls", server.requests().len());
    let store = fixbox_store::Store::open_in(&data)?;
    let session = task.session.clone().context("no session")?;
    let events: Vec<Event> = store.events_from(&session.parse()?, 1)?.iter().filter_map(Event::from_stored).collect();
    let kept = events.iter().find_map(|e| match e {
        Event::Reproduction { accepted: true, test, .. } => Some(test.clone()),
        _ => None,
    });
    ensure!(kept.as_deref().is_some_and(|t| t.starts_with("import time\n")), "{kept:?}");
    let finished = events.last().context("no events")?;
    let Event::SessionFinished { diff, test_diff, .. } = finished else { anyhow::bail!("{finished:?}") };
    ensure!(diff.contains("self._entries.copy().items()") && !diff.contains("test_fixbox_issue"), "{diff}");
    ensure!(test_diff.contains("+++ b/test_fixbox_issue.py"), "{test_diff}");

    // A second run finds every task done and keeps the results.
    let (again, said) = eval(&data, &dataset, &repos, &issue, &issue_args)?;
    ensure!(said.contains("1 of 1 tasks have results from before"), "{said}");
    ensure!(again.tasks == report.tasks, "the second run changed the results");

    let compared = Command::new(workspace_bin("fixbox")?).args(["eval", "compare"]).arg(&issue).arg(&tests).output()?;
    let compared = String::from_utf8(compared.stdout)?;
    ensure!(
        compared.contains("| resolved | 1/1 | 1/1 |\n") && compared.contains("No task ended differently."),
        "{compared}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_loses_the_model_server_waits_for_it_and_runs_the_task_again() -> Result<()> {
    use tokio::io::AsyncBufReadExt;

    let _machine = fixbox_e2e::machine_to_myself().await;
    let dir = tempfile::tempdir()?;
    let (repos, dataset) = dataset(dir.path())?;
    // The server's port, with nothing listening there yet: its engine is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let routes = routing_file(dir.path(), &format!("http://127.0.0.1:{port}"))?;
    let out = dir.path().join("tests");
    let mut eval = eval_command(dir.path(), &dataset, &repos, &out)?
        .args(["--mode", "tests", "--instance", "sample__cache-1", "--metrics", "127.0.0.1:0", "--routes"])
        .arg(&routes)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut said = tokio::io::BufReader::new(eval.stderr.take().context("no stderr")?).lines();
    let mut log = String::new();
    let waiting = async {
        while let Some(line) = said.next_line().await? {
            eprintln!("{line}");
            log.push_str(&line);
            log.push('\n');
            if line.contains("the model server stopped answering; waiting for it") {
                return anyhow::Ok(());
            }
        }
        anyhow::bail!("fixbox eval ended without waiting for the model server")
    };
    tokio::time::timeout(std::time::Duration::from_secs(300), waiting).await.context("it never said it waits")??;
    let interim: fixbox_eval::TaskResult =
        serde_json::from_str(&std::fs::read_to_string(out.join("results/sample__cache-1.json"))?)?;
    ensure!(interim.category == Category::EngineDown && interim.judgement.is_none(), "{interim:?}");
    // An operator watching the run sees the session that ended in the error, and the failed calls.
    let metrics_at = log
        .lines()
        .find_map(|l| l.strip_prefix("metrics at "))
        .context("it did not say where its metrics are")?
        .to_string();
    let http = fixbox_models::http_client_builder().build()?;
    let metrics = http.get(&metrics_at).send().await?.text().await?;
    for line in [
        "fixbox_sessions_started_total 1",
        "fixbox_sessions_running 0",
        "fixbox_sessions_ended_total{outcome=\"error\"} 1",
        "fixbox_session_errors_total{kind=\"in_session\"} 1",
        "fixbox_sandbox_start_seconds_count{from=\"new\"} 1",
    ] {
        ensure!(metrics.contains(&format!("\n{line}\n")), "no {line} in\n{metrics}");
    }
    ensure!(metrics.contains("fixbox_llm_errors_total{provider=\"replay\""), "{metrics}");

    // The server comes back on its port: the task runs again, and this time is fixed.
    let server =
        ReplayServer::start_on(port, answers(FIXTURE, &["1"])?, Pace::Every(std::time::Duration::from_millis(1)))
            .await?;
    let rest = async {
        while let Some(line) = said.next_line().await? {
            eprintln!("{line}");
            log.push_str(&line);
            log.push('\n');
        }
        anyhow::Ok(eval.wait().await?)
    };
    let status = tokio::time::timeout(std::time::Duration::from_secs(300), rest).await.context("it never ended")??;
    ensure!(status.success(), "fixbox eval exited with {status:?}");
    ensure!(log.contains("the model server answers again"), "{log}");
    let report: Report = serde_json::from_str(&std::fs::read_to_string(out.join("report.json"))?)?;
    ensure!(report.tasks.len() == 1 && report.tasks[0].resolved, "{:?}", report.tasks);
    ensure!(server.requests().len() == 1, "{} chat requests", server.requests().len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eval_takes_its_docker_hosts_in_turn_one_of_them_over_mutual_tls() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let dir = tempfile::tempdir()?;
    let (repos, dataset) = dataset(dir.path())?;
    // Two tasks: the sample, and the same bug under another id.
    let first = std::fs::read_to_string(&dataset)?.lines().next().context("an empty dataset")?.to_string();
    let mut second: serde_json::Value = serde_json::from_str(&first)?;
    second["instance_id"] = json!("sample__cache-2");
    std::fs::write(&dataset, format!("{first}\n{second}\n"))?;
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs)?;
    fixbox_e2e::docker_tls::make_certs(&certs)?;
    let (_stunnel, port) = fixbox_e2e::docker_tls::forward_tls(&certs)?;
    let remote = format!("tcp://127.0.0.1:{port}");
    let local = "unix:///var/run/docker.sock";

    let hosts = ["--docker-host", local, "--docker-host", &remote, "--docker-certs", certs.to_str().context("path")?];
    let args = [&["--mode", "gold", "--jobs", "2"][..], &hosts[..]].concat();
    let (report, _) = eval(&dir.path().join("data"), &dataset, &repos, &dir.path().join("gold"), &args)?;
    ensure!(report.tasks.iter().all(|t| t.resolved), "{:?}", report.tasks);
    let mut used: Vec<&str> = report.tasks.iter().map(|t| t.docker_host.as_str()).collect();
    used.sort_unstable();
    ensure!(used == [remote.as_str(), local], "{used:?}");
    Ok(())
}

/// Ctrl+C while the judge's tests run (here they never end) stops the run at once, keeping no result
/// for the task, which runs again next time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_judging_does_not_wait_for_the_judges_tests() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let dir = tempfile::tempdir()?;
    let (repos, dataset) = dataset(dir.path())?;
    let first = std::fs::read_to_string(&dataset)?.lines().next().context("an empty dataset")?.to_string();
    let mut task: serde_json::Value = serde_json::from_str(&first)?;
    task["test_cmd"] = json!("sleep 3600");
    let endless = dir.path().join("endless.jsonl");
    std::fs::write(&endless, format!("{task}\n"))?;
    let out = dir.path().join("gold");
    let eval = eval_command(dir.path(), &endless, &repos, &out)?
        .args(["--mode", "gold"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = eval.id().context("the run ended at once")?;
    // The judge's sandbox is up (its containers carry the pid of the run that made them); its tests
    // start a moment later.
    let filter = format!("label=dev.fixbox.owner-pid={pid}");
    let judging = async {
        loop {
            let ps = Command::new("docker").args(["ps", "-q", "--filter", &filter]).output()?;
            if !String::from_utf8_lossy(&ps.stdout).trim().is_empty() {
                return anyhow::Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(300), judging).await.context("no judge started")??;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGINT)?;
    // The judge would wait 15 minutes for tests that never end; a stop does not.
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), eval.wait_with_output())
        .await
        .context("the run went on judging after Ctrl+C")??;
    // The judge's sandbox is left to the next run's start, which removes what a run left behind.
    let left = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output()?;
    for id in String::from_utf8_lossy(&left.stdout).split_whitespace() {
        Command::new("docker").args(["rm", "-f", id]).output()?;
    }
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    eprintln!("{said}");
    ensure!(said.contains("stopped: 0 of 1 tasks have results"), "{said}");
    ensure!(!out.join("results/sample__cache-1.json").exists(), "a result kept for a task not judged");
    Ok(())
}
