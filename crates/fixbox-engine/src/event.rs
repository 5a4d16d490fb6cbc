//! What happens to a supervised engine, as the supervisor reports it and its state file follows it.

use serde::Serialize;

/// What happened to a supervised engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EngineEvent {
    /// The preferred port was taken: who holds it, and the port used instead.
    PortTaken {
        message: String,
        port: u16,
    },
    Starting {
        attempt: u32,
        pid: u32,
    },
    Ready {
        url: String,
        pid: u32,
        startup_ms: u64,
    },
    /// The process ended without being asked to; the last lines of its log.
    Exited {
        pid: u32,
        status: String,
        log_tail: String,
    },
    /// It stopped answering its health checks and was killed (a restart follows).
    Unresponsive {
        pid: u32,
        failures: u32,
    },
    Restarting {
        attempt: u32,
        wait_ms: u64,
    },
    GaveUp {
        reason: String,
    },
    Stopped,
}
