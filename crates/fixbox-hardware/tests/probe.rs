//! The probe against this machine's own numbers, read independently of sysinfo.

#[cfg(target_os = "linux")]
#[test]
fn memory_and_cores_match_what_linux_reports() {
    let models = tempfile::tempdir().unwrap();
    let not_yet_made = models.path().join("models");
    let report = fixbox_hardware::probe(Some(&not_yet_made)).unwrap();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let mem_total_kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert_eq!(report.memory.total_bytes, mem_total_kib * 1024);
    assert!(report.memory.available_bytes <= report.memory.total_bytes);

    let online = std::thread::available_parallelism().unwrap().get() as u32;
    assert_eq!(report.cpu.logical_cores, online);
    assert!(report.cpu.physical_cores.is_none_or(|p| p >= 1 && p <= online));
    assert_ne!(report.cpu.brand, "unknown CPU");
    #[cfg(target_arch = "x86_64")]
    assert!(report.cpu.features.iter().any(|f| f == "sse4.2"), "{:?}", report.cpu.features);
    assert!(report.os.contains("kernel"), "{}", report.os);

    // The models dir's disk, measured where the dir will be, against statvfs's own numbers.
    let disk = report.models_disk.as_ref().unwrap();
    let stat = nix::sys::statvfs::statvfs(models.path()).unwrap();
    let total = stat.blocks() as u64 * stat.fragment_size() as u64;
    assert_eq!(disk.total_bytes, total, "{disk:?}");
    assert!(disk.free_bytes <= total && disk.free_bytes > 0, "{disk:?}");

    // Bandwidth is measured: above what a disk could do, below what any DRAM does today.
    let bandwidth = report.memory.bandwidth_bytes_per_s.unwrap();
    assert!((1_000_000_000..2_000_000_000_000).contains(&bandwidth), "{bandwidth}");
    assert!(report.unknown.is_empty() || report.unknown.iter().all(|u| !u.reason.is_empty()), "{:?}", report.unknown);
}
