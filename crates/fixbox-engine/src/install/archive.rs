//! Unpacking downloaded archives (.tar.gz, .tar.zst, .zip) without letting an entry escape its folder.

use std::io::Read;
use std::path::Path;

use crate::EngineError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Archive {
    TarGz,
    TarZst,
    Zip,
}

impl Archive {
    pub(super) fn of(name: &str) -> Option<Self> {
        if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(Self::TarGz)
        } else if name.ends_with(".tar.zst") {
            Some(Self::TarZst)
        } else if name.ends_with(".zip") {
            Some(Self::Zip)
        } else {
            None
        }
    }
}

/// Unpacks `file` into `dest` (created), refusing entries that would land outside it.
pub(super) async fn unpack(path: &Path, dest: &Path, archive: Archive) -> Result<(), EngineError> {
    let (file, dest) = (path.to_path_buf(), dest.to_path_buf());
    tokio::task::spawn_blocking(move || -> Result<(), EngineError> {
        std::fs::create_dir_all(&dest).map_err(|e| EngineError::io(&dest, e))?;
        let open = std::fs::File::open(&file).map_err(|e| EngineError::io(&file, e))?;
        let bad = |e: std::io::Error| EngineError::Corrupt { path: file.clone(), reason: e.to_string() };
        match archive {
            Archive::TarGz => tar_unpack(flate2::read::GzDecoder::new(open), &dest).map_err(bad),
            Archive::TarZst => {
                let decoder = ruzstd::decoding::StreamingDecoder::new(open)
                    .map_err(|e| EngineError::Corrupt { path: file.clone(), reason: e.to_string() })?;
                tar_unpack(decoder, &dest).map_err(bad)
            }
            Archive::Zip => {
                let mut zip = zip::ZipArchive::new(open)
                    .map_err(|e| EngineError::Corrupt { path: file.clone(), reason: e.to_string() })?;
                // `extract` refuses paths that escape `dest` and keeps Unix modes.
                zip.extract(&dest).map_err(|e| EngineError::Corrupt { path: file.clone(), reason: e.to_string() })
            }
        }
    })
    .await
    .map_err(|e| EngineError::io(path, std::io::Error::other(e.to_string())))?
}

fn tar_unpack(reader: impl Read, dest: &Path) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    for entry in archive.entries()? {
        // `unpack_in` skips entries with `..` or absolute paths.
        entry?.unpack_in(dest)?;
    }
    Ok(())
}
