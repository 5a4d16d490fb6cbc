use std::fmt;

use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use crate::error::QueryContext;
use crate::store::now_ms;
use crate::{Store, StoreError};

/// A fix session's identity: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub(crate) String);

impl SessionId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for SessionId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(uuid::Uuid::parse_str(s)?.hyphenated().to_string()))
    }
}

/// A session as listed: what it is and how far its log goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    pub id: SessionId,
    pub title: String,
    pub created_at_ms: i64,
    /// The highest `seq` in its event log; 0 when it has no events yet.
    pub last_seq: u64,
    pub last_event_at_ms: Option<i64>,
}

/// Selects [`SessionSummary`] columns; callers append `WHERE`, `GROUP BY s.id` and ordering.
macro_rules! summary_select {
    () => {
        "SELECT s.id, s.title, s.created_at, COALESCE(MAX(e.seq), 0), MAX(e.at)
         FROM sessions s LEFT JOIN events e ON e.session_id = s.id "
    };
}

fn summary_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionSummary> {
    Ok(SessionSummary {
        id: SessionId(r.get(0)?),
        title: r.get(1)?,
        created_at_ms: r.get(2)?,
        last_seq: r.get(3)?,
        last_event_at_ms: r.get(4)?,
    })
}

impl Store {
    /// Starts a new session with an empty event log.
    pub fn create_session(&self, title: &str) -> Result<SessionId, StoreError> {
        let id = SessionId(uuid::Uuid::now_v7().hyphenated().to_string());
        self.conn()
            .execute("INSERT INTO sessions (id, title, created_at) VALUES (?1, ?2, ?3)", (id.as_str(), title, now_ms()))
            .op("create session")?;
        Ok(id)
    }

    /// Every session, newest first.
    pub fn list_sessions(&self) -> Result<Vec<SessionSummary>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(concat!(summary_select!(), "GROUP BY s.id ORDER BY s.created_at DESC, s.id DESC"))
            .op("list sessions")?;
        let rows = stmt.query_map([], summary_from_row).op("list sessions")?;
        rows.collect::<Result<_, _>>().op("list sessions")
    }

    /// Deletes a session and its whole event log; `false` when there was no such session. The only way
    /// an event leaves the log: it goes with its session, never alone.
    pub fn delete_session(&self, id: &SessionId) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().op("delete session")?;
        tx.execute("INSERT INTO deleting_sessions (id) VALUES (?1)", [id.as_str()]).op("delete session")?;
        tx.execute("DELETE FROM events WHERE session_id = ?1", [id.as_str()]).op("delete session")?;
        let deleted = tx.execute("DELETE FROM sessions WHERE id = ?1", [id.as_str()]).op("delete session")?;
        tx.execute("DELETE FROM deleting_sessions WHERE id = ?1", [id.as_str()]).op("delete session")?;
        tx.commit().op("delete session")?;
        Ok(deleted > 0)
    }

    /// One session's summary, or `None` when there is no such session.
    pub fn session(&self, id: &SessionId) -> Result<Option<SessionSummary>, StoreError> {
        self.conn()
            .query_row(concat!(summary_select!(), "WHERE s.id = ?1 GROUP BY s.id"), [id.as_str()], summary_from_row)
            .optional()
            .op("read session")
    }
}
