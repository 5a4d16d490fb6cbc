use rusqlite::{OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::error::QueryContext;
use crate::store::now_ms;
use crate::{SessionId, Store, StoreError};

/// One entry of a session's event log as stored. The payload's shape belongs to the writer (the
/// session engine); the store only guarantees it is JSON and never changes once written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub session_id: SessionId,
    /// 1 for a session's first event, then +1 per append, with no gaps.
    pub seq: u64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub at_ms: i64,
}

impl Store {
    /// Appends an event to `session`'s log and returns its `seq`. Once this returns, the event is
    /// committed: it survives this process being killed.
    pub fn append_event(
        &self,
        session: &SessionId,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Result<u64, StoreError> {
        let payload = serde_json::to_string(payload).map_err(StoreError::Payload)?;
        let seqs = self.append_events(session, &[(kind, payload)])?;
        seqs.first().copied().ok_or_else(|| StoreError::UnknownSession(session.to_string()))
    }

    /// Appends `events` (each its kind and its JSON text) to `session`'s log in one transaction and
    /// returns their `seq`s, in order. Once this returns, all are committed; if it fails, none is.
    pub fn append_events(&self, session: &SessionId, events: &[(&str, String)]) -> Result<Vec<u64>, StoreError> {
        for (_, payload) in events {
            serde_json::from_str::<serde::de::IgnoredAny>(payload).map_err(StoreError::Payload)?;
        }
        let mut conn = self.conn();
        // IMMEDIATE takes the write lock before reading the last seq, so two processes appending to the
        // same session cannot both pick the same next number.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).op("append event")?;
        let last: Option<u64> = tx
            .query_row(
                "SELECT (SELECT MAX(seq) FROM events WHERE session_id = ?1) FROM sessions WHERE id = ?1",
                [session.as_str()],
                |r| r.get(0),
            )
            .optional()
            .op("append event")?
            .ok_or_else(|| StoreError::UnknownSession(session.to_string()))?;
        let first = last.unwrap_or(0) + 1;
        let at = now_ms();
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO events (session_id, seq, kind, payload, at) VALUES (?1, ?2, ?3, ?4, ?5)")
                .op("append event")?;
            for (seq, (kind, payload)) in (first..).zip(events) {
                insert.execute((session.as_str(), seq, kind, payload, at)).op("append event")?;
            }
        }
        tx.commit().op("append event")?;
        Ok((first..).take(events.len()).collect())
    }

    /// `session`'s events with `seq >= from_seq`, in order. `from_seq` 1 (or 0) replays the whole log.
    pub fn events_from(&self, session: &SessionId, from_seq: u64) -> Result<Vec<StoredEvent>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT seq, kind, payload, at FROM events
                 WHERE session_id = ?1 AND seq >= ?2 ORDER BY seq",
            )
            .op("read events")?;
        let rows = stmt
            .query_map((session.as_str(), from_seq), |r| {
                Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
            })
            .op("read events")?;
        rows.map(|row| {
            let (seq, kind, payload, at_ms) = row.op("read events")?;
            // The column has CHECK(json_valid), so this fails only on a file edited by hand.
            let payload = serde_json::from_str(&payload).map_err(StoreError::Payload)?;
            Ok(StoredEvent { session_id: session.clone(), seq, kind, payload, at_ms })
        })
        .collect()
    }

    /// Every session's events of the given kinds, oldest first.
    pub fn events_of_kinds(&self, kinds: &[&str]) -> Result<Vec<StoredEvent>, StoreError> {
        let conn = self.conn();
        let kinds = serde_json::to_string(kinds).map_err(StoreError::Payload)?;
        let mut stmt = conn
            .prepare(
                "SELECT session_id, seq, kind, payload, at FROM events
                 WHERE kind IN (SELECT value FROM json_each(?1)) ORDER BY at, session_id, seq",
            )
            .op("read events")?;
        let rows = stmt
            .query_map([kinds], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .op("read events")?;
        rows.map(|row| {
            let (session, seq, kind, payload, at_ms) = row.op("read events")?;
            let payload = serde_json::from_str(&payload).map_err(StoreError::Payload)?;
            Ok(StoredEvent { session_id: SessionId(session), seq, kind, payload, at_ms })
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_at(&dir.path().join("fixbox.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn events_of_some_kinds_come_from_every_session_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let (a, b) = (store.create_session("a").unwrap(), store.create_session("b").unwrap());
        store.append_event(&a, "llm.call", &json!(1)).unwrap();
        store.append_event(&b, "patch.delta", &json!(2)).unwrap();
        store.append_event(&b, "model.call", &json!(3)).unwrap();
        let found = store.events_of_kinds(&["llm.call", "model.call"]).unwrap();
        let found: Vec<_> = found.iter().map(|e| (e.session_id.clone(), e.payload.clone())).collect();
        assert_eq!(found, [(a, json!(1)), (b, json!(3))]);
        assert!(store.events_of_kinds(&[]).unwrap().is_empty());
    }

    #[test]
    fn seq_starts_at_one_and_counts_per_session() {
        let (_dir, store) = store();
        let a = store.create_session("a").unwrap();
        let b = store.create_session("b").unwrap();
        assert_eq!(store.append_event(&a, "x", &json!(1)).unwrap(), 1);
        assert_eq!(store.append_event(&a, "x", &json!(2)).unwrap(), 2);
        assert_eq!(store.append_event(&b, "x", &json!(3)).unwrap(), 1);
        assert_eq!(store.append_event(&a, "x", &json!(4)).unwrap(), 3);

        let from_two: Vec<_> = store.events_from(&a, 2).unwrap().into_iter().map(|e| (e.seq, e.payload)).collect();
        assert_eq!(from_two, vec![(2, json!(2)), (3, json!(4))]);
        assert_eq!(store.events_from(&a, 0).unwrap().len(), 3);
        assert!(store.events_from(&a, 4).unwrap().is_empty());
    }

    #[test]
    fn appending_to_an_unknown_session_is_an_error_that_names_it() {
        let (_dir, store) = store();
        let ghost: SessionId = "0191f0a0-0000-7000-8000-000000000000".parse().unwrap();
        let err = store.append_event(&ghost, "x", &json!(null)).unwrap_err();
        assert!(matches!(err, StoreError::UnknownSession(_)));
        assert!(err.to_string().contains(ghost.as_str()));
    }

    #[test]
    fn stored_events_cannot_be_changed_or_deleted() {
        let (_dir, store) = store();
        let s = store.create_session("s").unwrap();
        store.append_event(&s, "x", &json!({"a": 1})).unwrap();
        let conn = store.conn();
        let update = conn.execute("UPDATE events SET payload = '{}'", []).unwrap_err();
        assert!(update.to_string().contains("append-only"), "{update}");
        let delete = conn.execute("DELETE FROM events", []).unwrap_err();
        assert!(delete.to_string().contains("append-only"), "{delete}");
    }

    #[test]
    fn a_session_is_deleted_whole_and_the_others_stay_append_only() {
        let (_dir, store) = store();
        let gone = store.create_session("gone").unwrap();
        let kept = store.create_session("kept").unwrap();
        for i in 0..3 {
            store.append_event(&gone, "x", &json!(i)).unwrap();
            store.append_event(&kept, "x", &json!(i)).unwrap();
        }
        assert!(store.delete_session(&gone).unwrap());
        assert!(!store.delete_session(&gone).unwrap(), "a second delete finds nothing");
        assert!(store.session(&gone).unwrap().is_none());
        assert!(store.events_from(&gone, 1).unwrap().is_empty());
        assert_eq!(store.events_from(&kept, 1).unwrap().len(), 3);
        // Deleting left no way open to delete single events.
        let conn = store.conn();
        let delete = conn.execute("DELETE FROM events WHERE seq = 1", []).unwrap_err();
        assert!(delete.to_string().contains("append-only"), "{delete}");
        let pending: i64 = conn.query_row("SELECT COUNT(*) FROM deleting_sessions", [], |r| r.get(0)).unwrap();
        assert_eq!(pending, 0);
    }

    #[test]
    fn sessions_list_newest_first_with_their_last_seq() {
        let (_dir, store) = store();
        let old = store.create_session("old").unwrap();
        let new = store.create_session("new").unwrap();
        for _ in 0..3 {
            store.append_event(&old, "x", &json!(null)).unwrap();
        }
        let list = store.list_sessions().unwrap();
        let got: Vec<_> = list.iter().map(|s| (s.id.clone(), s.title.as_str(), s.last_seq)).collect();
        assert_eq!(got, vec![(new.clone(), "new", 0), (old.clone(), "old", 3)]);
        assert!(list[0].last_event_at_ms.is_none());
        assert_eq!(store.session(&old).unwrap().unwrap().last_seq, 3);
    }
}
