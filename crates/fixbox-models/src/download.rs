//! One file over HTTP: resumed where a previous attempt stopped (HTTP Range), retried when the
//! connection drops or the server asks to slow down (429/503), verified against its SHA-256, and moved
//! into place only when whole and correct. Progress goes out as events; a cancel keeps what arrived.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE, RETRY_AFTER};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::catalog::SourceKind;

/// A file to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub url: String,
    /// Where the finished file goes; `<dest>.part` holds it while it arrives.
    pub dest: PathBuf,
    /// Lowercase hex SHA-256 the finished file must have.
    pub sha256: String,
    /// Sent as `Authorization: Bearer …` (dropped by the client on a redirect to another host).
    pub bearer: Option<Token>,
}

impl Download {
    pub fn new(url: impl Into<String>, dest: impl Into<PathBuf>, sha256: impl Into<String>) -> Self {
        Self { url: url.into(), dest: dest.into(), sha256: sha256.into(), bearer: None }
    }
}

/// What a download is doing, for a progress bar.
#[derive(Debug, Clone, PartialEq)]
pub enum DownloadEvent {
    /// Bytes are coming; `resumed_from` bytes were already there from an earlier attempt.
    Started {
        total: Option<u64>,
        resumed_from: u64,
    },
    Progress {
        done: u64,
        total: Option<u64>,
        bytes_per_second: f64,
        eta: Option<Duration>,
    },
    /// A retry after `wait`, and why (e.g. "the server answered 429 Too Many Requests").
    Retrying {
        attempt: u32,
        wait: Duration,
        reason: String,
    },
    /// Trying this source (a pull tries a model's sources in order).
    Source {
        source: SourceKind,
    },
    /// This source failed, and why; the next one is tried.
    SourceFailed {
        source: SourceKind,
        reason: String,
    },
    /// All bytes are there; checking the SHA-256.
    Verifying,
    Finished {
        path: PathBuf,
        bytes: u64,
    },
}

/// How many times and how patiently to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// The first wait; each further one doubles, up to `max_wait`. A server's `Retry-After` wins.
    pub first_wait: Duration,
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 8, first_wait: Duration::from_secs(1), max_wait: Duration::from_secs(60) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{url} answered {status}; check the model's name and version (or the access token for gated models)")]
    Http { url: String, status: StatusCode },
    #[error(
        "could not fetch {url} after {attempts} attempts; last: {last}. Check the connection and try again: what arrived is kept and resumed"
    )]
    GaveUp { url: String, attempts: u32, last: String },
    #[error(
        "the disk is full writing {path}; free at least {needed} more bytes and try again: what arrived is kept and resumed"
    )]
    DiskFull { path: String, needed: String },
    #[error(
        "{path} has SHA-256 {actual}, not the expected {expected}: the file was corrupt or tampered with and was deleted; download it again"
    )]
    ChecksumMismatch { path: String, expected: String, actual: String },
    #[error("the download of {url} was cancelled; what arrived is kept and resumed next time")]
    Cancelled { url: String },
    #[error("cannot write {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{url} did not answer as a Python package index does: {reason}")]
    BadIndex { url: String, reason: String },
    #[error("cannot reach the {source_name} source at {url}: {reason}")]
    Unreachable { source_name: String, url: String, reason: String },
    #[error("the {source_name} source cannot be used: {reason}")]
    BadSource { source_name: String, reason: String },
    #[error(
        "{url} offers {offered} but the catalog pins {pinned}: the file there changed; nothing was downloaded (try another source)"
    )]
    SourceDisagrees { url: String, pinned: String, offered: String },
    #[error("no source could deliver {what}: {failures}")]
    AllSourcesFailed { what: String, failures: String },
    #[error("{path} is not a GGUF model file ({reason}); Fixbox's engines load GGUF files")]
    NotGguf { path: String, reason: String },
    #[error("{path} is not one of the known files of {id}; import it under another name")]
    NotThatModel { path: String, id: String },
    #[error("{name:?} cannot name a model: use letters, digits, dots and dashes")]
    BadName { name: String },
    #[error("{id} is not downloaded")]
    NotInstalled { id: String },
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("{package} {version} has no file {member}; check the model's catalog entry")]
    NotInPackage { package: String, version: String, member: String },
    #[error("cannot set up HTTPS: {0}")]
    Client(String),
}

/// A reqwest client builder for any HTTP client in Fixbox: it first makes sure the process has its one
/// TLS crypto provider (ring, which the Docker client uses too), without which reqwest cannot build.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// Downloads files; cheap to clone, one connection pool.
#[derive(Debug, Clone)]
pub struct Downloader {
    pub(crate) client: reqwest::Client,
    retry: RetryPolicy,
}

/// The progress events are at most this frequent.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

impl Downloader {
    pub fn new(retry: RetryPolicy) -> Result<Self, DownloadError> {
        let client = http_client_builder()
            .user_agent(concat!("fixbox/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| DownloadError::Client(e.to_string()))?;
        Ok(Self { client, retry })
    }

    /// Fetches `download`, resuming a `.part` file left by an earlier attempt, and returns the path
    /// of the verified file.
    pub async fn fetch(
        &self,
        download: &Download,
        events: &mpsc::UnboundedSender<DownloadEvent>,
        cancel: &CancellationToken,
    ) -> Result<PathBuf, DownloadError> {
        let part = part_path(&download.dest);
        if let Some(parent) = download.dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| io_error(parent, e))?;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match self.attempt(download, &part, events, cancel).await {
                Ok(()) => break,
                Err(Attempt::Fatal(err)) => return Err(err),
                Err(Attempt::Retry { reason, after }) => (reason, after),
            };
            let (reason, server_wait) = failure;
            if attempt >= self.retry.max_attempts {
                return Err(DownloadError::GaveUp { url: download.url.clone(), attempts: attempt, last: reason });
            }
            let backoff = self.retry.first_wait.saturating_mul(1 << (attempt - 1).min(16)).min(self.retry.max_wait);
            let wait = server_wait.unwrap_or(backoff);
            tracing::info!(url = %download.url, attempt, ?wait, %reason, "retrying download");
            let _ = events.send(DownloadEvent::Retrying { attempt, wait, reason });
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = cancel.cancelled() => return Err(DownloadError::Cancelled { url: download.url.clone() }),
            }
        }
        verify_and_place(&part, &download.dest, &download.sha256, events).await
    }

    /// One request: from the end of the `.part` file to the end of the resource.
    async fn attempt(
        &self,
        download: &Download,
        part: &Path,
        events: &mpsc::UnboundedSender<DownloadEvent>,
        cancel: &CancellationToken,
    ) -> Result<(), Attempt> {
        let have = tokio::fs::metadata(part).await.map(|m| m.len()).unwrap_or(0);
        let mut request = self.client.get(&download.url);
        if let Some(token) = &download.bearer {
            request = request.header(reqwest::header::AUTHORIZATION, token.bearer());
        }
        if have > 0 {
            request = request.header(RANGE, format!("bytes={have}-"));
        }
        let response = tokio::select! {
            response = request.send() => response.map_err(|e| Attempt::retry(format!("request failed: {}", root_cause(&e))))?,
            () = cancel.cancelled() => return Err(Attempt::Fatal(DownloadError::Cancelled { url: download.url.clone() })),
        };
        let status = response.status();
        let (resume_from, total) = match status {
            StatusCode::PARTIAL_CONTENT => {
                (have, total_from_content_range(&response).or(response.content_length().map(|n| n + have)))
            }
            StatusCode::OK => (0, response.content_length()),
            // The part file already holds everything the server has.
            StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => return Ok(()),
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::BAD_GATEWAY
            | StatusCode::GATEWAY_TIMEOUT => {
                let after = retry_after(&response);
                return Err(Attempt::Retry { reason: format!("the server answered {status}"), after });
            }
            _ => return Err(Attempt::Fatal(DownloadError::Http { url: download.url.clone(), status })),
        };
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(resume_from > 0)
            .truncate(resume_from == 0)
            .open(part)
            .await
            .map_err(|e| Attempt::Fatal(io_error(part, e)))?;
        let _ = events.send(DownloadEvent::Started { total, resumed_from: resume_from });

        let started = Instant::now();
        let mut done = resume_from;
        let mut last_event = Instant::now();
        let mut body = response.bytes_stream();
        loop {
            let chunk = tokio::select! {
                chunk = body.next() => chunk,
                () = cancel.cancelled() => {
                    let _ = file.flush().await;
                    return Err(Attempt::Fatal(DownloadError::Cancelled { url: download.url.clone() }));
                }
            };
            let Some(chunk) = chunk else { break };
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = file.flush().await;
                    return Err(Attempt::retry(format!(
                        "the connection dropped after {done} bytes: {}",
                        root_cause(&e)
                    )));
                }
            };
            if let Err(e) = file.write_all(&chunk).await {
                let _ = file.flush().await;
                return Err(Attempt::Fatal(write_error(part, e, total.map(|t| t.saturating_sub(done)))));
            }
            done += chunk.len() as u64;
            if last_event.elapsed() >= PROGRESS_EVERY {
                last_event = Instant::now();
                let _ = events.send(progress(done, resume_from, total, started.elapsed()));
            }
        }
        file.flush().await.map_err(|e| Attempt::Fatal(write_error(part, e, None)))?;
        let _ = events.send(progress(done, resume_from, total, started.elapsed()));
        match total {
            Some(total) if done < total => Err(Attempt::retry(format!("the body ended after {done} of {total} bytes"))),
            _ => Ok(()),
        }
    }
}

enum Attempt {
    Retry { reason: String, after: Option<Duration> },
    Fatal(DownloadError),
}

impl Attempt {
    fn retry(reason: String) -> Self {
        Self::Retry { reason, after: None }
    }
}

/// Checks the SHA-256 of `part` and moves it to `dest`; a mismatch deletes it.
pub(crate) async fn verify_and_place(
    part: &Path,
    dest: &Path,
    sha256: &str,
    events: &mpsc::UnboundedSender<DownloadEvent>,
) -> Result<PathBuf, DownloadError> {
    let _ = events.send(DownloadEvent::Verifying);
    let actual = sha256_of(part).await?;
    if actual != sha256.to_ascii_lowercase() {
        let _ = tokio::fs::remove_file(part).await;
        return Err(DownloadError::ChecksumMismatch {
            path: dest.display().to_string(),
            expected: sha256.to_string(),
            actual,
        });
    }
    tokio::fs::rename(part, dest).await.map_err(|e| io_error(dest, e))?;
    let bytes = tokio::fs::metadata(dest).await.map_err(|e| io_error(dest, e))?.len();
    let _ = events.send(DownloadEvent::Finished { path: dest.to_path_buf(), bytes });
    Ok(dest.to_path_buf())
}

pub(crate) fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".part");
    dest.with_file_name(name)
}

fn progress(done: u64, resumed_from: u64, total: Option<u64>, elapsed: Duration) -> DownloadEvent {
    let bytes_per_second = (done - resumed_from) as f64 / elapsed.as_secs_f64().max(1e-3);
    let eta = total
        .filter(|_| bytes_per_second > 0.0)
        .map(|total| Duration::from_secs_f64(total.saturating_sub(done) as f64 / bytes_per_second));
    DownloadEvent::Progress { done, total, bytes_per_second, eta }
}

/// The full size from `Content-Range: bytes 100-199/1000`.
fn total_from_content_range(response: &reqwest::Response) -> Option<u64> {
    response.headers().get(CONTENT_RANGE)?.to_str().ok()?.rsplit('/').next()?.parse().ok()
}

/// `Retry-After` in seconds (the HTTP-date form is rare for downloads and falls back to backoff).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let seconds: u64 = response.headers().get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(600)))
}

pub(crate) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// An access token (e.g. for gated Hugging Face models). Never printed: `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub(crate) fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

pub(crate) fn io_error(path: &Path, source: std::io::Error) -> DownloadError {
    DownloadError::Io { path: path.display().to_string(), source }
}

pub(crate) fn write_error(path: &Path, source: std::io::Error, remaining: Option<u64>) -> DownloadError {
    if source.kind() == std::io::ErrorKind::StorageFull {
        let needed = remaining.map_or_else(|| "some".to_string(), |n| n.to_string());
        return DownloadError::DiskFull { path: path.display().to_string(), needed };
    }
    io_error(path, source)
}

/// The SHA-256 of a file, read in a blocking thread (a model is gigabytes).
pub(crate) async fn sha256_of(path: &Path) -> Result<String, DownloadError> {
    let owned = path.to_path_buf();
    let digest = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut file = std::fs::File::open(&owned)?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher)?;
        Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
    })
    .await
    .map_err(|e| io_error(path, std::io::Error::other(e.to_string())))?;
    digest.map_err(|e| io_error(path, e))
}
