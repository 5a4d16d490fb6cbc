//! What this machine has for running models: CPU (cores, the SIMD features llama.cpp builds need),
//! memory (including a container's cgroup limit, and its measured bandwidth), free disk under the models
//! dir, and GPUs with their VRAM, read from NVML for NVIDIA, sysfs for AMD/Intel on Linux, and unified
//! memory on Apple silicon. What cannot be read is listed as unknown, with the reason.
//!
//! Also reads GGUF model headers ([`gguf`]), and sizes a model for the machine ([`fit`]): the memory it
//! needs at a context length, where it goes, and an estimate of its speed.
//!
//! Probing is blocking (NVML initialisation, sysfs reads, a ~30 ms bandwidth measurement); async callers
//! use `spawn_blocking`.

mod cpu;
mod disk;
pub mod fit;
pub mod gguf;
mod gpu;
mod memory;
mod process;

pub use cpu::{CpuInfo, simd_features};
pub use disk::DiskSpace;
pub use gpu::apple::published_bandwidth as apple_published_bandwidth;
pub use gpu::{GpuInfo, GpuVendor, cuda_driver_version};
pub use memory::{MemoryInfo, usable_total_bytes};
pub use process::{host_name, process_alive};

use std::path::Path;

use serde::{Deserialize, Serialize};

/// A snapshot of the machine's resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct HardwareReport {
    pub os: String,
    pub cpu: CpuInfo,
    pub memory: MemoryInfo,
    pub gpus: Vec<GpuInfo>,
    /// Free space on the disk that holds the models dir.
    pub models_disk: Option<DiskSpace>,
    /// Why a GPU source found nothing, when that is worth telling the user (e.g. an NVIDIA card is on
    /// the PCI bus but the driver's NVML library cannot be loaded).
    pub gpu_notes: Vec<String>,
    /// Readings that could not be taken, each with the reason.
    pub unknown: Vec<Unknown>,
}

/// A fact that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Unknown {
    pub what: String,
    pub reason: String,
}

/// The system's own counters could not be read (an OS sysinfo does not support, or /proc unreadable).
#[derive(Debug, thiserror::Error)]
#[error("cannot read this machine's CPU and memory counters: {0}")]
pub struct HardwareError(#[from] sysinfo::Error);

/// Reads the machine's CPU, memory and GPUs, and the free space under `models_dir` when given.
pub fn probe(models_dir: Option<&Path>) -> Result<HardwareReport, HardwareError> {
    let mut system = sysinfo::System::new()?;
    let cpu = cpu::probe(&mut system);
    let memory = memory::probe(&mut system, usize::try_from(cpu.logical_cores).unwrap_or(1));
    let (gpus, gpu_notes) = gpu::probe(&memory, &cpu.brand);
    let mut unknown = Vec::new();
    let models_disk = models_dir.and_then(|dir| match disk::probe(dir) {
        Ok(space) => Some(space),
        Err(reason) => {
            unknown.push(Unknown { what: format!("free space under {}", dir.display()), reason });
            None
        }
    });
    let mut report = HardwareReport { os: os_description(), cpu, memory, gpus, models_disk, gpu_notes, unknown };
    report.unknown.extend(unread(&report));
    Ok(report)
}

/// The readings `report` lacks, with the reason each source gives none.
fn unread(report: &HardwareReport) -> Vec<Unknown> {
    let mut unknown = Vec::new();
    let mut add = |what: String, reason: &str| unknown.push(Unknown { what, reason: reason.to_string() });
    if report.cpu.physical_cores.is_none() {
        add("physical CPU cores".into(), "the OS does not report them; logical cores are used");
    }
    if report.memory.bandwidth_bytes_per_s.is_none() {
        add("memory bandwidth".into(), "64 MiB could not be allocated to measure it; speeds are not estimated");
    }
    for gpu in &report.gpus {
        if gpu.vram_total_bytes.is_none() {
            let reason = match gpu.vendor {
                _ if gpu.unified_memory => "an integrated GPU shares system memory and has no VRAM of its own",
                GpuVendor::Nvidia => "NVML did not report it",
                GpuVendor::Amd => "the amdgpu driver does not expose mem_info_vram_total for it",
                _ => "its driver does not report it",
            };
            add(format!("{} memory", gpu.name), reason);
        }
        if gpu.memory_bandwidth_bytes_per_s.is_none() {
            let reason = match gpu.vendor {
                GpuVendor::Nvidia => "NVML did not report its memory bus width and clock",
                GpuVendor::Apple => "this chip is not in Fixbox's table of Apple silicon bandwidths",
                _ => "its driver does not report the memory bus width; speeds on it are not estimated",
            };
            add(format!("{} memory bandwidth", gpu.name), reason);
        }
    }
    unknown
}

fn os_description() -> String {
    let name = sysinfo::System::long_os_version().unwrap_or_else(|_| std::env::consts::OS.to_string());
    match sysinfo::System::kernel_version() {
        Ok(kernel) => format!("{name} (kernel {kernel})"),
        Err(_) => name,
    }
}
