//! Ollama and vLLM cannot be installed here, so their launch paths run a stand-in executable that
//! records its arguments and environment and then answers the engine's health path; their HTTP clients
//! replay upstream responses (tests/fixtures, with their provenance in its README).
#![expect(clippy::unwrap_used, reason = "test helpers: a failure stops the test with its message")]

#[path = "../../fixbox-models/tests/support/loopback.rs"]
#[expect(dead_code, reason = "the misbehaving modes are for the download tests")]
mod loopback;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fixbox_engine::{
    EngineError, EngineEvent, EngineKind, EngineStatus, LaunchSpec, Launcher, LocalOllama, ModelRef, Ollama,
    OllamaClient, Registry, SuperviseOptions, Vllm, VllmClient,
};
use fixbox_secret::Secret;
use loopback::{Loopback, Mode};
use tokio::sync::mpsc;

/// A stand-in for `name`: writes its arguments and the engine's environment variables to `record`, then
/// serves 200 with `body` on every path at the address the engine would use.
fn stand_in(dir: &Path, name: &str, body: &str) -> (PathBuf, PathBuf) {
    let record = dir.join(format!("{name}.record"));
    let script = dir.join(name);
    let text = format!(
        r#"#!/bin/sh
{{ printf 'ARGS:%s\n' "$*"; env | grep -E '^(OLLAMA_|VLLM_|LLAMA_)' | sort; }} > '{record}'
exec python3 - "$@" <<'PY'
import http.server, os, sys
args = sys.argv[1:]
def flag(name, default):
    return args[args.index(name) + 1] if name in args else default
if "OLLAMA_HOST" in os.environ:
    host, port = os.environ["OLLAMA_HOST"].rsplit(":", 1)
else:
    host, port = flag("--host", "127.0.0.1"), flag("--port", "8000")
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = {body:?}.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        print(self.requestline, flush=True)
http.server.HTTPServer((host, int(port)), Answer).serve_forever()
PY
"#,
        record = record.display()
    );
    write_executable(&script, &text);
    (script, record)
}

fn write_executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(path, perms).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn options() -> SuperviseOptions {
    SuperviseOptions { startup_timeout: Duration::from_secs(30), ..SuperviseOptions::default() }
}

#[tokio::test]
async fn ollama_is_launched_with_its_environment_and_kept_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let root = include_str!("fixtures/ollama/root.txt");
    let (binary, record) = stand_in(dir.path(), "ollama", root);
    let mut spec =
        LaunchSpec::new(EngineKind::Ollama, ModelRef::Named("qwen2.5-coder:7b".into()), "qwen2.5-coder:7b", 16384);
    spec.port = free_port();
    spec.parallel = 2;
    spec.models_dir = Some(dir.path().join("ollama-models"));
    let engine =
        fixbox_engine::start(Arc::new(Ollama), &binary, spec.clone(), dir.path().join("ollama.log"), options())
            .await
            .unwrap();
    assert_eq!(engine.url, format!("http://127.0.0.1:{}", spec.port));
    let recorded = std::fs::read_to_string(&record).unwrap();
    let expected = format!(
        "ARGS:serve\nOLLAMA_CONTEXT_LENGTH=16384\nOLLAMA_HOST=127.0.0.1:{}\nOLLAMA_KEEP_ALIVE=30m\nOLLAMA_MODELS={}\nOLLAMA_NUM_PARALLEL=2\n",
        spec.port,
        dir.path().join("ollama-models").display()
    );
    assert_eq!(recorded, expected);
    engine.stop().await;

    // Ollama has no API keys: it is never bound beyond loopback, key or not.
    spec.host = "0.0.0.0".parse().unwrap();
    spec.api_key = Some(Secret::generate());
    let err = fixbox_engine::start(Arc::new(Ollama), &binary, spec, dir.path().join("ollama.log"), options())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NoApiKeySupport { .. }), "{err}");
}

#[tokio::test]
async fn vllm_is_launched_with_the_recommended_flags_and_its_key_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (binary, record) = stand_in(dir.path(), "vllm", include_str!("fixtures/vllm/health.txt"));
    let model = "Qwen/Qwen2.5-Coder-7B-Instruct";
    let mut spec = LaunchSpec::new(EngineKind::Vllm, ModelRef::Named(model.into()), "qwen2.5-coder-7b", 16384);
    spec.port = free_port();
    spec.parallel = 8;
    spec.host = "0.0.0.0".parse().unwrap();
    let key = Secret::generate();
    spec.api_key = Some(key.clone());
    let engine = fixbox_engine::start(Arc::new(Vllm), &binary, spec.clone(), dir.path().join("vllm.log"), options())
        .await
        .unwrap();
    let recorded = std::fs::read_to_string(&record).unwrap();
    let args = format!(
        "ARGS:serve {model} --served-model-name qwen2.5-coder-7b --host 0.0.0.0 --port {} --max-model-len 16384 \
         --max-num-seqs 8 --gpu-memory-utilization 0.90 --enable-prefix-caching\n",
        spec.port
    );
    assert_eq!(recorded, format!("{args}VLLM_API_KEY={}\n", key.expose()));
    let log = std::fs::read_to_string(dir.path().join("vllm.log")).unwrap();
    assert!(!log.contains(key.expose()), "the key stays out of the log");
    assert!(VllmClient::new(&engine.url, None).healthy().await);
    engine.stop().await;
}

#[tokio::test]
async fn an_engine_that_dies_at_startup_is_reported_with_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("llama-server");
    write_executable(&binary, "#!/bin/sh\necho 'error: failed to load model: unknown architecture' >&2\nexit 1\n");
    let mut spec = LaunchSpec::new(EngineKind::LlamaServer, ModelRef::File(dir.path().join("m.gguf")), "m", 2048);
    spec.port = free_port();
    let err = fixbox_engine::start(
        Arc::new(fixbox_engine::LlamaServer),
        &binary,
        spec,
        dir.path().join("llama.log"),
        options(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("it exited during startup (exit code 1)"), "{err}");
    assert!(err.contains("unknown architecture"), "{err}");
}

#[tokio::test]
async fn a_registered_engine_streams_its_output_and_keeps_its_state_file_current() {
    let dir = tempfile::tempdir().unwrap();
    let (binary, _) = stand_in(dir.path(), "vllm", "");
    let registry = Registry::new(dir.path().join("data"));
    let mut spec = LaunchSpec::new(EngineKind::Vllm, ModelRef::Named("m".into()), "m", 2048);
    spec.port = free_port();
    let launcher = Launcher::new(Arc::new(Vllm), &binary, spec, registry.log_path(EngineKind::Vllm), options())
        .registered(&registry, "m", vec!["a note for clients".into()]);
    let starting = registry.read(EngineKind::Vllm).unwrap().unwrap();
    assert_eq!((starting.status, starting.supervisor_pid), (EngineStatus::Starting, std::process::id()));
    let mut output = launcher.output();
    let engine = launcher.start().await.unwrap();

    // The first line is Fixbox's own header; the stand-in prints each request it answers, the health
    // checks among them.
    let header = output.recv().await.unwrap();
    assert!(header.starts_with("--- fixbox: starting vllm (attempt 1)"), "{header}");
    let line = tokio::time::timeout(Duration::from_secs(10), output.recv()).await.unwrap().unwrap();
    assert!(line.contains("GET /health"), "{line}");
    let log = std::fs::read_to_string(registry.log_path(EngineKind::Vllm)).unwrap();
    assert!(log.contains(&header) && log.contains(&line), "every line is in the log too:\n{log}");

    let ready = registry.read(EngineKind::Vllm).unwrap().unwrap();
    assert_eq!(ready.status, EngineStatus::Ready);
    assert_eq!(ready.url.as_deref(), Some(engine.url.as_str()));
    assert_eq!(ready.engine_pid, engine.pid());
    assert_eq!(ready.message.as_deref(), Some("a note for clients"));
    assert_eq!(registry.running().len(), 1, "clients find it");
    engine.stop().await;
    assert!(registry.read(EngineKind::Vllm).unwrap().is_none(), "stopped, it is no longer listed");
}

#[tokio::test]
async fn a_registered_engine_that_fails_to_start_leaves_why_in_its_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("llama-server");
    write_executable(&binary, "#!/bin/sh\necho 'error: failed to load model: unknown architecture' >&2\nexit 1\n");
    let registry = Registry::new(dir.path());
    let mut spec = LaunchSpec::new(EngineKind::LlamaServer, ModelRef::File(dir.path().join("m.gguf")), "m", 2048);
    spec.port = free_port();
    let log = registry.log_path(EngineKind::LlamaServer);
    let started = Launcher::new(Arc::new(fixbox_engine::LlamaServer), &binary, spec, log, options()).registered(
        &registry,
        "m",
        vec![],
    );
    assert!(started.start().await.is_err());
    let state = registry.read(EngineKind::LlamaServer).unwrap().unwrap();
    assert_eq!(state.status, EngineStatus::Failed);
    assert!(state.message.unwrap().contains("unknown architecture"));
    assert!(registry.running().is_empty());
}

/// An engine whose supervisor was killed is stopped by the next sweep; a live process at a recorded pid
/// that does not listen where the engine did (the pid was reused) is left alone.
#[tokio::test]
async fn engines_left_by_a_dead_supervisor_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let (binary, _) = stand_in(dir.path(), "vllm", "");
    let registry = Registry::new(dir.path());
    let mut spec = LaunchSpec::new(EngineKind::Vllm, ModelRef::Named("m".into()), "m", 2048);
    spec.port = free_port();
    let engine =
        fixbox_engine::start(Arc::new(Vllm), &binary, spec, dir.path().join("v.log"), options()).await.unwrap();
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    dead.wait().unwrap();
    let mut bystander = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let state = |kind, engine_pid: u32| fixbox_engine::EngineState {
        engine: kind,
        supervisor_pid: dead.id(),
        engine_pid: Some(engine_pid),
        url: Some(engine.url.clone()),
        model: "m".into(),
        context: None,
        log: dir.path().join("v.log"),
        status: EngineStatus::Ready,
        message: None,
        api_key: None,
    };
    registry.write(&state(EngineKind::Vllm, engine.pid().unwrap())).unwrap();
    registry.write(&state(EngineKind::Ollama, bystander.id())).unwrap();

    let swept = registry.sweep_orphans();
    assert_eq!(swept.len(), 2, "{swept:?}");
    assert!(swept.iter().any(|l| l.starts_with("stopped vllm")), "{swept:?}");
    let mut events = engine.subscribe();
    let exited = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(EngineEvent::Exited { status, .. }) = events.recv().await {
                return status;
            }
        }
    })
    .await
    .unwrap();
    assert!(exited.contains("SIGTERM"), "{exited}");
    assert!(bystander.try_wait().unwrap().is_none(), "the process at a reused pid was left alone");
    assert!(registry.read(EngineKind::Vllm).unwrap().is_none() && registry.read(EngineKind::Ollama).unwrap().is_none());
    bystander.kill().unwrap();
    engine.stop().await;
}

/// Stopped while it loads: the process goes, the start says so, and the state file is gone (no "failed").
#[tokio::test]
async fn an_engine_stopped_while_it_loads_is_gone_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // Loading for a minute before it would answer.
    let loading = dir.path().join("vllm");
    write_executable(&loading, "#!/bin/sh\necho loading the weights\nexec sleep 60\n");
    let registry = Registry::new(dir.path());
    let mut spec = LaunchSpec::new(EngineKind::Vllm, ModelRef::Named("m".into()), "m", 2048);
    spec.port = free_port();
    let stop = tokio_util::sync::CancellationToken::new();
    let launcher = Launcher::new(Arc::new(Vllm), &loading, spec, dir.path().join("v.log"), options())
        .registered(&registry, "m", Vec::new())
        .stopped_by(stop.clone());
    let mut events = launcher.subscribe();
    let start = tokio::spawn(launcher.start());
    let pid = loop {
        if let EngineEvent::Starting { pid, .. } = events.recv().await.unwrap() {
            break pid;
        }
    };
    assert_eq!(registry.read(EngineKind::Vllm).unwrap().unwrap().status, EngineStatus::Starting);
    stop.cancel();
    let err = tokio::time::timeout(Duration::from_secs(20), start).await.unwrap().unwrap().unwrap_err();
    assert!(err.to_string().contains("stopped during startup"), "{err}");
    assert!(!fixbox_engine::is_alive(pid), "the loading engine (pid {pid}) still runs");
    assert_eq!(events.recv().await.unwrap(), EngineEvent::Stopped);
    assert!(registry.read(EngineKind::Vllm).unwrap().is_none(), "a stopped start left its state file");
}

#[tokio::test]
async fn a_crashing_engine_is_restarted_with_backoff_until_the_supervisor_gives_up() {
    let dir = tempfile::tempdir().unwrap();
    // Healthy for a moment, then it dies: every restart does the same.
    let (binary, _) = stand_in(dir.path(), "vllm-real", "");
    let flaky = dir.path().join("vllm");
    write_executable(&flaky, &format!("#!/bin/sh\n'{}' \"$@\" &\nsleep 1\nkill $!\nexit 3\n", binary.display()));
    let mut spec = LaunchSpec::new(EngineKind::Vllm, ModelRef::Named("m".into()), "m", 2048);
    spec.port = free_port();
    let options = SuperviseOptions {
        first_backoff: Duration::from_millis(100),
        max_restarts: 2,
        liveness_interval: Duration::from_millis(200),
        ..options()
    };
    let mut engine =
        fixbox_engine::start(Arc::new(Vllm), &flaky, spec, dir.path().join("v.log"), options).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), engine.wait()).await.unwrap();
    let kinds: Vec<String> = engine
        .history()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap()["event"].as_str().unwrap().to_string())
        .collect();
    let restarts: Vec<u64> = engine
        .history()
        .iter()
        .filter_map(|e| match e {
            EngineEvent::Restarting { wait_ms, .. } => Some(*wait_ms),
            _ => None,
        })
        .collect();
    assert_eq!(restarts, [100, 200], "doubling backoff: {kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("gave-up"), "{kinds:?}");
    assert!(kinds.iter().filter(|k| *k == "exited").count() >= 3, "{kinds:?}");
}

#[tokio::test]
async fn the_ollama_client_reads_recorded_responses() {
    let server = Loopback::start(Mode::Normal).await;
    let fixture = |name: &str| Arc::new(std::fs::read(Path::new("tests/fixtures/ollama").join(name)).unwrap());
    server.route("/api/version", fixture("version.json"));
    server.route("/api/tags", fixture("tags.json"));
    server.route("/api/pull", fixture("pull.ndjson"));
    let client = OllamaClient::new(&server.base);
    assert_eq!(client.version().await.unwrap(), "0.5.1");
    let models = client.models().await.unwrap();
    let names: Vec<_> = models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["deepseek-r1:latest", "llama3.2:latest"]);
    assert_eq!(models[0].details.quantization_level, "Q4_K_M");
    assert_eq!(models[1].size, 2_019_393_189);

    let (tx, mut rx) = mpsc::unbounded_channel();
    client.pull("llama3.2", &tx).await.unwrap();
    drop(tx);
    let mut statuses = Vec::new();
    while let Some(update) = rx.recv().await {
        statuses.push(update);
    }
    assert_eq!(statuses.first().unwrap().status, "pulling manifest");
    assert_eq!(statuses.last().unwrap().status, "success");
    assert!(statuses.iter().any(|s| s.total == Some(2_019_377_376) && s.completed.is_some()));

    // An error in the stream ends the pull with Ollama's words.
    let failing = Loopback::start(Mode::Normal).await;
    let body = "{\"status\":\"pulling manifest\"}\n{\"error\":\"pull model manifest: file does not exist\"}\n";
    failing.route("/api/pull", Arc::new(body.as_bytes().to_vec()));
    let (tx, _rx) = mpsc::unbounded_channel();
    let err = OllamaClient::new(&failing.base).pull("nope", &tx).await.unwrap_err().to_string();
    assert_eq!(err, "Ollama could not pull nope: pull model manifest: file does not exist");
}

/// An Ollama the user runs (recorded answers): found at the address `OLLAMA_HOST` gives, its coder
/// model chosen with the catalog's context; nothing is found where no Ollama answers.
#[tokio::test]
async fn an_ollama_the_user_runs_is_found_with_its_coder_model() {
    let server = Loopback::start(Mode::Normal).await;
    let fixture = |name: &str| Arc::new(std::fs::read(Path::new("tests/fixtures/ollama").join(name)).unwrap());
    server.route("/api/version", fixture("version.json"));
    server.route("/api/tags", fixture("tags-with-coder.json"));
    let address = server.base.trim_start_matches("http://").to_string();
    let url = fixbox_engine::ollama_url(Some(&address));
    let found = LocalOllama::find(&url).await.expect("the stand-in answers as Ollama");
    assert_eq!(found.version, "0.5.1");
    assert_eq!(found.models, ["deepseek-r1:latest", "llama3.2:latest", "qwen2.5-coder:7b"]);
    let coder = found.coder().expect("a coder model");
    assert_eq!(
        (coder.kind, coder.model.as_str(), coder.context),
        (EngineKind::Ollama, "qwen2.5-coder:7b", Some(16_384))
    );
    assert_eq!(coder.url, url);

    // The recorded listing without a coder: found, but nothing to fix with.
    let plain = Loopback::start(Mode::Normal).await;
    plain.route("/api/version", fixture("version.json"));
    plain.route("/api/tags", fixture("tags.json"));
    assert_eq!(LocalOllama::find(&plain.base).await.unwrap().coder(), None);
    // Nothing listening: nothing found, quickly.
    let closed = format!("http://127.0.0.1:{}", free_port());
    assert_eq!(LocalOllama::find(&closed).await, None);
}

#[tokio::test]
async fn the_vllm_client_reads_recorded_responses() {
    let server = Loopback::start(Mode::Normal).await;
    let fixture = |name: &str| Arc::new(std::fs::read(Path::new("tests/fixtures/vllm").join(name)).unwrap());
    server.route("/v1/models", fixture("models.json"));
    server.route("/health", fixture("health.txt"));
    let key = Secret::new("k-123");
    let client = VllmClient::new(&server.base, Some(key));
    assert!(client.healthy().await);
    let models = client.models().await.unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].id, "Qwen/Qwen2.5-Coder-7B-Instruct");
    assert_eq!(models[0].max_model_len, Some(32768));
    let heads = server.heads.lock().unwrap().clone();
    assert!(
        heads.iter().any(|h| h.starts_with("GET /v1/models") && h.contains("authorization: Bearer k-123")),
        "{heads:?}"
    );

    let nothing = VllmClient::new(format!("http://127.0.0.1:{}", free_port()), None);
    assert!(!nothing.healthy().await);
    let err = nothing.models().await.unwrap_err().to_string();
    assert!(err.contains("is the engine running"), "{err}");
}
