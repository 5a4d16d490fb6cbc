use serde::{Deserialize, Serialize};

/// The CPU, as far as running a model on it is concerned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct CpuInfo {
    pub brand: String,
    pub arch: String,
    pub physical_cores: Option<u32>,
    pub logical_cores: u32,
    /// SIMD features that decide which llama.cpp CPU backend runs fastest (and which would crash).
    pub features: Vec<String>,
}

pub(crate) fn probe(system: &mut sysinfo::System) -> CpuInfo {
    system.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
    let brand = system
        .cpus()
        .first()
        .map(|cpu| cpu.brand().trim().to_string())
        .filter(|brand| !brand.is_empty())
        .unwrap_or_else(|| "unknown CPU".to_string());
    let logical = std::thread::available_parallelism().map(usize::from).unwrap_or(system.cpus().len().max(1));
    CpuInfo {
        brand,
        arch: std::env::consts::ARCH.to_string(),
        physical_cores: sysinfo::System::physical_core_count().ok().and_then(|n| u32::try_from(n).ok()),
        logical_cores: u32::try_from(logical).unwrap_or(u32::MAX),
        features: simd_features(),
    }
}

/// The SIMD features this CPU has *and the OS has enabled* (the checks read XCR0 too, so a VM that hides
/// AVX-512 state is seen as without it), as llama.cpp's build options name them.
#[cfg(target_arch = "x86_64")]
pub fn simd_features() -> Vec<String> {
    let mut found = Vec::new();
    macro_rules! check {
        ($($feature:tt),*) => {$(
            if std::arch::is_x86_feature_detected!($feature) {
                found.push($feature.to_string());
            }
        )*};
    }
    check!("sse4.2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vnni", "avx512bf16", "avxvnni");
    found
}

/// The SIMD features this CPU has, as llama.cpp's build options name them.
#[cfg(target_arch = "aarch64")]
pub fn simd_features() -> Vec<String> {
    let mut found = vec!["neon".to_string()];
    if std::arch::is_aarch64_feature_detected!("dotprod") {
        found.push("dotprod".to_string());
    }
    if std::arch::is_aarch64_feature_detected!("i8mm") {
        found.push("i8mm".to_string());
    }
    found
}

/// The SIMD features this CPU has (none known on this architecture).
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn simd_features() -> Vec<String> {
    Vec::new()
}
