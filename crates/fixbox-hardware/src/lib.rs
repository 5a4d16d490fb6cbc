//! What this machine has for running models: CPU (cores, the SIMD features llama.cpp builds need),
//! memory (including a container's cgroup limit) and GPUs with their VRAM, read from NVML for NVIDIA,
//! sysfs for AMD/Intel on Linux, and unified memory on Apple silicon.
//!
//! Also reads GGUF model headers ([`gguf`]): the model-side facts (layers, heads, context, quantization)
//! that, with the machine's, decide what fits. Not for deciding it: the fit calculator builds on both.
//!
//! Probing is blocking (NVML initialisation, sysfs reads); async callers use `spawn_blocking`.

mod cpu;
pub mod gguf;
mod gpu;
mod memory;

pub use cpu::{CpuInfo, simd_features};
pub use gpu::{GpuInfo, GpuVendor};
pub use memory::MemoryInfo;

use serde::Serialize;

/// A snapshot of the machine's resources.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct HardwareReport {
    pub os: String,
    pub cpu: CpuInfo,
    pub memory: MemoryInfo,
    pub gpus: Vec<GpuInfo>,
    /// Why a GPU source found nothing, when that is worth telling the user (e.g. an NVIDIA card is on
    /// the PCI bus but the driver's NVML library cannot be loaded).
    pub gpu_notes: Vec<String>,
}

/// The system's own counters could not be read (an OS sysinfo does not support, or /proc unreadable).
#[derive(Debug, thiserror::Error)]
#[error("cannot read this machine's CPU and memory counters: {0}")]
pub struct HardwareError(#[from] sysinfo::Error);

/// Reads the machine's CPU, memory and GPUs.
pub fn probe() -> Result<HardwareReport, HardwareError> {
    let mut system = sysinfo::System::new()?;
    let cpu = cpu::probe(&mut system);
    let memory = memory::probe(&mut system);
    let (gpus, gpu_notes) = gpu::probe(&memory);
    Ok(HardwareReport { os: os_description(), cpu, memory, gpus, gpu_notes })
}

fn os_description() -> String {
    let name = sysinfo::System::long_os_version().unwrap_or_else(|_| std::env::consts::OS.to_string());
    match sysinfo::System::kernel_version() {
        Ok(kernel) => format!("{name} (kernel {kernel})"),
        Err(_) => name,
    }
}
