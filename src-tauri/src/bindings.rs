//! The typed IPC surface. `ui/src/lib/bindings.ts` is generated from it and committed; the test below
//! fails when the file is stale. Regenerate with:
//! `FIXBOX_UPDATE_BINDINGS=1 cargo test -p fixbox-desktop bindings`.

use specta_typescript::Typescript;
use tauri_specta::{Builder, collect_commands, collect_events};

use crate::commands;

/// Every command the UI may call.
pub fn builder() -> Builder<tauri::Wry> {
    Builder::<tauri::Wry>::new()
        .commands(collect_commands![
            commands::doctor::doctor_run,
            commands::engine::engine_overview,
            commands::engine::engine_install,
            commands::engine::engine_options,
            commands::engine::engine_start,
            commands::engine::engine_stop,
            commands::engine::engine_try,
            commands::jobs_cancel,
            commands::models::models_list,
            commands::models::models_pull,
            commands::hardware::hardware_recommend,
            commands::fix::fix_detect,
            commands::fix::fix_routes,
            commands::fix::fix_start,
            commands::fix::fix_stop,
            commands::fix::fix_accept,
            commands::fix::fix_export,
            commands::github::github_issues,
            commands::github::github_open_pr,
            commands::github::app_take_link,
            commands::eval::eval_start,
            commands::eval::eval_stop,
            commands::metrics::metrics_get,
            commands::sessions::sessions_list,
            commands::sessions::sessions_delete,
            commands::sessions::sessions_replay,
            commands::settings::settings_get,
            commands::settings::settings_save_routes,
            commands::settings::settings_reset_routes,
            commands::settings::settings_use_remote_engine,
            commands::settings::settings_drop_remote_engine,
            commands::settings::settings_save_key,
            commands::settings::settings_remove_key,
            commands::settings::settings_preferences,
            commands::settings::settings_save_preferences,
            commands::settings::settings_save_engine_options,
        ])
        .events(collect_events![commands::github::OpenIssue])
        // Byte counts (u64) become TS `number`: exact up to 2^53 bytes (8 PiB), far past any machine.
        .dangerously_cast_bigints_to_number()
        // Our IPC types each go one way (Rust to UI, or UI to Rust), so one TS type per Rust type.
        .disable_serde_phases()
}

/// Writes the TypeScript bindings to `path`.
pub fn export(path: &std::path::Path) -> anyhow::Result<()> {
    let header = "// Generated from the Rust commands by tauri-specta (src-tauri/src/bindings.rs). Do not edit.\n";
    builder().export(Typescript::default().header(header), path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn bindings_are_current() {
        let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/lib/bindings.ts");
        if std::env::var_os("FIXBOX_UPDATE_BINDINGS").is_some() {
            super::export(&committed).unwrap();
            return;
        }
        let fresh = tempfile::tempdir().unwrap().keep().join("bindings.ts");
        super::export(&fresh).unwrap();
        let fresh = std::fs::read_to_string(fresh).unwrap();
        let committed = std::fs::read_to_string(&committed).unwrap_or_default();
        assert!(
            fresh == committed,
            "ui/src/lib/bindings.ts is stale: regenerate it with `FIXBOX_UPDATE_BINDINGS=1 cargo test -p fixbox-desktop bindings` and commit it"
        );
    }
}
