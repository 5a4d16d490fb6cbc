use crate::{GpuInfo, MemoryInfo};

/// Apple silicon: one GPU sharing the system's unified memory.
#[cfg(all(target_os = "macos", target_arch = "aarch64"))]
pub(crate) fn probe(memory: &MemoryInfo) -> Option<GpuInfo> {
    Some(GpuInfo {
        vendor: crate::GpuVendor::Apple,
        name: "Apple silicon GPU (Metal)".to_string(),
        vram_total_bytes: Some(memory.total_bytes),
        vram_free_bytes: Some(memory.available_bytes),
        unified_memory: true,
        driver_version: None,
        compute_capability: None,
        source: "system".to_string(),
    })
}

#[cfg(not(all(target_os = "macos", target_arch = "aarch64")))]
pub(crate) fn probe(_memory: &MemoryInfo) -> Option<GpuInfo> {
    None
}
