use fixbox_hardware::HardwareReport;
use fixbox_models::{Catalog, Recommendations};
use serde::Serialize;

use crate::error::IpcError;

/// The wizard's first page: this machine, and the models that fit it.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct MachineAdvice {
    pub machine: HardwareReport,
    pub recommendations: Recommendations,
}

/// Reads the CPU, memory, GPUs and the models disk, and recommends models per use, each with why.
#[tauri::command]
#[specta::specta]
pub async fn hardware_recommend() -> Result<MachineAdvice, IpcError> {
    let models_dir = fixbox_store::data_dir()?.join("models");
    let machine = tauri::async_runtime::spawn_blocking(move || fixbox_hardware::probe(Some(&models_dir)))
        .await
        .map_err(|e| IpcError::internal(format!("the hardware check stopped: {e}")))?
        .map_err(|e| IpcError::internal(e.to_string()))?;
    let catalog = Catalog::embedded()?;
    let recommendations = fixbox_models::recommend(&catalog, &machine);
    Ok(MachineAdvice { machine, recommendations })
}
