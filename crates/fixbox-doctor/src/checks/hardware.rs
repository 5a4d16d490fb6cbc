use fixbox_hardware::HardwareReport;

use super::gib;
use crate::{Check, CheckId};

/// Below this much usable memory, only the smallest models fit next to the OS and the sandbox.
const LOW_MEMORY_BYTES: u64 = 8 << 30;

pub(crate) fn hardware(report: &HardwareReport) -> Vec<Check> {
    vec![gpu(report), memory(report), cpu(report)]
}

fn gpu(report: &HardwareReport) -> Check {
    let lines: Vec<String> = report
        .gpus
        .iter()
        .map(|g| {
            let memory = match (g.vram_total_bytes, g.unified_memory) {
                (Some(total), true) => format!("{} unified memory", gib(total)),
                (Some(total), false) => format!("{} VRAM", gib(total)),
                (None, true) => "shares system memory".to_string(),
                (None, false) => "VRAM unknown".to_string(),
            };
            let extra = [
                g.driver_version.as_deref().map(|d| format!("driver {d}")),
                g.compute_capability.as_deref().map(|c| format!("compute {c}")),
            ];
            let extra: Vec<String> = extra.into_iter().flatten().collect();
            if extra.is_empty() {
                format!("{}: {memory}", g.name)
            } else {
                format!("{}: {memory}, {}", g.name, extra.join(", "))
            }
        })
        .collect();
    let usable = report.gpus.iter().filter(|g| g.vram_total_bytes.is_some()).count();
    let check = if usable > 0 {
        Check::ok(CheckId::Gpu, format!("{usable} GPU(s) with known memory"))
    } else if report.gpus.is_empty() {
        Check::warn(
            CheckId::Gpu,
            "no GPU seen: models will run on the CPU, several times slower",
            report.gpu_notes.first().cloned().unwrap_or_else(|| {
                "for NVIDIA install the driver (`nvidia-smi` must work); for AMD the amdgpu driver; then run doctor again".to_string()
            }),
        )
    } else {
        Check::warn(
            CheckId::Gpu,
            "GPU(s) seen, but none with memory Fixbox can measure: models will run on the CPU",
            report.gpu_notes.first().cloned().unwrap_or_else(|| "install the GPU vendor's driver".to_string()),
        )
    };
    check.with_details(lines.into_iter().chain(report.gpu_notes.iter().cloned()))
}

fn memory(report: &HardwareReport) -> Check {
    let m = &report.memory;
    let usable = m.usable_total_bytes();
    let summary = format!("{} total, {} available", gib(usable), gib(m.available_bytes.min(usable)));
    let details = m.cgroup_limit_bytes.map(|limit| format!("limited to {} by a cgroup (container)", gib(limit)));
    let low = (usable < LOW_MEMORY_BYTES).then_some(
        "under 8 GiB only ~1.5B-parameter models fit; close other programs or use a machine with more memory",
    );
    Check::ok_or_warn(CheckId::Memory, summary, low).with_details(details)
}

fn cpu(report: &HardwareReport) -> Check {
    let c = &report.cpu;
    let cores = match c.physical_cores {
        Some(physical) => format!("{physical} cores / {} threads", c.logical_cores),
        None => format!("{} threads", c.logical_cores),
    };
    let summary = format!("{} ({cores}, {})", c.brand, c.arch);
    let details = [
        format!("SIMD: {}", if c.features.is_empty() { "none detected".to_string() } else { c.features.join(" ") }),
        report.os.clone(),
    ];
    let lacks_avx2 = c.arch == "x86_64" && !c.features.iter().any(|f| f == "avx2");
    let slow =
        lacks_avx2.then_some("this CPU has no AVX2: CPU inference will be very slow; use a GPU or a cloud model");
    Check::ok_or_warn(CheckId::Cpu, summary, slow).with_details(details)
}
