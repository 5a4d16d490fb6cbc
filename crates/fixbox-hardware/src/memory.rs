use std::time::Instant;

use serde::{Deserialize, Serialize};

/// System memory. Sizes in bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MemoryInfo {
    pub total_bytes: u64,
    pub available_bytes: u64,
    /// A container's (cgroup) memory limit when it is below the machine's total: what we may really use.
    pub cgroup_limit_bytes: Option<u64>,
    /// Read bandwidth with every core reading, measured (bytes/s); what bounds token generation on the CPU.
    pub bandwidth_bytes_per_s: Option<u64>,
}

impl MemoryInfo {
    /// The memory this process can count on: the lower of the machine's total and the cgroup limit.
    pub fn usable_total_bytes(&self) -> u64 {
        self.cgroup_limit_bytes.map_or(self.total_bytes, |limit| limit.min(self.total_bytes))
    }
}

/// The memory this process can count on ([`MemoryInfo::usable_total_bytes`]), read alone: quick, with
/// no bandwidth measurement. `None` where the system does not say.
pub fn usable_total_bytes() -> Option<u64> {
    let mut system = sysinfo::System::new().ok()?;
    system.refresh_memory();
    let total = system.total_memory();
    Some(system.cgroup_limits().map_or(total, |limits| limits.total_memory.min(total)))
}

pub(crate) fn probe(system: &mut sysinfo::System, threads: usize) -> MemoryInfo {
    system.refresh_memory();
    let total = system.total_memory();
    let cgroup_limit = system.cgroup_limits().map(|limits| limits.total_memory).filter(|&limit| limit < total);
    MemoryInfo {
        total_bytes: total,
        available_bytes: system.available_memory(),
        cgroup_limit_bytes: cgroup_limit,
        bandwidth_bytes_per_s: measure_bandwidth(threads),
    }
}

/// Bytes read in the bandwidth measurement: well past any CPU's last-level cache per thread.
const BANDWIDTH_BUFFER: usize = 64 * 1024 * 1024;

/// Reads a buffer larger than the caches with `threads` threads, twice, and keeps the faster pass.
/// Takes a few tens of milliseconds; `None` where the memory could not be had.
fn measure_bandwidth(threads: usize) -> Option<u64> {
    let words = BANDWIDTH_BUFFER / 8;
    let mut buffer: Vec<u64> = Vec::new();
    buffer.try_reserve_exact(words).ok()?;
    // Written, not only allocated: untouched pages all map to the one zero page, which is always cached.
    buffer.extend((0..words as u64).map(|i| i ^ 0x9e37_79b9));
    let chunk = words.div_ceil(threads.max(1));
    let mut best: Option<f64> = None;
    for _ in 0..2 {
        let start = Instant::now();
        let sum: u64 = std::thread::scope(|scope| {
            let handles: Vec<_> = buffer
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().fold(0u64, |acc, &w| acc.wrapping_add(w))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).fold(0u64, u64::wrapping_add)
        });
        std::hint::black_box(sum);
        let seconds = start.elapsed().as_secs_f64();
        if seconds > 0.0 {
            let rate = BANDWIDTH_BUFFER as f64 / seconds;
            best = Some(best.map_or(rate, |b: f64| b.max(rate)));
        }
    }
    best.map(|rate| rate as u64)
}
