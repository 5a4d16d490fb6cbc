//! fixbox-llm against a real llama-server serving SmolLM2: streaming with usage and timings, stop
//! sequences, cancellation that frees the slot; and, through a loopback proxy that misbehaves on
//! request, what the router does about cut streams, 429s, 503s and hangs.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fixbox_e2e::faults::{Fault, FaultProxy};
use fixbox_llm::{
    Budget, CallEvent, CallRecord, ChatRequest, Chunk, ErrorKind, LlmError, Message, Meter, Metrics, ModelClient,
    OpenAiClient, PriceTable, RetryPolicy, Route, Router, Timeouts, UsageSource,
};
use futures::StreamExt;

fn request(prompt: &str, max_tokens: u32) -> ChatRequest {
    let mut request = ChatRequest::new(vec![Message::user(prompt)]);
    request.sampling.temperature = Some(0.0);
    request.sampling.max_tokens = Some(max_tokens);
    request
}

/// Every event of a routed call, and its record.
async fn run(router: &Router, request: ChatRequest) -> (Vec<CallEvent>, Result<CallRecord, LlmError>) {
    let mut stream = router.call("default", request, Arc::new(Meter::default()));
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(CallEvent::Done(record)) => return (events, Ok(*record)),
            Ok(event) => events.push(event),
            Err(err) => return (events, Err(err)),
        }
    }
    (events, Err(LlmError::Config("the stream ended without a record".into())))
}

fn local_route(name: &str, client: OpenAiClient) -> Route {
    let mut route = Route::local(name, Arc::new(client));
    route.equivalent = PriceTable::embedded().ok().map(|t| t.local_equivalent());
    route
}

#[tokio::test]
async fn a_local_model_streams_with_usage_honours_stop_sequences_and_frees_its_slot_when_cancelled() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let engine = fixbox_e2e::models::smollm2(4096, 1).await?;
    let client = OpenAiClient::new(&engine.url, "smollm2").named("local");
    let router = Router::new(RetryPolicy::default(), Arc::new(Metrics::default()))
        .with_routes("default", vec![local_route("local", client.clone())]);

    // Streamed, with the server's usage and timings recorded.
    let (events, record) = run(&router, request("Count from 1 to 40, separated by commas.", 48)).await;
    let record = record?;
    let deltas: String = events
        .iter()
        .filter_map(|e| if let CallEvent::Delta { text } = e { Some(text.as_str()) } else { None })
        .collect();
    assert!(events.len() > 5, "the answer came in pieces: {events:?}");
    assert_eq!(deltas, record.text);
    assert_eq!(record.usage_source, UsageSource::Server);
    let timings = record.timings.context("llama-server sends its timings")?;
    assert_eq!(record.usage.completion, timings.predicted_n);
    assert!(record.usage.completion > 0 && record.usage.completion <= 48, "{record:?}");
    assert_eq!(record.usage.prompt, timings.prompt_n + timings.cache_n, "{record:?}");
    assert!(record.ttft_ms.is_some() && record.tokens_per_second.is_some() && record.latency_ms > 0.0);
    assert_eq!(record.cost_usd, Some(0.0));
    assert!(record.equivalent_cost_usd.is_some_and(|c| c > 0.0), "{record:?}");
    // The same prompt again reads it from the slot's cache, and usage says so.
    let (_, again) = run(&router, request("Count from 1 to 40, separated by commas.", 48)).await;
    let again = again?;
    assert_eq!(again.text, record.text, "greedy decoding is repeatable");
    assert!(again.usage.cache_read > 0, "{again:?}");

    // A stop sequence taken from the middle of that answer ends the answer right before it.
    let words: Vec<&str> = record.text.split_whitespace().filter(|w| w.len() >= 2).collect();
    let stop = words[words.len() / 2].to_string();
    let expected = &record.text[..record.text.find(&stop).context("the stop is in the answer")?];
    let mut stopped = request("Count from 1 to 40, separated by commas.", 48);
    stopped.sampling.stop = vec![stop.clone()];
    let (_, stopped) = run(&router, stopped).await;
    let stopped = stopped?;
    assert_eq!(stopped.text, expected, "stop {stop:?}");
    assert_eq!(stopped.finish_reason, fixbox_llm::FinishReason::Stop);

    // Cancel: a generation that would run 1500 tokens (end-of-text ignored) is dropped after a few;
    // the only slot goes idle having generated far fewer, and the next request is served.
    let mut long = request("Write a very long story about a lighthouse keeper.", 1500);
    long.sampling.extra.insert("ignore_eos".into(), true.into());
    let mut stream = client.stream(&long);
    for _ in 0..5 {
        let chunk = stream.next().await.context("the stream ended")??;
        assert!(matches!(chunk, Chunk::Delta(_)), "{chunk:?}");
    }
    drop(stream);
    let http = fixbox_models::http_client_builder().build()?;
    let decoded = loop {
        let slots: serde_json::Value =
            serde_json::from_str(&http.get(format!("{}/slots", engine.url)).send().await?.text().await?)?;
        let slot = &slots[0];
        if slot["is_processing"] == false {
            break slot["next_token"][0]["n_decoded"].as_u64().context("n_decoded")?;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(decoded < 1500, "the slot stopped at {decoded} of 1500 tokens");
    let (_, next) = run(&router, request("Say hi.", 8)).await;
    assert!(next?.usage.completion > 0);
    engine.stop().await;
    Ok(())
}

/// What the router did: (route, kind, retried?) per failed try.
fn tries(record: &CallRecord) -> Vec<(String, ErrorKind, bool)> {
    record.attempts.iter().map(|a| (a.route.clone(), a.kind, a.retry_in_ms.is_some())).collect()
}

#[tokio::test]
async fn faults_between_client_and_server_are_retried_or_fall_back_with_the_reason_recorded() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let engine = fixbox_e2e::models::smollm2(2048, 2).await?;
    let upstream = format!("127.0.0.1:{}", engine.port).parse()?;
    let proxy = FaultProxy::start(upstream, Fault::None).await?;
    // Short waits so the test is quick; the hang is noticed after 4 s of silence.
    let timeouts =
        Timeouts { first_token: Duration::from_secs(4), idle: Duration::from_secs(4), ..Timeouts::default() };
    let flaky = OpenAiClient::new(&proxy.url, "smollm2").named("flaky").with_timeouts(timeouts);
    let direct = OpenAiClient::new(&engine.url, "smollm2").named("direct");
    let retry = RetryPolicy {
        max_retries: 2,
        first_wait: Duration::from_millis(50),
        max_wait: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(5),
    };
    let metrics = Arc::new(Metrics::default());
    let router = Router::new(retry, metrics.clone())
        .with_routes("default", vec![local_route("flaky", flaky.clone()), local_route("direct", direct)]);
    let ask = || request("Name three colours.", 24);

    // 429 with Retry-After: the wait is the server's, then the same route answers.
    proxy.set(Fault::Status { status: 429, retry_after: Some(1), times: 1 });
    let (_, record) = run(&router, ask()).await;
    let record = record?;
    assert_eq!(record.route, "flaky");
    assert_eq!(tries(&record), [("flaky".into(), ErrorKind::RateLimited, true)]);
    assert!(record.attempts[0].retry_in_ms >= Some(1000), "{:?}", record.attempts);
    assert!(record.attempts[0].message.contains("retry after 1s"), "{:?}", record.attempts);

    // A Retry-After beyond what the policy waits for moves on at once.
    proxy.set(Fault::Status { status: 429, retry_after: Some(3600), times: 1 });
    let (_, record) = run(&router, ask()).await;
    let record = record?;
    assert_eq!(record.route, "direct");
    assert_eq!(tries(&record), [("flaky".into(), ErrorKind::RateLimited, false)]);

    // 503 once: retried. 503 always: retried twice, then the next route, each try recorded.
    proxy.set(Fault::Status { status: 503, retry_after: None, times: 1 });
    let record = run(&router, ask()).await.1?;
    assert_eq!((record.route.as_str(), tries(&record)), ("flaky", vec![("flaky".into(), ErrorKind::Server, true)]));
    proxy.set(Fault::Status { status: 503, retry_after: None, times: usize::MAX });
    let before = proxy.requests();
    let record = run(&router, ask()).await.1?;
    assert_eq!(record.route, "direct");
    assert_eq!(
        tries(&record),
        [
            ("flaky".into(), ErrorKind::Server, true),
            ("flaky".into(), ErrorKind::Server, true),
            ("flaky".into(), ErrorKind::Server, false)
        ]
    );
    assert!(record.attempts[0].message.contains("HTTP 503"), "{:?}", record.attempts);
    assert_eq!(proxy.requests() - before, 3);

    // Cut mid-stream: the client reports it (never a short answer); the router discards what was
    // streamed, retries, and falls back; the record's text is the whole answer from the fallback.
    proxy.set(Fault::CutAfter(2500));
    let mut cut = flaky.stream(&ask());
    let mut got = Vec::new();
    while let Some(chunk) = cut.next().await {
        got.push(chunk);
    }
    assert!(got.iter().any(|c| matches!(c, Ok(Chunk::Delta(_)))), "text came before the cut: {got:?}");
    assert!(matches!(got.last(), Some(Err(LlmError::StreamBroken { .. }))), "{:?}", got.last());
    let (events, record) = run(&router, ask()).await;
    let record = record?;
    assert_eq!(record.route, "direct");
    assert!(tries(&record).iter().all(|(route, kind, _)| route == "flaky" && *kind == ErrorKind::StreamBroken));
    assert_eq!(record.attempts.len(), 3);
    let discards = events.iter().filter(|e| matches!(e, CallEvent::Discard { .. })).count();
    assert_eq!(discards, 3, "each broken try's text is void: {events:?}");
    let last_discard = events.iter().rposition(|e| matches!(e, CallEvent::Discard { .. })).unwrap_or(0);
    let after: String = events[last_discard..]
        .iter()
        .filter_map(|e| if let CallEvent::Delta { text } = e { Some(text.as_str()) } else { None })
        .collect();
    assert_eq!(after, record.text);

    // A server that takes the request and never answers: a timeout, retried, then the next route.
    proxy.set(Fault::Hang);
    let record = run(&router, ask()).await.1?;
    assert_eq!(record.route, "direct");
    assert_eq!(record.attempts.iter().map(|a| a.kind).collect::<Vec<_>>(), [ErrorKind::Timeout; 3]);
    assert!(record.attempts[0].message.contains("sent nothing for 4s"), "{:?}", record.attempts);

    // What retrying cannot fix moves on at once: a rejected key.
    proxy.set(Fault::Status { status: 401, retry_after: None, times: 1 });
    let record = run(&router, ask()).await.1?;
    assert_eq!(tries(&record), [("flaky".into(), ErrorKind::Auth, false)]);

    // The budget stops the call before it runs.
    let stingy = Arc::new(Meter::new(Budget { max_tokens: Some(10), ..Budget::default() }));
    let before = proxy.requests();
    let refused = fixbox_llm::finish(router.call("default", ask(), stingy)).await.unwrap_err();
    assert!(matches!(refused, LlmError::Budget(_)), "{refused}");
    assert_eq!(proxy.requests(), before, "no request was sent");

    // Every failure is counted by route and kind.
    let text = metrics.render();
    for line in [
        r#"fixbox_llm_errors_total{provider="flaky",model="smollm2",kind="rate_limited"} 2"#,
        r#"fixbox_llm_errors_total{provider="flaky",model="smollm2",kind="server"} 4"#,
        r#"fixbox_llm_errors_total{provider="flaky",model="smollm2",kind="stream_broken"} 3"#,
        r#"fixbox_llm_errors_total{provider="flaky",model="smollm2",kind="timeout"} 3"#,
        r#"fixbox_llm_calls_total{provider="direct",model="smollm2"} 5"#,
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    engine.stop().await;
    Ok(())
}

/// Every chunk of one direct stream through `client`; the test fails rather than waits past a minute.
async fn chunks(client: &OpenAiClient, request: &ChatRequest) -> Result<Vec<Result<Chunk, LlmError>>> {
    tokio::time::timeout(Duration::from_secs(60), client.stream(request).collect())
        .await
        .context("the stream neither ended nor failed in a minute")
}

#[tokio::test]
async fn a_stream_that_stalls_behind_keep_alives_or_never_ends_a_line_fails_with_the_reason() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let engine = fixbox_e2e::models::smollm2(2048, 1).await?;
    let proxy = FaultProxy::start(format!("127.0.0.1:{}", engine.port).parse()?, Fault::KeepAliveOnly).await?;
    let timeouts =
        Timeouts { first_token: Duration::from_secs(3), idle: Duration::from_secs(2), ..Timeouts::default() };
    let client = OpenAiClient::new(&proxy.url, "smollm2").named("stalling").with_timeouts(timeouts);
    let ask = request("Count from one to twenty in words.", 64);

    // Comments are not text: a stream of nothing but keep-alives never started its answer.
    let got = chunks(&client, &ask).await?;
    assert!(matches!(got.as_slice(), [Err(LlmError::Timeout { stage: "waiting for the first token", .. })]), "{got:?}");

    // Real text, then only keep-alives: broken off, with what had arrived counted.
    proxy.set(Fault::StallAfter { events: 4 });
    let got = chunks(&client, &ask).await?;
    let deltas = got.iter().filter(|c| matches!(c, Ok(Chunk::Delta(_)))).count();
    assert!(deltas >= 1, "{got:?}");
    match got.last() {
        Some(Err(err @ LlmError::StreamBroken { .. })) => {
            assert!(err.to_string().contains("no text arrived for 2s"), "{err}");
        }
        other => panic!("a stalled stream must break off: {other:?}"),
    }

    // A line that never ends is not buffered without limit.
    proxy.set(Fault::EndlessLine);
    let got = chunks(&client, &ask).await?;
    match got.as_slice() {
        [Err(err @ LlmError::StreamBroken { .. })] => assert!(err.to_string().contains("a line of over"), "{err}"),
        other => panic!("an endless line must break the stream: {other:?}"),
    }
    engine.stop().await;
    Ok(())
}

/// An engine started as the CLI and the app start it: on loopback with a fresh key kept in its registry
/// entry (readable by its owner only). A web page that rebinds its own name to 127.0.0.1 has no key and
/// is refused; Fixbox's own route reads the key and is answered.
#[tokio::test]
async fn the_engine_fixbox_starts_answers_its_own_clients_and_not_a_rebinding_web_page() -> Result<()> {
    use fixbox_engine::{EngineKind, LaunchSpec, Launcher, LlamaServer, ModelRef, Registry, SuperviseOptions};
    let _machine = fixbox_e2e::machine_to_myself().await;
    let data = tempfile::tempdir()?;
    let registry = Registry::new(data.path());
    let kind = EngineKind::LlamaServer;
    let model = fixbox_e2e::models::offline_model("smollm2-135m-instruct").await?;
    let mut spec = LaunchSpec::new(kind, ModelRef::File(model), "smollm2", 2048);
    spec.port = fixbox_e2e::free_port()?;
    spec.lock_to_clients(kind);
    let options = SuperviseOptions { startup_timeout: Duration::from_secs(300), ..SuperviseOptions::default() };
    let binary = fixbox_e2e::models::llama_server().await?;
    let engine = Launcher::new(Arc::new(LlamaServer), &binary, spec, registry.log_path(kind), options)
        .registered(&registry, "smollm2", Vec::new())
        .start()
        .await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(registry.state_path(kind))?.permissions().mode() & 0o777;
        ensure!(mode == 0o600, "the registry entry holds the key and is {mode:o}");
    }

    let http = fixbox_models::http_client_builder().no_proxy().build()?;
    let body = serde_json::json!({ "messages": [{ "role": "user", "content": "Say hi." }], "max_tokens": 4 });
    let page = http
        .post(format!("{}/v1/chat/completions", engine.url))
        .header("host", format!("rebind.example:{}", engine.port))
        .header("origin", "http://rebind.example")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    ensure!(page.status() == 401, "a web page got {}", page.status());

    let running = registry.running().into_iter().next().context("the engine is not in the registry")?;
    let router = fixbox_agent::setup::Routes::engine(running).router(Arc::new(Metrics::default()))?;
    let record = fixbox_llm::finish(router.call("fix", request("Say hi.", 4), Arc::new(Meter::default()))).await?;
    ensure!(!record.text.is_empty() && record.attempts.is_empty(), "{record:?}");
    engine.stop().await;
    Ok(())
}

#[tokio::test]
async fn the_answer_grammars_hold_a_real_engine_to_their_shape() -> Result<()> {
    let _machine = fixbox_e2e::machine_to_myself().await;
    let engine = fixbox_e2e::models::smollm2(4096, 1).await?;
    let router = Router::new(RetryPolicy::default(), Arc::new(Metrics::default()))
        .with_routes("default", vec![local_route("local", OpenAiClient::new(&engine.url, "smollm2").named("local"))]);
    let edit = fixbox_patch::EditFormat::SearchReplace.grammar().context("search/replace has a grammar")?;
    let rewrite = fixbox_patch::EditFormat::Rewrite.grammar().context("a rewrite has a grammar")?;
    // A prompt that invites prose: without the grammar this model answers in words.
    for (grammar, shape) in
        [(edit, "\n<<<<<<< SEARCH\n"), (fixbox_agent::REPRODUCTION_GRAMMAR, "```python\n"), (rewrite, "```")]
    {
        let mut asked = request("What is the capital of France? Answer in one sentence.", 120);
        asked.sampling.extra.insert("grammar".into(), grammar.into());
        let (_, record) = run(&router, asked).await;
        let text = record?.text;
        let held = if grammar == rewrite {
            // One fenced block and nothing after it (or cut at the token limit inside it).
            let fences = text.matches(shape).count();
            text.starts_with(shape) && (fences == 1 || (fences == 2 && text.trim_end().ends_with(shape)))
        } else {
            text.contains(shape) || (grammar == edit && text.starts_with("I GIVE UP: "))
        };
        assert!(held, "{shape:?} not in {text:?}");
    }
    Ok(())
}
