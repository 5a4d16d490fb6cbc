//! The Fixbox desktop app: a Tauri 2 window over the Fixbox crates. Commands here only translate
//! between the UI and the crates (one file per domain under `commands/`); no domain logic lives here.
//! The UI's TypeScript bindings are generated from these commands' Rust types (`bindings`).

pub mod bindings;
mod commands;
mod error;
mod logging;
mod serving;
mod startup;
mod tray;

use std::process::ExitCode;
use std::sync::Arc;

use tauri::Manager as _;

/// Starts the app and blocks until its last window closes.
pub fn run() -> ExitCode {
    #[cfg(target_os = "linux")]
    startup::draw_without_compositing_where_there_is_no_gpu();
    let _log_guard = logging::init();
    let builder = bindings::builder();
    let serving = Arc::new(serving::Serving::default());
    let app = tauri::Builder::default()
        // First, so a second start hands over to the first before doing anything else.
        .plugin(startup::single_instance())
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_notification::init())
        .manage(Arc::new(commands::Jobs::default()))
        // One session at a time: on most machines one model server answers them all, and a second
        // session waits its turn rather than halving the first one's speed.
        .manage(fixbox_agent::Sessions::new(1).with_warm_pools(1))
        .manage(Arc::clone(&serving))
        .manage(commands::github::Links::default())
        .invoke_handler(builder.invoke_handler())
        .setup({
            let serving = Arc::clone(&serving);
            move |app| {
                builder.mount_events(app);
                startup::listen_for_links(app);
                app.manage(tray::Tray::install(app.handle(), Arc::clone(&serving)));
                tray::refresh(app.handle());
                tauri::async_runtime::spawn(startup::sweep_orphaned_sandboxes());
                tauri::async_runtime::spawn_blocking(startup::sweep_orphaned_engines);
                #[cfg(unix)]
                tauri::async_runtime::spawn(startup::stop_engine_on_signal(app.handle().clone(), serving));
                Ok(())
            }
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(err) => {
            tracing::error!(%err, "the desktop app could not start");
            return ExitCode::FAILURE;
        }
    };
    app.run(move |app, event| {
        // The engine this app started goes with it, stopped in order (SIGTERM, then SIGKILL), and
        // so do the sandboxes kept ready.
        if let tauri::RunEvent::Exit = event {
            tauri::async_runtime::block_on(serving.stop());
            tauri::async_runtime::block_on(app.state::<fixbox_agent::Sessions>().shutdown());
        }
    });
    ExitCode::SUCCESS
}

/// Brings the window to the front (a second start of the app, the tray).
fn show_window(app: &tauri::AppHandle) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
    }
}
