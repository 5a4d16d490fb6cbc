//! API keys and tokens in the OS keychain (macOS Keychain, Windows Credential Manager, the Secret
//! Service on Linux). Never in SQLite, logs or events: a [`Secret`] prints as `***`.
//!
//! The keyring calls block (D-Bus round trips, possibly an unlock prompt); async callers use
//! `spawn_blocking`.

use std::fmt;

use crate::StoreError;

/// The keychain service name every Fixbox secret is filed under.
pub const KEYCHAIN_SERVICE: &str = "dev.fixbox.Fixbox";

/// A secret value. Its `Debug` and `Display` print `***`; read it with [`Secret::expose`] only where it
/// leaves the process (an HTTP header).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

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
            Ok(value) => Ok(Some(Secret(value))),
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

fn entry(name: &str) -> Result<keyring::Entry, StoreError> {
    keyring::Entry::new(KEYCHAIN_SERVICE, name).map_err(|e| keychain_error("open an entry in", e))
}

fn keychain_error(op: &'static str, err: keyring::Error) -> StoreError {
    match err {
        keyring::Error::PlatformFailure(e) | keyring::Error::NoStorageAccess(e) => {
            StoreError::NoKeychain { op, reason: e.to_string() }
        }
        other => StoreError::Keychain { op, reason: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_its_value() {
        let secret = Secret::new("sk-live-123");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(Secret(***))");
        assert_eq!(secret.expose(), "sk-live-123");
    }
}
