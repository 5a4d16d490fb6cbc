//! A loopback HTTP proxy in front of a real server that misbehaves on request: it cuts the answer off
//! mid-stream, answers 429 with `Retry-After` or 503, takes the request and never answers, stalls
//! mid-answer behind SSE keep-alives, or sends a line without end. What it passes through is the
//! real server's answer, byte for byte.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
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
    /// Relays the real answer's first events, then keeps the stream open with SSE comments only, as
    /// a server stuck mid-answer behind a keep-alive timer would.
    StallAfter { events: usize },
    /// Answers 200 with an event stream that carries SSE comments only.
    KeepAliveOnly,
    /// Answers 200 and sends one `data:` line that never ends.
    EndlessLine,
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
        Fault::StallAfter { events } => {
            let mut server = BufReader::new(TcpStream::connect(upstream).await?);
            server.get_mut().write_all(&request).await?;
            let mut head = String::new();
            while !head.ends_with("\r\n\r\n") {
                anyhow::ensure!(server.read_line(&mut head).await? > 0, "the server closed before its answer");
            }
            anyhow::ensure!(head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "not chunked:\n{head}");
            client.write_all(head.as_bytes()).await?;
            let mut relayed = 0;
            while relayed < events {
                let mut size = String::new();
                server.read_line(&mut size).await?;
                let size = usize::from_str_radix(size.trim(), 16)?;
                anyhow::ensure!(size > 0, "the answer ended after {relayed} events");
                let mut data = vec![0u8; size + 2];
                server.read_exact(&mut data).await?;
                relayed += String::from_utf8_lossy(&data).matches("data:").count();
                client.write_all(format!("{size:x}\r\n").as_bytes()).await?;
                client.write_all(&data).await?;
            }
            keep_alive(&mut client).await;
        }
        Fault::KeepAliveOnly => {
            client.write_all(EVENT_STREAM_HEAD.as_bytes()).await?;
            keep_alive(&mut client).await;
        }
        Fault::EndlessLine => {
            client.write_all(EVENT_STREAM_HEAD.as_bytes()).await?;
            write_chunk(&mut client, b"data: ").await?;
            let piece = vec![b'x'; 64 * 1024];
            while write_chunk(&mut client, &piece).await.is_ok() {}
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

const EVENT_STREAM_HEAD: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";

/// An SSE comment every 200 ms until the client goes away.
async fn keep_alive(client: &mut TcpStream) {
    while write_chunk(client, b": keep-alive\n\n").await.is_ok() {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn write_chunk(client: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    client.write_all(format!("{:x}\r\n", data.len()).as_bytes()).await?;
    client.write_all(data).await?;
    client.write_all(b"\r\n").await
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
