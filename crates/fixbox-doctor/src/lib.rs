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
    let hardware = tokio::task::spawn_blocking(fixbox_hardware::probe);
    let (docker, keychain, data_dir, engines, hardware) = tokio::join!(
        bounded(CheckId::Docker, checks::docker()),
        bounded(CheckId::Keychain, checks::keychain()),
        bounded(CheckId::DataDir, checks::data_dir(options.data_dir.clone())),
        bounded(CheckId::Engines, checks::engines()),
        tokio::time::timeout(CHECK_TIMEOUT, hardware),
    );
    let hardware_checks = match hardware {
        Ok(Ok(Ok(report))) => checks::hardware(&report),
        Ok(Ok(Err(err))) => vec![Check::failed(CheckId::Gpu, err.to_string(), None)],
        Ok(Err(panicked)) => vec![Check::failed(CheckId::Gpu, format!("the hardware probe failed: {panicked}"), None)],
        Err(_) => vec![timed_out(CheckId::Gpu)],
    };
    let mut checks = vec![docker, keychain];
    checks.extend(hardware_checks);
    checks.extend([data_dir, engines]);
    DoctorReport { fixbox_version: env!("CARGO_PKG_VERSION").to_string(), checks }
}

async fn bounded(id: CheckId, check: impl Future<Output = Check>) -> Check {
    tokio::time::timeout(CHECK_TIMEOUT, check).await.unwrap_or_else(|_| timed_out(id))
}

fn timed_out(id: CheckId) -> Check {
    Check::failed(
        id,
        format!("did not answer within {} s", CHECK_TIMEOUT.as_secs()),
        Some("run `fixbox doctor` again; if it hangs again, run with RUST_LOG=debug to see where".to_string()),
    )
}
