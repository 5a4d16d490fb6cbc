//! One call down a task's routes: each route is tried, retried while retrying can help, and left for
//! the next with the reason recorded; the call that answers is measured and priced, and the session's
//! budget is checked before every try.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::budget::Meter;
use crate::chat::{ChatRequest, Chunk};
use crate::client::ModelClient;
use crate::error::{Attempt, ErrorKind, LlmError};
use crate::metrics::Metrics;
use crate::ollama::OllamaClient;
use crate::openai::{Dialect, OpenAiClient};
use crate::price::{Price, PriceTable};
use crate::record::CallRecord;
use crate::retry::RetryPolicy;
use crate::route::{KeySource, ProviderKind, RoutesConfig};
use crate::usage::{ServerTimings, TokenUsage, UsageSource, estimate_tokens};

/// One provider as a route sees it.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub client: Arc<dyn ModelClient>,
    pub context_window: Option<u32>,
    pub local: bool,
    /// `None`: not in the price table, so its cost is unknown (and counts as 0 against a budget).
    pub price: Option<Price>,
    /// For a local route: the cloud price its equivalent cost is computed with.
    pub equivalent: Option<Price>,
}

impl Route {
    /// A local route, free, with no context limit known.
    pub fn local(name: impl Into<String>, client: Arc<dyn ModelClient>) -> Self {
        Self {
            name: name.into(),
            client,
            context_window: None,
            local: true,
            price: Some(Price::FREE),
            equivalent: None,
        }
    }
}

/// What a routed call streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CallEvent {
    Delta {
        text: String,
    },
    /// The text streamed since the last `Discard` (or the start) is void: that try broke off, and what
    /// follows starts the answer over.
    Discard {
        route: String,
        reason: String,
    },
    /// A try failed; a retry or the next route follows.
    Attempt(Attempt),
    Done(Box<CallRecord>),
}

/// A routed call's events; the last item is `Done` or an error. Dropping it cancels the call.
pub type CallStream = Pin<Box<dyn Stream<Item = Result<CallEvent, LlmError>> + Send>>;

#[derive(Debug, Clone)]
pub struct Router {
    routes: BTreeMap<String, Vec<Route>>,
    retry: RetryPolicy,
    metrics: Arc<Metrics>,
}

impl Router {
    pub fn new(retry: RetryPolicy, metrics: Arc<Metrics>) -> Self {
        Self { routes: BTreeMap::new(), retry, metrics }
    }

    /// Sets `task`'s routes, first to last resort.
    pub fn with_routes(mut self, task: impl Into<String>, routes: Vec<Route>) -> Self {
        self.routes.insert(task.into(), routes);
        self
    }

    /// The routes the settings describe, each client holding its key from `keys`.
    pub fn from_config(
        config: &RoutesConfig,
        prices: &PriceTable,
        keys: &dyn KeySource,
        metrics: Arc<Metrics>,
    ) -> Result<Self, LlmError> {
        config.validate()?;
        let timeouts = config.timeouts.timeouts()?;
        let mut built = BTreeMap::new();
        for provider in &config.providers {
            let key = match &provider.api_key {
                _ if provider.key.is_some() => provider.key.clone(),
                Some(name) => Some(
                    keys.key(name)?
                        .ok_or_else(|| LlmError::Key { name: name.clone(), reason: "there is no such entry".into() })?,
                ),
                None => None,
            };
            let client: Arc<dyn ModelClient> = match provider.kind {
                ProviderKind::Openai | ProviderKind::Mistral => {
                    let dialect =
                        if provider.kind == ProviderKind::Mistral { Dialect::Mistral } else { Dialect::OpenAi };
                    Arc::new(
                        OpenAiClient::new(&provider.base_url, &provider.model)
                            .named(&provider.name)
                            .with_key(key)
                            .with_timeouts(timeouts)
                            .with_dialect(dialect),
                    )
                }
                ProviderKind::Ollama => Arc::new(
                    OllamaClient::new(&provider.base_url, &provider.model)
                        .named(&provider.name)
                        .with_key(key)
                        .with_timeouts(timeouts)
                        .with_context_window(provider.context_window),
                ),
            };
            let local = provider.is_local();
            let listed = prices.price(provider.price.as_deref().unwrap_or(&provider.model));
            let route = Route {
                name: provider.name.clone(),
                client,
                context_window: provider.context_window,
                local,
                price: if local { Some(Price::FREE) } else { listed },
                equivalent: local.then(|| listed.unwrap_or_else(|| prices.local_equivalent())),
            };
            built.insert(provider.name.clone(), route);
        }
        let mut router = Self::new(config.retry.into(), metrics);
        for (task, names) in &config.routes {
            let routes = names.iter().filter_map(|name| built.get(name).cloned()).collect();
            router = router.with_routes(task.clone(), routes);
        }
        Ok(router)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The tasks that have routes of their own (`default`, `fix`, …), in name order.
    pub fn tasks(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }

    /// `task`'s routes, or `default`'s.
    pub fn routes(&self, task: &str) -> Result<&[Route], LlmError> {
        self.routes
            .get(task)
            .or_else(|| self.routes.get("default"))
            .map(Vec::as_slice)
            .ok_or_else(|| LlmError::NoRoute(task.to_string()))
    }

    /// Whether any of `task`'s routes answers at all (see [`ModelClient::reachable`]).
    pub async fn reachable(&self, task: &str) -> bool {
        let Ok(routes) = self.routes(task) else { return false };
        for route in routes {
            if route.client.reachable().await {
                return true;
            }
        }
        false
    }

    /// Streams `request` through `task`'s routes, counting it against `meter`.
    pub fn call(&self, task: &str, request: ChatRequest, meter: Arc<Meter>) -> CallStream {
        let routes = self.routes(task).map(<[Route]>::to_vec);
        let (retry, metrics, task) = (self.retry, self.metrics.clone(), task.to_string());
        Box::pin(async_stream::try_stream! {
            let routes = routes?;
            let prompt = request.prompt_text();
            let prompt_estimate = estimate_tokens(&prompt);
            let max_tokens = request.sampling.max_tokens.map(u64::from);
            let mut attempts: Vec<Attempt> = Vec::new();
            for route in &routes {
                let model = route.client.model().to_string();
                if let Some(window) = route.context_window
                    && prompt_estimate + max_tokens.unwrap_or(0) > u64::from(window)
                {
                    let attempt = Attempt {
                        route: route.name.clone(),
                        model: model.clone(),
                        kind: ErrorKind::ContextTooLong,
                        message: format!(
                            "about {prompt_estimate} prompt tokens and {} to generate do not fit its {window}-token context",
                            max_tokens.unwrap_or(0)
                        ),
                        retry_in_ms: None,
                    };
                    attempts.push(attempt.clone());
                    yield CallEvent::Attempt(attempt);
                    continue;
                }
                let mut retries = 0;
                loop {
                    // Worst case: code runs about 3 characters a token, and the whole allowance is used.
                    let worst_tokens = (prompt.chars().count() as u64).div_ceil(3)
                        + max_tokens.or(route.context_window.map(u64::from)).unwrap_or(4096);
                    let worst_cost = route.price.map_or(0.0, |p| {
                        p.cost(&TokenUsage { prompt: worst_tokens, completion: max_tokens.unwrap_or(0), ..TokenUsage::default() })
                    });
                    meter.check(worst_tokens, worst_cost).map_err(LlmError::Budget)?;

                    let started = Instant::now();
                    let mut stream = route.client.stream(&request);
                    let mut text = String::new();
                    let mut first = None;
                    let outcome = loop {
                        match stream.next().await {
                            Some(Ok(Chunk::Delta(delta))) => {
                                first.get_or_insert_with(|| started.elapsed());
                                text.push_str(&delta);
                                yield CallEvent::Delta { text: delta };
                            }
                            Some(Ok(Chunk::Done(finish))) => break Ok(finish),
                            Some(Err(err)) => break Err(err),
                            None => break Err(LlmError::StreamBroken {
                                provider: route.name.clone(),
                                deltas: 0,
                                reason: "the stream ended without its end marker".into(),
                            }),
                        }
                    };
                    drop(stream);
                    let latency = started.elapsed();
                    match outcome {
                        Ok(finish) => {
                            let (usage, usage_source) = resolve_usage(route, &prompt, &text, finish.usage, finish.timings).await;
                            let generating = latency.saturating_sub(first.unwrap_or_default());
                            let tokens_per_second = finish.timings.and_then(|t| t.tokens_per_second()).or_else(|| {
                                (usage.completion > 1 && !generating.is_zero())
                                    .then(|| (usage.completion - 1) as f64 / generating.as_secs_f64())
                            });
                            let record = CallRecord {
                                task: task.clone(),
                                route: route.name.clone(),
                                model: model.clone(),
                                local: route.local,
                                text,
                                finish_reason: finish.reason,
                                usage,
                                usage_source,
                                ttft_ms: first.map(ms),
                                latency_ms: ms(latency),
                                tokens_per_second,
                                context_window: route.context_window,
                                cost_usd: route.price.map(|p| p.cost(&usage)),
                                equivalent_cost_usd: route.equivalent.map(|p| p.cost(&usage)),
                                timings: finish.timings,
                                attempts: std::mem::take(&mut attempts),
                            };
                            meter.record(&usage, record.cost_usd.unwrap_or(0.0), record.equivalent_cost_usd.unwrap_or(0.0));
                            metrics.record_call(&record);
                            tracing::debug!(route = %record.route, model = %record.model, prompt = usage.prompt, completion = usage.completion, latency_ms = record.latency_ms, "call answered");
                            yield CallEvent::Done(Box::new(record));
                            return;
                        }
                        Err(err) => {
                            metrics.record_error(&route.name, &model, err.kind());
                            tracing::warn!(route = %route.name, model = %model, kind = err.kind().as_str(), "call failed: {err}");
                            if !text.is_empty() {
                                yield CallEvent::Discard { route: route.name.clone(), reason: err.to_string() };
                            }
                            retries += 1;
                            let wait = retry.wait(retries, &err);
                            let attempt = Attempt {
                                route: route.name.clone(),
                                model: model.clone(),
                                kind: err.kind(),
                                message: err.to_string(),
                                retry_in_ms: wait.map(|w| w.as_millis() as u64),
                            };
                            attempts.push(attempt.clone());
                            yield CallEvent::Attempt(attempt);
                            match wait {
                                Some(wait) => tokio::time::sleep(wait).await,
                                None => break,
                            }
                        }
                    }
                }
            }
            Err(LlmError::AllRoutesFailed { attempts })?;
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The best token counts to be had: the server's usage (with llama-server's cache count where usage
/// lacks one), else its timings, else the model's tokenizer, else an estimate.
async fn resolve_usage(
    route: &Route,
    prompt: &str,
    text: &str,
    usage: Option<TokenUsage>,
    timings: Option<ServerTimings>,
) -> (TokenUsage, UsageSource) {
    match (usage, timings) {
        (Some(mut usage), timings) => {
            if usage.cache_read == 0 {
                usage.cache_read = timings.map_or(0, |t| t.cache_n);
            }
            (usage, UsageSource::Server)
        }
        (None, Some(timings)) => (timings.usage(), UsageSource::Timings),
        (None, None) => match (route.client.count_tokens(prompt).await, route.client.count_tokens(text).await) {
            (Some(prompt), Some(completion)) => {
                (TokenUsage { prompt, completion, ..TokenUsage::default() }, UsageSource::Tokenizer)
            }
            _ => (
                TokenUsage {
                    prompt: estimate_tokens(prompt),
                    completion: estimate_tokens(text),
                    ..TokenUsage::default()
                },
                UsageSource::Estimate,
            ),
        },
    }
}

/// Reads a routed call to its end: its record, or the error that ended it.
pub async fn finish(mut stream: CallStream) -> Result<CallRecord, LlmError> {
    while let Some(event) = stream.next().await {
        if let CallEvent::Done(record) = event? {
            return Ok(*record);
        }
    }
    Err(LlmError::Protocol { provider: "router".into(), reason: "the call ended without a record".into() })
}
