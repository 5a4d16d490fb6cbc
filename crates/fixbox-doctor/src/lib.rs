//! `fixbox doctor`: checks that Fixbox can work on this machine — Docker reachable, a keychain for
//! secrets, GPUs, memory and CPU, a writable data dir, engines installed — each with a hint that says
//! what to do when it is not so.
//!
//! Both front ends show the same [`DoctorReport`]: the CLI prints it, the desktop app renders it.
//! Not for fixing anything itself: it only looks.

mod checks;
mod report;

pub use report::{Check, CheckId, CheckStatus, DoctorReport};

use std::path::PathBuf;
use std::time::Duration;

/// How long one check may take before it is reported as not answering.
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// What to check where the defaults do not fit.
#[derive(Debug, Clone, Default)]
pub struct DoctorOptions {
    /// The data directory to check; `None` for Fixbox's default ([`fixbox_store::data_dir`]).
    pub data_dir: Option<PathBuf>,
}

/// Runs every check concurrently and returns the report in a fixed order.
pub async fn run(options: &DoctorOptions) -> DoctorReport {
    let hardware = tokio::task::spawn_blocking(|| fixbox_hardware::probe(None));
    let (docker, keychain, data_dir, engines, hardware) = tokio::join!(
        bounded(CheckId::Docker, checks::docker()),
        bounded(CheckId::Keychain, checks::keychain()),
        bounded(CheckId::DataDir, checks::data_dir(options.data_dir.clone())),
        bounded(CheckId::Engines, checks::engines()),
        tokio::time::timeout(CHECK_TIMEOUT, hardware),
    );
    let hardware_checks = match hardware {
        Ok(Ok(Ok(report))) => checks::hardware(&report),
        Ok(Ok(Err(err))) => vec![Check::warn(
            CheckId::Gpu,
            err.to_string(),
            "Fixbox cannot size models for this machine; pick a model by hand, and report this with your OS version",
        )],
        Ok(Err(panicked)) => vec![crashed(CheckId::Gpu, &panicked)],
        Err(_) => vec![timed_out(CheckId::Gpu, "reading the GPUs")],
    };
    let mut checks = vec![docker, keychain];
    checks.extend(hardware_checks);
    checks.extend([data_dir, engines]);
    DoctorReport { fixbox_version: env!("CARGO_PKG_VERSION").to_string(), checks }
}

async fn bounded(id: CheckId, check: impl Future<Output = Check>) -> Check {
    let what = match id {
        CheckId::Docker => "Docker",
        CheckId::Keychain => "the OS keychain (is it waiting for you to unlock it?)",
        CheckId::DataDir => "opening the database (is another program holding it locked?)",
        CheckId::Engines => "an engine's --version",
        CheckId::Gpu | CheckId::Memory | CheckId::Cpu => "reading the hardware",
    };
    tokio::time::timeout(CHECK_TIMEOUT, check).await.unwrap_or_else(|_| timed_out(id, what))
}

/// A check whose code panicked: a bug of ours, said as such.
pub(crate) fn crashed(id: CheckId, err: &tokio::task::JoinError) -> Check {
    let summary = format!("the {} check crashed: {err}", id.title());
    Check::problem(id, summary, "this is a bug in Fixbox: please report it with the checks' log at debug level")
}

/// A check that hung.
fn timed_out(id: CheckId, what: &str) -> Check {
    let summary = format!("{what} did not answer within {} s", CHECK_TIMEOUT.as_secs());
    Check::problem(id, summary, "check again; if it hangs again, the checks' log at debug level says where")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_check_fails_only_where_sessions_depend_on_it() {
        let status = |id| timed_out(id, "it").status;
        assert_eq!(status(CheckId::Docker), CheckStatus::Fail);
        assert_eq!(status(CheckId::DataDir), CheckStatus::Fail);
        for id in [CheckId::Keychain, CheckId::Gpu, CheckId::Memory, CheckId::Cpu, CheckId::Engines] {
            assert_eq!(status(id), CheckStatus::Warn, "{id:?}");
        }
        assert!(timed_out(CheckId::Keychain, "the OS keychain").fix.is_some());
    }
}
