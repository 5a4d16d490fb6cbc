use nvml_wrapper::Nvml;

use crate::{GpuInfo, GpuVendor};

/// NVIDIA GPUs through NVML (`libnvidia-ml`, shipped with the driver and loaded at run time, so a
/// machine without the driver simply has none).
pub(crate) fn probe() -> Result<Vec<GpuInfo>, nvml_wrapper::error::NvmlError> {
    let nvml = Nvml::init()?;
    let driver = nvml.sys_driver_version().ok();
    let mut gpus = Vec::new();
    for index in 0..nvml.device_count()? {
        let device = nvml.device_by_index(index)?;
        let memory = device.memory_info().ok();
        gpus.push(GpuInfo {
            vendor: GpuVendor::Nvidia,
            name: device.name().unwrap_or_else(|_| format!("NVIDIA GPU {index}")),
            vram_total_bytes: memory.as_ref().map(|m| m.total),
            vram_free_bytes: memory.as_ref().map(|m| m.free),
            unified_memory: false,
            driver_version: driver.clone(),
            compute_capability: device.cuda_compute_capability().ok().map(|cc| format!("{}.{}", cc.major, cc.minor)),
            source: "nvml".to_string(),
        });
    }
    Ok(gpus)
}
