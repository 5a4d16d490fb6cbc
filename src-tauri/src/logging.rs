//! The app logs to stderr and to a daily-rotated file in `<data dir>/logs`, keeping a week.
//! `RUST_LOG` picks what is logged (default: info for Fixbox, warn for the rest).

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Installs the subscriber. Keep the guard alive until exit: dropping it flushes the file.
pub fn init() -> Option<WorkerGuard> {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,fixbox=info"));
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter());
    let (file, guard, file_error) = match fixbox_store::log_file("fixbox-desktop") {
        Ok(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(writer).with_filter(filter());
            (Some(layer), Some(guard), None)
        }
        Err(err) => (None, None, Some(err)),
    };
    tracing_subscriber::registry().with(stderr).with(file).init();
    if let Some(err) = file_error {
        tracing::warn!("logging to stderr only: {err:#}");
    }
    guard
}
