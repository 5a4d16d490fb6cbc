//! A loopback stand-in for github.com, the one fake in the GitHub tests (github.com cannot be reached
//! from here): its REST API answering with GitHub's documented answers (`tests/fixtures/github`), and
//! real git repositories served over smart HTTP by `git http-backend`, where a push needs the token.
//! It keeps what it was asked and what was opened, so a test can read the pull request back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One request the stand-in answered.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, after `/api` or `/git`.
    pub path: String,
    /// The `Authorization` header, as sent.
    pub authorization: Option<String>,
    pub body: String,
}

#[derive(Debug, Clone, Default)]
struct Repo {
    push: bool,
    size_kib: u64,
    branch: String,
    issues: BTreeMap<u64, IssueDoc>,
}

#[derive(Debug, Clone)]
struct IssueDoc {
    title: String,
    body: String,
    labels: Vec<String>,
    comments: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct State {
    repos: BTreeMap<(String, String), Repo>,
    pulls: Vec<Value>,
    posted_comments: Vec<(String, String)>,
    seen: Vec<Seen>,
    rate_limited_until: Option<SystemTime>,
    git_down: bool,
}

#[derive(Debug, Clone)]
pub struct FakeGitHub {
    /// Its REST API's base, as `FIXBOX_GITHUB_API` takes it.
    pub api: String,
    /// Where its repositories are served: `<git>/<owner>/<repo>.git`.
    pub git: String,
    pub token: String,
    pub viewer: String,
    root: Arc<tempfile::TempDir>,
    state: Arc<Mutex<State>>,
}

fn fixture(name: &str) -> Result<String> {
    let path = crate::workspace_root().join("tests/fixtures/github").join(name);
    std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))
}

fn fill(template: &str, values: &[(&str, String)]) -> String {
    values.iter().fold(template.to_string(), |text, (key, value)| text.replace(&format!("{{{{{key}}}}}"), value))
}

fn json(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

fn run_git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Octo Cat", "-c", "user.email=octocat@github.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .output()?;
    ensure!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl FakeGitHub {
    /// Serves on a free loopback port until the runtime ends; `viewer` is the token's user.
    #[expect(clippy::print_stderr, reason = "a request the stand-in could not answer goes to the test log")]
    pub async fn start(token: &str, viewer: &str) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let fake = Self {
            api: format!("{base}/api"),
            git: format!("{base}/git"),
            token: token.to_string(),
            viewer: viewer.to_string(),
            root: Arc::new(tempfile::tempdir()?),
            state: Arc::default(),
        };
        let server = fake.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    if let Err(err) = server.serve(client).await {
                        eprintln!("[fake github] {err:#}");
                    }
                });
            }
        });
        Ok(fake)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bare(&self, owner: &str, repo: &str) -> PathBuf {
        self.root.path().join(owner).join(format!("{repo}.git"))
    }

    /// A repository whose default branch `main` holds the files of `files` in one commit.
    pub fn add_repo(&self, owner: &str, repo: &str, files: &Path, push: bool) -> Result<()> {
        let work = tempfile::tempdir()?;
        crate::copy_tree(files, work.path())?;
        run_git(work.path(), &["init", "-q"])?;
        run_git(work.path(), &["add", "-A"])?;
        run_git(work.path(), &["commit", "-q", "-m", "fix: start the project"])?;
        let bare = self.bare(owner, repo);
        std::fs::create_dir_all(bare.parent().context("a bare repository has a parent")?)?;
        run_git(work.path(), &["clone", "-q", "--bare", ".", &bare.to_string_lossy()])?;
        let doc = Repo { push, size_kib: 64, branch: "main".into(), issues: BTreeMap::new() };
        self.state().repos.insert((owner.into(), repo.into()), doc);
        Ok(())
    }

    pub fn add_issue(&self, owner: &str, repo: &str, number: u64, title: &str, body: &str, comments: &[(&str, &str)]) {
        let mut state = self.state();
        if let Some(doc) = state.repos.get_mut(&(owner.to_string(), repo.to_string())) {
            let comments = comments.iter().map(|(who, text)| (who.to_string(), text.to_string())).collect();
            doc.issues.insert(
                number,
                IssueDoc { title: title.into(), body: body.into(), labels: vec!["bug".into()], comments },
            );
        }
    }

    pub fn set_size_kib(&self, owner: &str, repo: &str, kib: u64) {
        if let Some(doc) = self.state().repos.get_mut(&(owner.to_string(), repo.to_string())) {
            doc.size_kib = kib;
        }
    }

    /// Answers every API request with GitHub's rate-limit refusal for this long (`None`: no more).
    pub fn rate_limit(&self, lasting: Option<Duration>) {
        self.state().rate_limited_until = lasting.map(|d| SystemTime::now() + d);
    }

    /// Drops every push's connection, as a network that fails mid-push does.
    pub fn git_down(&self, down: bool) {
        self.state().git_down = down;
    }

    pub fn pulls(&self) -> Vec<Value> {
        self.state().pulls.clone()
    }

    /// Comments posted, as `(owner/repo#n, body)`.
    pub fn posted_comments(&self) -> Vec<(String, String)> {
        self.state().posted_comments.clone()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }

    /// The commit a branch of a served repository points at, if the branch exists.
    pub fn branch(&self, owner: &str, repo: &str, branch: &str) -> Option<String> {
        run_git(&self.bare(owner, repo), &["rev-parse", "--verify", "-q", &format!("refs/heads/{branch}")])
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// `git <args>` in a served repository.
    pub fn git_in(&self, owner: &str, repo: &str, args: &[&str]) -> Result<String> {
        run_git(&self.bare(owner, repo), args)
    }

    async fn serve(&self, mut client: TcpStream) -> Result<()> {
        let (method, target, headers, body) = read_request(&mut client).await?;
        let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        let authorization = header("authorization");
        let (status, extra, answer) = if let Some(path) = target.strip_prefix("/git") {
            self.state().seen.push(Seen {
                method: method.clone(),
                path: path.to_string(),
                authorization: authorization.clone(),
                body: String::new(),
            });
            let pushing = path.contains("git-receive-pack");
            if pushing && self.state().git_down {
                return Ok(()); // the connection drops
            }
            let expected = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{}", self.token));
            let authorized = authorization.as_deref() == Some(&format!("Basic {expected}"));
            if pushing && !authorized {
                let head = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"GitHub\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                client.write_all(head.as_bytes()).await?;
                return Ok(());
            }
            let (status, extra, answer) = self.http_backend(&method, path, &headers, &body, authorized).await?;
            (status, extra, answer)
        } else if let Some(path) = target.strip_prefix("/api") {
            self.state().seen.push(Seen {
                method: method.clone(),
                path: path.to_string(),
                authorization: authorization.clone(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let (status, extra, answer) = self.api_answer(&method, path, authorization.as_deref(), &body)?;
            (status, extra, answer.into_bytes())
        } else {
            ("404 Not Found".to_string(), String::new(), Vec::new())
        };
        let head = format!("HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n", answer.len());
        client.write_all(head.as_bytes()).await?;
        client.write_all(&answer).await?;
        client.shutdown().await?;
        Ok(())
    }

    /// `git http-backend` as a CGI program, as GitHub's smart HTTP serves git.
    async fn http_backend(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
        authorized: bool,
    ) -> Result<(String, String, Vec<u8>)> {
        let (path_info, query) = path.split_once('?').unwrap_or((path, ""));
        let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        let mut command = tokio::process::Command::new("git");
        command
            .arg("http-backend")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GIT_PROJECT_ROOT", self.root.path())
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("REQUEST_METHOD", method)
            .env("PATH_INFO", path_info)
            .env("QUERY_STRING", query)
            .env("CONTENT_LENGTH", body.len().to_string())
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(kind) = header("content-type") {
            command.env("CONTENT_TYPE", kind);
        }
        if let Some(encoding) = header("content-encoding") {
            command.env("HTTP_CONTENT_ENCODING", encoding);
        }
        if let Some(protocol) = header("git-protocol") {
            command.env("GIT_PROTOCOL", protocol);
        }
        if authorized {
            command.env("REMOTE_USER", &self.viewer);
        }
        let mut child = command.spawn()?;
        let mut stdin = child.stdin.take().context("http-backend's stdin")?;
        let input = body.to_vec();
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
        let out = child.wait_with_output().await?;
        writer.await?;
        let split = out
            .stdout
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|at| (at, 4))
            .or_else(|| out.stdout.windows(2).position(|w| w == b"\n\n").map(|at| (at, 2)));
        let (at, gap) = split.context("http-backend wrote no headers")?;
        let mut status = "200 OK".to_string();
        let mut extra = String::new();
        for line in String::from_utf8_lossy(&out.stdout[..at]).lines() {
            match line.split_once(':') {
                Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
                Some(_) => extra.push_str(&format!("{}\r\n", line.trim())),
                None => {}
            }
        }
        Ok((status, extra, out.stdout[at + gap..].to_vec()))
    }

    fn api_answer(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<(String, String, String)> {
        let errors: Value = serde_json::from_str(&fixture("errors.json")?)?;
        let error = |status: &str, which: &str, extra: String| (status.to_string(), extra, errors[which].to_string());
        let (route, query) = path.split_once('?').unwrap_or((path, ""));
        let param = |name: &str| {
            query.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
        };
        let limited = self.state().rate_limited_until;
        if let Some(until) = limited
            && let Ok(left) = until.duration_since(SystemTime::now())
        {
            let reset = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_secs() + left.as_secs() + 1;
            let extra = format!(
                "X-RateLimit-Limit: 60\r\nX-RateLimit-Remaining: 0\r\nX-RateLimit-Used: 60\r\nX-RateLimit-Reset: {reset}\r\nX-RateLimit-Resource: core\r\n"
            );
            return Ok(error("403 Forbidden", "rate_limited", extra));
        }
        let signed_in = match authorization {
            Some(auth) if auth == format!("Bearer {}", self.token) => true,
            Some(_) => return Ok(error("401 Unauthorized", "bad_credentials", String::new())),
            None => false,
        };
        let base = self.api.trim_end_matches("/api").to_string();
        let common = |owner: &str, repo: &str| {
            vec![
                ("api", self.api.clone()),
                ("web", format!("{base}/web")),
                ("git", self.git.clone()),
                ("owner", owner.to_string()),
                ("repo", repo.to_string()),
                ("login", self.viewer.clone()),
            ]
        };
        let parts: Vec<&str> = route.trim_matches('/').split('/').collect();
        let ok = |status: &str, text: String| {
            Ok((status.to_string(), "Content-Type: application/json; charset=utf-8\r\n".to_string(), text))
        };
        if route == "/user" {
            if !signed_in {
                return Ok(error("401 Unauthorized", "requires_authentication", String::new()));
            }
            return ok("200 OK", fill(&fixture("user.json")?, &common("", "")));
        }
        if parts.first() != Some(&"repos") || parts.len() < 3 {
            return Ok(error("404 Not Found", "not_found", String::new()));
        }
        let (owner, repo) = (parts[1].to_string(), parts[2].to_string());
        let Some(doc) = self.state().repos.get(&(owner.clone(), repo.clone())).cloned() else {
            return Ok(error("404 Not Found", "not_found", String::new()));
        };
        if method == "POST" && !signed_in {
            return Ok(error("401 Unauthorized", "requires_authentication", String::new()));
        }
        let mut values = common(&owner, &repo);
        let repository = |values: &[(&str, String)], fork: bool, push: bool| -> Result<String> {
            let mut values = values.to_vec();
            values.extend([
                ("fork", fork.to_string()),
                ("size", doc.size_kib.to_string()),
                ("branch", doc.branch.clone()),
                ("push", (push && signed_in).to_string()),
            ]);
            Ok(fill(&fixture("repository.json")?, &values))
        };
        let issue_json = |values: &[(&str, String)], number: u64, issue: &IssueDoc| -> Result<String> {
            let mut values = values.to_vec();
            let labels: Vec<Value> = issue
                .labels
                .iter()
                .map(|l| serde_json::json!({"id": 208045946, "name": l, "color": "f29513", "default": true}))
                .collect();
            values.extend([
                ("number", number.to_string()),
                ("title", json(&issue.title)),
                ("body", json(&issue.body)),
                ("author", "octocat".to_string()),
                ("labels", serde_json::to_string(&labels)?),
                ("comments", issue.comments.len().to_string()),
            ]);
            Ok(fill(&fixture("issue.json")?, &values))
        };
        match (method, &parts[3..]) {
            ("GET", []) => ok("200 OK", repository(&values, false, doc.push)?),
            ("POST", ["forks"]) => {
                let fork = self.bare(&self.viewer, &repo);
                if !fork.exists() {
                    std::fs::create_dir_all(fork.parent().context("a fork has a parent")?)?;
                    run_git(
                        self.root.path(),
                        &[
                            "clone",
                            "-q",
                            "--bare",
                            &self.bare(&owner, &repo).to_string_lossy(),
                            &fork.to_string_lossy(),
                        ],
                    )?;
                    self.state().repos.insert(
                        (self.viewer.clone(), repo.clone()),
                        Repo { push: true, issues: BTreeMap::new(), ..doc.clone() },
                    );
                }
                let mut fork_values = common(&self.viewer, &repo);
                fork_values.retain(|(k, _)| *k != "owner");
                fork_values.push(("owner", self.viewer.clone()));
                ok("202 Accepted", repository(&fork_values, true, true)?)
            }
            ("GET", ["issues"]) => {
                let mut all = Vec::new();
                for (number, issue) in doc.issues.iter().rev() {
                    if param("labels").is_none_or(|l| issue.labels.contains(&l)) {
                        all.push(serde_json::from_str::<Value>(&issue_json(&values, *number, issue)?)?);
                    }
                }
                ok("200 OK", serde_json::to_string(&all)?)
            }
            ("GET", ["issues", number]) => {
                match number.parse().ok().and_then(|n: u64| doc.issues.get(&n).map(|i| (n, i))) {
                    Some((n, issue)) => ok("200 OK", issue_json(&values, n, issue)?),
                    None => Ok(error("404 Not Found", "not_found", String::new())),
                }
            }
            ("GET", ["issues", number, "comments"]) => {
                let Some(issue) = number.parse().ok().and_then(|n: u64| doc.issues.get(&n)) else {
                    return Ok(error("404 Not Found", "not_found", String::new()));
                };
                // One comment a page, so the client's paging is used.
                let page: usize = param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                let mut list = Vec::new();
                if let Some((who, text)) = issue.comments.get(page - 1) {
                    let mut v = values.clone();
                    v.extend([
                        ("id", (1000 + page).to_string()),
                        ("number", number.to_string()),
                        ("body", json(text)),
                        ("author", who.clone()),
                    ]);
                    list.push(serde_json::from_str::<Value>(&fill(&fixture("comment.json")?, &v))?);
                }
                let link = if page < issue.comments.len() {
                    format!(
                        "Link: <{}/repos/{owner}/{repo}/issues/{number}/comments?per_page=100&page={}>; rel=\"next\"\r\n",
                        self.api,
                        page + 1
                    )
                } else {
                    String::new()
                };
                Ok(("200 OK".into(), link, serde_json::to_string(&list)?))
            }
            ("POST", ["issues", number, "comments"]) => {
                let body: Value = serde_json::from_slice(body)?;
                let text = body["body"].as_str().unwrap_or_default().to_string();
                self.state().posted_comments.push((format!("{owner}/{repo}#{number}"), text.clone()));
                values.extend([
                    ("id", "2001".to_string()),
                    ("number", number.to_string()),
                    ("body", json(&text)),
                    ("author", self.viewer.clone()),
                ]);
                ok("201 Created", fill(&fixture("comment.json")?, &values))
            }
            ("GET", ["pulls"]) => {
                let head = param("head").map(|h| h.replace("%2F", "/"));
                let open: Vec<Value> = self
                    .state()
                    .pulls
                    .iter()
                    .filter(|p| p["base"]["label"].as_str().is_some_and(|l| l.starts_with(&format!("{owner}:"))))
                    .filter(|p| head.as_deref().is_none_or(|h| p["head"]["label"] == h))
                    .cloned()
                    .collect();
                ok("200 OK", serde_json::to_string(&open)?)
            }
            ("POST", ["pulls"]) => {
                let asked: Value = serde_json::from_slice(body)?;
                let head = asked["head"].as_str().unwrap_or_default();
                let (head_owner, head_branch) = head.split_once(':').unwrap_or((&owner, head));
                let head_label = format!("{head_owner}:{head_branch}");
                if self.state().pulls.iter().any(|p| p["head"]["label"] == head_label.as_str()) {
                    let text = fill(&errors["pull_exists"].to_string(), &[("head_label", head_label)]);
                    return Ok(("422 Unprocessable Entity".into(), String::new(), text));
                }
                let Some(sha) = self.branch(head_owner, &repo, head_branch) else {
                    let text = serde_json::json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "field": "head", "code": "invalid"}], "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request", "status": "422"});
                    return Ok(("422 Unprocessable Entity".into(), String::new(), text.to_string()));
                };
                let number = 100 + self.state().pulls.len() as u64;
                values.extend([
                    ("number", number.to_string()),
                    ("title", json(asked["title"].as_str().unwrap_or_default())),
                    ("body", json(asked["body"].as_str().unwrap_or_default())),
                    ("head_owner", head_owner.to_string()),
                    ("head", head_branch.to_string()),
                    ("sha", sha),
                    ("base", asked["base"].as_str().unwrap_or_default().to_string()),
                    ("draft", asked["draft"].as_bool().unwrap_or(false).to_string()),
                ]);
                let pull = fill(&fixture("pull.json")?, &values);
                self.state().pulls.push(serde_json::from_str(&pull)?);
                ok("201 Created", pull)
            }
            _ => Ok(error("404 Not Found", "not_found", String::new())),
        }
    }
}

/// A request's method, target, headers and body (a chunked body decoded).
async fn read_request(client: &mut TcpStream) -> Result<(String, String, Vec<(String, String)>, Vec<u8>)> {
    let mut reader = BufReader::new(client);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or_default().to_string(), words.next().unwrap_or_default().to_string());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v): &(String, String)| v.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        body.resize(length, 0);
        reader.read_exact(&mut body).await?;
    }
    Ok((method, target, headers, body))
}
