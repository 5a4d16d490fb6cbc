//! Work done once when the app starts, in the background so the window opens at once.

/// Removes sandbox containers left by an earlier Fixbox process that died without cleaning up.
pub async fn sweep_orphaned_sandboxes() {
    let engine = match fixbox_sandbox::DockerEngine::connect().await {
        Ok(engine) => engine,
        // The system check tells the user about Docker; nothing to sweep without it.
        Err(err) => return tracing::debug!(%err, "no Docker at startup; no sandboxes to sweep"),
    };
    match fixbox_sandbox::reap_orphans(&engine).await {
        Ok(removed) if !removed.is_empty() => tracing::info!(?removed, "removed orphaned sandboxes"),
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "could not sweep orphaned sandboxes"),
    }
}

/// Stops engines an earlier Fixbox process started and left running when it was killed.
pub fn sweep_orphaned_engines() {
    match fixbox_store::data_dir() {
        Ok(dir) => {
            for line in fixbox_engine::Registry::new(dir).sweep_orphans() {
                tracing::info!("{line}");
            }
        }
        Err(err) => tracing::debug!(%err, "no data folder; no engines to sweep"),
    }
}

/// Stops the engine this app started when the app is asked to quit by a signal (SIGTERM at logout,
/// SIGINT from a terminal, SIGHUP), then exits.
#[cfg(unix)]
pub async fn stop_engine_on_signal(app: tauri::AppHandle, serving: std::sync::Arc<crate::commands::engine::Serving>) {
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
