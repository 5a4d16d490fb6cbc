//! Work done once when the app starts, in the background so the window opens at once.

/// One app per data folder: starting Fixbox again brings the running window to the front instead of
/// opening a second app over the same database and engines. Apps with different data folders
/// (`FIXBOX_DATA_DIR`) run side by side.
pub fn single_instance() -> tauri::plugin::TauriPlugin<tauri::Wry> {
    let data = fixbox_store::data_dir().map(|d| d.display().to_string()).unwrap_or_default();
    tauri_plugin_single_instance::Builder::new()
        .dbus_id(format!("dev.fixbox.Fixbox.d{:016x}", fnv1a(data.as_bytes())))
        .callback(|app, _args, _cwd| {
            tracing::info!("Fixbox was started again; showing this window instead");
            crate::show_window(app);
        })
        .build()
}

/// FNV-1a: a hash that stays the same across builds, so any two versions find each other.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// `fixbox://fix?repo=owner/repo&issue=123` links: the one the app was started with waits for the
/// window to ask (`app_take_link`); one that reaches the running app (the system starts Fixbox again
/// with it, and the second start hands it over) shows the window on its issue.
pub fn listen_for_links(app: &tauri::App) {
    use tauri::Manager as _;
    use tauri_plugin_deep_link::DeepLinkExt as _;
    use tauri_specta::Event as _;
    // An AppImage registers its scheme itself; a package registers it when installed.
    if std::env::var_os("APPIMAGE").is_some()
        && let Err(err) = app.deep_link().register_all()
    {
        tracing::warn!(%err, "cannot register fixbox:// links with the desktop");
    }
    if let Ok(Some(urls)) = app.deep_link().get_current()
        && let Some(issue) = urls.iter().find_map(|u| crate::commands::github::issue_from_link(u.as_str()))
    {
        app.state::<crate::commands::github::Links>().keep(format!("github:{issue}"));
    }
    let handle = app.handle().clone();
    app.deep_link().on_open_url(move |event| {
        for url in event.urls() {
            match crate::commands::github::issue_from_link(url.as_str()) {
                Some(issue) => {
                    tracing::info!(%issue, "a link asks to fix an issue");
                    crate::show_window(&handle);
                    let open = crate::commands::github::OpenIssue { reference: format!("github:{issue}") };
                    if let Err(err) = open.emit(&handle) {
                        tracing::warn!(%err, "cannot tell the window about the link");
                    }
                }
                None => tracing::warn!(%url, "a fixbox:// link Fixbox does not know; links look like fixbox://fix?repo=owner/repo&issue=123"),
            }
        }
    });
}

/// Removes sandbox containers left by an earlier Fixbox process that died without cleaning up.
pub async fn sweep_orphaned_sandboxes() {
    let docker = match fixbox_sandbox::SandboxHost::connect().await {
        Ok(docker) => docker,
        // The system check tells the user about Docker; nothing to sweep without it.
        Err(err) => return tracing::debug!(%err, "no Docker at startup; no sandboxes to sweep"),
    };
    match fixbox_sandbox::reap_orphans(&docker).await {
        Ok(removed) if !removed.is_empty() => tracing::info!(?removed, "removed orphaned sandboxes"),
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "could not sweep orphaned sandboxes"),
    }
}

/// Stops engines an earlier Fixbox process started and left running when it was killed.
pub fn sweep_orphaned_engines() {
    match crate::serving::engine_registry() {
        Ok(registry) => {
            for line in registry.sweep_orphans() {
                tracing::info!("{line}");
            }
        }
        Err(err) => tracing::debug!(%err, "no data folder; no engines to sweep"),
    }
}

/// Stops the engine this app started when the app is asked to quit by a signal (SIGTERM at logout,
/// SIGINT from a terminal, SIGHUP), then exits.
#[cfg(unix)]
pub async fn stop_engine_on_signal(app: tauri::AppHandle, serving: std::sync::Arc<crate::serving::Serving>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        return tracing::warn!("cannot listen for signals; an engine started here may outlive a killed app");
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = hup.recv() => {}
    }
    tracing::info!("asked to quit by a signal; stopping the engine first");
    serving.stop().await;
    app.exit(0);
}

/// The variable WebKitGTK reads as it starts to draw without accelerated compositing.
#[cfg(target_os = "linux")]
const NO_COMPOSITING: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";

/// Without a GPU (no DRM render node) WebKitGTK composites through Mesa's software GL: the viewer
/// bench measured the idle window at 1.30x a blank page's memory, and frames twice as slow while a
/// diff streams. There the app runs itself again (`exec`, the same process) with
/// `WEBKIT_DISABLE_COMPOSITING_MODE=1`, which WebKitGTK reads only as it starts; turned off later, at
/// run time, the WebView's policy hung WebDriver's concurrent windows. A user who set the variable
/// either way keeps their choice. Call it first, before anything else starts; it returns only where
/// it does not run the app again.
#[cfg(target_os = "linux")]
pub fn draw_without_compositing_where_there_is_no_gpu() {
    use std::os::unix::process::CommandExt as _;
    if std::env::var_os(NO_COMPOSITING).is_some() || has_render_node(std::path::Path::new("/dev/dri")) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut args = std::env::args_os();
    let mut again = std::process::Command::new(exe);
    if let Some(name) = args.next() {
        again.arg0(name);
    }
    // `exec` returns only when it failed (the binary replaced under us, say): then this process goes
    // on, drawing as WebKitGTK chooses.
    let _ = again.args(args).env(NO_COMPOSITING, "1").exec();
}

/// Whether `dri` (`/dev/dri`) holds a render node (`renderD128`, …), which GPU drivers create.
#[cfg(target_os = "linux")]
fn has_render_node(dri: &std::path::Path) -> bool {
    std::fs::read_dir(dri)
        .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("renderD")))
        .unwrap_or(false)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_render_node_means_a_gpu_and_a_card_alone_or_nothing_does_not() {
        let dri = tempfile::tempdir().unwrap();
        assert!(!has_render_node(dri.path()));
        std::fs::write(dri.path().join("card0"), "").unwrap();
        assert!(!has_render_node(dri.path()), "a display controller without a render node draws nothing");
        std::fs::write(dri.path().join("renderD128"), "").unwrap();
        assert!(has_render_node(dri.path()));
        assert!(!has_render_node(&dri.path().join("absent")), "no /dev/dri at all, as in a container");
    }
}
