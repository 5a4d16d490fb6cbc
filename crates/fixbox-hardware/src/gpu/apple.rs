use crate::{GpuInfo, MemoryInfo};

/// Apple silicon: one GPU sharing the system's unified memory.
#[cfg(all(target_os = "macos", target_arch = "aarch64"))]
pub(crate) fn probe(memory: &MemoryInfo, cpu_brand: &str) -> Option<GpuInfo> {
    Some(GpuInfo {
        vendor: crate::GpuVendor::Apple,
        name: format!("{cpu_brand} GPU (Metal)"),
        vram_total_bytes: Some(memory.total_bytes),
        vram_free_bytes: Some(memory.available_bytes),
        unified_memory: true,
        driver_version: None,
        memory_bandwidth_bytes_per_s: published_bandwidth(cpu_brand),
        compute_capability: None,
        source: "system".to_string(),
    })
}

#[cfg(not(all(target_os = "macos", target_arch = "aarch64")))]
pub(crate) fn probe(_memory: &MemoryInfo, _cpu_brand: &str) -> Option<GpuInfo> {
    None
}

/// Apple's published unified-memory bandwidth for the chip `brand` names ("Apple M2 Max"), bytes/s.
/// macOS has no API that reports it. Where Apple sells two bandwidths under one name (M3 Max, M4 Max),
/// the lower.
pub fn published_bandwidth(brand: &str) -> Option<u64> {
    let chip = brand.trim().strip_prefix("Apple ")?;
    let gb_per_s = match chip {
        "M1" => 68,
        "M1 Pro" | "M2 Pro" => 200,
        "M1 Max" | "M2 Max" => 400,
        "M1 Ultra" | "M2 Ultra" => 800,
        "M2" | "M3" => 100,
        "M3 Pro" => 150,
        "M3 Max" => 300,
        "M3 Ultra" => 819,
        "M4" => 120,
        "M4 Pro" => 273,
        "M4 Max" => 410,
        _ => return None,
    };
    Some(gb_per_s * 1_000_000_000)
}
