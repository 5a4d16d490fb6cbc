//! A small HTTP/1.1 server on 127.0.0.1 for download tests: serves files by path, honours
//! `Range: bytes=N-`, records each request's Range, and can misbehave on purpose.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the server misbehaves, per request number (0-based).
#[derive(Clone, Copy)]
pub enum Mode {
    Normal,
    /// The first response announces the whole file but the connection closes after this many bytes.
    DropFirstAfter(usize),
    /// The first response is `429 Too Many Requests` with `Retry-After: 1`.
    TooManyFirst,
    /// Sends this many bytes per 10 ms, so a test can act mid-download.
    Slow(usize),
}

type Log = Arc<Mutex<Vec<String>>>;

pub struct Loopback {
    pub base: String,
    routes: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>>,
    /// Each request's Range header ("" when none).
    pub ranges: Arc<Mutex<Vec<String>>>,
    /// Each request's line and headers, as sent.
    #[allow(dead_code, reason = "not every test that includes this module reads them")]
    pub heads: Arc<Mutex<Vec<String>>>,
}

impl Loopback {
    pub async fn start(mode: Mode) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let routes: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>> = Arc::default();
        let ranges: Arc<Mutex<Vec<String>>> = Arc::default();
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let count = Arc::new(AtomicUsize::new(0));
        let (served, seen) = (routes.clone(), (ranges.clone(), heads.clone()));
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { return };
                let n = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(answer(socket, served.clone(), seen.clone(), mode, n));
            }
        });
        Self { base, routes, ranges, heads }
    }

    /// Publishes `wheel` as `package` `version` on this server as PyPI's simple API (PEP 691 JSON) lists
    /// it, beside an sdist and an older, yanked wheel, which must not be picked.
    #[allow(dead_code, reason = "only the tests of package-index sources use it")]
    pub fn publish_wheel(&self, package: &str, version: &str, filename: &str, wheel: Vec<u8>) {
        let sha256 = hex_sha256(&wheel);
        let url = self.route(&format!("/files/{filename}"), Arc::new(wheel));
        let stem = package.replace('-', "_");
        let json = serde_json::json!({
            "meta": { "api-version": "1.1" },
            "name": package,
            "files": [
                { "filename": format!("{stem}-{version}.tar.gz"), "url": "unused", "hashes": { "sha256": "0" }, "yanked": false },
                { "filename": format!("{stem}-{version}-py2-none-any.whl"), "url": "unused", "hashes": { "sha256": "0" }, "yanked": "broken" },
                { "filename": filename, "url": url, "hashes": { "sha256": sha256 }, "yanked": false }
            ]
        });
        self.route(&format!("/simple/{package}/"), Arc::new(json.to_string().into_bytes()));
    }

    /// Serves `body` at `path`; returns its full URL.
    pub fn route(&self, path: &str, body: Arc<Vec<u8>>) -> String {
        self.routes.lock().unwrap().insert(path.to_string(), body);
        format!("{}{path}", self.base)
    }
}

async fn answer(
    mut socket: tokio::net::TcpStream,
    routes: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>>,
    (seen, heads): (Log, Log),
    mode: Mode,
    n: usize,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if socket.read_exact(&mut byte).await.is_err() {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    heads.lock().unwrap().push(head.clone());
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let range = head
        .lines()
        .find_map(|l| l.strip_prefix("range: ").or_else(|| l.strip_prefix("Range: ")))
        .unwrap_or("")
        .to_string();
    seen.lock().unwrap().push(range.clone());
    let reply = |status: &str, extra: String, len: usize| {
        format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n{extra}\r\n")
    };
    let body = routes.lock().unwrap().get(&path).cloned();
    let Some(body) = body else {
        let _ = socket.write_all(reply("404 Not Found", String::new(), 0).as_bytes()).await;
        return;
    };
    if matches!((mode, n), (Mode::TooManyFirst, 0)) {
        let _ = socket.write_all(reply("429 Too Many Requests", "Retry-After: 1\r\n".into(), 0).as_bytes()).await;
        return;
    }
    let from: usize = range.strip_prefix("bytes=").and_then(|r| r.trim_end_matches('-').parse().ok()).unwrap_or(0);
    let rest = &body[from.min(body.len())..];
    let head = if from > 0 {
        let content_range = format!("Content-Range: bytes {from}-{}/{}\r\n", body.len() - 1, body.len());
        reply("206 Partial Content", content_range, rest.len())
    } else {
        reply("200 OK", String::new(), rest.len())
    };
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let _ = match (mode, n) {
        (Mode::DropFirstAfter(cut), 0) => socket.write_all(&rest[..cut]).await,
        (Mode::Slow(step), _) => {
            for chunk in rest.chunks(step) {
                if socket.write_all(chunk).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(())
        }
        _ => socket.write_all(rest).await,
    };
}

/// Lowercase hex SHA-256 of `bytes`.
#[allow(dead_code, reason = "not every test that includes this module checks a digest")]
pub fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
