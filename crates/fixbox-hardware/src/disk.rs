use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Space on the disk holding a directory. Bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct DiskSpace {
    pub path: PathBuf,
    /// Where that disk is mounted.
    pub mount_point: PathBuf,
    pub free_bytes: u64,
    pub total_bytes: u64,
}

/// The disk `dir` is on (or would be on: the nearest existing parent counts, so a models dir not yet
/// made is measured where it will be).
pub(crate) fn probe(dir: &Path) -> Result<DiskSpace, String> {
    let existing = dir.ancestors().find(|p| p.exists()).ok_or_else(|| "no part of the path exists".to_string())?;
    let resolved = existing.canonicalize().map_err(|e| e.to_string())?;
    let disks = sysinfo::Disks::new_with_refreshed_list().map_err(|e| e.to_string())?;
    let disk = disks
        .iter()
        .filter(|d| resolved.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .ok_or_else(|| format!("no mounted disk holds {}", resolved.display()))?;
    Ok(DiskSpace {
        path: dir.to_path_buf(),
        mount_point: disk.mount_point().to_path_buf(),
        free_bytes: disk.available_space(),
        total_bytes: disk.total_space(),
    })
}
