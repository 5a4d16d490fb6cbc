use fixbox_doctor::{DoctorOptions, DoctorReport};

/// Runs every doctor check (Docker, keychain, GPUs, memory, CPU, data dir, engines).
#[tauri::command]
#[specta::specta]
pub async fn doctor_run() -> DoctorReport {
    fixbox_doctor::run(&DoctorOptions::default()).await
}
