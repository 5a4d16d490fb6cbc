//! A session's event log under a flood of lines (a test run's output, a patch streaming in): events
//! per second through `EventLog::record` (queued, committed by its writer thread in batches, then
//! broadcast) against the baseline measured in the same run, one `Store::append_event` transaction
//! per event (how the log wrote before, on the caller's thread). Both on a fresh SQLite file in WAL
//! mode, as the app and CLI open theirs; the batched figure includes waiting for the last commit.
//!
//! Run: `cargo bench -p fixbox-e2e --bench event_log [-- EVENTS]` (default 20,000).
#![expect(clippy::print_stdout, reason = "a benchmark prints its report")]

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use fixbox_agent::{Event, EventLog};
use fixbox_store::Store;

#[tokio::main]
async fn main() -> Result<()> {
    let events: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or(Ok(20_000), |n| n.parse().context("EVENTS is not a number"))?;
    let line =
        |n: u64| Event::TestsOutput { iteration: 1, text: format!("tests/test_prices.py::test_total[{n}] PASSED") };

    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open_in(dir.path())?);
    let session = store.create_session("per event")?;
    let started = Instant::now();
    for n in 0..events {
        let event = line(n);
        store.append_event(&session, event.kind(), &serde_json::to_value(&event)?)?;
    }
    let per_event = events as f64 / started.elapsed().as_secs_f64();

    let session = store.create_session("batched")?;
    let log = EventLog::new(Arc::clone(&store), session.clone());
    let started = Instant::now();
    for n in 0..events {
        log.record(line(n))?;
    }
    log.flush().await?;
    let batched = events as f64 / started.elapsed().as_secs_f64();
    let stored = store.events_from(&session, 1)?.len() as u64;
    ensure!(stored == events, "{stored} of {events} events are in the file");

    println!("{events} events, one per line of output:");
    println!("  one transaction per event (the baseline): {per_event:.0} events/s");
    println!(
        "  EventLog, batched on its writer thread:    {batched:.0} events/s ({:.1}x the baseline)",
        batched / per_event
    );
    Ok(())
}
