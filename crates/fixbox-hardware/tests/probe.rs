//! The probe against this machine's own numbers, read independently of sysinfo.

#[cfg(target_os = "linux")]
#[test]
fn memory_and_cores_match_what_linux_reports() {
    let report = fixbox_hardware::probe().unwrap();
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
}
