//! A secret value: an API key or a token. Its `Debug` and `Display` print `***`, and it has no
//! `Serialize`, so it cannot slip into a log, an event or SQLite by a derive; the one file that must
//! hold one (an engine's state file, readable by its owner only) says so with [`exposed`].

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// A fresh random key for an engine Fixbox serves (244 random bits).
    pub fn generate() -> Self {
        Self(format!("fbx-{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()))
    }

    /// The value, read only where it leaves the process (an HTTP header, an engine's environment).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What a listing may show: `…` and the last four characters, or `****` for a value shorter than
    /// 12 characters, of which four would be too large a share.
    pub fn hint(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() < 12 {
            "****".into()
        } else {
            format!("…{}", chars[chars.len() - 4..].iter().collect::<String>())
        }
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

/// `#[serde(with = "fixbox_secret::exposed")]` on an `Option<Secret>` field: written as its value, for
/// the one file whose reader needs it.
pub mod exposed {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Secret;

    pub fn serialize<S: Serializer>(secret: &Option<Secret>, serializer: S) -> Result<S::Ok, S::Error> {
        match secret {
            Some(secret) => serializer.serialize_some(secret.expose()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Secret>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.map(Secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_its_value() {
        let secret = Secret::new("sk-live-123");
        assert_eq!(secret.to_string(), "***");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(Secret(***))");
        assert_eq!(secret.hint(), "****");
        assert_eq!(Secret::new("sk-proj-abcdefWXYZ").hint(), "…WXYZ");
    }

    #[test]
    fn generated_keys_differ_and_are_long() {
        let (a, b) = (Secret::generate(), Secret::generate());
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 4 + 64);
    }

    #[test]
    fn exposed_round_trips_only_where_asked() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct State {
            #[serde(with = "exposed", default, skip_serializing_if = "Option::is_none")]
            key: Option<Secret>,
        }
        let json = serde_json::to_string(&State { key: Some(Secret::new("k-1")) }).unwrap();
        assert_eq!(json, r#"{"key":"k-1"}"#);
        let back: State = serde_json::from_str(&json).unwrap();
        assert_eq!(back.key, Some(Secret::new("k-1")));
        assert_eq!(serde_json::from_str::<State>("{}").unwrap().key, None);
    }
}
