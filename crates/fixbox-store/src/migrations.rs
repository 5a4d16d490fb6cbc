//! Schema migrations, applied in order at open. A database records how many it has seen in
//! `PRAGMA user_version`; each migration runs in its own transaction together with the bump of that
//! number, so a failure leaves the file at the previous version with nothing half-applied.
//!
//! Never edit a migration that has shipped: append a new one.

use rusqlite::Connection;

use crate::StoreError;

/// One schema step: the SQL that takes a database from version `index` to `index + 1`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "settings, sessions and the event log",
        sql: r#"
        CREATE TABLE settings (
            key        TEXT PRIMARY KEY,
            value      TEXT NOT NULL CHECK (json_valid(value)),
            updated_at INTEGER NOT NULL
        ) STRICT;

        CREATE TABLE sessions (
            id         TEXT PRIMARY KEY,
            title      TEXT NOT NULL,
            created_at INTEGER NOT NULL
        ) STRICT;

        CREATE TABLE events (
            session_id TEXT NOT NULL REFERENCES sessions(id),
            seq        INTEGER NOT NULL CHECK (seq > 0),
            kind       TEXT NOT NULL,
            payload    TEXT NOT NULL CHECK (json_valid(payload)),
            at         INTEGER NOT NULL,
            PRIMARY KEY (session_id, seq)
        ) STRICT, WITHOUT ROWID;

        -- The log is append-only: replay depends on history never changing under it.
        CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    "#,
    },
    Migration {
        name: "a whole session can be deleted",
        sql: r#"
        -- A session the user deletes goes whole: its id is listed here, in the same transaction that
        -- deletes its events and itself (Store::delete_session). No other event can be deleted.
        CREATE TABLE deleting_sessions (id TEXT PRIMARY KEY) STRICT;
        DROP TRIGGER events_append_only_delete;
        CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
        WHEN OLD.session_id NOT IN (SELECT id FROM deleting_sessions)
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    "#,
    },
];

/// Brings `conn` up to `migrations.len()`, returning the version it started at.
pub(crate) fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<u32, StoreError> {
    let known = u32::try_from(migrations.len()).unwrap_or(u32::MAX);
    let found = user_version(conn).map_err(|source| StoreError::Migrate { version: 0, source })?;
    if found > known {
        return Err(StoreError::NewerSchema { found, known });
    }
    for (index, migration) in migrations.iter().enumerate().skip(found as usize) {
        let version = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let apply = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
            // Another process may have migrated while we waited for the lock.
            if user_version(&tx)? >= version {
                return Ok(());
            }
            tracing::info!(version, name = migration.name, "migrating database");
            tx.execute_batch(migration.sql)?;
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()
        };
        apply(conn).map_err(|source| StoreError::Migrate { version, source })?;
    }
    Ok(found)
}

pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    /// A later release's migration of the riskiest kind: it rebuilds the event table (as SQLite needs
    /// for most column changes) and adds a column with a default.
    const REBUILD_EVENTS: Migration = Migration {
        name: "test: rebuild events with a source column",
        sql: r#"
            DROP TRIGGER events_append_only_update;
            DROP TRIGGER events_append_only_delete;
            CREATE TABLE events_new (
                session_id TEXT NOT NULL REFERENCES sessions(id),
                seq        INTEGER NOT NULL CHECK (seq > 0),
                kind       TEXT NOT NULL,
                payload    TEXT NOT NULL CHECK (json_valid(payload)),
                at         INTEGER NOT NULL,
                source     TEXT NOT NULL DEFAULT 'local',
                PRIMARY KEY (session_id, seq)
            ) STRICT, WITHOUT ROWID;
            INSERT INTO events_new (session_id, seq, kind, payload, at)
                SELECT session_id, seq, kind, payload, at FROM events;
            DROP TABLE events;
            ALTER TABLE events_new RENAME TO events;
        "#,
    };

    fn all_events(conn: &Connection) -> Vec<(String, i64, String, String)> {
        let mut stmt =
            conn.prepare("SELECT session_id, seq, kind, payload FROM events ORDER BY session_id, seq").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_second_migration_keeps_every_row_of_an_existing_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fixbox.db");
        let store = Store::open_at(&path).unwrap();
        let a = store.create_session("first").unwrap();
        let b = store.create_session("second").unwrap();
        for i in 0..50 {
            let payload = serde_json::json!({ "i": i, "text": "ünïcödé \u{1F600}" });
            store.append_event(if i % 3 == 0 { &a } else { &b }, "note", &payload).unwrap();
        }
        store.set_setting("engine.port", &serde_json::json!(8081)).unwrap();
        drop(store);

        let mut conn = Connection::open(&path).unwrap();
        let before = all_events(&conn);
        assert_eq!(before.len(), 50);
        let with_second: Vec<Migration> = MIGRATIONS.iter().copied().chain([REBUILD_EVENTS]).collect();

        let found = migrate(&mut conn, &with_second).unwrap();
        assert_eq!(found as usize, MIGRATIONS.len());
        assert_eq!(user_version(&conn).unwrap() as usize, with_second.len());
        assert_eq!(all_events(&conn), before);
        let source: String = conn.query_row("SELECT DISTINCT source FROM events", [], |r| r.get(0)).unwrap();
        assert_eq!(source, "local");
        let port: String =
            conn.query_row("SELECT value FROM settings WHERE key = 'engine.port'", [], |r| r.get(0)).unwrap();
        assert_eq!(port, "8081");

        // Running the same list again is a no-op.
        assert_eq!(migrate(&mut conn, &with_second).unwrap() as usize, with_second.len());
        assert_eq!(all_events(&conn), before);
    }

    #[test]
    fn a_failing_migration_leaves_the_previous_version_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fixbox.db");
        let store = Store::open_at(&path).unwrap();
        let s = store.create_session("kept").unwrap();
        store.append_event(&s, "note", &serde_json::json!({})).unwrap();
        drop(store);

        let broken =
            Migration { name: "broken", sql: "ALTER TABLE events ADD COLUMN x TEXT; SELECT * FROM no_such_table;" };
        let with_broken: Vec<Migration> = MIGRATIONS.iter().copied().chain([broken]).collect();
        let mut conn = Connection::open(&path).unwrap();
        let err = migrate(&mut conn, &with_broken).unwrap_err();
        assert!(matches!(err, StoreError::Migrate { version, .. } if version as usize == with_broken.len()));
        assert_eq!(user_version(&conn).unwrap() as usize, MIGRATIONS.len());
        drop(conn);

        let store = Store::open_at(&path).unwrap();
        assert_eq!(store.events_from(&s, 1).unwrap().len(), 1);
    }

    #[test]
    fn a_database_from_a_newer_fixbox_is_refused_not_touched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fixbox.db");
        drop(Store::open_at(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);

        let err = Store::open_at(&path).unwrap_err();
        assert!(matches!(err, StoreError::NewerSchema { found: 99, .. }), "{err}");
        assert!(err.to_string().contains("update Fixbox"));
    }
}
