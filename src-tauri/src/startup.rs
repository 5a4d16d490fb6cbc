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
