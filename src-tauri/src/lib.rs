//! The Fixbox desktop app: a Tauri 2 window over the Fixbox crates. Commands here only translate
//! between the UI and the crates (one file per domain under `commands/`); no domain logic lives here.
//! The UI's TypeScript bindings are generated from these commands' Rust types (`bindings`).

pub mod bindings;
mod commands;
mod logging;
mod startup;

use std::process::ExitCode;

/// Starts the app and blocks until its last window closes.
pub fn run() -> ExitCode {
    let _log_guard = logging::init();
    let builder = bindings::builder();
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .manage(std::sync::Arc::new(commands::fix::Running::default()))
        .invoke_handler(builder.invoke_handler())
        .setup(move |app| {
            builder.mount_events(app);
            tauri::async_runtime::spawn(startup::sweep_orphaned_sandboxes());
            Ok(())
        })
        .run(tauri::generate_context!());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "the desktop app stopped with an error");
            ExitCode::FAILURE
        }
    }
}
