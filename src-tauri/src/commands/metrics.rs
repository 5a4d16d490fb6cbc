//! Metrics: every model call the event log holds, summed per model and per session, and each call's
//! latency and speed for the charts.

use std::collections::HashMap;

use fixbox_agent::calls::{CallSummary, logged_calls, model_of, summarize};
use serde::Serialize;

use super::{blocking, open_store};
use crate::error::IpcError;

#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct MetricsView {
    pub by_model: Vec<CallSummary>,
    /// Newest session first.
    pub by_session: Vec<SessionCalls>,
    /// Every call, oldest first.
    pub calls: Vec<CallPoint>,
}

#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct SessionCalls {
    pub title: String,
    pub summary: CallSummary,
}

/// One call, as the charts plot it.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct CallPoint {
    pub session: String,
    pub at_ms: i64,
    /// `route/model`.
    pub model: String,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub tokens_per_second: Option<f64>,
}

#[tauri::command]
#[specta::specta]
pub async fn metrics_get() -> Result<MetricsView, IpcError> {
    blocking(|| {
        let store = open_store()?;
        let calls = logged_calls(&store)?;
        let titles: HashMap<String, String> =
            store.list_sessions()?.into_iter().map(|s| (s.id.to_string(), s.title)).collect();
        // Session ids are UUIDv7s: in reverse order, newest first.
        let mut by_session: Vec<SessionCalls> = summarize(&calls, |c| c.session.clone())
            .into_iter()
            .map(|summary| SessionCalls { title: titles.get(&summary.key).cloned().unwrap_or_default(), summary })
            .collect();
        by_session.reverse();
        let points = calls
            .iter()
            .map(|c| CallPoint {
                session: c.session.clone(),
                at_ms: c.at_ms,
                model: model_of(c),
                latency_ms: c.record.latency_ms,
                ttft_ms: c.record.ttft_ms,
                tokens_per_second: c.record.tokens_per_second,
            })
            .collect();
        Ok(MetricsView { by_model: summarize(&calls, model_of), by_session, calls: points })
    })
    .await
}
