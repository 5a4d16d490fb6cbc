//! What a new fix session starts with unless told otherwise: its limits, the sandbox's share of this
//! machine, and the files each repository shares with it. Stored in the settings; the desktop's settings page edits them, and both front ends
//! read them.

use std::path::Path;

use fixbox_store::Store;
use serde::{Deserialize, Serialize};

use crate::AgentError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(default, deny_unknown_fields)]
pub struct Preferences {
    pub max_iterations: u32,
    /// US dollars a session may spend on models; `None`: no limit.
    pub budget_usd: Option<f64>,
    /// Wall time of a whole session.
    pub timeout_minutes: u32,
    pub sandbox_memory_mib: u32,
    /// CPUs, fractional allowed.
    pub sandbox_cpus: f64,
    /// Processes and threads.
    pub sandbox_pids: u32,
}

impl Default for Preferences {
    fn default() -> Self {
        let sandbox = fixbox_sandbox::Limits::default();
        Self {
            max_iterations: 10,
            budget_usd: None,
            timeout_minutes: 30,
            sandbox_memory_mib: u32::try_from(sandbox.memory_bytes >> 20).unwrap_or(u32::MAX),
            sandbox_cpus: sandbox.cpus,
            sandbox_pids: u32::try_from(sandbox.pids).unwrap_or(u32::MAX),
        }
    }
}

impl Preferences {
    /// The settings key they are stored under.
    pub const SETTING: &'static str = "fix.preferences";

    /// The stored preferences, or the defaults when none are stored.
    pub fn load(store: &Store) -> Result<Self, AgentError> {
        match store.setting(Self::SETTING)?.filter(|v| !v.is_null()) {
            Some(value) => serde_json::from_value(value).map_err(|e| {
                AgentError::Config(format!("the stored session preferences are invalid ({e}); save them again"))
            }),
            None => Ok(Self::default()),
        }
    }

    /// Checks them and stores them.
    pub fn save(&self, store: &Store) -> Result<(), AgentError> {
        self.validate()?;
        let value = serde_json::to_value(self).map_err(|e| AgentError::Config(e.to_string()))?;
        store.set_setting(Self::SETTING, &value)?;
        Ok(())
    }

    /// Each value in a range a session can run with, or an error that names the value and the range.
    pub fn validate(&self) -> Result<(), AgentError> {
        let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(AgentError::Config(what.into())) };
        check((1..=200).contains(&self.max_iterations), "max iterations must be 1 to 200")?;
        check(self.budget_usd.is_none_or(|b| b.is_finite() && b >= 0.0), "the budget must be 0 USD or more")?;
        check((1..=24 * 60).contains(&self.timeout_minutes), "the time limit must be 1 minute to 24 hours")?;
        check(
            (256..=1 << 20).contains(&self.sandbox_memory_mib),
            "the sandbox's memory must be 256 MiB to 1 TiB (tests and their interpreter need room)",
        )?;
        check(
            self.sandbox_cpus.is_finite() && (0.1..=1024.0).contains(&self.sandbox_cpus),
            "the sandbox's CPUs must be 0.1 to 1024",
        )?;
        check((32..=1 << 20).contains(&self.sandbox_pids), "the sandbox's process limit must be 32 or more")
    }

    /// The sandbox limits these preferences ask for, its disks sized from its memory.
    pub fn sandbox_limits(&self) -> fixbox_sandbox::Limits {
        fixbox_sandbox::Limits {
            cpus: self.sandbox_cpus,
            pids: i64::from(self.sandbox_pids),
            ..fixbox_sandbox::Limits::with_memory(u64::from(self.sandbox_memory_mib) << 20)
        }
    }

    /// The session limits these preferences ask for; the rest as [`crate::Limits::default`].
    pub fn limits(&self) -> crate::Limits {
        crate::Limits {
            max_iterations: self.max_iterations,
            budget_usd: self.budget_usd,
            wall_time_s: u64::from(self.timeout_minutes) * 60,
            ..crate::Limits::default()
        }
    }
}

/// The files of one repository its sessions give the sandbox although their names look like
/// credentials (patterns as [`crate::FixRequest::share`] takes them), remembered per repository so the
/// user says it once. Kept in this machine's settings, never in the repository: a repository cannot
/// share its user's secrets on its own.
#[derive(Debug)]
pub struct SharedFiles;

impl SharedFiles {
    fn key(repo: &Path) -> String {
        let repo = std::fs::canonicalize(repo).unwrap_or_else(|_| repo.to_path_buf());
        format!("fix.shared_files:{}", repo.display())
    }

    /// The patterns remembered for `repo` (none when nothing was remembered).
    pub fn load(store: &Store, repo: &Path) -> Result<Vec<String>, AgentError> {
        match store.setting(&Self::key(repo))?.filter(|v| !v.is_null()) {
            Some(value) => serde_json::from_value(value).map_err(|e| {
                AgentError::Config(format!("the files remembered as shared for {} are invalid ({e})", repo.display()))
            }),
            None => Ok(Vec::new()),
        }
    }

    /// Remembers `patterns` for `repo`, replacing what was remembered; none forgets them.
    pub fn save(store: &Store, repo: &Path, patterns: &[String]) -> Result<(), AgentError> {
        let patterns: Vec<&str> = patterns.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect();
        let value = if patterns.is_empty() { serde_json::Value::Null } else { serde_json::json!(patterns) };
        store.set_setting(&Self::key(repo), &value)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferences_round_trip_through_the_store_and_bad_ones_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        assert_eq!(Preferences::load(&store).unwrap(), Preferences::default());

        let mine = Preferences { budget_usd: Some(0.5), sandbox_memory_mib: 4096, ..Preferences::default() };
        mine.save(&store).unwrap();
        assert_eq!(Preferences::load(&store).unwrap(), mine);
        assert_eq!(mine.sandbox_limits().memory_bytes, 4 << 30);
        assert_eq!(mine.limits().wall_time_s, 30 * 60);

        let tiny = Preferences { sandbox_memory_mib: 16, ..mine.clone() };
        let err = tiny.save(&store).unwrap_err().to_string();
        assert!(err.contains("memory") && err.contains("256 MiB"), "{err}");
        assert_eq!(Preferences::load(&store).unwrap(), mine, "a refused save keeps what was stored");
        assert!(Preferences { budget_usd: Some(-1.0), ..mine.clone() }.validate().is_err());
        assert!(Preferences { sandbox_cpus: f64::NAN, ..mine }.validate().is_err());
    }

    #[test]
    fn shared_files_are_remembered_per_repository_however_its_path_is_spelled() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let (repo, other) = (dir.path().join("repo"), dir.path().join("other"));
        std::fs::create_dir_all(repo.join("sub")).unwrap();
        std::fs::create_dir(&other).unwrap();
        assert!(SharedFiles::load(&store, &repo).unwrap().is_empty());

        SharedFiles::save(&store, &repo, &[" .env ".into(), "certs/*".into(), "".into()]).unwrap();
        assert_eq!(SharedFiles::load(&store, &repo.join("sub/..")).unwrap(), [".env", "certs/*"]);
        assert!(SharedFiles::load(&store, &other).unwrap().is_empty(), "another repository shares nothing");

        SharedFiles::save(&store, &repo, &[]).unwrap();
        assert!(SharedFiles::load(&store, &repo).unwrap().is_empty(), "saving none forgets them");
    }
}
