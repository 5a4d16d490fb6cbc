//! The HTTP side every provider shares: one POST, its error answers classified (with the key redacted
//! from them), and the streamed body framed into lines and parsed into [`Chunk`]s under the timeouts.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use fixbox_secret::Secret;
use futures::StreamExt;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::chat::Chunk;
use crate::client::{ChunkStream, Timeouts};
use crate::error::{LlmError, from_status};
use crate::sse::Lines;

/// An HTTP client for model servers, shared by every client with the same connect timeout: building one
/// loads the system's root certificates, and a shared one shares its connection pool. It first makes
/// sure the process has its one TLS crypto provider (ring, as in `fixbox_models::http_client_builder`),
/// without which reqwest cannot build.
pub(crate) fn client(timeouts: &Timeouts) -> reqwest::Client {
    static CLIENTS: Mutex<BTreeMap<Duration, reqwest::Client>> = Mutex::new(BTreeMap::new());
    let mut clients = CLIENTS.lock().unwrap_or_else(PoisonError::into_inner);
    clients
        .entry(timeouts.connect)
        .or_insert_with(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let builder =
                reqwest::Client::builder().connect_timeout(timeouts.connect).pool_idle_timeout(Duration::from_secs(30));
            // Building fails only when TLS cannot be set up; the default client then reports it on first use.
            builder.build().unwrap_or_default()
        })
        .clone()
}

/// A client of one model on one server, speaking API `A` ([`OpenAiApi`](crate::OpenAiApi) or
/// [`OllamaApi`](crate::OllamaApi)). What every client is configured with (its name, key and timeouts)
/// is set here, once for all of them.
#[derive(Debug, Clone)]
pub struct HttpClient<A> {
    pub(crate) http: reqwest::Client,
    pub(crate) endpoint: Endpoint,
    pub(crate) timeouts: Timeouts,
    pub(crate) api: A,
}

impl<A> HttpClient<A> {
    /// A client of `model` whose chat requests go to `url`; it is named after the URL's host until
    /// [`named`](Self::named).
    pub(crate) fn with_api(url: String, model: String, api: A) -> Self {
        let timeouts = Timeouts::default();
        let endpoint = Endpoint { provider: host_of(&url), model, url, key: None };
        Self { http: client(&timeouts), endpoint, timeouts, api }
    }

    /// Names the server in errors and records (a route's name).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.endpoint.provider = name.into();
        self
    }

    /// The bearer token it sends: a cloud API's key, an engine's, or a proxy's in front of Ollama.
    pub fn with_key(mut self, key: Option<Secret>) -> Self {
        self.endpoint.key = key;
        self
    }

    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.http = client(&timeouts);
        self.timeouts = timeouts;
        self
    }

    /// POSTs `body` (the API's request, as JSON) and streams the answer as `parser` reads it.
    pub(crate) fn post_stream<P: StreamParser>(&self, body: &impl serde::Serialize, parser: P) -> ChunkStream {
        match serde_json::to_string(body) {
            Ok(body) => post_stream(self.http.clone(), self.endpoint.clone(), body, self.timeouts, parser),
            Err(err) => {
                let err = LlmError::Protocol {
                    provider: self.endpoint.provider.clone(),
                    reason: format!("the request cannot be written as JSON: {err}"),
                };
                Box::pin(futures::stream::once(async move { Err(err) }))
            }
        }
    }

    /// Whether the server answers a GET of `url` (see [`answers`]).
    pub(crate) fn answers_at(&self, url: String) -> futures::future::BoxFuture<'static, bool> {
        let (http, timeouts) = (self.http.clone(), self.timeouts);
        Box::pin(async move { answers(&http, &url, &timeouts).await })
    }
}

/// The host (and port) of `url`: what names a server until it is given a name.
pub(crate) fn host_of(url: &str) -> String {
    url.split("://").nth(1).and_then(|rest| rest.split('/').next()).unwrap_or(url).to_string()
}

/// Where a request goes, and as whom.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// Names the server in errors: the route's name, or the URL's host.
    pub provider: String,
    pub model: String,
    pub url: String,
    pub key: Option<Secret>,
}

impl Endpoint {
    /// `text` with the API key replaced by `***`, for anything that came back from the server.
    pub(crate) fn redact(&self, text: &str) -> String {
        match &self.key {
            Some(key) if !key.expose().is_empty() => text.replace(key.expose(), "***"),
            _ => text.to_string(),
        }
    }
}

/// How a provider's stream is framed and read.
pub(crate) trait StreamParser: Send + 'static {
    /// Server-sent events (`data:` lines) rather than one JSON object per line.
    const SSE: bool;

    /// The chunks one payload holds; an error the server reports in the stream is an `Err`.
    fn payload(&mut self, endpoint: &Endpoint, payload: &str) -> Result<Vec<Chunk>, LlmError>;

    /// The stream ended: its [`Chunk::Done`] if the answer was complete.
    fn end(&mut self) -> Option<Chunk>;
}

/// Whether the server answers a GET of `url` in the connect timeout: any status counts but 503, which
/// llama-server gives while it loads its model.
async fn answers(http: &reqwest::Client, url: &str, timeouts: &Timeouts) -> bool {
    let answer = http.get(url).timeout(timeouts.connect).send().await;
    answer.is_ok_and(|response| response.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE)
}

/// The longest line of a stream kept while waiting for its end: one event is a few hundred bytes.
const MAX_LINE_BYTES: usize = 1 << 20;

/// POSTs `body` to the endpoint and streams the parsed answer.
fn post_stream<P: StreamParser>(
    http: reqwest::Client,
    endpoint: Endpoint,
    body: String,
    timeouts: Timeouts,
    mut parser: P,
) -> ChunkStream {
    Box::pin(async_stream::try_stream! {
        let mut request = http.post(&endpoint.url).header("content-type", "application/json").body(body);
        if let Some(key) = &endpoint.key {
            request = request.bearer_auth(key.expose());
        }
        let response = match tokio::time::timeout(timeouts.first_token, request.send()).await {
            Err(_) => Err(timeout(&endpoint, "waiting for the answer to start", timeouts.first_token))?,
            Ok(Err(err)) => Err(unreachable(&endpoint, &err))?,
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if !status.is_success() {
            let after = retry_after(response.headers(), SystemTime::now());
            let body = tokio::time::timeout(timeouts.idle, response.text()).await.ok().and_then(Result::ok);
            let body = endpoint.redact(&body.unwrap_or_default());
            Err::<(), _>(from_status(&endpoint.provider, &endpoint.model, status.as_u16(), after, &body))?;
            return;
        }

        let mut body = response.bytes_stream();
        let mut lines = Lines::default();
        let mut deltas = 0u64;
        // The waits count from the last piece of text, not the last byte: a server stuck behind its
        // keep-alive timer sends comments forever.
        let mut since = tokio::time::Instant::now();
        loop {
            let wait = if deltas == 0 { timeouts.first_token } else { timeouts.idle };
            let bytes = match tokio::time::timeout_at(since + wait, body.next()).await {
                Err(_) if deltas == 0 => Err(timeout(&endpoint, "waiting for the first token", wait))?,
                Err(_) => Err(broken(&endpoint, deltas, format!("no text arrived for {}s", wait.as_secs_f32())))?,
                Ok(Some(Err(err))) => Err(broken(&endpoint, deltas, endpoint.redact(&err.to_string())))?,
                Ok(Some(Ok(bytes))) => bytes,
                Ok(None) => {
                    let rest = lines.rest();
                    for chunk in parse(&mut parser, &endpoint, rest.as_deref())? {
                        yield chunk;
                    }
                    match parser.end() {
                        Some(done) => {
                            yield done;
                            return;
                        }
                        None => Err(broken(&endpoint, deltas, "the connection closed before the answer's end".into()))?,
                    }
                    return;
                }
            };
            let complete = lines.push(&bytes);
            if lines.pending() > MAX_LINE_BYTES {
                Err(broken(&endpoint, deltas, format!("a line of over {} KiB without its end", MAX_LINE_BYTES >> 10)))?;
            }
            for line in complete {
                for chunk in parse(&mut parser, &endpoint, Some(&line))? {
                    let done = matches!(chunk, Chunk::Done(_));
                    if !done {
                        deltas += 1;
                        since = tokio::time::Instant::now();
                    }
                    yield chunk;
                    if done {
                        return;
                    }
                }
            }
        }
    })
}

fn parse<P: StreamParser>(parser: &mut P, endpoint: &Endpoint, line: Option<&str>) -> Result<Vec<Chunk>, LlmError> {
    let Some(line) = line else { return Ok(Vec::new()) };
    let payload = if P::SSE { crate::sse::sse_data(line) } else { Some(line) };
    match payload {
        Some(payload) if !payload.trim().is_empty() => parser.payload(endpoint, payload.trim()),
        _ => Ok(Vec::new()),
    }
}

fn timeout(endpoint: &Endpoint, stage: &'static str, waited: Duration) -> LlmError {
    LlmError::Timeout { provider: endpoint.provider.clone(), stage, waited }
}

fn broken(endpoint: &Endpoint, deltas: u64, reason: String) -> LlmError {
    LlmError::StreamBroken { provider: endpoint.provider.clone(), deltas, reason }
}

pub(crate) fn unreachable(endpoint: &Endpoint, err: &reqwest::Error) -> LlmError {
    // reqwest's Display stops at "error sending request"; the cause (refused, reset, DNS) is below it.
    let mut reason = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        reason = format!("{reason}: {cause}");
        source = cause.source();
    }
    LlmError::Connection {
        provider: endpoint.provider.clone(),
        url: endpoint.url.clone(),
        reason: endpoint.redact(&reason),
    }
}

/// `Retry-After` as seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, v.parse().unwrap());
            h
        };
        assert_eq!(retry_after(&headers("2"), now), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&headers("0.5"), now), Some(Duration::from_millis(500)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(retry_after(&headers(&later), now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(retry_after(&headers(&past), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn the_key_is_redacted_from_what_the_server_says() {
        let endpoint = Endpoint {
            provider: "cloud".into(),
            model: "m".into(),
            url: "http://x".into(),
            key: Some(Secret::new("sk-live-abcdef123456")),
        };
        assert_eq!(
            endpoint.redact("Incorrect API key provided: sk-live-abcdef123456."),
            "Incorrect API key provided: ***."
        );
    }
}
