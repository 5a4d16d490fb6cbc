//! API keys and tokens in the OS keychain (macOS Keychain, Windows Credential Manager, the Secret
//! Service on Linux). Never in SQLite, logs or events: a [`Secret`] prints as `***`.
//!
//! The keyring calls block (D-Bus round trips, possibly an unlock prompt); async callers use
//! `spawn_blocking`.

use fixbox_secret::Secret;
use serde::Serialize;

use crate::{Store, StoreError};

/// The keychain service name every Fixbox secret is filed under.
pub const KEYCHAIN_SERVICE: &str = "dev.fixbox.Fixbox";

/// Fixbox's secrets in the OS keychain, one entry per name (e.g. `github`, `openai`).
#[derive(Debug, Clone, Default)]
pub struct Keychain;

impl Keychain {
    pub fn set(&self, name: &str, secret: &Secret) -> Result<(), StoreError> {
        entry(name)?.set_password(secret.expose()).map_err(|e| keychain_error("store a secret in", e))
    }

    /// The secret stored under `name`, or `None` when there is none.
    pub fn get(&self, name: &str) -> Result<Option<Secret>, StoreError> {
        match entry(name)?.get_password() {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(keychain_error("read a secret from", e)),
        }
    }

    /// Removes the secret stored under `name`; removing one that is not there is not an error.
    pub fn delete(&self, name: &str) -> Result<(), StoreError> {
        match entry(name)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(keychain_error("delete a secret from", e)),
        }
    }

    /// Checks that the keychain answers, with a lookup of an entry that does not exist. It reads only,
    /// so it never pops up an unlock prompt (a locked keyring asks at the first write, as it should).
    pub fn probe(&self) -> Result<(), StoreError> {
        self.get("doctor-probe").map(|_| ())
    }
}

/// A stored secret as listings show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretListing {
    pub name: String,
    /// [`Secret::hint`]; `None` when the keychain no longer has the entry (removed outside Fixbox).
    pub hint: Option<String>,
}

/// The names of the secrets Fixbox stored, kept in the settings so they can be listed (keychains do not
/// list portably); the values stay in the keychain.
const NAMES_SETTING: &str = "secrets.names";

impl Keychain {
    /// Stores `secret` under `name` in the keychain and its name (only) in `store`'s index.
    pub fn store(&self, store: &Store, name: &str, secret: &Secret) -> Result<(), StoreError> {
        check_name(name)?;
        self.set(name, secret)?;
        let mut names = names(store)?;
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
            names.sort();
            store.set_setting(NAMES_SETTING, &serde_json::json!(names))?;
        }
        Ok(())
    }

    /// Removes `name` from the keychain and the index; `false` when there was nothing under it.
    pub fn remove(&self, store: &Store, name: &str) -> Result<bool, StoreError> {
        let existed = self.get(name)?.is_some();
        self.delete(name)?;
        let mut names = names(store)?;
        let listed = names.iter().any(|n| n == name);
        names.retain(|n| n != name);
        store.set_setting(NAMES_SETTING, &serde_json::json!(names))?;
        Ok(existed || listed)
    }

    /// The stored secrets' names with their hints.
    pub fn list(&self, store: &Store) -> Result<Vec<SecretListing>, StoreError> {
        names(store)?
            .into_iter()
            .map(|name| Ok(SecretListing { hint: self.get(&name)?.map(|s| s.hint()), name }))
            .collect()
    }
}

fn names(store: &Store) -> Result<Vec<String>, StoreError> {
    Ok(store.setting(NAMES_SETTING)?.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default())
}

fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok { Ok(()) } else { Err(StoreError::SecretName(name.to_string())) }
}

fn entry(name: &str) -> Result<keyring::Entry, StoreError> {
    keyring::Entry::new(KEYCHAIN_SERVICE, name).map_err(|e| keychain_error("open an entry in", e))
}

fn keychain_error(op: &'static str, err: keyring::Error) -> StoreError {
    match err {
        keyring::Error::PlatformFailure(e) | keyring::Error::NoStorageAccess(e) => {
            let reason = e.to_string();
            // A locked keyring asks to be unlocked, and with no one to answer the prompt it is dismissed.
            if reason.contains("locked") || reason.contains("prompt was dismissed") {
                StoreError::KeychainLocked { op, reason }
            } else {
                StoreError::NoKeychain { op, reason }
            }
        }
        other => StoreError::Keychain { op, reason: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_checked() {
        for good in ["openai", "github", "my-router.v2", "hf_2"] {
            check_name(good).unwrap();
        }
        for bad in ["", "OpenAI", "-x", "a b", "sk/../x", &"x".repeat(65)] {
            assert!(matches!(check_name(bad), Err(StoreError::SecretName(_))), "{bad}");
        }
    }
}
