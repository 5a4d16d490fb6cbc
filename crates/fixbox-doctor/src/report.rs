use serde::Serialize;

/// The outcome of every check, in a fixed order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct DoctorReport {
    pub fixbox_version: String,
    pub checks: Vec<Check>,
}

impl DoctorReport {
    /// The worst status among the checks: `Fail` means Fixbox cannot run fix sessions here.
    pub fn overall(&self) -> CheckStatus {
        self.checks.iter().map(|c| c.status).max().unwrap_or(CheckStatus::Ok)
    }

    pub fn check(&self, id: CheckId) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    Docker,
    Keychain,
    Gpu,
    Memory,
    Cpu,
    DataDir,
    Engines,
}

impl CheckId {
    /// Whether fix sessions cannot run at all when this check fails; the others only limit them.
    pub fn blocks_sessions(self) -> bool {
        matches!(self, Self::Docker | Self::DataDir)
    }

    /// What the check is about, as a person would name it.
    pub fn title(self) -> &'static str {
        match self {
            Self::Docker => "Docker",
            Self::Keychain => "Keychain",
            Self::Gpu => "GPU",
            Self::Memory => "Memory",
            Self::Cpu => "CPU",
            Self::DataDir => "Data directory",
            Self::Engines => "Engines",
        }
    }
}

/// Ordered from good to bad, so the worst of several is their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    /// Works, but something is missing or slower than it could be.
    Warn,
    /// Fixbox cannot do its main job until this is fixed.
    Fail,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Check {
    pub id: CheckId,
    pub title: String,
    pub status: CheckStatus,
    /// One line: what was found.
    pub summary: String,
    /// Further facts, one per line.
    pub details: Vec<String>,
    /// What to do about a warning or failure.
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(id: CheckId, summary: impl Into<String>) -> Self {
        Self {
            id,
            title: id.title().to_string(),
            status: CheckStatus::Ok,
            summary: summary.into(),
            details: Vec::new(),
            fix: None,
        }
    }

    pub fn warn(id: CheckId, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { status: CheckStatus::Warn, fix: Some(fix.into()), ..Self::ok(id, summary) }
    }

    /// A warning with `fix` when there is one, else ok.
    pub fn ok_or_warn(id: CheckId, summary: impl Into<String>, fix: Option<&str>) -> Self {
        match fix {
            Some(fix) => Self::warn(id, summary, fix),
            None => Self::ok(id, summary),
        }
    }

    /// Something is wrong with `id`: a failure where fix sessions depend on it, else a warning.
    pub fn problem(id: CheckId, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        if id.blocks_sessions() { Self::failed(id, summary, Some(fix.into())) } else { Self::warn(id, summary, fix) }
    }

    pub fn failed(id: CheckId, summary: impl Into<String>, fix: Option<String>) -> Self {
        Self { status: CheckStatus::Fail, fix, ..Self::ok(id, summary) }
    }

    pub fn with_details(mut self, details: impl IntoIterator<Item = String>) -> Self {
        self.details.extend(details);
        self
    }
}
