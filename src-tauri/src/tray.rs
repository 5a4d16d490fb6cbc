//! The tray icon: what the local engine is doing at a glance, and from its menu the window, stopping
//! the engine this app started, and quitting. A desktop without a tray library runs the app without one.

use std::sync::Arc;

use fixbox_engine::{EngineEvent, EngineKind, EngineState, EngineStatus, Registry};
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager as _, Wry};

use crate::serving::Serving;

/// The tray, when this desktop has one.
pub struct Tray(Option<Parts>);

struct Parts {
    icon: TrayIcon,
    status: MenuItem<Wry>,
    stop: MenuItem<Wry>,
}

/// The engine as the tray shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayLine {
    /// `llama-server: serving SmolLM2-360M at 127.0.0.1:8080`, `No engine running`.
    pub line: String,
    /// Whether the engine is this app's, which the tray can stop.
    pub ours: bool,
}

impl TrayLine {
    const NONE: &str = "No engine running";

    /// What the supervisors' state files say: the first engine that runs.
    pub fn from_registry(registry: &Registry) -> Self {
        Self::from_states(&registry.all_supervised())
    }

    /// The first of the engines whose supervisors live ([`Registry::all_supervised`]).
    pub fn from_states(supervised: &[EngineState]) -> Self {
        supervised
            .first()
            .map(|s| Self {
                line: describe(s.engine, &s.model, s.status, s.url.as_deref()),
                ours: s.supervisor_pid == std::process::id(),
            })
            .unwrap_or(Self { line: Self::NONE.into(), ours: false })
    }

    /// What `event` of this app's engine serving `model` makes of it; `None` for an event that does
    /// not change it.
    pub fn from_event(kind: EngineKind, model: &str, event: &EngineEvent) -> Option<Self> {
        let (status, url) = match event {
            EngineEvent::Starting { .. } => (EngineStatus::Starting, None),
            EngineEvent::Ready { url, .. } => (EngineStatus::Ready, Some(url.as_str())),
            EngineEvent::Exited { .. } | EngineEvent::Unresponsive { .. } | EngineEvent::Restarting { .. } => {
                (EngineStatus::Restarting, None)
            }
            EngineEvent::GaveUp { .. } => (EngineStatus::GaveUp, None),
            EngineEvent::Stopped => return Some(Self { line: Self::NONE.into(), ours: false }),
            EngineEvent::PortTaken { .. } => return None,
        };
        Some(Self { line: describe(kind, model, status, url), ours: true })
    }
}

/// One line for an engine's status.
fn describe(kind: EngineKind, model: &str, status: EngineStatus, url: Option<&str>) -> String {
    let at = url.map(|u| format!(" at {}", u.trim_start_matches("http://"))).unwrap_or_default();
    match status {
        EngineStatus::Ready => format!("{kind}: serving {model}{at}"),
        EngineStatus::Starting => format!("{kind}: starting {model}"),
        EngineStatus::Restarting => format!("{kind}: restarting {model}"),
        EngineStatus::GaveUp => format!("{kind}: gave up restarting {model}"),
        EngineStatus::Failed => format!("{kind}: failed to start {model}"),
    }
}

impl Tray {
    /// Puts the icon in the tray with the engine's status; without a tray, says why in the log.
    pub fn install(app: &AppHandle, serving: Arc<Serving>) -> Self {
        if let Some(why) = unsupported() {
            tracing::info!("no tray icon: {why}");
            return Self(None);
        }
        match build(app, serving) {
            Ok(parts) => Self(Some(parts)),
            Err(err) => {
                tracing::warn!(%err, "the tray icon could not be made; the app runs without it");
                Self(None)
            }
        }
    }

    fn show(&self, status: &TrayLine) {
        let Some(parts) = &self.0 else { return };
        let shown = parts
            .status
            .set_text(&status.line)
            .and_then(|()| parts.stop.set_enabled(status.ours))
            .and_then(|()| parts.icon.set_tooltip(Some(format!("Fixbox · {}", status.line))));
        if let Err(err) = shown {
            tracing::warn!(%err, "the tray could not show the engine's status");
        }
    }
}

/// Shows `status` in the app's tray, if it has one.
pub fn show(app: &AppHandle, status: &TrayLine) {
    if let Some(tray) = app.try_state::<Tray>() {
        tray.show(status);
    }
}

/// Shows what the supervisors' state files say, an engine started by `fixbox engine start` too.
pub fn refresh(app: &AppHandle) {
    if app.try_state::<Tray>().is_none_or(|tray| tray.0.is_none()) {
        return;
    }
    match crate::serving::engine_registry() {
        Ok(registry) => show(app, &TrayLine::from_registry(&registry)),
        Err(err) => tracing::debug!(%err, "no data folder; the tray shows no engine"),
    }
}

fn build(app: &AppHandle, serving: Arc<Serving>) -> tauri::Result<Parts> {
    let status = MenuItem::with_id(app, "engine-status", TrayLine::NONE, false, None::<&str>)?;
    let open = MenuItem::with_id(app, "open", "Open Fixbox", true, None::<&str>)?;
    let stop = MenuItem::with_id(app, "stop-engine", "Stop the engine", false, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Fixbox", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&status, &PredefinedMenuItem::separator(app)?, &open, &stop, &quit])?;
    let mut icon = TrayIconBuilder::with_id("fixbox").menu(&menu).tooltip("Fixbox").on_menu_event(move |app, event| {
        match event.id.as_ref() {
            "open" => crate::show_window(app),
            "stop-engine" => {
                let serving = Arc::clone(&serving);
                tauri::async_runtime::spawn(async move { serving.stop().await });
            }
            "quit" => app.exit(0),
            _ => {}
        }
    });
    if let Some(image) = app.default_window_icon() {
        icon = icon.icon(image.clone());
    }
    Ok(Parts { icon: icon.build(app)?, status, stop })
}

/// Why the tray cannot be made here, if it cannot. On Linux the tray is an AppIndicator, whose library
/// is loaded when the first icon is made, and whose absence aborts the app there: look for it first.
fn unsupported() -> Option<&'static str> {
    #[cfg(target_os = "linux")]
    {
        const LIBRARIES: [&str; 2] = ["libayatana-appindicator3.so.1", "libappindicator3.so.1"];
        let in_path = std::env::var_os("LD_LIBRARY_PATH").is_some_and(|dirs| {
            std::env::split_paths(&dirs).any(|dir| LIBRARIES.iter().any(|lib| dir.join(lib).exists()))
        });
        let known = || {
            ["/sbin/ldconfig", "/usr/sbin/ldconfig", "ldconfig"].iter().find_map(|ldconfig| {
                let out = std::process::Command::new(ldconfig).arg("-p").output().ok()?;
                let cache = String::from_utf8_lossy(&out.stdout).into_owned();
                Some(LIBRARIES.iter().any(|lib| cache.contains(lib)))
            })
        };
        if !in_path && known() != Some(true) {
            return Some("the AppIndicator library is not installed (Debian: apt install libayatana-appindicator3-1)");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_follows_the_engine_events() {
        let kind = EngineKind::LlamaServer;
        let status = |event| TrayLine::from_event(kind, "SmolLM2-360M", &event);
        assert_eq!(
            status(EngineEvent::Ready { url: "http://127.0.0.1:8080".into(), pid: 7, startup_ms: 900 }),
            Some(TrayLine { line: "llama-server: serving SmolLM2-360M at 127.0.0.1:8080".into(), ours: true })
        );
        assert_eq!(
            status(EngineEvent::Restarting { attempt: 2, wait_ms: 500 }).unwrap().line,
            "llama-server: restarting SmolLM2-360M"
        );
        assert_eq!(status(EngineEvent::Stopped), Some(TrayLine { line: "No engine running".into(), ours: false }));
        assert_eq!(status(EngineEvent::PortTaken { message: String::new(), port: 8081 }), None);
    }
}
