pub(crate) mod apple;
mod nvidia;
mod sysfs;

pub use nvidia::cuda_driver_version;

use serde::{Deserialize, Serialize};

use crate::MemoryInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "lowercase")]
pub enum GpuVendor {
    Nvidia,
    Amd,
    Intel,
    Apple,
    Other,
}

/// One GPU. Sizes in bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct GpuInfo {
    pub vendor: GpuVendor,
    pub name: String,
    /// Dedicated memory; for unified memory (Apple silicon) the shared total.
    pub vram_total_bytes: Option<u64>,
    pub vram_free_bytes: Option<u64>,
    /// Memory shared with the CPU (Apple silicon, integrated GPUs).
    pub unified_memory: bool,
    pub driver_version: Option<String>,
    /// Memory bandwidth (bytes/s): from NVML, bus width × memory clock; for Apple silicon the chip's
    /// published figure (no API reads it).
    pub memory_bandwidth_bytes_per_s: Option<u64>,
    /// CUDA compute capability, e.g. "8.9".
    pub compute_capability: Option<String>,
    /// Where these facts came from: "nvml", "sysfs" or "system".
    pub source: String,
}

/// Every GPU the sources can see, and notes on sources that saw a card but could not read it.
pub(crate) fn probe(memory: &MemoryInfo, cpu_brand: &str) -> (Vec<GpuInfo>, Vec<String>) {
    let mut notes = Vec::new();
    let mut gpus = match nvidia::probe() {
        Ok(gpus) => gpus,
        Err(reason) => {
            tracing::debug!(%reason, "NVML unavailable");
            Vec::new()
        }
    };
    let nvml_saw_nvidia = !gpus.is_empty();
    for gpu in sysfs::probe(std::path::Path::new(sysfs::DRM_ROOT)) {
        if gpu.vendor == GpuVendor::Nvidia {
            // NVML is the authority for NVIDIA cards; sysfs only proves one is there.
            if !nvml_saw_nvidia {
                notes.push(format!(
                    "{} is on the PCI bus but NVIDIA's NVML library could not be loaded, so its VRAM is unknown and \
                     CUDA will not work: install the NVIDIA driver (check with `nvidia-smi`)",
                    gpu.name
                ));
            }
            continue;
        }
        gpus.push(gpu);
    }
    gpus.extend(apple::probe(memory, cpu_brand));
    (gpus, notes)
}
