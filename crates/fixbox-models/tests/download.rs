//! Downloads of a real model file (SmolLM2-135M Q4_1, which scripts/setup fetches from PyPI) from a
//! loopback HTTP server that honours Range, and that can drop the connection mid-file or answer 429.
#![expect(clippy::unwrap_used, reason = "test helpers: a failure stops the test with its message")]

#[path = "support/loopback.rs"]
mod loopback;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fixbox_models::{Download, DownloadError, DownloadEvent, Downloader, RetryPolicy};
use loopback::{Loopback, Mode};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

fn model_bytes() -> Arc<Vec<u8>> {
    static BYTES: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            let dir = std::env::var_os("FIXBOX_TEST_MODELS").map(PathBuf::from).unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/fixbox/models")
            });
            let path = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
            Arc::new(
                std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (scripts/setup fetches it)", path.display())),
            )
        })
        .clone()
}

const MODEL_PATH: &str = "/SmolLM2-135M-Instruct.Q4_1.gguf";

/// A loopback server with the model (or `body`) at [`MODEL_PATH`].
async fn serve(body: Arc<Vec<u8>>, mode: Mode) -> Server {
    let loopback = Loopback::start(mode).await;
    let url = loopback.route(MODEL_PATH, body);
    Server { url, ranges: loopback.ranges.clone(), _loopback: loopback }
}

struct Server {
    url: String,
    ranges: Arc<Mutex<Vec<String>>>,
    _loopback: Loopback,
}

fn quick_retries() -> Downloader {
    let policy =
        RetryPolicy { max_attempts: 4, first_wait: Duration::from_millis(50), max_wait: Duration::from_secs(2) };
    Downloader::new(policy).unwrap()
}

async fn fetch(server: &Server, dest: PathBuf, sha256: &str) -> (Result<PathBuf, DownloadError>, Vec<DownloadEvent>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let download = Download::new(server.url.clone(), dest, sha256);
    let result = quick_retries().fetch(&download, &tx, &CancellationToken::new()).await;
    drop(tx);
    let mut events = Vec::new();
    while let Some(event) = rx.recv().await {
        events.push(event);
    }
    (result, events)
}

fn sha256_file(path: &std::path::Path) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn downloads_the_model_verifies_it_and_reports_progress() {
    let server = serve(model_bytes(), Mode::Normal).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("models/smollm2.gguf");
    let (result, events) = fetch(&server, dest.clone(), SMOLLM2_SHA256).await;
    assert_eq!(result.unwrap(), dest);
    assert_eq!(sha256_file(&dest), SMOLLM2_SHA256);
    assert!(!dir.path().join("models/smollm2.gguf.part").exists());
    let total = model_bytes().len() as u64;
    assert_eq!(events.first(), Some(&DownloadEvent::Started { total: Some(total), resumed_from: 0 }));
    assert!(events.iter().any(|e| matches!(e, DownloadEvent::Progress { done, bytes_per_second, .. } if *done == total && *bytes_per_second > 0.0)));
    assert_eq!(events[events.len() - 2], DownloadEvent::Verifying);
    assert_eq!(events.last(), Some(&DownloadEvent::Finished { path: dest, bytes: total }));
}

#[tokio::test]
async fn a_dropped_connection_resumes_where_it_stopped() {
    let cut = 10_000_000;
    let server = serve(model_bytes(), Mode::DropFirstAfter(cut)).await;
    let dir = tempfile::tempdir().unwrap();
    let (result, events) = fetch(&server, dir.path().join("m.gguf"), SMOLLM2_SHA256).await;
    let path = result.unwrap();
    assert_eq!(sha256_file(&path), SMOLLM2_SHA256);
    assert_eq!(*server.ranges.lock().unwrap(), ["".to_string(), format!("bytes={cut}-")]);
    assert!(
        events.iter().any(
            |e| matches!(e, DownloadEvent::Retrying { attempt: 1, reason, .. } if reason.contains(&cut.to_string()))
        )
    );
    assert!(
        events.iter().any(|e| matches!(e, DownloadEvent::Started { resumed_from, .. } if *resumed_from == cut as u64))
    );
}

#[tokio::test]
async fn a_429_waits_as_the_server_asks_and_says_so() {
    let server = serve(model_bytes(), Mode::TooManyFirst).await;
    let dir = tempfile::tempdir().unwrap();
    let (result, events) = fetch(&server, dir.path().join("m.gguf"), SMOLLM2_SHA256).await;
    result.unwrap();
    let retry = events.iter().find(|e| matches!(e, DownloadEvent::Retrying { .. })).unwrap();
    assert_eq!(
        *retry,
        DownloadEvent::Retrying {
            attempt: 1,
            wait: Duration::from_secs(1),
            reason: "the server answered 429 Too Many Requests".to_string()
        }
    );
    assert_eq!(server.ranges.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_checksum_mismatch_deletes_the_file_and_says_so() {
    let server = serve(model_bytes(), Mode::Normal).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.gguf");
    let wrong = "0".repeat(64);
    let (result, _) = fetch(&server, dest.clone(), &wrong).await;
    let err = result.unwrap_err();
    assert!(matches!(err, DownloadError::ChecksumMismatch { .. }), "{err}");
    assert!(err.to_string().contains(SMOLLM2_SHA256) && err.to_string().contains("deleted"), "{err}");
    assert!(!dest.exists() && !dir.path().join("m.gguf.part").exists());
}

#[tokio::test]
async fn a_missing_file_fails_at_once_without_retries() {
    let server = serve(model_bytes(), Mode::Normal).await;
    let missing =
        Server { url: format!("{}.missing", server.url), ranges: server.ranges.clone(), _loopback: server._loopback };
    let dir = tempfile::tempdir().unwrap();
    let (result, events) = fetch(&missing, dir.path().join("m.gguf"), SMOLLM2_SHA256).await;
    let err = result.unwrap_err();
    assert!(matches!(err, DownloadError::Http { .. }) && err.to_string().contains("404"), "{err}");
    assert!(events.iter().all(|e| !matches!(e, DownloadEvent::Retrying { .. })));
}

#[tokio::test]
async fn a_cancelled_download_keeps_what_arrived_and_resumes_next_time() {
    let bytes = model_bytes();
    let server = serve(bytes.clone(), Mode::Slow(256 * 1024)).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.gguf");
    let download = Download::new(server.url.clone(), dest.clone(), SMOLLM2_SHA256);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let downloader = quick_retries();
    let run = {
        let (download, tx, cancel) = (download.clone(), tx.clone(), cancel.clone());
        tokio::spawn(async move { downloader.fetch(&download, &tx, &cancel).await })
    };
    // Cancel once a few MB have arrived.
    while let Some(event) = rx.recv().await {
        if matches!(event, DownloadEvent::Progress { done, .. } if done > 3_000_000) {
            cancel.cancel();
            break;
        }
    }
    let err = run.await.unwrap().unwrap_err();
    assert!(matches!(err, DownloadError::Cancelled { .. }), "{err}");
    let kept = std::fs::metadata(dir.path().join("m.gguf.part")).unwrap().len();
    assert!(kept > 3_000_000 && kept < bytes.len() as u64, "{kept}");

    let fast = serve(bytes, Mode::Normal).await;
    let (result, events) = fetch(&fast, dest, SMOLLM2_SHA256).await;
    result.unwrap();
    assert_eq!(*fast.ranges.lock().unwrap(), [format!("bytes={kept}-")]);
    assert!(events.iter().any(|e| matches!(e, DownloadEvent::Started { resumed_from, .. } if *resumed_from == kept)));
}

/// A full disk is said as such, with how much more is needed, and what arrived is kept. The disk is a
/// 1 MiB tmpfs mounted for the test (tests run as root: scripts/test, CI).
#[tokio::test]
async fn a_full_disk_says_how_much_more_is_needed_and_keeps_what_arrived() {
    let slice: Arc<Vec<u8>> = Arc::new(model_bytes()[..2_000_000].to_vec());
    let sha256 = {
        use sha2::Digest;
        sha2::Sha256::digest(slice.as_slice()).iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let server = serve(slice, Mode::Normal).await;
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a small tmpfs needs root (scripts/test runs as root)");
    let (result, _) = fetch(&server, dir.path().join("m.gguf"), &sha256).await;
    let kept = std::fs::metadata(dir.path().join("m.gguf.part")).map(|m| m.len());
    let unmounted = std::process::Command::new("umount").arg(dir.path()).status().unwrap();
    assert!(unmounted.success());

    let err = result.unwrap_err();
    assert!(matches!(err, DownloadError::DiskFull { .. }), "{err}");
    assert!(err.to_string().contains("the disk is full") && err.to_string().contains("more bytes"), "{err}");
    assert!(kept.unwrap() > 0, "nothing of what arrived was kept");
}
