use serde::Serialize;

/// System memory. Sizes in bytes.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MemoryInfo {
    pub total_bytes: u64,
    pub available_bytes: u64,
    /// A container's (cgroup) memory limit when it is below the machine's total: what we may really use.
    pub cgroup_limit_bytes: Option<u64>,
}

impl MemoryInfo {
    /// The memory this process can count on: the lower of the machine's total and the cgroup limit.
    pub fn usable_total_bytes(&self) -> u64 {
        self.cgroup_limit_bytes.map_or(self.total_bytes, |limit| limit.min(self.total_bytes))
    }
}

pub(crate) fn probe(system: &mut sysinfo::System) -> MemoryInfo {
    system.refresh_memory();
    let total = system.total_memory();
    let cgroup_limit = system.cgroup_limits().map(|limits| limits.total_memory).filter(|&limit| limit < total);
    MemoryInfo { total_bytes: total, available_bytes: system.available_memory(), cgroup_limit_bytes: cgroup_limit }
}
