use std::process::Command;

use anyhow::{Result, ensure};
use fixbox_e2e::workspace_bin;

fn fixbox(data_dir: &std::path::Path) -> Result<Command> {
    let mut cmd = Command::new(workspace_bin("fixbox")?);
    cmd.env("FIXBOX_DATA_DIR", data_dir);
    Ok(cmd)
}

#[test]
fn doctor_json_reports_docker_reachable_and_every_check() -> Result<()> {
    let data = tempfile::tempdir()?;
    let out = fixbox(data.path())?.args(["doctor", "--json"]).output()?;
    let stdout = String::from_utf8(out.stdout)?;
    ensure!(out.status.success(), "doctor failed ({}): {stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));

    let report: serde_json::Value = serde_json::from_str(&stdout)?;
    let ids: Vec<&str> = report["checks"].as_array().into_iter().flatten().filter_map(|c| c["id"].as_str()).collect();
    ensure!(ids == ["docker", "keychain", "gpu", "memory", "cpu", "data-dir", "engines"], "{ids:?}");
    let docker = &report["checks"][0];
    ensure!(docker["status"] == "ok", "{docker}");
    ensure!(docker["summary"].as_str().is_some_and(|s| s.starts_with("Docker Engine ")), "{docker}");
    ensure!(data.path().join("fixbox.db").exists(), "the data-dir check did not create the database");
    Ok(())
}

#[test]
fn doctor_text_without_docker_fails_and_says_how_to_start_it() -> Result<()> {
    let data = tempfile::tempdir()?;
    let socket = data.path().join("no-docker.sock");
    let out = fixbox(data.path())?.arg("doctor").env("DOCKER_HOST", format!("unix://{}", socket.display())).output()?;
    let stdout = String::from_utf8(out.stdout)?;
    ensure!(out.status.code() == Some(1), "expected exit 1, got {}: {stdout}", out.status);
    ensure!(stdout.contains("FAIL  Docker"), "{stdout}");
    ensure!(stdout.contains("Docker is not running (no socket at"), "{stdout}");
    ensure!(stdout.contains("sudo systemctl start docker"), "{stdout}");
    ensure!(stdout.contains("cannot run fix sessions until the failures above are fixed"), "{stdout}");
    Ok(())
}

#[test]
fn unknown_arguments_get_usage_not_a_panic() -> Result<()> {
    let data = tempfile::tempdir()?;
    let out = fixbox(data.path())?.args(["doctor", "--frobnicate"]).output()?;
    let stderr = String::from_utf8(out.stderr)?;
    ensure!(out.status.code() == Some(2), "{}", out.status);
    ensure!(stderr.contains("unexpected argument '--frobnicate'") && stderr.contains("Usage:"), "{stderr}");
    ensure!(!stderr.contains("panicked"), "{stderr}");
    Ok(())
}

#[test]
fn an_error_is_said_once_with_the_command_that_mends_it_and_the_log_stays_in_its_file() -> Result<()> {
    let data = tempfile::tempdir()?;
    let pull = |verbose: bool| -> Result<(bool, String)> {
        let mut cmd = fixbox(data.path())?;
        cmd.args(["models", "pull", "gpt-9"]).env_remove("RUST_LOG");
        if verbose {
            cmd.arg("-v");
        }
        let out = cmd.output()?;
        Ok((out.status.success(), String::from_utf8(out.stderr)?))
    };
    // The core's words, then this front end's remedy; nothing of the log.
    let (ok, stderr) = pull(false)?;
    ensure!(!ok, "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    ensure!(
        lines == ["error: no model \"gpt-9\" in the catalog", "hint: `fixbox models list` shows the catalog"],
        "{stderr}"
    );
    let logs = std::fs::read_dir(data.path().join("logs"))?.filter_map(Result::ok).collect::<Vec<_>>();
    let logged = logs.iter().map(|e| std::fs::read_to_string(e.path())).collect::<Result<String, _>>()?;
    ensure!(logged.contains("no model \"gpt-9\" in the catalog"), "the log file lacks the error: {logged}");

    // -v echoes the log to stderr, without colour codes where stderr is not a terminal.
    let (_, stderr) = pull(true)?;
    ensure!(stderr.lines().any(|l| l.contains("ERROR") && l.contains("gpt-9")), "{stderr}");
    ensure!(!stderr.contains('\u{1b}'), "ANSI codes on a pipe: {stderr:?}");
    Ok(())
}

#[test]
fn hw_reads_this_machine_and_recommends_models_with_why() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself_blocking();
    let data = tempfile::tempdir()?;
    let out = fixbox(data.path())?.args(["hw", "--json"]).output()?;
    let stdout = String::from_utf8(out.stdout)?;
    ensure!(out.status.success(), "hw failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    let value: serde_json::Value = serde_json::from_str(&stdout)?;
    let threads = std::thread::available_parallelism()?.get() as u64;
    ensure!(value["machine"]["cpu"]["logical_cores"] == threads, "{}", value["machine"]["cpu"]);
    let disk = &value["machine"]["models_disk"];
    ensure!(disk["path"] == serde_json::json!(data.path().join("models")), "{disk}");
    let code_fix = value["recommendations"]["uses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|u| u["use"] == "code-fix")
        .ok_or_else(|| anyhow::anyhow!("no code-fix advice: {value}"))?;
    let picks = code_fix["picks"].as_array().map(Vec::len).unwrap_or(0);
    ensure!(picks > 0, "nothing recommended for code fixes on this machine: {code_fix}");
    ensure!(code_fix["picks"][0]["why"].as_str().is_some_and(|w| w.contains("(estimate)")), "{code_fix}");

    let text = fixbox(data.path())?.arg("hw").output()?;
    let text = String::from_utf8(text.stdout)?;
    ensure!(text.contains("Recommended for code fixes") && text.contains("RAM"), "{text}");
    Ok(())
}

/// `fixbox engine start` launches llama-server as the app's engine settings say (saved there), places
/// the model with the fit calculator (on this machine without a GPU: the CPU, said so), and stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_start_uses_the_saved_settings_and_the_fit_calculators_placement() -> Result<()> {
    use anyhow::Context as _;
    let _machine = fixbox_e2e::machine_to_myself().await;
    fixbox_e2e::models::llama_server().await?;
    let model = fixbox_e2e::models::offline_model("smollm2-135m-instruct").await?;
    let data = tempfile::tempdir()?;
    let import = fixbox(data.path())?.args(["models", "import"]).arg(&model).output()?;
    ensure!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    let saved = fixbox_engine::EngineOptions { context: Some(1024), threads: Some(1), ..Default::default() };
    saved.save(&fixbox_store::Store::open_in(data.path())?)?;

    let port = fixbox_e2e::free_port()?.to_string();
    let start =
        fixbox(data.path())?.args(["engine", "start", "--model", "smollm2-135m-instruct", "--port", &port]).output()?;
    let said = format!("{}{}", String::from_utf8_lossy(&start.stdout), String::from_utf8_lossy(&start.stderr));
    let state = fixbox_engine::Registry::new(data.path()).supervised(fixbox_engine::EngineKind::LlamaServer);
    let command = state
        .as_ref()
        .and_then(|s| s.engine_pid)
        .and_then(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
        .map(|line| String::from_utf8_lossy(&line).replace('\0', " "))
        .unwrap_or_default();
    let stop = fixbox(data.path())?.args(["engine", "stop", "llama-server"]).output()?;
    ensure!(start.status.success(), "{said}");
    ensure!(said.contains("placing the model: on the CPU: no GPU with memory of its own was found"), "{said}");
    ensure!(state.context("no engine in the registry")?.context == Some(1024), "{command}");
    for part in ["--ctx-size 1024", "--n-gpu-layers 0", "--threads 1"] {
        ensure!(command.contains(part), "{part} is not in {command}");
    }
    ensure!(stop.status.success(), "{}", String::from_utf8_lossy(&stop.stderr));
    Ok(())
}
