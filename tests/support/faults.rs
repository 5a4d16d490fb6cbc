//! A loopback HTTP proxy in front of a real server that misbehaves on request: it cuts the answer off
//! mid-stream, answers 429 with `Retry-After` or 503, or takes the request and never answers. What it
//! passes through is the real server's answer, byte for byte.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with the next requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Passes requests through.
    None,
    /// Passes the request through and relays this many bytes of the answer, then closes.
    CutAfter(usize),
    /// Answers this status (with `Retry-After` seconds, if given) to the next `times` requests, then
    /// passes requests through.
    Status { status: u16, retry_after: Option<u32>, times: usize },
    /// Reads the request and never answers.
    Hang,
}

#[derive(Debug, Clone)]
pub struct FaultProxy {
    pub url: String,
    fault: Arc<Mutex<Fault>>,
    requests: Arc<AtomicUsize>,
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of `upstream`, serving until the runtime ends.
    pub async fn start(upstream: SocketAddr, fault: Fault) -> Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let proxy = Self {
            url: format!("http://{}", listener.local_addr()?),
            fault: Arc::new(Mutex::new(fault)),
            requests: Arc::default(),
        };
        let (fault, requests) = (proxy.fault.clone(), proxy.requests.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                requests.fetch_add(1, Ordering::SeqCst);
                let fault = {
                    let mut current = fault.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let now = current.clone();
                    if let Fault::Status { times, .. } = &mut *current {
                        *times = times.saturating_sub(1);
                        if *times == 0 {
                            *current = Fault::None;
                        }
                    }
                    now
                };
                tokio::spawn(serve(client, upstream, fault));
            }
        });
        Ok(proxy)
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = fault;
    }

    /// Requests seen so far (one per connection: the proxy closes each after its answer).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, fault: Fault) -> Result<()> {
    let request = read_request(&mut client).await?;
    match fault {
        Fault::Status { status, retry_after, .. } => {
            let body = format!(r#"{{"error":{{"code":{status},"message":"injected by the test proxy"}}}}"#);
            let retry = retry_after.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
            let head = format!(
                "HTTP/1.1 {status} Injected\r\n{retry}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            client.write_all(head.as_bytes()).await?;
            client.write_all(body.as_bytes()).await?;
        }
        Fault::Hang => {
            // Hold the connection until the client gives up.
            let mut sink = [0u8; 1024];
            while client.read(&mut sink).await? > 0 {}
        }
        Fault::None | Fault::CutAfter(_) => {
            let limit = if let Fault::CutAfter(n) = fault { n } else { usize::MAX };
            let mut server = TcpStream::connect(upstream).await?;
            server.write_all(&request).await?;
            let mut relayed = 0;
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = server.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                let take = n.min(limit - relayed);
                client.write_all(&buf[..take]).await?;
                relayed += take;
                if relayed >= limit {
                    break;
                }
            }
        }
    }
    client.shutdown().await?;
    Ok(())
}

/// One HTTP/1.1 request, headers and body, with `Connection: close` added so the server closes after
/// its answer.
pub(crate) async fn read_request(client: &mut TcpStream) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let header_end = loop {
        let n = client.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "the client closed before sending a request");
        data.extend_from_slice(&buf[..n]);
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
    };
    let head = String::from_utf8_lossy(&data[..header_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while data.len() < header_end + 4 + length {
        let n = client.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "the client closed mid-request");
        data.extend_from_slice(&buf[..n]);
    }
    let head: String =
        head.lines().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect::<Vec<_>>().join("\r\n");
    let mut request = format!("{head}\r\nConnection: close\r\n\r\n").into_bytes();
    request.extend_from_slice(&data[header_end + 4..]);
    Ok(request)
}
