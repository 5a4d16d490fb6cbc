use rusqlite::OptionalExtension;

use crate::error::QueryContext;
use crate::store::now_ms;
use crate::{Store, StoreError};

impl Store {
    /// The setting stored under `key`, or `None` when it was never set.
    pub fn setting(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let raw: Option<String> = self
            .conn()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .op("read setting")?;
        raw.map(|raw| serde_json::from_str(&raw).map_err(StoreError::Payload)).transpose()
    }

    /// Stores `value` under `key`, replacing what was there.
    pub fn set_setting(&self, key: &str, value: &serde_json::Value) -> Result<(), StoreError> {
        let value = serde_json::to_string(value).map_err(StoreError::Payload)?;
        self.conn()
            .execute(
                "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, value, now_ms()),
            )
            .op("write setting")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fixbox.db");
        let store = Store::open_at(&path).unwrap();
        assert_eq!(store.setting("ui.theme").unwrap(), None);
        store.set_setting("ui.theme", &serde_json::json!("dark")).unwrap();
        store.set_setting("ui.theme", &serde_json::json!({"name": "light"})).unwrap();
        drop(store);
        let store = Store::open_at(&path).unwrap();
        assert_eq!(store.setting("ui.theme").unwrap(), Some(serde_json::json!({"name": "light"})));
    }
}
