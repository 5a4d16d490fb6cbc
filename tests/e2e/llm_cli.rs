//! `fixbox keys`, `fixbox routes`, `fixbox ask` and `fixbox serve` as a user runs them, against the real
//! keychain (the Secret Service `scripts/test` starts), a real llama-server with SmolLM2, and a
//! loopback stand-in for a cloud API (which cannot be reached from here) that rejects the key the way
//! OpenAI does: by quoting it back.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fixbox_e2e::{ChildGuard, free_port, wait_for_port, workspace_bin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fixbox(data_dir: &Path) -> Result<Command> {
    let mut cmd = Command::new(workspace_bin("fixbox")?);
    cmd.env("FIXBOX_DATA_DIR", data_dir);
    Ok(cmd)
}

/// A cloud API that answers every request 401, quoting the key it was sent; it keeps the
/// `Authorization` headers it saw.
async fn rejecting_cloud() -> Result<(String, Arc<Mutex<Vec<String>>>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1", listener.local_addr()?);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 8192];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&request).to_string();
            let auth = head
                .lines()
                .find_map(|l| l.strip_prefix("authorization: ").or_else(|| l.strip_prefix("Authorization: ")));
            let key = auth.unwrap_or_default().trim_start_matches("Bearer ").to_string();
            record.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(auth.unwrap_or_default().to_string());
            let body = format!(
                r#"{{"error":{{"message":"Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
            );
            let reply = format!(
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    Ok((url, seen))
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle)?);
        } else if contains(&std::fs::read(&path)?, needle) {
            found.push(path.display().to_string());
        }
    }
    Ok(found)
}

// Multi-threaded: the stand-in cloud answers while the test waits on the blocking `fixbox` runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_live_in_the_keychain_only_and_never_reach_the_database_the_log_or_an_event() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let engine = fixbox_e2e::models::smollm2(2048, 1).await?;
    let (cloud, seen) = rejecting_cloud().await?;
    let data = tempfile::tempdir()?;
    let key = format!("sk-fixbox-test-{:016x}WXYZ", (std::process::id() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));

    let mut set =
        fixbox(data.path())?.args(["keys", "set", "cloud"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    set.stdin.take().context("stdin")?.write_all(format!("{key}\n").as_bytes())?;
    let set = set.wait_with_output()?;
    ensure!(set.status.success(), "keys set: {}", String::from_utf8_lossy(&set.stderr));
    let list = fixbox(data.path())?.args(["keys", "list"]).output()?;
    let listed = String::from_utf8(list.stdout)?;
    ensure!(listed.contains("cloud") && listed.contains("…WXYZ") && !listed.contains(&key), "{listed}");

    let routing = data.path().join("routing.toml");
    std::fs::write(
        &routing,
        format!(
            r#"
[[providers]]
name = "cloud"
kind = "openai"
base_url = "{cloud}"
model = "gpt-4o-mini"
api_key = "cloud"
local = false

[[providers]]
name = "local"
kind = "openai"
base_url = "{}/v1"
model = "smollm2"

[routes]
default = ["cloud", "local"]
"#,
            engine.url
        ),
    )?;
    let stored = fixbox(data.path())?.args(["routes", "set"]).arg(&routing).output()?;
    ensure!(stored.status.success(), "{}", String::from_utf8_lossy(&stored.stderr));

    // Everything logged, at the most verbose level, into a log file.
    let log = data.path().join("logs/ask.log");
    std::fs::create_dir_all(data.path().join("logs"))?;
    let ask = fixbox(data.path())?
        .args(["ask", "--max-tokens", "16", "Say hi."])
        .env("RUST_LOG", "trace")
        .stderr(std::fs::File::create(&log)?)
        .output()?;
    let logged = std::fs::read_to_string(&log)?;
    ensure!(ask.status.success(), "ask failed: {logged}");
    ensure!(!String::from_utf8(ask.stdout)?.trim().is_empty(), "no answer");
    // The key went where it belongs, and the cloud's quote of it came back redacted.
    ensure!(
        seen.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .first()
            .is_some_and(|auth| *auth == format!("Bearer {key}")),
        "{seen:?}"
    );
    ensure!(logged.contains("Incorrect API key provided: ***."), "{logged}");

    let store = fixbox_store::Store::open_in(data.path())?;
    let session = store.list_sessions()?.into_iter().next().context("ask recorded no session")?;
    let events = store.events_from(&session.id, 1)?;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    ensure!(kinds == ["llm.request", "llm.attempt", "llm.call"], "{kinds:?}");
    ensure!(events[1].payload["kind"] == "auth" && events[1].payload["route"] == "cloud", "{:?}", events[1]);
    ensure!(events[2].payload["route"] == "local", "{:?}", events[2]);
    for event in &events {
        ensure!(!event.payload.to_string().contains(&key), "event {} holds the key", event.kind);
    }
    drop(store);
    let leaks = files_containing(data.path(), &key)?;
    ensure!(leaks.is_empty(), "the key is in {leaks:?}");

    // No keychain on the bus (none running or none installed): said so, never read as "no keys", and
    // the route that needs a key from it is not tried.
    let absent = "unix:path=/nonexistent/bus";
    let list = fixbox(data.path())?.args(["keys", "list"]).env("DBUS_SESSION_BUS_ADDRESS", absent).output()?;
    let stderr = String::from_utf8(list.stderr)?;
    ensure!(!list.status.success() && stderr.contains("no usable OS keychain"), "{stderr}");
    let ask = fixbox(data.path())?
        .args(["ask", "--max-tokens", "8", "Say hi."])
        .env("DBUS_SESSION_BUS_ADDRESS", absent)
        .output()?;
    let stderr = String::from_utf8(ask.stderr)?;
    eprintln!("ask without a keychain: {stderr}");
    ensure!(stderr.contains("keychain"), "{stderr}");
    ensure!(seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len() == 1, "the cloud was called again");

    // Removed, it is gone, and the route that needs it says so.
    let rm = fixbox(data.path())?.args(["keys", "rm", "cloud"]).output()?;
    ensure!(rm.status.success(), "{}", String::from_utf8_lossy(&rm.stderr));
    ensure!(fixbox(data.path())?.args(["keys", "list"]).output()?.stdout.is_empty());
    let without = fixbox(data.path())?.args(["ask", "Say hi."]).output()?;
    let stderr = String::from_utf8(without.stderr)?;
    ensure!(!without.status.success() && stderr.contains("fixbox keys set cloud"), "{stderr}");
    engine.stop().await;
    Ok(())
}

/// A routes file in `dir` with one provider, `local`: SmolLM2 on the llama-server at `url`, then `rest`
/// (more of the provider's fields, and the routes).
fn routing_to(dir: &Path, url: &str, rest: &str) -> Result<std::path::PathBuf> {
    let routing = dir.join("routing.toml");
    let provider =
        format!("[[providers]]\nname = \"local\"\nkind = \"openai\"\nbase_url = \"{url}\"\nmodel = \"smollm2\"\n");
    std::fs::write(&routing, format!("{provider}{rest}"))?;
    Ok(routing)
}

#[tokio::test]
async fn serve_answers_openai_clients_through_the_routes_and_counts_every_call_for_prometheus() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let engine = fixbox_e2e::models::smollm2(2048, 1).await?;
    let data = tempfile::tempdir()?;
    let routing = routing_to(data.path(), &engine.url, "[routes]\ndefault = [\"local\"]\n")?;
    let exposed = fixbox(data.path())?.args(["serve", "--listen", "0.0.0.0:0", "--routes"]).arg(&routing).output()?;
    let stderr = String::from_utf8(exposed.stderr)?;
    ensure!(!exposed.status.success() && stderr.contains("--token-key"), "{stderr}");

    let (port, metrics_port) = (free_port()?, free_port()?);
    let child = fixbox(data.path())?
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--metrics",
            &format!("127.0.0.1:{metrics_port}"),
            "--routes",
        ])
        .arg(&routing)
        .spawn()?;
    let mut server = ChildGuard::new("fixbox serve", child);
    wait_for_port(port, &mut server, Duration::from_secs(30))?;
    wait_for_port(metrics_port, &mut server, Duration::from_secs(30))?;

    let http = fixbox_models::http_client_builder().no_proxy().build()?;
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let body =
        serde_json::json!({ "messages": [{ "role": "user", "content": "Say hi." }], "max_tokens": 12, "stream": true });
    let streamed = http.post(&url).header("content-type", "application/json").body(body.to_string()).send().await?;
    ensure!(streamed.status() == 200, "{}", streamed.status());
    let sse = streamed.text().await?;
    let events: Vec<serde_json::Value> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    ensure!(sse.trim_end().ends_with("data: [DONE]"), "{sse}");
    ensure!(events.iter().filter(|e| e["choices"][0]["delta"]["content"].is_string()).count() > 1, "{sse}");
    let last = events.last().context("no events")?;
    ensure!(last["usage"]["completion_tokens"].as_u64().is_some_and(|n| n > 0), "{last}");

    let whole = serde_json::json!({ "messages": [{ "role": "user", "content": "Say hi." }], "max_tokens": 12 });
    let answer: serde_json::Value = serde_json::from_str(
        &http
            .post(&url)
            .header("content-type", "application/json")
            .body(whole.to_string())
            .send()
            .await?
            .text()
            .await?,
    )?;
    ensure!(answer["choices"][0]["message"]["content"].as_str().is_some_and(|c| !c.is_empty()), "{answer}");
    ensure!(answer["fixbox"]["route"] == "local", "{answer}");

    let bad = http.post(&url).body("{").send().await?;
    ensure!(bad.status() == 400, "{}", bad.status());

    // A web page that rebinds its own name to 127.0.0.1 reaches these ports under its own Host, and a
    // page's request from elsewhere carries its Origin: both are refused before any route runs.
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    for (header, value) in [("host", format!("rebind.example:{port}")), ("origin", "http://evil.example".into())] {
        let refused = http.post(&url).header(header, &value).body(whole.to_string()).send().await?;
        ensure!(refused.status() == 403, "{header}: {value} got {}", refused.status());
        let refused = http.get(&metrics_url).header(header, &value).send().await?;
        ensure!(refused.status() == 403, "{header}: {value} got {} for metrics", refused.status());
    }
    let local = http.get(&metrics_url).header("origin", format!("http://localhost:{port}")).send().await?;
    ensure!(local.status() == 200, "a page served from loopback may read: {}", local.status());
    let exposed = fixbox(data.path())?
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics", "0.0.0.0:0", "--routes"])
        .arg(&routing)
        .output()?;
    let stderr = String::from_utf8(exposed.stderr)?;
    ensure!(!exposed.status.success() && stderr.contains("--metrics 0.0.0.0:0"), "{stderr}");

    let metrics = http.get(format!("http://127.0.0.1:{metrics_port}/metrics")).send().await?;
    ensure!(metrics.headers()["content-type"].to_str()?.starts_with("text/plain; version=0.0.4"));
    let text = metrics.text().await?;
    for line in [
        "# TYPE fixbox_llm_calls_total counter",
        r#"fixbox_llm_calls_total{provider="local",model="smollm2"} 2"#,
        "# TYPE fixbox_llm_latency_seconds histogram",
        r#"fixbox_llm_latency_seconds_count{provider="local",model="smollm2"} 2"#,
        r#"fixbox_llm_time_to_first_token_seconds_count{provider="local",model="smollm2"} 2"#,
    ] {
        ensure!(text.contains(line), "{line} not in\n{text}");
    }
    let completion = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"fixbox_llm_tokens_total{provider="local",model="smollm2",kind="completion"} "#))
        .context("no completion token count")?;
    ensure!(completion.parse::<f64>()? >= 2.0, "{completion}");
    drop(server);
    engine.stop().await;
    Ok(())
}

/// `fixbox serve` as OpenAI's own Python SDK (the version `scripts/setup` pins) sees it: the model list
/// clients ask for first, a streamed and a whole answer from a real model, and the errors an
/// application tells apart by their class and code: a prompt no route's context holds is a 400
/// `context_length_exceeded`, not a 502.
#[tokio::test]
async fn serve_speaks_openai_to_the_official_python_sdk() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let python = Path::new(&std::env::var("HOME")?).join(".cache/fixbox/venvs/openai-2.54.0/bin/python");
    ensure!(python.exists(), "{} is missing: scripts/setup installs the OpenAI SDK", python.display());
    let engine = fixbox_e2e::models::smollm2(2048, 1).await?;
    let data = tempfile::tempdir()?;
    let routes = "[routes]\ndefault = [\"local\"]\nfix = [\"local\"]\n";
    let routing = routing_to(data.path(), &engine.url, &format!("context_window = 2048\n\n{routes}"))?;
    let port = free_port()?;
    let child = fixbox(data.path())?
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--routes"])
        .arg(&routing)
        .spawn()?;
    let mut server = ChildGuard::new("fixbox serve", child);
    wait_for_port(port, &mut server, Duration::from_secs(30))?;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/openai/client.py");
    let out = Command::new(&python).arg(&script).arg(format!("http://127.0.0.1:{port}/v1")).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "the SDK script failed: {stderr}");
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    ensure!(seen["sdk"] == "2.54.0", "{seen}");
    ensure!(seen["models"] == serde_json::json!(["default", "fix"]), "{seen}");
    ensure!(seen["streamed"].as_str().is_some_and(|t| !t.is_empty()), "{seen}");
    ensure!(seen["streamed_chunks"].as_u64().is_some_and(|n| n > 2), "{seen}");
    ensure!(seen["whole"].as_str().is_some_and(|t| !t.is_empty()), "{seen}");
    ensure!(seen["completion_tokens"].as_u64().is_some_and(|n| n > 0), "{seen}");
    let too_long = &seen["too_long"];
    ensure!(too_long["class"] == "BadRequestError" && too_long["status"] == 400, "{seen}");
    ensure!(too_long["code"] == "context_length_exceeded" && too_long["type"] == "invalid_request_error", "{seen}");
    ensure!(seen["empty"]["class"] == "BadRequestError" && seen["empty"]["code"].is_null(), "{seen}");
    ensure!(seen["unknown_model"]["class"] == "NotFoundError", "{seen}");
    ensure!(seen["unknown_model"]["code"] == "model_not_found", "{seen}");
    drop(server);
    engine.stop().await;
    Ok(())
}

/// Runs `script` in bash on a D-Bus session of its own with gnome-keyring keeping its keyrings in
/// `keyrings`, unlocked with a password when `password` is given, else locked as after a login without
/// one. `fixbox` is `$FIXBOX`, the data folder `$FIXBOX_DATA_DIR`. Returns its stdout and stderr.
fn on_keyring(keyrings: &Path, password: Option<&str>, data: &Path, script: &str) -> Result<(bool, String)> {
    let start = match password {
        Some(password) => {
            format!("printf '{password}' | gnome-keyring-daemon --unlock --components=secrets >/dev/null")
        }
        None => "gnome-keyring-daemon --components=secrets >/dev/null".into(),
    };
    let output = Command::new("dbus-run-session")
        .args(["--", "bash", "-c", &format!("{start}; {script}")])
        .env("XDG_DATA_HOME", keyrings)
        .env("FIXBOX_DATA_DIR", data)
        .env("FIXBOX", workspace_bin("fixbox")?)
        .env_remove("DISPLAY")
        .output()?;
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), said))
}

#[test]
fn a_locked_keychain_fails_closed_and_says_to_unlock_it() -> Result<()> {
    let (keyrings, data) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (stored, said) = on_keyring(keyrings.path(), Some("pw"), data.path(), "echo sk-123 | $FIXBOX keys set cloud")?;
    ensure!(stored, "{said}");
    // The same keyring after a login that did not unlock it: nothing is read or written, and it says so.
    for command in ["timeout 30 $FIXBOX keys list", "echo sk-9 | timeout 30 $FIXBOX keys set other"] {
        let (ok, said) = on_keyring(keyrings.path(), None, data.path(), command)?;
        ensure!(!ok && said.contains("the OS keychain is locked"), "{command}: {said}");
    }
    let (listed, said) = on_keyring(keyrings.path(), Some("pw"), data.path(), "$FIXBOX keys list")?;
    ensure!(listed && said.contains("cloud") && !said.contains("other"), "{said}");
    Ok(())
}
