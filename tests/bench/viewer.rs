//! The live diff viewer under load, in the real app window (tauri-driver + WebKitWebDriver, Xvfb): a fix
//! session whose model answer is a 5,000-line diff (2,500 lines out, 2,500 in: a price table moved from
//! cents to dollars) streamed at 200 tokens a second by a loopback OpenAI-compatible server. The patch
//! is real: it applies, and pytest runs in the sandbox.
//!
//! Prints the window's frame times while the answer streams (requestAnimationFrame intervals; target:
//! p95 under 16 ms) against the same window's idle frame times measured just before (the baseline: what
//! the display itself gives), and the app's resident memory at idle before and after the session (the
//! app process and its WebKit processes together; target under 150 MB) against a blank page in
//! WebKitGTK's own MiniBrowser measured the same way in the same run (the baseline: what any window
//! of this WebView costs on this machine, before an app shows anything; where there is no GPU, also a
//! blank page drawn without accelerated compositing, as the app then draws).
//!
//! Run: `cargo bench -p fixbox-e2e --bench viewer`. Under `cargo test` (CI) it streams 200 lines only,
//! to check that the benchmark works. `FIXBOX_BENCH_VIEWER_LINES` sets another size.
#![expect(clippy::print_stdout, reason = "a benchmark prints its report")]

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use fantoccini::Locator;
use fixbox_agent::setup::Routes;
use fixbox_e2e::transcripts::{Answer, Pace, ReplayServer};
use fixbox_e2e::window::{Window, screenshot, wait_for};
use fixbox_llm::{ProviderConfig, ProviderKind, RoutesConfig};

const TOKENS_PER_SECOND: u32 = 200;

#[tokio::main]
async fn main() -> Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let lines: usize = match std::env::var("FIXBOX_BENCH_VIEWER_LINES").ok() {
        Some(n) => n.parse().context("FIXBOX_BENCH_VIEWER_LINES is not a number")?,
        None if bench => 5000,
        None => {
            println!("test mode (no --bench): 200 lines; `cargo bench --bench viewer` streams 5,000");
            200
        }
    };
    let entries = (lines / 2).max(1);
    let out = fixbox_e2e::output_dir("bench-viewer")?;
    let repo = tempfile::tempdir()?;
    write_project(repo.path(), entries)?;
    let pieces = tokens(&answer_text(entries));
    let server = ReplayServer::start(vec![Answer::streamed(&pieces)], Pace::PerSecond(TOKENS_PER_SECOND)).await?;
    let data = tempfile::tempdir()?;
    let provider = ProviderConfig {
        name: "replay".into(),
        kind: ProviderKind::Openai,
        base_url: format!("{}/v1", server.url),
        model: "synthetic".into(),
        api_key: None,
        context_window: Some(1 << 20),
        price: None,
        local: Some(true),
        key: None,
    };
    Routes::save(&fixbox_store::Store::open_in(data.path())?, Some(&RoutesConfig::single(provider)))?;

    let window = Window::open(data.path(), &out).await?;
    let driver = window.driver_pid();
    let stream_time = Duration::from_secs_f64(pieces.len() as f64 / f64::from(TOKENS_PER_SECOND));
    let folder = repo.path().display().to_string();
    let mut report = None;
    let (slot, out) = (&mut report, out.as_path());
    window
        .check_within(stream_time * 3 + Duration::from_secs(300), |client| async move {
            *slot = Some(measure(&client, &folder, driver, out).await?);
            Ok(())
        })
        .await?;
    let report = report.context("no measurements")?;
    ensure!(report.rows == lines, "the viewer shows {} rows of the {lines}-line diff", report.rows);

    println!(
        "\n{lines}-line diff ({} tokens) streamed at {TOKENS_PER_SECOND} tokens/s into the fix page",
        pieces.len()
    );
    println!(
        "streaming took {:.1} s ({:.0} tokens/s as the window saw it)",
        report.streaming.as_secs_f64(),
        pieces.len() as f64 / report.streaming.as_secs_f64()
    );
    println!("| frames | count | p50 ms | p95 ms | p99 ms | max ms | longer than one 60 Hz frame |");
    println!("|---|---|---|---|---|---|---|");
    for (name, frames) in [("idle (baseline)", &report.idle_frames), ("streaming", &report.stream_frames)] {
        let s = Stats::of(frames);
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1}% |",
            frames.len(),
            s.p50,
            s.p95,
            s.p99,
            s.max,
            s.over_frame * 100.0
        );
    }
    let (idle, streaming) = (Stats::of(&report.idle_frames), Stats::of(&report.stream_frames));
    println!(
        "frame time p95 while streaming: {:.1} ms (target < 16 ms; a 60 Hz display's floor is 16.7), {:.2}x the idle window's",
        streaming.p95,
        streaming.p95 / idle.p95
    );
    let baseline = blank_webkit_page(false).await.context("measuring the baseline, a blank page in MiniBrowser")?;
    // The app turns accelerated compositing off where there is no GPU: a blank page drawn that way too
    // shows what of the difference is the app's own.
    let gpu = std::fs::read_dir("/dev/dri")
        .is_ok_and(|mut nodes| nodes.any(|n| n.is_ok_and(|n| n.file_name().to_string_lossy().starts_with("renderD"))));
    let unaccelerated = match gpu {
        true => None,
        false => blank_webkit_page(true).await.context("measuring a blank page without compositing")?,
    };
    for (how, blank) in [("", &baseline), (" without accelerated compositing, as the app draws here", &unaccelerated)] {
        match blank {
            Some(blank) => println!(
                "baseline: a blank page in WebKitGTK's MiniBrowser{how}: {:.0} MB resident ({:.0} MB proportional share) in {} processes: {}",
                mb(blank.rss),
                mb(blank.pss),
                blank.processes.len(),
                blank.processes.join(", ")
            ),
            None if how.is_empty() => {
                println!("baseline: no MiniBrowser here (it comes with WebKitGTK's library package)")
            }
            None => {}
        }
    }
    for (when, memory) in [("before the session", &report.memory_before), ("after the session", &report.memory_after)] {
        let versus = baseline.as_ref().map_or(String::new(), |blank| {
            format!(
                "; {:.2}x the blank page's resident, {:+.0} MB",
                memory.rss as f64 / blank.rss as f64,
                mb(memory.rss) - mb(blank.rss)
            )
        });
        println!(
            "idle memory {when}: {:.0} MB resident ({:.0} MB proportional share) in {} processes: {} (target < 150 MB{versus})",
            mb(memory.rss),
            mb(memory.pss),
            memory.processes.len(),
            memory.processes.join(", ")
        );
    }
    Ok(())
}

struct Report {
    rows: usize,
    streaming: Duration,
    idle_frames: Vec<f64>,
    stream_frames: Vec<f64>,
    memory_before: Memory,
    memory_after: Memory,
}

/// Records every frame's interval (ms) from now on into `window.__frames`, until `window.__stop`.
const RECORD_FRAMES: &str = "window.__frames = []; window.__stop = false; let last = performance.now();
    const tick = (now) => { window.__frames.push(now - last); last = now; if (!window.__stop) requestAnimationFrame(tick); };
    requestAnimationFrame(tick);";
const TAKE_FRAMES: &str = "window.__stop = true; return window.__frames;";

async fn measure(client: &fantoccini::Client, folder: &str, driver: u32, out: &Path) -> Result<Report> {
    client.find(Locator::Css("[data-testid=nav-fix]")).await?.click().await?;
    wait_for(client, "[data-testid=fix-route] option", out, "no-routes").await?;
    client.find(Locator::Css("[data-testid=fix-folder]")).await?.send_keys(folder).await?;
    let task = "The prices are in cents; the table must be in dollars.";
    client.find(Locator::Css("[data-testid=fix-task]")).await?.send_keys(task).await?;
    wait_for(client, "[data-testid=fix-detected]", out, "not-detected").await?;

    // Idle: the window settled, then its frames with nothing changing.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let memory_before = Memory::of_app(driver)?;
    client.execute(RECORD_FRAMES, vec![]).await.context("recording idle frames")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_frames = frames(client.execute(TAKE_FRAMES, vec![]).await.context("reading idle frames")?)?;

    client.find(Locator::Css("[data-testid=fix-start]")).await?.click().await?;
    wait_for(client, "[data-testid=diff-line]", out, "nothing-streamed").await?;
    client.execute(RECORD_FRAMES, vec![]).await.context("recording frames")?;
    let started = Instant::now();
    // Until the patch stops streaming; one light look a second.
    loop {
        let status = client
            .find(Locator::Css("[data-testid=patch-status]"))
            .await
            .context("finding the patch")?
            .text()
            .await
            .context("reading the patch's status")?;
        if status != "streaming" {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let streaming = started.elapsed();
    let stream_frames = frames(client.execute(TAKE_FRAMES, vec![]).await.context("reading frames")?)?;
    let status = client.find(Locator::Css("[data-testid=patch-status]")).await?.text().await?;
    ensure!(status == "applied", "the streamed patch was {status:?}");
    let outcome = wait_for(client, "[data-testid=session-outcome]", out, "no-outcome").await?;
    ensure!(outcome.text().await?.contains("fixed"), "{}", outcome.text().await?);
    let rows = client.find_all(Locator::Css("[data-testid=diff-line]")).await?.len();
    screenshot(client, &out.join("streamed.png")).await?;

    tokio::time::sleep(Duration::from_secs(10)).await;
    let memory_after = Memory::of_app(driver)?;
    Ok(Report { rows, streaming, idle_frames, stream_frames, memory_before, memory_after })
}

fn frames(value: serde_json::Value) -> Result<Vec<f64>> {
    let frames: Vec<f64> = serde_json::from_value(value)?;
    // The first interval runs from the script's start, not from a frame.
    Ok(frames.into_iter().skip(1).collect())
}

struct Stats {
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
    /// The share of intervals longer than one 60 Hz frame: frames the window dropped.
    over_frame: f64,
}

impl Stats {
    fn of(frames: &[f64]) -> Self {
        let mut sorted = frames.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted.get(((sorted.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN);
        // rAF intervals are whole milliseconds in WebKit: a 16.7 ms vsync reads as 16 or 17.
        let over = sorted.iter().filter(|&&f| f > 17.0).count() as f64 / sorted.len().max(1) as f64;
        Self { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: at(1.0), over_frame: over }
    }
}

/// A window's processes (the app, or MiniBrowser, and its WebKit web and network processes; not the
/// WebDriver) and their memory: resident, and proportional (shared pages split among the processes
/// that map them).
struct Memory {
    rss: u64,
    pss: u64,
    processes: Vec<String>,
}

impl Memory {
    /// The app's processes: descendants of tauri-driver (`driver`).
    fn of_app(driver: u32) -> Result<Self> {
        Self::of_tree(driver, "fixbox-desktop")
    }

    /// The processes named `app` or `WebKit*` (but WebKitWebDriver) among `root` and its descendants;
    /// an error when `app` is not among them.
    fn of_tree(root: u32, app: &str) -> Result<Self> {
        let mut parents: HashMap<u32, u32> = HashMap::new();
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses, so read after the last ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
            if let Some(ppid) = ppid {
                parents.insert(pid, ppid);
            }
        }
        let in_tree = |mut pid: u32| loop {
            if pid == root {
                return true;
            }
            match parents.get(&pid) {
                Some(&parent) => pid = parent,
                None => return false,
            }
        };
        let (mut rss, mut pss, mut processes) = (0, 0, Vec::new());
        for &pid in parents.keys().filter(|&&pid| in_tree(pid)) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string();
            if !(comm == app || comm.starts_with("WebKit")) || comm == "WebKitWebDriver" {
                continue;
            }
            rss += kib(&format!("/proc/{pid}/status"), "VmRSS:") * 1024;
            pss += kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:") * 1024;
            processes.push(comm);
        }
        ensure!(processes.iter().any(|p| p == app), "no {app} process under pid {root}: it did not start or stay up");
        processes.sort();
        Ok(Self { rss, pss, processes })
    }
}

/// The memory of a blank page (`about:blank`) in WebKitGTK's MiniBrowser, on a display of its own,
/// idle 10 s after its start; `None` where MiniBrowser is not installed.
async fn blank_webkit_page(without_compositing: bool) -> Result<Option<Memory>> {
    let found = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/libexec", "/usr/lib"]
        .iter()
        .map(|dir| Path::new(dir).join("webkit2gtk-4.1/MiniBrowser"))
        .find(|path| path.exists());
    let Some(minibrowser) = found else { return Ok(None) };
    let display = fixbox_e2e::VirtualDisplay::start()?;
    let child = std::process::Command::new(&minibrowser)
        .arg("about:blank")
        .envs(without_compositing.then_some(("WEBKIT_DISABLE_COMPOSITING_MODE", "1")))
        .env("DISPLAY", &display.display)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let browser = fixbox_e2e::ChildGuard::new("MiniBrowser", child);
    tokio::time::sleep(Duration::from_secs(10)).await;
    Ok(Some(Memory::of_tree(browser.id(), "MiniBrowser")?))
}

/// A `Key:   123 kB` line of a /proc file, in KiB.
fn kib(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn cents(i: usize) -> usize {
    100 + i
}

fn entry(i: usize) -> String {
    format!("    \"sku-{i:05}\": {},", cents(i))
}

fn fixed_entry(i: usize) -> String {
    let c = cents(i);
    format!("    \"sku-{i:05}\": {}.{:02},", c / 100, c % 100)
}

/// A Python project whose price table is in cents where its test wants dollars.
fn write_project(dir: &Path, entries: usize) -> Result<()> {
    let table: Vec<String> = (1..=entries).map(entry).collect();
    std::fs::write(
        dir.join("prices.py"),
        format!("\"\"\"Every SKU's price, in dollars.\"\"\"\n\nPRICES = {{\n{}\n}}\n", table.join("\n")),
    )?;
    std::fs::write(
        dir.join("test_prices.py"),
        "from prices import PRICES\n\n\ndef test_prices_are_in_dollars():\n    assert PRICES[\"sku-00001\"] == 1.01\n    assert all(price < 1000 for price in PRICES.values())\n",
    )?;
    Ok(())
}

/// The model's answer: one search/replace block over the whole table.
fn answer_text(entries: usize) -> String {
    let search: Vec<String> = (1..=entries).map(entry).collect();
    let replace: Vec<String> = (1..=entries).map(fixed_entry).collect();
    format!(
        "The table holds cents; each price must be divided by 100.\n\nprices.py\n```python\n<<<<<<< SEARCH\n{}\n=======\n{}\n>>>>>>> REPLACE\n```\n",
        search.join("\n"),
        replace.join("\n")
    )
}

/// `text` as a model streams it: pieces of up to four characters (about a BPE token of code), a line's
/// end joined to the piece before it.
fn tokens(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    for line in text.split_inclusive('\n') {
        let chars: Vec<char> = line.chars().collect();
        let body = chars.len() - usize::from(line.ends_with('\n'));
        let mut at = 0;
        while at < body {
            let end = (at + 4).min(body);
            let end = if end == body { chars.len() } else { end };
            pieces.push(chars[at..end].iter().collect());
            at = end;
        }
        if body == 0 {
            pieces.push(line.to_string());
        }
    }
    pieces
}
