//! The app logs to stderr and to a daily-rotated file in `<data dir>/logs`, keeping a week.
//! `RUST_LOG` picks what is logged (default: info for Fixbox, warn for the rest).

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

const KEEP_LOG_FILES: usize = 7;

/// Installs the subscriber. Keep the guard alive until exit: dropping it flushes the file.
pub fn init() -> Option<WorkerGuard> {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,fixbox=info"));
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter());
    let (file, guard, file_error) = match file_appender() {
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

fn file_appender() -> anyhow::Result<tracing_appender::rolling::RollingFileAppender> {
    let dir = fixbox_store::data_dir()?.join("logs");
    // The appender's clean-up of old files reads the dir before creating it, and complains on stderr.
    std::fs::create_dir_all(&dir)?;
    Ok(tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("fixbox-desktop")
        .filename_suffix("log")
        .max_log_files(KEEP_LOG_FILES)
        .build(&dir)?)
}
