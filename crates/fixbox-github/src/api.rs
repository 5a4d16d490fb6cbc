//! GitHub's REST API, typed: the wire types below are the parts of GitHub's documented answers Fixbox
//! reads, and every request goes through one place that turns GitHub's status codes into
//! [`GitHubError`]s and waits out a short rate limit.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fixbox_secret::Secret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{GitHubError, IssueRef};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    pub login: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Label {
    pub name: String,
}

/// Marks an item of the issues API that is a pull request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequestLink {
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    pub state: String,
    pub html_url: String,
    pub user: User,
    #[serde(default)]
    pub labels: Vec<Label>,
    pub comments: u64,
    /// Present when the item is a pull request (the issues API lists both).
    pub pull_request: Option<PullRequestLink>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Comment {
    pub id: u64,
    pub body: Option<String>,
    pub user: User,
    pub html_url: String,
}

/// What the signed-in user may do in a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct Permissions {
    #[serde(default)]
    pub push: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Repository {
    pub full_name: String,
    pub owner: User,
    pub default_branch: String,
    pub clone_url: String,
    pub html_url: String,
    pub private: bool,
    /// KiB, as GitHub counts it.
    pub size: u64,
    /// Absent without a token.
    pub permissions: Option<Permissions>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Branch {
    #[serde(rename = "ref")]
    pub name: String,
    /// `owner:branch`.
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub html_url: String,
    pub title: String,
    pub body: Option<String>,
    #[serde(default)]
    pub draft: bool,
    pub head: Branch,
}

/// A pull request to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewPull<'a> {
    pub title: &'a str,
    pub body: &'a str,
    /// `branch`, or `owner:branch` for a fork's.
    pub head: &'a str,
    pub base: &'a str,
    pub draft: bool,
    /// Whether the base repository's maintainers may push to the branch.
    pub maintainer_can_modify: bool,
}

/// Which open issues to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssueFilter {
    /// Only issues with this label.
    pub label: Option<String>,
    /// Only issues whose title or body contains this text (case-insensitive).
    pub text: Option<String>,
    /// At most this many (GitHub gives 100 a page).
    pub limit: usize,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
}

/// The REST API of github.com (or of a GitHub Enterprise server, or of a loopback stand-in in tests).
#[derive(Clone)]
pub struct GitHub {
    http: reqwest::Client,
    api: String,
    token: Option<Secret>,
    /// The longest rate-limit wait done in place; a longer one is an error that says when to retry.
    max_wait: Duration,
    on_wait: Arc<dyn Fn(&str) + Send + Sync>,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub").field("api", &self.api).field("token", &self.token).finish_non_exhaustive()
    }
}

/// Rate-limit waits done in place for one request, at most.
const MAX_WAITS: u32 = 3;

/// What a request to GitHub may take; a clone or push has its own limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

impl GitHub {
    /// github.com's API.
    pub const API: &'static str = "https://api.github.com";
    /// Where [`GitHub::from_env`] reads another API from (GitHub Enterprise: `https://host/api/v3`).
    pub const API_ENV: &'static str = "FIXBOX_GITHUB_API";

    pub fn new(api: &str, token: Option<Secret>) -> Result<Self, GitHubError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("fixbox/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GitHubError::Network { api: api.to_string(), reason: e.to_string() })?;
        Ok(Self {
            http,
            api: api.trim_end_matches('/').to_string(),
            token,
            max_wait: Duration::from_secs(60),
            on_wait: Arc::new(|_| {}),
        })
    }

    /// The API named by `FIXBOX_GITHUB_API`, else github.com's.
    pub fn from_env(token: Option<Secret>) -> Result<Self, GitHubError> {
        let api = std::env::var(Self::API_ENV).ok().filter(|a| !a.is_empty());
        Self::new(api.as_deref().unwrap_or(Self::API), token)
    }

    /// The API named by `FIXBOX_GITHUB_API`, signed in with `GITHUB_TOKEN` (or `GH_TOKEN`) where set,
    /// as in CI, else with the keychain's `github` token, else anonymous. A keychain that cannot be read
    /// is an error, not a silent anonymous run.
    pub async fn signed_in() -> Result<Self, GitHubError> {
        let from_env =
            ["GITHUB_TOKEN", "GH_TOKEN"].iter().find_map(|n| std::env::var(n).ok().filter(|t| !t.is_empty()));
        let token = match from_env {
            Some(token) => Some(Secret::new(token)),
            None => tokio::task::spawn_blocking(|| fixbox_store::Keychain.get("github"))
                .await
                .map_err(|e| GitHubError::Keychain(e.to_string()))?
                .map_err(|e| GitHubError::Keychain(e.to_string()))?,
        };
        Self::from_env(token)
    }

    /// Calls `notice` with a line for the user whenever a request waits for the rate limit.
    pub fn on_wait(mut self, notice: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_wait = Arc::new(notice);
        self
    }

    /// The longest rate-limit wait done in place (default 60 s).
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    pub fn api(&self) -> &str {
        &self.api
    }

    pub fn token(&self) -> Option<&Secret> {
        self.token.as_ref()
    }

    pub async fn issue(&self, issue: &IssueRef) -> Result<Issue, GitHubError> {
        let path = format!("/repos/{}/{}/issues/{}", issue.owner, issue.repo, issue.number);
        let found: Issue = self.get(&path, &issue.to_string()).await?;
        if found.pull_request.is_some() {
            return Err(GitHubError::Rejected {
                action: format!("read {issue} as an issue"),
                message: "it is a pull request; name an issue".into(),
            });
        }
        Ok(found)
    }

    /// Every comment of the issue, oldest first.
    pub async fn comments(&self, issue: &IssueRef) -> Result<Vec<Comment>, GitHubError> {
        let path = format!("/repos/{}/{}/issues/{}/comments?per_page=100", issue.owner, issue.repo, issue.number);
        self.pages(&path, &format!("the comments of {issue}"), usize::MAX).await
    }

    /// Open issues (not pull requests), newest first.
    pub async fn open_issues(&self, owner: &str, repo: &str, filter: &IssueFilter) -> Result<Vec<Issue>, GitHubError> {
        let mut path = format!("/repos/{owner}/{repo}/issues?state=open&per_page=100");
        if let Some(label) = &filter.label {
            path.push_str(&format!("&labels={}", query_escape(label)));
        }
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        let text = filter.text.as_deref().map(str::to_lowercase).filter(|t| !t.is_empty());
        let all: Vec<Issue> = self.pages(&path, &format!("{owner}/{repo}"), limit * 2).await?;
        let matches = |i: &Issue| {
            text.as_deref().is_none_or(|t| {
                i.title.to_lowercase().contains(t) || i.body.as_deref().unwrap_or_default().to_lowercase().contains(t)
            })
        };
        Ok(all.into_iter().filter(|i| i.pull_request.is_none() && matches(i)).take(limit).collect())
    }

    pub async fn repository(&self, owner: &str, repo: &str) -> Result<Repository, GitHubError> {
        self.get(&format!("/repos/{owner}/{repo}"), &format!("{owner}/{repo}")).await
    }

    /// The signed-in user.
    pub async fn viewer(&self) -> Result<User, GitHubError> {
        self.get("/user", "the signed-in user").await
    }

    /// The signed-in user's fork of the repository, made when there is none (GitHub answers at once and
    /// copies in the background: a push may have to wait).
    pub async fn fork(&self, owner: &str, repo: &str) -> Result<Repository, GitHubError> {
        let action = format!("fork {owner}/{repo}");
        self.call(reqwest::Method::POST, &format!("/repos/{owner}/{repo}/forks"), Some(&serde_json::json!({})), &action)
            .await
            .and_then(|(bytes, _)| parse(&bytes, &action))
    }

    /// The open pull request whose head is `head` (`owner:branch`), if there is one.
    pub async fn pull_for(&self, owner: &str, repo: &str, head: &str) -> Result<Option<PullRequest>, GitHubError> {
        let path = format!("/repos/{owner}/{repo}/pulls?state=open&head={}", query_escape(head));
        let pulls: Vec<PullRequest> = self.get(&path, &format!("the pull requests of {owner}/{repo}")).await?;
        Ok(pulls.into_iter().next())
    }

    pub async fn create_pull(&self, owner: &str, repo: &str, pull: &NewPull<'_>) -> Result<PullRequest, GitHubError> {
        let action = format!("open a pull request on {owner}/{repo}");
        let (bytes, _) =
            self.call(reqwest::Method::POST, &format!("/repos/{owner}/{repo}/pulls"), Some(pull), &action).await?;
        parse(&bytes, &action)
    }

    pub async fn comment(&self, issue: &IssueRef, body: &str) -> Result<Comment, GitHubError> {
        let action = format!("comment on {issue}");
        let path = format!("/repos/{}/{}/issues/{}/comments", issue.owner, issue.repo, issue.number);
        let (bytes, _) =
            self.call(reqwest::Method::POST, &path, Some(&serde_json::json!({ "body": body })), &action).await?;
        parse(&bytes, &action)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, what: &str) -> Result<T, GitHubError> {
        let (bytes, _) = self.call::<()>(reqwest::Method::GET, path, None, what).await?;
        parse(&bytes, &format!("read {what}"))
    }

    /// The items of a listing, following its `Link: rel="next"` pages up to `limit` items.
    async fn pages<T: DeserializeOwned>(&self, path: &str, what: &str, limit: usize) -> Result<Vec<T>, GitHubError> {
        let mut items = Vec::new();
        let mut next = Some(path.to_string());
        while let Some(page) = next.take() {
            let (bytes, link) = self.call::<()>(reqwest::Method::GET, &page, None, what).await?;
            items.extend(parse::<Vec<T>>(&bytes, &format!("read {what}"))?);
            // Only pages of this API: a token is never sent where a Link header points elsewhere.
            next = link.as_deref().and_then(next_page).and_then(|url| url.strip_prefix(&self.api).map(String::from));
            if items.len() >= limit {
                items.truncate(limit);
                break;
            }
        }
        Ok(items)
    }

    /// One request: its body and `Link` header, or the error GitHub's answer means. Waits out a rate
    /// limit shorter than `max_wait` and tries again.
    async fn call<B: Serialize + ?Sized>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        what: &str,
    ) -> Result<(Vec<u8>, Option<String>), GitHubError> {
        let mut waits = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.api))
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28");
            if let Some(token) = &self.token {
                request = request.bearer_auth(token.expose());
            }
            if let Some(body) = body {
                let json = serde_json::to_vec(body)
                    .map_err(|e| GitHubError::Answer { action: what.to_string(), reason: e.to_string() })?;
                request = request.header("Content-Type", "application/json").body(json);
            }
            let answer = request
                .send()
                .await
                .map_err(|e| GitHubError::Network { api: self.api.clone(), reason: without_url(e) })?;
            let status = answer.status().as_u16();
            let headers = answer.headers().clone();
            let bytes = answer
                .bytes()
                .await
                .map_err(|e| GitHubError::Network { api: self.api.clone(), reason: without_url(e) })?
                .to_vec();
            let link = header(&headers, "link");
            if (200..300).contains(&status) {
                return Ok((bytes, link));
            }
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .ok()
                .and_then(|b| b.message)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect());
            let signed_in = self.token.is_some();
            if let Some(retry_in) = rate_limited(status, &headers) {
                // A few waits at most: a server that keeps asking for one is reported, not obeyed forever.
                if retry_in <= self.max_wait && waits < MAX_WAITS {
                    waits += 1;
                    (self.on_wait)(&format!(
                        "GitHub's rate limit is spent: waiting {} s before asking again",
                        retry_in.as_secs().max(1)
                    ));
                    tokio::time::sleep(retry_in.max(Duration::from_secs(1))).await;
                    continue;
                }
                return Err(GitHubError::RateLimited { retry_in, signed_in });
            }
            return Err(match status {
                401 => GitHubError::Unauthorized { message },
                404 => GitHubError::NotFound { what: what.to_string(), signed_in },
                403 => GitHubError::Forbidden { action: what.to_string(), message },
                422 => GitHubError::Rejected { action: what.to_string(), message: validation(&bytes, message) },
                _ => GitHubError::Http { action: what.to_string(), status, message },
            });
        }
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8], action: &str) -> Result<T, GitHubError> {
    serde_json::from_slice(bytes).map_err(|e| GitHubError::Answer { action: action.to_string(), reason: e.to_string() })
}

fn header(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// How long to wait when the answer is GitHub's rate limit: a 429, or a 403 that says so with
/// `Retry-After` (secondary limits) or `X-RateLimit-Remaining: 0` (the primary one, until
/// `X-RateLimit-Reset`).
fn rate_limited(status: u16, headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if status != 403 && status != 429 {
        return None;
    }
    if let Some(seconds) = header(headers, "retry-after").and_then(|s| s.trim().parse::<u64>().ok()) {
        return Some(Duration::from_secs(seconds));
    }
    if header(headers, "x-ratelimit-remaining").as_deref() == Some("0") {
        let reset = header(headers, "x-ratelimit-reset").and_then(|s| s.trim().parse::<u64>().ok())?;
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
        return Some(Duration::from_secs(reset.saturating_sub(now)));
    }
    // A 429 without either: GitHub says to wait at least a minute.
    (status == 429).then_some(Duration::from_secs(60))
}

/// The `rel="next"` URL of a `Link` header.
fn next_page(link: &str) -> Option<&str> {
    link.split(',').find(|part| part.contains("rel=\"next\"")).and_then(|part| {
        let start = part.find('<')? + 1;
        let end = part.find('>')?;
        part.get(start..end)
    })
}

/// A 422's message with the details GitHub lists under `errors`.
fn validation(bytes: &[u8], message: String) -> String {
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Detail>,
    }
    #[derive(Deserialize)]
    struct Detail {
        message: Option<String>,
    }
    let details: Vec<String> = serde_json::from_slice::<Body>(bytes)
        .map(|b| b.errors.into_iter().filter_map(|d| d.message).collect())
        .unwrap_or_default();
    if details.is_empty() { message } else { format!("{message}: {}", details.join("; ")) }
}

/// reqwest's error without the URL, which may carry a query the user did not write.
fn without_url(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_read_from_the_link_header() {
        let link = r#"<https://api.github.com/repositories/1/issues?page=2>; rel="next", <https://api.github.com/repositories/1/issues?page=5>; rel="last""#;
        assert_eq!(next_page(link), Some("https://api.github.com/repositories/1/issues?page=2"));
        assert_eq!(next_page(r#"<https://api.github.com/x?page=1>; rel="prev""#), None);
    }

    #[test]
    fn rate_limits_are_told_from_other_refusals() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(rate_limited(403, &headers), None, "a plain 403 is a permission problem");
        assert_eq!(rate_limited(429, &headers), Some(Duration::from_secs(60)));
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(rate_limited(403, &headers), Some(Duration::from_secs(7)));
        let mut headers = reqwest::header::HeaderMap::new();
        let reset = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() + 1800;
        headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
        headers.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        let wait = rate_limited(403, &headers).unwrap();
        assert!((1790..=1800).contains(&wait.as_secs()), "{wait:?}");
        assert_eq!(rate_limited(500, &headers), None);
    }

    #[test]
    fn labels_and_heads_are_escaped_for_a_query() {
        assert_eq!(query_escape("good first issue"), "good%20first%20issue");
        assert_eq!(query_escape("me:fixbox/issue-1"), "me:fixbox%2Fissue-1");
    }
}
