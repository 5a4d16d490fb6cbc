//! `fixbox sessions list|show|replay|export`: sessions read back from their event logs.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "printing is what a command does")]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use fixbox_agent::{Event, SessionReport};
use fixbox_store::{SessionId, SessionSummary, Store, StoredEvent};

use crate::render::Renderer;

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Every session, newest first.
    List,
    /// A session's outcome, tests, calls, cost and change.
    Show { id: String },
    /// Print a session again, event by event, as it was shown live.
    Replay { id: String },
    /// Write a session's change as a patch (`git apply`-able) and its report as JSON.
    Export {
        id: String,
        /// The folder to write `<id>.patch` and `<id>.json` into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

pub async fn run(command: SessionsCommand) -> anyhow::Result<ExitCode> {
    tokio::task::spawn_blocking(move || {
        let store = Store::open_default()?;
        match command {
            SessionsCommand::List => list(&store),
            SessionsCommand::Show { id } => show(&store, &id),
            SessionsCommand::Replay { id } => replay(&store, &id),
            SessionsCommand::Export { id, out } => export(&store, &id, &out),
        }
    })
    .await
    .context("reading the sessions crashed")?
}

fn list(store: &Store) -> anyhow::Result<ExitCode> {
    for session in store.list_sessions()? {
        let events = store.events_from(&session.id, 1)?;
        let state = match SessionReport::from_events(&events) {
            Some(report) => report.outcome.map_or("unfinished".into(), |o| o.describe()),
            None => format!("{} events", session.last_seq),
        };
        println!("{}  {}  {}  — {state}", session.id, when(session.created_at_ms), session.title);
    }
    Ok(ExitCode::SUCCESS)
}

fn show(store: &Store, id: &str) -> anyhow::Result<ExitCode> {
    let (session, events) = find(store, id)?;
    let report = fix_report(&session, &events)?;
    println!("session {}  {}\n  {}", session.id, when(session.created_at_ms), session.title);
    println!("  repository: {}\n  tests: {}  (sandbox {})", report.repo, report.test_command, report.image);
    println!("  outcome: {}", report.outcome.as_ref().map_or("unfinished".into(), |o| o.describe()));
    if let Some(before) = &report.tests_before {
        println!("  tests before: {}", before.line());
    }
    if let Some(after) = &report.tests_after {
        println!("  tests after:  {}", after.line());
    }
    println!(
        "  {} iterations, {} patches applied, {} rejected, {} model calls",
        report.iterations,
        report.patches_applied,
        report.patches_rejected,
        report.calls.len()
    );
    if let Some(totals) = &report.totals {
        println!(
            "  {} prompt tokens ({} from the cache), {} generated, ${:.4} (${:.4} in the cloud)",
            totals.usage.prompt,
            totals.usage.cache_read,
            totals.usage.completion,
            totals.cost_usd,
            totals.equivalent_cost_usd
        );
    }
    if !report.diff.is_empty() {
        println!("\n{}", report.diff);
    }
    Ok(ExitCode::SUCCESS)
}

fn replay(store: &Store, id: &str) -> anyhow::Result<ExitCode> {
    let (session, events) = find(store, id)?;
    fix_report(&session, &events)?;
    let mut renderer = Renderer::stdout();
    for event in events.iter().filter_map(Event::from_stored) {
        renderer.event(&event)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn export(store: &Store, id: &str, out: &std::path::Path) -> anyhow::Result<ExitCode> {
    let (session, events) = find(store, id)?;
    let report = fix_report(&session, &events)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let patch = out.join(format!("{}.patch", session.id));
    let json = out.join(format!("{}.json", session.id));
    std::fs::write(&patch, &report.diff).with_context(|| format!("cannot write {}", patch.display()))?;
    let document = serde_json::json!({ "session": session.id, "title": session.title, "created_at_ms": session.created_at_ms, "report": report });
    std::fs::write(&json, serde_json::to_string_pretty(&document)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    println!("{}\n{}", patch.display(), json.display());
    if report.diff.is_empty() {
        eprintln!("the session changed nothing: the patch is empty");
    }
    Ok(ExitCode::SUCCESS)
}

/// The session whose id is `id` or starts with it.
fn find(store: &Store, id: &str) -> anyhow::Result<(SessionSummary, Vec<StoredEvent>)> {
    let id = id.trim();
    let matching: Vec<SessionSummary> = match id.parse::<SessionId>() {
        Ok(full) => store.session(&full)?.into_iter().collect(),
        Err(_) => {
            store.list_sessions()?.into_iter().filter(|s| !id.is_empty() && s.id.as_str().starts_with(id)).collect()
        }
    };
    let session = match matching.len() {
        1 => matching.into_iter().next().context("unreachable")?,
        0 => bail!("there is no session {id}: `fixbox sessions list` shows them"),
        n => bail!("{n} sessions start with {id}: give more of the id"),
    };
    let events = store.events_from(&session.id, 1)?;
    Ok((session, events))
}

fn fix_report(session: &SessionSummary, events: &[StoredEvent]) -> anyhow::Result<SessionReport> {
    SessionReport::from_events(events)
        .with_context(|| format!("session {} is not a fix session ({})", session.id, session.title))
}

/// A time as `2026-11-22 00:11 UTC`.
fn when(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rest / 3600, rest % 3600 / 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc_dates() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        // Expected values from `date -u -d @SECONDS`.
        assert_eq!(when(1_795_308_660_000), "2026-11-22 00:51 UTC");
        assert_eq!(when(1_709_251_140_000), "2024-02-29 23:59 UTC");
        assert_eq!(when(951_914_040_000), "2000-03-01 12:34 UTC");
        assert_eq!(when(-60_000), "1969-12-31 23:59 UTC");
    }
}
