//! The loop's decisions, driven by a scripted model in a sandbox in this process: when it asks the
//! model, what it does with each answer, what it tells the model next, and when it stops. The same
//! loop against Docker and llama-server is tested end to end in `tests/e2e`.

mod support;

use std::sync::atomic::Ordering;

use fixbox_agent::{Event, Fix, FixRequest, Limits, Outcome, Setup};
use fixbox_llm::Role;
use support::{Files, HANGS, MemorySandbox, Reply, ScriptedModel, pytest, repo, run, run_fix, run_request};

const BUGGY: &str = "def add(a, b):\n    return a - b\n";
const TESTS: &str = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\ndef test_zero():\n    assert add(0, 0) == 0\n";

/// `test_add` passes once `add` sums; `test_zero` passes, but is no longer run once `add` adds a zero
/// (as a test stops being collected when a patch breaks its import).
fn calc_tests(files: &Files, command: &str) -> (i64, String) {
    if !command.contains("pytest") {
        return (0, String::new());
    }
    let calc = files.get("calc.py").map_or("", String::as_str);
    let mut outcomes = vec![("test_calc.py::test_add", calc.contains("return a + b"))];
    if !calc.contains("+ 0") {
        outcomes.push(("test_calc.py::test_zero", true));
    }
    pytest(&outcomes)
}

fn edit(search: &str, replace: &str) -> String {
    format!("calc.py\n```python\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n```\n")
}

/// The right fix.
fn fix() -> String {
    edit("    return a - b", "    return a + b")
}

fn limits() -> Limits {
    Limits { max_iterations: 5, ..Limits::default() }
}

/// The text of the last message of each request the model got.
fn last_messages(model: &ScriptedModel) -> Vec<String> {
    model
        .requests()
        .iter()
        .map(|r| r.messages.last().filter(|m| m.role == Role::User).map(|m| m.content.clone()).unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn tests_that_pass_before_any_change_end_the_session_where_no_test_can_be_written_for_the_issue() {
    let dir = repo(&[("calc.rs", "fn add(a: i32, b: i32) -> i32 { a - b }\n")]);
    let model = ScriptedModel::new([Reply::text(fix())]);
    let request = FixRequest { test: Some("cargo test".into()), ..support::request(dir.path()) };
    let ran = run_request(request, MemorySandbox::new(calc_tests), model.clone()).await;
    assert_eq!(ran.finished.outcome, Outcome::AlreadyPassing);
    assert!(model.requests().is_empty());
    assert_eq!(ran.finished.diff, "");
}

/// The project's tests pass with the bug (they only add zeros); the issue's test shows it when it
/// asserts `add(2, 3) == 5`, and cannot run when it imports a module that does not exist.
fn issue_tests(files: &Files, command: &str) -> (i64, String) {
    let calc = files.get("calc.py").map_or("", String::as_str);
    let mut outcomes = Vec::new();
    if command.starts_with("python -m pytest -rA 2>&1") || command.contains("( python -m pytest -rA )") {
        outcomes.push(("test_calc.py::test_zero", true));
    }
    if command.contains(ISSUE_TEST) {
        let test = files.get(ISSUE_TEST).map_or("", String::as_str);
        if test.contains("import nothing") {
            let error =
                format!("ERROR {ISSUE_TEST} - ModuleNotFoundError: No module named 'nothing'\n1 error in 0.01s\n");
            return (2, error);
        }
        let passes = !test.contains("== 5") || calc.contains("return a + b");
        outcomes.push(("test_fixbox_issue.py::test_sum", passes));
    }
    pytest(&outcomes)
}

const ISSUE_TEST: &str = "test_fixbox_issue.py";
const ZERO_TEST: &str = "from calc import add\n\n\ndef test_zero():\n    assert add(0, 0) == 0\n";

fn issue_test(body: &str) -> String {
    format!("```python\nfrom calc import add\n{body}\n\ndef test_sum():\n    assert add(2, 3) == 5\n```\n")
}

#[tokio::test]
async fn where_the_tests_pass_before_any_change_the_model_first_writes_a_test_that_shows_the_bug() {
    let dir = repo(&[("calc.py", BUGGY), ("test_calc.py", ZERO_TEST)]);
    let model = ScriptedModel::new([
        Reply::text("The sum is wrong."),
        Reply::text(issue_test("import nothing")),
        Reply::text(issue_test("")),
        Reply::text(fix()),
    ]);
    let sandbox = MemorySandbox::new(issue_tests);
    let (files, commands) = (sandbox.files(), sandbox.commands.clone());
    let ran = run(dir.path(), None, limits(), sandbox, model.clone()).await;
    assert_eq!(ran.finished.outcome, Outcome::Fixed);
    assert_eq!(ran.finished.iterations, 1);

    let tries: Vec<(bool, String)> = ran
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Reproduction { accepted, why, .. } => Some((*accepted, why.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(tries.len(), 3);
    assert!(tries[0].1.contains("no test function"), "{tries:?}");
    assert!(tries[1].1.contains("cannot run") || tries[1].1.contains("could not run"), "{tries:?}");
    assert!(tries[1].1.contains("No module named 'nothing'"), "{tries:?}");
    assert_eq!(tries[2], (true, String::new()));
    let asked = last_messages(&model);
    assert!(asked[1].contains("- the answer holds no test function"), "{}", asked[1]);
    let grammar = |at: usize| model.requests()[at].sampling.extra.get("grammar").cloned().unwrap_or_default();
    assert!(grammar(0).as_str().is_some_and(|g| g.starts_with("root ::= \"```python\\n\"")), "{}", grammar(0));
    assert!(grammar(3).as_str().is_some_and(|g| g.contains("SEARCH")), "the fix is held to the edit's grammar");
    assert!(asked[3].contains("test_fixbox_issue.py::test_sum"), "the fix is asked for the new test: {}", asked[3]);

    // The fix is the change; the new test is apart from it, and stays in the sandbox.
    assert!(ran.finished.diff.contains("+    return a + b") && !ran.finished.diff.contains(ISSUE_TEST));
    assert!(ran.finished.test_diff.contains("+++ b/test_fixbox_issue.py"), "{}", ran.finished.test_diff);
    assert!(files.lock().unwrap()[ISSUE_TEST].contains("assert add(2, 3) == 5"));
    // Once alone for each try that ran, once with the project's before the fix and once after, then
    // twice more alone to show the fix holds.
    let alone =
        commands.lock().unwrap().iter().filter(|c| c.starts_with("python3 -m pytest -rA -p no:cacheprovider")).count();
    assert_eq!(alone, 2 + 2);
}

/// The issue's example raises `TypeError` until `add` sums; the project's `test_zero` passes and its
/// `test_env` fails before any change with `env_error` (its environment's), unless left out.
fn env_tests(env_error: &'static str) -> impl Fn(&Files, &str) -> (i64, String) + Send + Sync + 'static {
    move |files: &Files, command: &str| {
        let fixed = files.get("calc.py").is_some_and(|c| c.contains("return a + b"));
        let mut lines = Vec::new();
        if command.contains(ISSUE_TEST) {
            lines.push(if fixed {
                "PASSED test_fixbox_issue.py::test_issue".to_string()
            } else {
                "FAILED test_fixbox_issue.py::test_issue - TypeError: unsupported operand".to_string()
            });
        }
        if command.contains("python -m pytest -rA") {
            lines.push("PASSED test_calc.py::test_zero".to_string());
            if !command.contains("--deselect 'test_calc.py::test_env'") {
                lines.push(format!("FAILED test_calc.py::test_env - {env_error}: no such device"));
            }
        }
        let failed = lines.iter().any(|l| l.starts_with("FAILED"));
        (i64::from(failed), format!("==== short test summary info ====\n{}\n", lines.join("\n")))
    }
}

#[tokio::test]
async fn a_failure_before_any_change_with_another_error_than_the_issues_example_is_left_out() {
    let task = "add() raises on ints\n\n```python\nfrom calc import add\nadd(2, 3)\n```\nThis raises `TypeError: unsupported operand`.\n";
    // A test the user says shows the bug is the bug's, whatever it fails with.
    let named = vec!["test_calc.py::test_env".to_string()];
    for (env_error, bug_tests, left_out) in
        [("OSError", Vec::new(), true), ("TypeError", Vec::new(), false), ("OSError", named, false)]
    {
        let dir = repo(&[("calc.py", BUGGY), ("test_calc.py", ZERO_TEST)]);
        let model = ScriptedModel::new([Reply::text(fix())]);
        let sandbox = MemorySandbox::new(env_tests(env_error));
        let commands = sandbox.commands.clone();
        let request = FixRequest { task: task.into(), limits: limits(), bug_tests, ..support::request(dir.path()) };
        let ran = run_request(request, sandbox, model.clone()).await;
        let set_aside: Vec<(Vec<String>, String)> = ran
            .events
            .iter()
            .filter_map(|e| match e {
                Event::FailingBefore { tests, why } => Some((tests.clone(), why.clone())),
                _ => None,
            })
            .collect();
        let reproduced = ran.events.iter().any(|e| matches!(e, Event::Reproduction { attempt: 0, accepted: true, .. }));
        assert!(reproduced, "the issue's example shows the bug: {:?}", ran.kinds());
        let asked = last_messages(&model);
        if left_out {
            assert_eq!(ran.finished.outcome, Outcome::Fixed, "{:?}", ran.kinds());
            let why = "they fail with OSError and the issue's example with TypeError".to_string();
            assert_eq!(set_aside, [(vec!["test_calc.py::test_env".to_string()], why)]);
            assert!(asked[0].contains("TypeError") && !asked[0].contains("no such device"), "{}", asked[0]);
            let last = commands.lock().unwrap().iter().rev().find(|c| c.contains("python -m pytest")).cloned();
            assert!(last.is_some_and(|c| c.contains("--deselect 'test_calc.py::test_env'")));
        } else {
            // The same kind of error, or a test named as the bug's: the failure may be the issue's,
            // and the fix must mend it.
            assert!(set_aside.is_empty(), "{set_aside:?}");
            assert_ne!(ran.finished.outcome, Outcome::Fixed);
            assert!(asked[0].contains("no such device"), "{}", asked[0]);
        }
    }
}

#[tokio::test]
async fn a_test_that_passes_before_any_change_does_not_show_the_bug_and_three_such_end_the_session() {
    let dir = repo(&[("calc.py", BUGGY), ("test_calc.py", ZERO_TEST)]);
    let passing = "```python\nfrom calc import add\n\ndef test_sum():\n    assert add(2, 3) == -1\n```\n";
    let model =
        ScriptedModel::new([Reply::text(passing), Reply::text(passing), Reply::text(passing), Reply::text(fix())]);
    let ran = run(dir.path(), None, limits(), MemorySandbox::new(issue_tests), model.clone()).await;
    let Outcome::NotReproduced { reason } = &ran.finished.outcome else { panic!("{:?}", ran.finished.outcome) };
    assert!(reason.contains("passes before any fix"), "{reason}");
    assert_eq!(model.requests().len(), 3, "the fix is never asked for");
    assert_eq!(ran.finished.test_diff, "");
    assert_eq!(ran.finished.diff, "");
}

#[tokio::test]
async fn a_patch_that_makes_the_tests_pass_is_written_to_the_sandbox_and_ends_fixed() {
    let dir = repo(&[("calc.py", BUGGY), ("test_calc.py", TESTS)]);
    let model = ScriptedModel::new([Reply::text(fix())]);
    let sandbox = MemorySandbox::new(calc_tests);
    let files = sandbox.files();
    let ran = run(dir.path(), None, limits(), sandbox, model.clone()).await;
    assert_eq!(ran.finished.outcome, Outcome::Fixed);
    assert_eq!(ran.finished.iterations, 1);
    assert!(ran.finished.diff.contains("-    return a - b\n+    return a + b\n"), "{}", ran.finished.diff);
    assert_eq!(files.lock().expect("files")["calc.py"], "def add(a, b):\n    return a + b\n");
    assert_eq!(
        ran.kinds(),
        [
            "session.started",
            "sandbox.ready",
            "tests.run",
            "model.started",
            "model.call",
            "patch.applied",
            "tests.run",
            "iteration",
            "session.finished"
        ]
    );
    // The first prompt shows the failing test and the code under test; the local engine is held to
    // the edit format's grammar.
    let first = &model.requests()[0];
    let grammar = first.sampling.extra.get("grammar").and_then(|g| g.as_str()).unwrap_or_default();
    assert!(grammar.contains("\"\\n<<<<<<< SEARCH\\n\""), "{grammar}");
    let prompt: String = first.messages.iter().map(|m| m.content.as_str()).collect();
    assert!(prompt.contains("test_calc.py::test_add"), "{prompt}");
    assert!(prompt.contains("return a - b"), "{prompt}");
    assert_eq!((ran.finished.totals.calls, ran.finished.totals.usage.prompt), (1, 100));
}

#[tokio::test]
async fn a_patch_to_a_test_file_is_refused_and_the_model_is_told_why() {
    let dir = repo(&[("calc.py", BUGGY), ("test_calc.py", TESTS)]);
    let cheat = "test_calc.py\n```python\n<<<<<<< SEARCH\n    assert add(2, 3) == 5\n=======\n    assert add(2, 3) == -1\n>>>>>>> REPLACE\n```\n";
    let model = ScriptedModel::new([Reply::text(cheat), Reply::text(fix())]);
    let sandbox = MemorySandbox::new(calc_tests);
    let files = sandbox.files();
    let ran = run(dir.path(), None, limits(), sandbox, model.clone()).await;
    assert_eq!(ran.finished.outcome, Outcome::Fixed);
    assert_eq!(ran.finished.iterations, 2);
    assert_eq!(files.lock().expect("files")["test_calc.py"], TESTS, "the test file is never written");
    assert!(ran.kinds().contains(&"patch.rejected"));
    let told = &last_messages(&model)[1];
    assert!(told.contains("test_calc.py is a test file"), "{told}");
    assert!(!ran.finished.diff.contains("test_calc.py"));
}

#[cfg(unix)]
#[tokio::test]
async fn a_patch_through_a_link_out_of_the_repository_is_refused_and_the_model_is_told_why() {
    let outside = tempfile::tempdir().expect("tempdir");
    let dir = repo(&[("calc.py", BUGGY), ("test_calc.py", TESTS)]);
    std::os::unix::fs::symlink(outside.path(), dir.path().join("vendor")).expect("symlink");
    let escape =
        "vendor/calc.py\n```python\n<<<<<<< SEARCH\n=======\ndef add(a, b):\n    return a + b\n>>>>>>> REPLACE\n```\n";
    let model = ScriptedModel::new([Reply::text(escape), Reply::text(fix())]);
    let sandbox = MemorySandbox::new(calc_tests);
    let files = sandbox.files();
    let ran = run(dir.path(), None, limits(), sandbox, model.clone()).await;
    assert_eq!(ran.finished.outcome, Outcome::Fixed);
    assert!(!files.lock().expect("files").contains_key("vendor/calc.py"), "never written to the sandbox");
    let told = &last_messages(&model)[1];
    assert!(told.contains("vendor/calc.py goes through the link vendor ->"), "{told}");
    assert!(!ran.finished.diff.contains("vendor/"), "{}", ran.finished.diff);
}

#[tokio::test]
async fn an_edit_that_breaks_a_test_that_passed_is_undone_and_the_model_hears_which() {
    let dir = repo(&[("calc.py", BUGGY), ("test_calc.py", TESTS)]);
    // It makes test_add pass, but test_zero is gone: every test run passes, and it is not a fix.
    let breaks = edit("    return a - b", "    return a + b + 0");
    let model = ScriptedModel::new([Reply::text(breaks), Reply::text(fix())]);
    let sandbox = MemorySandbox::new(calc_tests);
    let files = sandbox.files();
    let ran = run(dir.path(), None, limits(), sandbox, model.clone()).await;
    assert_eq!(ran.finished.outcome, Outcome::Fixed);
    assert_eq!(ran.finished.iterations, 2, "every test run passing does not end it while one is gone");
    let told = &last_messages(&model)[1];
    assert!(told.contains("calc.py was undone") && told.contains("test_calc.py::test_zero"), "{told}");
    let undone = ran.events.iter().any(|e| {
        matches!(e, Event::PatchUndone { path, broke, .. } if path == "calc.py" && broke == &["test_calc.py::test_zero"])
    });
    assert!(undone, "{:?}", ran.kinds());
    // The second edit applies to the file as it was: the broken one is in neither the sandbox nor the change.
    assert_eq!(files.lock().unwrap()["calc.py"], "def add(a, b):\n    return a + b\n");
    assert!(!ran.finished.diff.contains("+ 0"), "{}", ran.finished.diff);
}

#[tokio::test]
async fn the_same_failure_in_a_row_stops_the_session_and_raises_the_temperature_meanwhile() {
    let dir = repo(&[("calc.py", BUGGY), ("test_calc.py", TESTS)]);
    let elsewhere = edit("def multiply(x, y):\n    return x * y", "def multiply(x, y):\n    return y * x");
    let model = ScriptedModel::new((0..5).map(|_| Reply::text(elsewhere.clone())));
    let ran = run(dir.path(), None, limits(), MemorySandbox::new(calc_tests), model.clone()).await;
    assert!(matches!(ran.finished.outcome, Outcome::Stuck { .. }), "{:?}", ran.finished.outcome);
    assert_eq!(ran.finished.iterations, 3, "same_failure is 3");
    let temperatures: Vec<f32> = model.requests().iter().filter_map(|r| r.sampling.temperature).collect();
    assert_eq!(temperatures.len(), 3);
    assert!(temperatures[2] > temperatures[0], "{temperatures:?}");
    assert_eq!(ran.finished.diff, "", "nothing applied");
}

#[tokio::test]
async fn the_iteration_limit_ends_a_session_that_keeps_failing_differently() {
    let dir = repo(&[("calc.py", BUGGY), ("test_calc.py", TESTS)]);
    let first = edit("    return a - b", "    return b - a");
    let second = edit("    return b - a", "    return a * b");
    let model = ScriptedModel::new([Reply::text(first), Reply::text(second), Reply::text(fix())]);
    let limits = Limits { max_iterations: 2, ..Limits::default() };
    let ran = run(dir.path(), None, limits, MemorySandbox::new(calc_tests), model.clone()).await;
    assert_eq!(ran.finished.outcome, Outcome::MaxIterations);
    assert_eq!(model.requests().len(), 2);
    assert!(ran.finished.diff.contains("+    return a * b"), "its changes are kept: {}", ran.finished.diff);
}

#[tokio::test]
async fn an_answer_that_gives_up_ends_the_session_with_its_reason() {
    let dir = repo(&[("calc.py", BUGGY), ("test_calc.py", TESTS)]);
    let model = ScriptedModel::new([Reply::text("I give up: the bug is not in these files.\n")]);
    let ran = run(dir.path(), None, limits(), MemorySandbox::new(calc_tests), model).await;
    assert_eq!(ran.finished.outcome, Outcome::GaveUp { reason: "the bug is not in these files".into() });
}

#[tokio::test]
async fn a_failing_setup_ends_the_session_before_the_model_is_asked_and_cuts_the_network() {
    let dir = repo(&[("calc.py", BUGGY), ("test_calc.py", TESTS)]);
    let model = ScriptedModel::new([Reply::text(fix())]);
    let sandbox = MemorySandbox::new(|files: &Files, command: &str| {
        if command.contains("pip install") {
            (1, "ERROR: No matching distribution found for nothere\n".into())
        } else {
            calc_tests(files, command)
        }
    });
    let (commands, cut) = (sandbox.commands.clone(), sandbox.network_cut.clone());
    let ran = run(dir.path(), Some("pip install nothere"), limits(), sandbox, model.clone()).await;
    let Outcome::SetupFailed { command, exit_code } = &ran.finished.outcome else {
        panic!("{:?}", ran.finished.outcome)
    };
    assert_eq!((command.as_str(), *exit_code), ("pip install nothere", Some(1)));
    let printed = ran.events.iter().find_map(|e| match e {
        Event::SetupRun { output, .. } => Some(output.clone()),
        _ => None,
    });
    assert!(printed.is_some_and(|o| o.contains("No matching distribution")));
    // Said as it begins, and its output as it comes, before it ends.
    let setup: Vec<&Event> = ran.events.iter().filter(|e| e.kind().starts_with("setup.")).collect();
    assert!(matches!(setup.first(), Some(Event::SetupStarted { restoring: false, .. })), "{setup:?}");
    assert!(matches!(setup.get(1), Some(Event::SetupOutput { text }) if text.contains("No matching")), "{setup:?}");
    assert!(matches!(setup.last(), Some(Event::SetupRun { .. })), "{setup:?}");
    assert!(ran.finished.outcome.describe().contains("failed (exit 1)"), "{}", ran.finished.outcome.describe());
    assert!(model.requests().is_empty());
    assert!(cut.load(Ordering::SeqCst));
    assert_eq!(commands.lock().expect("commands").len(), 1, "no test ran after it");
}

/// `calc_tests`, after a setup that installs and lists what it installed.
fn installing_tests(files: &Files, command: &str) -> (i64, String) {
    if command.contains("pip install") {
        (0, "Successfully installed six-1.16.0\n".into())
    } else if command.contains("egg-info") {
        (0, "/tmp/venv\n/workspace/calc.egg-info\n".into())
    } else {
        calc_tests(files, command)
    }
}

#[tokio::test]
async fn what_a_setup_installed_is_kept_and_the_next_session_restores_it_without_network() {
    let dir = repo(&[("calc.py", BUGGY), ("test_calc.py", TESTS)]);
    let kept = tempfile::tempdir().expect("a folder");
    let request = FixRequest {
        setup: Setup::Command("pip install -e .".into()),
        limits: limits(),
        ..support::request(dir.path())
    };
    let listing = "/tmp/venv\n/workspace/calc.egg-info";
    for restored in [false, true] {
        let sandbox = MemorySandbox::new(installing_tests);
        let (commands, cut) = (sandbox.commands.clone(), sandbox.network_cut.clone());
        let mut session = Fix::prepare(request.clone()).expect("the request is valid");
        session.keep_environment_in(kept.path());
        assert_eq!(session.needs_network(), !restored, "network only for a setup that runs");
        let touched = || -> Vec<std::time::SystemTime> {
            let archives = std::fs::read_dir(kept.path()).expect("the folder");
            archives
                .map(|e| e.expect("an entry").metadata().expect("its metadata").modified().expect("a time"))
                .collect()
        };
        let before = touched();
        let ran = run_fix(session, sandbox, ScriptedModel::new([Reply::text(fix())])).await;
        assert_eq!(ran.finished.outcome, Outcome::Fixed);
        let commands = commands.lock().expect("commands").clone();
        let installed = commands.iter().any(|c| c.contains("pip install"));
        assert_eq!(installed, !restored, "{commands:?}");
        let (kept_now, used) = (format!("save {listing}"), format!("restore {listing}"));
        assert_eq!((commands.contains(&kept_now), commands.contains(&used)), (!restored, restored), "{commands:?}");
        assert_eq!(cut.load(Ordering::SeqCst), !restored);
        let setup = ran.events.iter().find_map(|e| match e {
            Event::SetupRun { restored, exit_code, .. } => Some((*restored, *exit_code)),
            _ => None,
        });
        assert_eq!(setup, Some((restored, Some(0))));
        if restored {
            // Used now, so the last to be pruned.
            assert!(touched()[0] > before[0], "{:?} {before:?}", touched());
        }
    }
    let archives: Vec<_> =
        std::fs::read_dir(kept.path()).expect("the folder").map(|e| e.expect("an entry").path()).collect();
    assert_eq!(archives.len(), 1, "one archive, no partial one: {archives:?}");

    // One that cannot be restored ends the session saying so, and goes: the next one installs again.
    std::fs::write(&archives[0], [0xff, 0xfe]).expect("a damaged archive");
    let mut session = Fix::prepare(request).expect("the request is valid");
    session.keep_environment_in(kept.path());
    let ran = run_fix(session, MemorySandbox::new(installing_tests), ScriptedModel::new([])).await;
    let Outcome::Error { message } = &ran.finished.outcome else { panic!("{:?}", ran.finished.outcome) };
    assert!(message.contains("could not be restored") && message.contains("installs again"), "{message}");
    assert!(!archives[0].exists());
}

#[tokio::test]
async fn a_model_that_cannot_be_reached_ends_the_session_with_an_error_saying_why() {
    let dir = repo(&[("calc.py", BUGGY), ("test_calc.py", TESTS)]);
    let model = ScriptedModel::new([Reply::Unreachable]);
    let ran = run(dir.path(), None, limits(), MemorySandbox::new(calc_tests), model).await;
    let Outcome::Error { message } = &ran.finished.outcome else { panic!("{:?}", ran.finished.outcome) };
    assert!(message.contains("the model call failed") && message.contains("connection refused"), "{message}");
}

#[tokio::test]
async fn a_rewrite_that_does_not_fix_is_undone_and_shown_and_one_with_no_new_change_is_asked_again_warmer() {
    let code = "def mul(a, b):\n    return a * b\n\n\ndef add(a, b):\n    return a - b\n";
    let dir = repo(&[("calc.py", code), ("test_calc.py", TESTS)]);
    let unchanged = "```python\ndef add(a, b):\n    return a - b\n```\n";
    let wrong = "```python\ndef add(a, b):\n    return a * b\n```\n";
    let commented = "```python\ndef add(a, b):\n    return a - b  # subtracts\n```\n";
    let pasted = "```python\nassert add(2, 3) == 5\n```\n";
    let right = "```python\ndef add(a, b):\n    return a + b\n```\n";
    let divided = "```python\ndef add(a, b):\n    return a / b\n```\n";
    let answers = [unchanged, wrong, commented, wrong, divided, pasted, right];
    let model = ScriptedModel::new(answers.map(Reply::text));
    let mut request = FixRequest { limits: limits(), ..support::request(dir.path()) };
    request.model.edit_format = Some(fixbox_patch::EditFormat::Rewrite);
    let ran = run_request(request, MemorySandbox::new(calc_tests), model.clone()).await;

    assert_eq!(ran.finished.outcome, Outcome::Fixed);
    assert_eq!(ran.finished.iterations, 3, "an answer with no new change is no iteration");
    assert_eq!(
        ran.finished.diff,
        "--- a/calc.py\n+++ b/calc.py\n@@ -3,4 +3,4 @@\n \n \n def add(a, b):\n-    return a - b\n+    return a + b\n"
    );
    let undone = ran.events.iter().filter(|e| matches!(e, Event::PatchUndone { .. })).count();
    let tested = ran.events.iter().filter(|e| matches!(e, Event::PatchApplied { .. })).count();
    let rejected: Vec<&str> = ran
        .events
        .iter()
        .filter_map(|e| match e {
            Event::PatchRejected { feedback, .. } => Some(feedback.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!((tested, undone), (3, 2), "{:?}", ran.kinds());
    assert_eq!(rejected.len(), 4, "{rejected:?}");
    assert!(rejected[1].contains("sees no bug"), "a comment is no change: {}", rejected[1]);
    assert!(rejected[2].contains("the change of iteration 1 again"), "{}", rejected[2]);
    assert!(rejected[3].contains("does not start with the definition of `add`"), "{}", rejected[3]);

    let localized = ran.events.iter().find_map(|e| match e {
        Event::Localized { regions } => Some(regions.iter().map(|r| r.label()).collect::<Vec<_>>()),
        _ => None,
    });
    assert_eq!(localized, Some(vec!["calc.py, lines 5-6 (in `add`)".to_string()]), "{:?}", ran.kinds());

    let requests = model.requests();
    // The region the task names, alone: not the rest of the file; the failure, not the test that passed.
    let asked = last_messages(&model);
    assert!(asked[0].contains("FAILED test_calc.py::test_add") && !asked[0].contains("PASSED"), "{}", asked[0]);
    assert!(asked[0].contains("calc.py, lines 5-6 (in `add`)") && !asked[0].contains("def mul"), "{}", asked[0]);
    assert!(requests[1].sampling.temperature > requests[0].sampling.temperature, "asked again, warmer");
    let echoed = "gave these lines back unchanged";
    assert!(!asked[0].contains(echoed) && asked[1].contains(echoed), "an echo is told: {}", asked[1]);
    assert!(asked[2].contains("-    return a - b\n+    return a * b\n"), "the try undone is shown: {}", asked[2]);
    assert!(requests[3].sampling.temperature > requests[1].sampling.temperature, "a repeat is asked warmer");
    let grammar = requests[0].sampling.extra.get("grammar").and_then(|g| g.as_str()).unwrap_or_default();
    assert!(grammar.starts_with("root ::= \"```\""), "{grammar}");
    assert!(requests[0].sampling.max_tokens < Some(200), "room for the region, not 2,048 tokens");
}

#[tokio::test]
async fn a_rewrite_whose_tests_outlast_the_session_is_undone() {
    let dir = repo(&[("calc.py", BUGGY), ("test_calc.py", TESTS)]);
    let endless = "```python\ndef add(a, b):\n    while True:\n        pass\n```\n";
    let model = ScriptedModel::new([Reply::text(endless)]);
    let limits = Limits { wall_time_s: 2, ..limits() };
    let mut request = FixRequest { limits, ..support::request(dir.path()) };
    request.model.edit_format = Some(fixbox_patch::EditFormat::Rewrite);
    let tests = |files: &Files, command: &str| match files.get("calc.py") {
        Some(code) if code.contains("while True") => (HANGS, String::new()),
        _ => calc_tests(files, command),
    };
    let ran = run_request(request, MemorySandbox::new(tests), model).await;
    assert_eq!(ran.finished.outcome, Outcome::WallTime);
    assert_eq!(ran.finished.diff, "", "the untested try is not the session's change");
    assert!(ran.events.iter().any(|e| matches!(e, Event::PatchUndone { .. })), "{:?}", ran.kinds());
    let timings = ran.finished.timings;
    assert!(timings.tests_ms > timings.wall_ms / 2.0, "the run cut off is the tests' time: {timings:?}");
}

#[tokio::test]
async fn a_model_that_sees_no_bug_anywhere_is_stuck_after_three_rounds() {
    let dir = repo(&[("calc.py", BUGGY), ("test_calc.py", TESTS)]);
    let unchanged = "```python\ndef add(a, b):\n    return a - b\n```\n";
    let model = ScriptedModel::new((0..5).map(|_| Reply::text(unchanged)));
    let mut request = FixRequest { limits: limits(), ..support::request(dir.path()) };
    request.model.edit_format = Some(fixbox_patch::EditFormat::Rewrite);
    let ran = run_request(request, MemorySandbox::new(calc_tests), model.clone()).await;
    assert_eq!(
        ran.finished.outcome,
        Outcome::Stuck {
            failure: "the model found no new change for the region it was shown: 3 answers in a row changed nothing, repeated an earlier change or put other code in the function's place".into()
        }
    );
    assert_eq!((model.requests().len(), ran.finished.iterations), (3, 0));
}

#[tokio::test]
async fn a_test_command_that_cannot_run_ends_the_session_before_the_model_is_asked() {
    let dir = repo(&[("calc.py", BUGGY), ("test_calc.py", TESTS)]);
    let model = ScriptedModel::new([Reply::text(fix())]);
    let sandbox = MemorySandbox::new(|_, _| (127, "sh: 1: pytst: not found\n".to_string()));
    let request = FixRequest { test: Some("pytst -rA".into()), ..support::request(dir.path()) };
    let ran = run_request(request, sandbox, model.clone()).await;
    let Outcome::Error { message } = &ran.finished.outcome else { panic!("{:?}", ran.finished.outcome) };
    assert!(message.contains("cannot run before any change") && message.contains("pytst: not found"), "{message}");
    assert!(model.requests().is_empty());
}
