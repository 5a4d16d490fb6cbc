//! The event log's promise under a hard kill: an event a subscriber was sent is committed. A child
//! process (this test binary again) records events as fast as it can, its subscriber printing each
//! `seq` it receives; the parent reads those lines for a while, kills the child with SIGKILL, and finds
//! every printed event in the SQLite file, in order and without gaps.
#![cfg(unix)]
#![expect(clippy::unwrap_used, reason = "test code: a failure stops the test with its message")]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use fixbox_agent::{Event, EventLog};
use fixbox_store::{SessionId, Store};

const CHILD: &str = "FIXBOX_EVENT_LOG_CHILD";
/// Acknowledged events the parent waits for before the kill: enough for many batches.
const SEEN_BEFORE_KILL: u64 = 3000;

#[test]
fn every_event_a_subscriber_was_sent_survives_a_kill_9() {
    if let Ok(spec) = std::env::var(CHILD) {
        record_until_killed(&spec);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let session = Store::open_in(dir.path()).unwrap().create_session("kill -9").unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["every_event_a_subscriber_was_sent_survives_a_kill_9", "--exact", "--nocapture"])
        .env(CHILD, format!("{}\n{session}", dir.path().display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acked = 0;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let Some(seq) = line.unwrap().strip_prefix("acked ").map(|s| s.parse::<u64>().unwrap()) else { continue };
        assert!(seq > acked, "the subscriber is sent events in order: {seq} after {acked}");
        acked = seq;
        if acked >= SEEN_BEFORE_KILL {
            break;
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not done: {status}");

    let events = Store::open_in(dir.path()).unwrap().events_from(&session, 1).unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert!(seqs.len() as u64 >= acked, "{acked} events were acknowledged but {} are in the file", seqs.len());
    assert!(seqs.iter().copied().eq(1..=seqs.len() as u64), "the log has gaps or is out of order");
    println!("{acked} events acknowledged before the kill; {} committed", seqs.len());
}

/// The child: records `tests.output` lines into the session `spec` names (`<data dir>\n<session>`) until
/// it is killed, printing `acked <seq>` for each event its subscriber receives.
fn record_until_killed(spec: &str) {
    let (dir, session) = spec.split_once('\n').unwrap();
    let store = Arc::new(Store::open_in(std::path::Path::new(dir)).unwrap());
    let session: SessionId = session.parse().unwrap();
    let log = EventLog::new(store, session);
    let mut received = log.subscribe();
    std::thread::spawn(move || {
        let mut out = std::io::stdout().lock();
        loop {
            match received.blocking_recv() {
                Ok(recorded) => writeln!(out, "acked {}", recorded.seq).unwrap(),
                // Behind the broadcast: the events it skipped are committed all the same.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
            out.flush().unwrap();
        }
    });
    for n in 0.. {
        log.record(Event::TestsOutput { iteration: 1, text: format!("test output line {n}") }).unwrap();
    }
}
