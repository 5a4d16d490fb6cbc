//! GPUs as Linux's DRM subsystem lists them: `/sys/class/drm/cardN/device/{vendor,device,...}`.
//! amdgpu also exposes VRAM size and use there.

use std::path::Path;

use crate::{GpuInfo, GpuVendor};

pub(crate) const DRM_ROOT: &str = "/sys/class/drm";

pub(crate) fn probe(drm_root: &Path) -> Vec<GpuInfo> {
    let Ok(entries) = std::fs::read_dir(drm_root) else { return Vec::new() };
    let mut cards: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        // `card0` is a GPU; `card0-DP-1` is one of its connectors.
        .filter(|name| {
            name.strip_prefix("card").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    cards.sort();
    cards.iter().filter_map(|card| read_card(&drm_root.join(card).join("device"))).collect()
}

fn read_card(device: &Path) -> Option<GpuInfo> {
    let read = |file: &str| std::fs::read_to_string(device.join(file)).ok().map(|s| s.trim().to_string());
    let read_u64 = |file: &str| read(file).and_then(|s| s.parse::<u64>().ok());
    let vendor_id = read("vendor")?;
    let device_id = read("device").unwrap_or_else(|| "unknown".to_string());
    let (vendor, vendor_name) = match vendor_id.as_str() {
        "0x10de" => (GpuVendor::Nvidia, "NVIDIA"),
        "0x1002" => (GpuVendor::Amd, "AMD"),
        "0x8086" => (GpuVendor::Intel, "Intel"),
        _ => (GpuVendor::Other, "GPU vendor"),
    };
    let name = read("product_name")
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("{vendor_name} {vendor_id}:{device_id}"));
    let vram_total = read_u64("mem_info_vram_total").filter(|&total| total > 0);
    let vram_used = read_u64("mem_info_vram_used");
    Some(GpuInfo {
        vendor,
        name,
        vram_total_bytes: vram_total,
        vram_free_bytes: vram_total.zip(vram_used).map(|(total, used)| total.saturating_sub(used)),
        // An Intel GPU without its own VRAM counter is an integrated one, sharing system memory.
        unified_memory: vendor == GpuVendor::Intel && vram_total.is_none(),
        driver_version: std::fs::read_link(device.join("driver"))
            .ok()
            .and_then(|link| link.file_name().map(|n| n.to_string_lossy().into_owned())),
        memory_bandwidth_bytes_per_s: None,
        compute_capability: None,
        source: "sysfs".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Lays out a DRM tree the way the kernel does for an amdgpu card, an Intel iGPU, an NVIDIA card and
    /// a connector entry.
    fn fake_drm() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let card = |name: &str, files: &[(&str, &str)]| {
            let dev = root.path().join(name).join("device");
            fs::create_dir_all(&dev).unwrap();
            for (file, content) in files {
                fs::write(dev.join(file), format!("{content}\n")).unwrap();
            }
        };
        card(
            "card1",
            &[
                ("vendor", "0x1002"),
                ("device", "0x744c"),
                ("product_name", "Radeon RX 7900 XTX"),
                ("mem_info_vram_total", "25753026560"),
                ("mem_info_vram_used", "1073741824"),
            ],
        );
        card("card0", &[("vendor", "0x8086"), ("device", "0x46a6")]);
        card("card2", &[("vendor", "0x10de"), ("device", "0x2684")]);
        fs::create_dir_all(root.path().join("card1-DP-1")).unwrap();
        fs::write(root.path().join("version"), "1.1.0").unwrap();
        root
    }

    #[test]
    fn reads_amd_vram_and_lists_cards_in_order_without_connectors() {
        let root = fake_drm();
        let gpus = probe(root.path());
        let summary: Vec<_> =
            gpus.iter().map(|g| (g.vendor, g.name.as_str(), g.vram_total_bytes, g.unified_memory)).collect();
        assert_eq!(
            summary,
            vec![
                (GpuVendor::Intel, "Intel 0x8086:0x46a6", None, true),
                (GpuVendor::Amd, "Radeon RX 7900 XTX", Some(25_753_026_560), false),
                (GpuVendor::Nvidia, "NVIDIA 0x10de:0x2684", None, false),
            ]
        );
        assert_eq!(gpus[1].vram_free_bytes, Some(25_753_026_560 - 1_073_741_824));
    }

    #[test]
    fn a_machine_without_drm_has_no_gpus() {
        assert!(probe(Path::new("/nonexistent/drm")).is_empty());
    }
}
