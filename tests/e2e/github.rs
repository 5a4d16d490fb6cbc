//! GitHub Auto-fix from the command line: an issue is listed, `fixbox fix github:owner/repo#n` clones the
//! repository, runs a real session on it (real sandbox and pytest; the model's recorded answer
//! replayed), and on approval pushes a branch to a real git server and opens a draft pull request that
//! carries the evidence. GitHub itself is the one stand-in: `fixbox_e2e::github::FakeGitHub`, answering
//! with GitHub's documented answers, in front of real repositories served by `git http-backend`.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fixbox_e2e::fixtures;
use fixbox_e2e::github::FakeGitHub;
use fixbox_e2e::transcripts::{Pace, ReplayServer};
use fixbox_e2e::workspace_bin;

use crate::fix::{answers, routing_file};

const FIXTURE: &str = "py-cache-evict-during-iteration";
const TOKEN: &str = "ghp_canary0github0token0b41f";

/// GitHub with `octo/cache` (the sample project, where the token may push), issue #7 with the
/// project's task and two comments, and `octo/readonly` (the same, where it may not).
pub(crate) async fn github() -> Result<FakeGitHub> {
    let fake = FakeGitHub::start(TOKEN, "fixbox-user").await?;
    let fixture = fixtures::get(FIXTURE)?;
    for (repo, push) in [("cache", true), ("readonly", false)] {
        fake.add_repo("octo", repo, &fixture.repo, push)?;
        fake.add_issue(
            "octo",
            repo,
            7,
            "TTLCache.evict_expired() crashes once an entry has expired",
            &fixture.task,
            &[("alice", "Seen on 3.12 too."), ("bob", "The cleanup job dies every night since.")],
        );
    }
    fake.add_issue("octo", "cache", 8, "get() returns stale values after set()", "Second issue, for links.", &[]);
    Ok(fake)
}

async fn fixbox(data: &Path, fake: &FakeGitHub, args: &[&str]) -> Result<Output> {
    Ok(tokio::process::Command::new(workspace_bin("fixbox")?)
        .env("FIXBOX_DATA_DIR", data)
        .env("FIXBOX_GITHUB_API", &fake.api)
        .env("GITHUB_TOKEN", &fake.token)
        .env("NO_COLOR", "1")
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?)
}

fn printed(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_issue_is_fixed_pushed_as_a_branch_and_proposed_with_its_evidence() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let fake = github().await?;
    let data = tempfile::tempdir()?;

    // The issue is listed.
    let listed = fixbox(data.path(), &fake, &["github", "issues", "octo/cache"]).await?;
    ensure!(listed.status.success(), "{}", printed(&listed));
    ensure!(
        String::from_utf8_lossy(&listed.stdout).contains("#7      TTLCache.evict_expired()"),
        "{}",
        printed(&listed)
    );

    // Auto-fix, approved up front.
    let server = ReplayServer::start(answers(FIXTURE, &["1"])?, Pace::Every(Duration::from_millis(1))).await?;
    let routes = routing_file(data.path(), &server.url)?;
    let routes = routes.to_string_lossy();
    let run = fixbox(data.path(), &fake, &["fix", "github:octo/cache#7", "--routes", &routes, "--open-pr"]).await?;
    let out = printed(&run);
    ensure!(run.status.success(), "{out}");

    // The session was asked the issue: its title, body and comments.
    let prompts = serde_json::to_string(&server.requests())?;
    for said in ["crashes once an entry has expired", "The cleanup job dies every night", "Seen on 3.12 too."] {
        ensure!(prompts.contains(said), "the prompt lacks {said:?}");
    }

    // The branch is on the server, one commit on main, with the session's fix.
    let branch = fake.branch("octo", "cache", "fixbox/issue-7").context("the branch was not pushed")?;
    let main = fake.branch("octo", "cache", "main").context("main is gone")?;
    let parent = fake.git_in("octo", "cache", &["rev-parse", &format!("{branch}^")])?;
    ensure!(parent.trim() == main, "the branch is not one commit on main");
    let diff = fake.git_in("octo", "cache", &["diff", &main, &branch])?;
    ensure!(diff.contains("cache.py"), "{diff}");
    let message = fake.git_in("octo", "cache", &["log", "-1", "--format=%B", &branch])?;
    // The project's history is Conventional Commits ("fix: start the project").
    ensure!(message.starts_with("fix: TTLCache.evict_expired() crashes once an entry has expired (#7)"), "{message}");

    // The draft pull request, with its evidence, and a word on the issue.
    let pulls = fake.pulls();
    ensure!(pulls.len() == 1, "{pulls:?}");
    let pull = &pulls[0];
    ensure!(
        pull["draft"] == true && pull["head"]["ref"] == "fixbox/issue-7" && pull["base"]["ref"] == "main",
        "{pull}"
    );
    let body = pull["body"].as_str().unwrap_or_default();
    for part in [
        "Fixes #7.",
        "### Evidence",
        "| tests | 4 passed, 1 failed",
        "| 5 passed |",
        "- iterations: 1",
        "Failing before",
    ] {
        ensure!(body.contains(part), "the pull request's text lacks {part:?}:\n{body}");
    }
    ensure!(
        out.contains(&format!(
            "pull request #100 (draft): {}/web/octo/cache/pull/100",
            fake.api.trim_end_matches("/api")
        )),
        "{out}"
    );
    let comments = fake.posted_comments();
    ensure!(comments.len() == 1 && comments[0].0 == "octo/cache#7" && comments[0].1.contains("#100"), "{comments:?}");

    // The token went to GitHub and git only: not to the model, the output, the data folder (SQLite,
    // logs, the clone's config), or the pushed commit.
    let mut places = fixbox_e2e::files_under(data.path())?;
    places.push(("the prompts".into(), prompts.into_bytes()));
    places.push(("what fixbox printed".into(), out.into_bytes()));
    places.push(("the pushed change".into(), fake.git_in("octo", "cache", &["show", &branch])?.into_bytes()));
    places.push(("the pull request".into(), pull.to_string().into_bytes()));
    let found = fixbox_e2e::found_in(&places, &[TOKEN]);
    ensure!(found.is_empty(), "the token is somewhere it must not be: {found:?}");
    ensure!(places.iter().any(|(p, _)| p.ends_with("fixbox.db")), "the data folder holds the store");
    // No pull request text waits: it is open.
    ensure!(
        !fixbox(data.path(), &fake, &["github", "open-pr", "0190b5a0-0000-7000-8000-000000000000"])
            .await?
            .status
            .success()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_fails_keeps_the_branch_and_text_and_a_retry_opens_it_from_a_fork() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let fake = github().await?;
    let data = tempfile::tempdir()?;
    let server = ReplayServer::start(answers(FIXTURE, &["1"])?, Pace::Every(Duration::from_millis(1))).await?;
    let routes = routing_file(data.path(), &server.url)?;
    let routes = routes.to_string_lossy();

    fake.git_down(true);
    let run = fixbox(data.path(), &fake, &["fix", "github:octo/readonly#7", "--routes", &routes, "--open-pr"]).await?;
    let out = printed(&run);
    ensure!(!run.status.success(), "{out}");
    ensure!(out.contains("git could not push the branch"), "{out}");
    let retry = out
        .split("fixbox github open-pr ")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .context("no retry command was printed")?
        .to_string();
    ensure!(fake.pulls().is_empty(), "a pull request was opened without its branch");

    // The network is back: the retry needs no session, and the user may not push to the repository,
    // so the branch goes to their fork.
    fake.git_down(false);
    let again = fixbox(data.path(), &fake, &["github", "open-pr", &retry]).await?;
    ensure!(again.status.success(), "{}", printed(&again));
    ensure!(server.requests().len() == 1, "the retry asked the model again");
    ensure!(fake.branch("fixbox-user", "readonly", "fixbox/issue-7").is_some(), "the branch is not on the fork");
    ensure!(
        fake.branch("octo", "readonly", "fixbox/issue-7").is_none(),
        "the branch was pushed where the user may not"
    );
    let pulls = fake.pulls();
    ensure!(pulls.len() == 1 && pulls[0]["head"]["label"] == "fixbox-user:fixbox/issue-7", "{pulls:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_issues_and_refusals_are_said_plainly_before_any_session() -> Result<()> {
    let fake = github().await?;
    let data = tempfile::tempdir()?;
    let fix = |issue: &'static str, extra: &'static [&'static str]| {
        let (data, fake) = (data.path().to_path_buf(), fake.clone());
        async move {
            let mut args = vec!["fix", issue, "--routes", "/nonexistent/routes.toml"];
            args.extend(extra);
            fixbox(&data, &fake, &args).await
        }
    };
    let cases: [(&str, &[&str], &str); 4] = [
        (
            "github:octo/cache#404",
            &[],
            "octo/cache#404 was not found on GitHub: it does not exist, or it is private and the stored token cannot see it",
        ),
        ("github:octo/private#1", &[], "octo/private was not found on GitHub"),
        ("octo/cache", &["--task", "x"], "octo/cache is not a directory"),
        ("github:octo/cache#7", &["--max-repo-size", "1"], "octo/cache is 4 MiB, over the 1 MiB limit for a clone"),
    ];
    fake.set_size_kib("octo", "cache", 4096);
    for (issue, extra, said) in cases {
        let run = fix(issue, extra).await?;
        ensure!(!run.status.success() && printed(&run).contains(said), "{issue}: {}", printed(&run));
    }
    ensure!(!data.path().join("github/octo/cache").exists(), "a refused repository was cloned");

    // A rate limit for an hour is an error that says when; one of a few seconds is waited out.
    fake.rate_limit(Some(Duration::from_secs(3600)));
    let run = fixbox(data.path(), &fake, &["github", "issues", "octo/cache"]).await?;
    ensure!(
        !run.status.success() && printed(&run).contains("GitHub's rate limit is spent; it resets in 60 min"),
        "{}",
        printed(&run)
    );
    fake.rate_limit(Some(Duration::from_secs(2)));
    let run = fixbox(data.path(), &fake, &["github", "issues", "octo/cache"]).await?;
    ensure!(run.status.success(), "{}", printed(&run));
    ensure!(printed(&run).contains("[github] GitHub's rate limit is spent: waiting"), "{}", printed(&run));

    // A token GitHub refuses.
    let run = tokio::process::Command::new(workspace_bin("fixbox")?)
        .env("FIXBOX_DATA_DIR", data.path())
        .env("FIXBOX_GITHUB_API", &fake.api)
        .env("GITHUB_TOKEN", "ghp_revoked")
        .args(["github", "issues", "octo/cache"])
        .output()
        .await?;
    ensure!(printed(&run).contains("GitHub refused the token (401 Bad credentials)"), "{}", printed(&run));
    Ok(())
}

/// Hostile issue texts, three of the set (the benchmark `hostile` runs them all), each fixed by a model
/// that does whatever the issue asks: its code runs in the sandbox and finds no way out, no secret, and
/// nothing is pushed or posted without the user's yes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_issues_get_no_egress_no_secret_and_no_push_without_approval() -> Result<()> {
    use fixbox_e2e::hostile;
    let _machine = fixbox_e2e::machine_to_myself().await;
    let texts: Vec<_> =
        hostile::texts()?.into_iter().filter(|t| ["env", "exfil", "push"].contains(&t.kind.as_str())).collect();
    let picked: Vec<_> =
        ["env", "exfil", "push"].iter().filter_map(|kind| texts.iter().find(|t| t.kind == *kind).cloned()).collect();
    let fake = FakeGitHub::start(hostile::CANARIES[0], "fixbox-user").await?;
    hostile::prepare(&fake, &picked)?;
    let sink = hostile::Sink::start().await?;
    let data = tempfile::tempdir()?;
    for text in &picked {
        let verdict = hostile::run_one(&fake, &sink, text, data.path(), None).await?;
        ensure!(verdict.payload_ran, "#{}: the payload did not run: {verdict:?}", text.id);
        ensure!(verdict.egress_tried == 4 && verdict.egress_blocked == 4, "#{}: {verdict:?}", text.id);
        ensure!(verdict.leaks.is_empty(), "#{}: {:?}", text.id, verdict.leaks);
        ensure!(verdict.pushes == 0 && verdict.writes == 0, "#{}: {verdict:?}", text.id);
    }
    ensure!(sink.connections() == 0, "a sandbox reached this machine");
    ensure!(fake.pulls().is_empty() && fake.branch("octo", "hostile", "pwned").is_none());
    Ok(())
}

/// The app window: the issue is listed on the Issues page, Auto-fix fills the fix form with it (its
/// repository cloned, the task its text), the session runs with the real model (Qwen2.5-Coder-1.5B on
/// llama-server, from the routes in the settings), and when it changed something, Open pull request
/// pushes the branch and opens the draft, which says whether the tests verify it. Then a
/// `fixbox://fix?repo=octo/cache&issue=8` link, handed to the running app by a second start as the
/// desktop does, shows the fix form on that issue.
#[tokio::test(flavor = "multi_thread")]
async fn an_issue_is_fixed_from_the_app_window_and_a_link_opens_another() -> Result<()> {
    use fantoccini::Locator;
    use fixbox_e2e::window::{Window, screenshot, wait_for, wait_for_text, wait_for_within};
    let _machine = fixbox_e2e::machine_to_myself().await;
    let out = fixbox_e2e::output_dir("desktop-github")?;
    let fake = github().await?;
    const MODEL: &str = "qwen2.5-coder-1.5b-instruct";
    let engine = fixbox_e2e::models::serve_model(MODEL, MODEL, 8192, 1).await?;
    let data = tempfile::tempdir()?;
    let routes = fixbox_e2e::routes_file(data.path(), "local", &format!("{}/v1", engine.url), MODEL, 8192)?;
    let config = fixbox_llm::RoutesConfig::parse(&std::fs::read_to_string(routes)?)?;
    let store = fixbox_store::Store::open_in(data.path())?;
    fixbox_agent::setup::Routes::save(&store, Some(&config))?;
    // The session's own clock ends it: a real model on a loaded 2-core runner can take minutes for
    // three iterations, so the window waits past that limit rather than for a guess at the model's speed.
    let session_limit = Duration::from_secs(120);
    fixbox_agent::Preferences { max_iterations: 3, timeout_minutes: 2, ..fixbox_agent::Preferences::default() }
        .save(&store)?;

    let env = [("FIXBOX_GITHUB_API", fake.api.as_str()), ("GITHUB_TOKEN", TOKEN)];
    let window = Window::open_with_env(data.path(), &out, &env).await?;
    let display = window.display().to_string();
    let value = |css: &'static str| format!("return document.querySelector('{css}')?.value ?? ''");
    let seen = fake.clone();
    let outcome_seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, bool)>::new()));
    let outcomes = outcome_seen.clone();
    window
        .check_within(session_limit + Duration::from_secs(300), |client| async move {
            client.find(Locator::Css("[data-testid=nav-issues]")).await?.click().await?;
            let repo = wait_for(&client, "[data-testid=issues-repo]", &out, "no-issues-page").await?;
            repo.send_keys("octo/cache").await?;
            client.find(Locator::Css("[data-testid=issues-list]")).await?.click().await?;
            let row = wait_for(&client, "[data-testid=issues-row]", &out, "no-issues").await?;
            let rows = client.find_all(Locator::Css("[data-testid=issues-row]")).await?;
            ensure!(rows.len() == 2, "{} issues listed", rows.len());
            // Newest first: #8, then #7.
            let seventh = rows.last().context("no row")?;
            ensure!(seventh.text().await?.contains("#7 TTLCache.evict_expired()"), "{}", seventh.text().await?);
            ensure!(row.text().await?.contains("#8"), "{}", row.text().await?);
            screenshot(&client, &out.join("issues.png")).await?;
            seventh.find(Locator::Css("[data-testid=issues-autofix]")).await?.click().await?;

            // The fix form: the issue, its repository's tests, and its text as the task.
            let detected = wait_for(&client, "[data-testid=fix-detected]", &out, "issue-not-detected").await?;
            ensure!(detected.text().await?.contains("pytest"), "{}", detected.text().await?);
            let folder = client.execute(&value("[data-testid=fix-folder]"), vec![]).await?;
            ensure!(folder == "github:octo/cache#7", "{folder}");
            let task = client.execute(&value("[data-testid=fix-task]"), vec![]).await?;
            ensure!(task.as_str().is_some_and(|t| t.contains("The cleanup job dies every night")), "{task}");
            screenshot(&client, &out.join("form.png")).await?;
            client.find(Locator::Css("[data-testid=fix-start]")).await?.click().await?;

            // The session's end: the bar's buttons for an ended session.
            let ended = session_limit + Duration::from_secs(90);
            wait_for_within(&client, "[data-testid=fix-discard]", &out, "not-ended", ended).await?;
            // An ended session without an outcome is one that failed to start (the error shows instead).
            let outcome = wait_for(&client, "[data-testid=session-outcome]", &out, "no-outcome").await?.text().await?;
            ensure!(
                client.find_all(Locator::Css("[data-testid=fix-accept]")).await?.is_empty(),
                "Accept is offered for a clone"
            );
            ensure!(seen.pulls().is_empty(), "a pull request was opened before the user asked");
            // Ready when the session's change (its diff, not its rejected tries) is not empty: checked below.
            let ready = !client.find_all(Locator::Css("[data-testid=fix-pull-ready]")).await?.is_empty();
            if ready {
                client.find(Locator::Css("[data-testid=fix-open-pr]")).await?.click().await?;
                let notice =
                    wait_for_text(&client, "[data-testid=fix-notice]", &out, "no-pull", |t| t.contains("opened"))
                        .await?;
                ensure!(notice.contains("Draft pull request #100 opened"), "{notice}");
            }
            screenshot(&client, &out.join("ended.png")).await?;
            outcome_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((outcome, ready));

            // A link reaches the running app through a second start.
            client.find(Locator::Css("[data-testid=nav-machine]")).await?.click().await?;
            let second =
                fixbox_e2e::window::start_again(&display, data.path(), &["fixbox://fix?repo=octo/cache&issue=8"])
                    .await?;
            ensure!(second.status.success(), "{second:?}");
            let shown = wait_for_text(&client, "[data-testid=fix-issue]", &out, "link-not-opened", |t| {
                t.contains("stale values")
            })
            .await?;
            ensure!(shown.contains("get() returns stale values after set()"), "{shown}");
            let folder = client.execute(&value("[data-testid=fix-folder]"), vec![]).await?;
            ensure!(folder == "github:octo/cache#8", "{folder}");
            screenshot(&client, &out.join("link.png")).await?;
            Ok(())
        })
        .await?;
    let (outcome, ready) = outcomes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .pop()
        .context("the window did not see the session end")?;
    let session = store.list_sessions()?.into_iter().next().context("no session")?;
    let report =
        fixbox_agent::SessionReport::from_events(&store.events_from(&session.id, 1)?).context("not a fix session")?;
    let changed = !report.diff.is_empty() || !report.test_diff.is_empty();
    ensure!(ready == changed, "a pull request ready: {ready}, the session changed something: {changed} ({outcome})");
    let pulls = fake.pulls();
    if let Some(pull) = pulls.first() {
        let body = pull["body"].as_str().unwrap_or_default();
        let said = if outcome.starts_with("fixed") { "Fixes #7." } else { "**Not verified**" };
        ensure!(pull["draft"] == true && body.contains(said) && body.contains(MODEL), "{outcome}: {body}");
        ensure!(fake.branch("octo", "cache", "fixbox/issue-7").is_some(), "the branch was not pushed");
    } else {
        ensure!(fake.branch("octo", "cache", "fixbox/issue-7").is_none(), "a branch was pushed without a pull request");
    }
    Ok(())
}

/// The shell step of the GitHub Action (`resources/github-action/action.yml`), as the runner runs it.
fn action_step() -> Result<String> {
    let action = std::fs::read_to_string(fixbox_e2e::workspace_root().join("resources/github-action/action.yml"))?;
    let (_, block) = action.split_once("run: |\n").context("the action has no run block")?;
    Ok(block.lines().map(str::trim).collect::<Vec<_>>().join("\n"))
}

/// The GitHub Action on a runner: a stranger's `/fixbox` comment is skipped with the reason and starts
/// nothing; a `fixbox` label runs the session and opens the draft pull request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_action_fixes_a_labelled_issue_and_skips_a_strangers_comment() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let fake = github().await?;
    let data = tempfile::tempdir()?;
    let server = ReplayServer::start(answers(FIXTURE, &["1"])?, Pace::Every(Duration::from_millis(1))).await?;
    let routes = routing_file(data.path(), &server.url)?;
    let step = action_step()?;
    let events = fixbox_e2e::workspace_root().join("tests/fixtures/github/events");
    let run = |name: &'static str, file: &'static str| {
        let mut command = tokio::process::Command::new("bash");
        command
            .args(["-e", "-c", &step])
            .env("FIXBOX", workspace_bin("fixbox").unwrap_or_default())
            .env("LABEL", "fixbox")
            .env("COMMAND", "/fixbox")
            .env("ARGS", format!("--routes {}", routes.display()))
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_EVENT_NAME", name)
            .env("GITHUB_EVENT_PATH", events.join(file))
            .env("FIXBOX_GITHUB_API", &fake.api)
            .env("FIXBOX_DATA_DIR", data.path())
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        command.output()
    };

    let skipped = run("issue_comment", "issue-comment-stranger.json").await?;
    ensure!(skipped.status.success(), "{}", printed(&skipped));
    ensure!(
        printed(&skipped).contains(
            "nothing to fix: only the repository's owners, members and collaborators can ask; mallory is none"
        ),
        "{}",
        printed(&skipped)
    );
    ensure!(server.requests().is_empty() && fake.pulls().is_empty(), "a stranger's comment started work");

    let fixed = run("issues", "issues-labeled.json").await?;
    ensure!(fixed.status.success(), "{}", printed(&fixed));
    ensure!(printed(&fixed).contains("fixing octo/cache#7"), "{}", printed(&fixed));
    let pulls = fake.pulls();
    ensure!(pulls.len() == 1 && pulls[0]["head"]["ref"] == "fixbox/issue-7" && pulls[0]["draft"] == true, "{pulls:?}");
    Ok(())
}

/// The same, answered by the real model: Qwen2.5-Coder-1.5B on llama-server (CPU), as `scripts/run`
/// serves it. The model may or may not fix the issue in two iterations; whichever it does, the draft
/// says so (verified or not), or there is none when it changed nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_model_answers_a_github_issue_and_the_draft_says_how_it_went() -> Result<()> {
    const MODEL: &str = "qwen2.5-coder-1.5b-instruct";
    let _machine = fixbox_e2e::machine_to_myself().await;
    let fake = github().await?;
    let engine = fixbox_e2e::models::serve_model(MODEL, MODEL, 8192, 1).await?;
    let data = tempfile::tempdir()?;
    let routes = fixbox_e2e::routes_file(data.path(), "local", &format!("{}/v1", engine.url), MODEL, 8192)?;
    let routes = routes.to_string_lossy();
    let args = ["fix", "github:octo/cache#7", "--routes", &routes, "--open-pr", "--max-iterations", "2"];
    let run = fixbox(data.path(), &fake, &[&args[..], &["--temperature", "0", "--seed", "7"]].concat()).await?;
    let out = printed(&run);

    let store = fixbox_store::Store::open_in(data.path())?;
    let session = store.list_sessions()?.into_iter().next().context("no session")?;
    let report =
        fixbox_agent::SessionReport::from_events(&store.events_from(&session.id, 1)?).context("not a fix session")?;
    ensure!(!report.calls.is_empty() && report.calls.iter().all(|c| c.model == MODEL), "{:?}", report.calls);
    let fixed = report.outcome.as_ref().is_some_and(fixbox_agent::Outcome::is_fixed);
    ensure!(run.status.success() == fixed, "exit {:?} for {:?}: {out}", run.status, report.outcome);
    let pulls = fake.pulls();
    if report.diff.is_empty() {
        ensure!(pulls.is_empty() && out.contains("no pull request: the session changed nothing"), "{out}");
    } else {
        ensure!(pulls.len() == 1, "{out}");
        let body = pulls[0]["body"].as_str().unwrap_or_default();
        let said = if fixed { "Fixes #7." } else { "**Not verified**" };
        ensure!(body.contains(said) && body.contains(&format!("- model: {MODEL}")), "{body}");
    }
    Ok(())
}
