use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::Clock;

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
        // Double data rate: two transfers per memory clock, `bus width / 8` bytes each.
        let bandwidth = device
            .memory_bus_width()
            .ok()
            .zip(device.max_clock_info(Clock::Memory).ok())
            .map(|(bits, mhz)| u64::from(bits) / 8 * u64::from(mhz) * 1_000_000 * 2);
        gpus.push(GpuInfo {
            vendor: GpuVendor::Nvidia,
            name: device.name().unwrap_or_else(|_| format!("NVIDIA GPU {index}")),
            vram_total_bytes: memory.as_ref().map(|m| m.total),
            vram_free_bytes: memory.as_ref().map(|m| m.free),
            unified_memory: false,
            driver_version: driver.clone(),
            memory_bandwidth_bytes_per_s: bandwidth,
            compute_capability: device.cuda_compute_capability().ok().map(|cc| format!("{}.{}", cc.major, cc.minor)),
            source: "nvml".to_string(),
        });
    }
    Ok(gpus)
}

/// The newest CUDA version the installed NVIDIA driver runs (what `nvidia-smi` shows as "CUDA Version"),
/// as (major, minor); `None` without the driver.
pub fn cuda_driver_version() -> Option<(u32, u32)> {
    let version = u32::try_from(Nvml::init().ok()?.sys_cuda_driver_version().ok()?).ok()?;
    Some((version / 1000, version % 1000 / 10))
}
