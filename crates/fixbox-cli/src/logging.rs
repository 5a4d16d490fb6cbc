//! The command's log: a daily file in `<data dir>/logs` (a week kept), so that the terminal shows only
//! the command's own lines, each once. `RUST_LOG` picks what is logged (default: info for Fixbox, warn
//! for the rest); `-v` or a set `RUST_LOG` echoes it to stderr too, and so does an engine's supervisor,
//! whose stderr is its own log file. Colour only where stderr is a terminal.

use std::io::IsTerminal as _;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Installs the subscriber. Keep the guard alive until exit: dropping it flushes the file.
pub fn init(echo: bool) -> Option<WorkerGuard> {
    let echo = echo || std::env::var_os("RUST_LOG").is_some();
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,fixbox=info"));
    let (file, guard, file_error) = match fixbox_store::log_file("fixbox") {
        Ok(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(writer).with_filter(filter());
            (Some(layer), Some(guard), None)
        }
        Err(err) => (None, None, Some(err)),
    };
    // Without a file, warnings still reach someone.
    let stderr = (echo || file.is_none()).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .with_filter(filter())
    });
    tracing_subscriber::registry().with(file).with(stderr).init();
    if let Some(err) = file_error {
        tracing::warn!("logging to stderr only: {err:#}");
    }
    guard
}
