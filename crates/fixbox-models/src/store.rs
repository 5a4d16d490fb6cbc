//! The models on this machine: `<dir>/<model id>/<file>`, each with a `<file>.fixbox.json` beside it
//! saying what it is, its SHA-256 and where it came from. A file is only ever placed whole and verified;
//! a manifest is written after its file, so a crash leaves at worst an unlisted file, never a listed
//! broken one.

use std::path::{Path, PathBuf};

use fixbox_hardware::gguf::GgufHeader;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Token;
use crate::catalog::{Catalog, CatalogModel, Quant, SourceKind};
use crate::download::{io_error, part_path, sha256_of};
use crate::sources::{Endpoints, Plan};
use crate::{DownloadError, DownloadEvent, Downloader};

const MANIFEST_SUFFIX: &str = ".fixbox.json";

/// A model file in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct InstalledModel {
    pub id: String,
    pub quant: String,
    #[serde(skip)]
    pub path: PathBuf,
    pub file: String,
    pub size: u64,
    pub sha256: String,
    /// `pypi`, `hugging-face`, `ollama`, or `local:<the imported path>`.
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct ModelStore {
    dir: PathBuf,
}

/// What a pull fetches from where.
#[derive(Debug, Clone)]
pub struct PullRequest<'a> {
    pub model: &'a CatalogModel,
    pub quant: &'a Quant,
    /// Only this kind of source; `None` tries the catalog's sources in order.
    pub only: Option<SourceKind>,
    pub endpoints: &'a Endpoints,
    /// Sent to Hugging Face only.
    pub token: Option<&'a Token>,
}

impl ModelStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every model file in the store whose manifest and file agree in size, sorted by id then quant.
    pub fn installed(&self) -> Result<Vec<InstalledModel>, DownloadError> {
        let mut found = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(io_error(&self.dir, e)),
        };
        for model_dir in entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            let Ok(files) = std::fs::read_dir(model_dir.path()) else { continue };
            for manifest in files.flatten() {
                let manifest = manifest.path();
                if !manifest.to_string_lossy().ends_with(MANIFEST_SUFFIX) {
                    continue;
                }
                match read_manifest(&manifest) {
                    Some(model) => found.push(model),
                    None => {
                        tracing::warn!(manifest = %manifest.display(), "skipping a model whose file is missing or damaged")
                    }
                }
            }
        }
        found.sort_by(|a, b| (&a.id, &a.quant).cmp(&(&b.id, &b.quant)));
        Ok(found)
    }

    /// How many bytes of `id` an interrupted pull left behind: pulling it again resumes from them.
    pub fn partial_bytes(&self, id: &str) -> u64 {
        let model_dir = self.dir.join(id);
        [model_dir.clone(), model_dir.join(".wheels")]
            .iter()
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flat_map(|files| files.flatten())
            .filter(|file| file.file_name().to_string_lossy().ends_with(".part"))
            .filter_map(|file| file.metadata().ok())
            .map(|meta| meta.len())
            .sum()
    }

    /// The installed file of `id` (the given quant, or any).
    pub fn find(&self, id: &str, quant: Option<&str>) -> Result<Option<InstalledModel>, DownloadError> {
        Ok(self.installed()?.into_iter().find(|m| m.id == id && quant.is_none_or(|q| m.quant.eq_ignore_ascii_case(q))))
    }

    /// Fetches a catalog model's quantization into the store, trying its sources in order (or only
    /// `request.only`) until one delivers a verified file. Returns at once if it is already there.
    pub async fn pull(
        &self,
        downloader: &Downloader,
        request: &PullRequest<'_>,
        events: &mpsc::UnboundedSender<DownloadEvent>,
        cancel: &CancellationToken,
    ) -> Result<InstalledModel, DownloadError> {
        let (model, quant) = (request.model, request.quant);
        if let Some(have) = self.find(&model.id, Some(&quant.name))?
            && quant.sha256.as_ref().is_none_or(|sha| *sha == have.sha256)
        {
            let _ = events.send(DownloadEvent::Finished { path: have.path.clone(), bytes: have.size });
            return Ok(have);
        }
        let dest = self.dir.join(&model.id).join(&quant.file);
        let sources: Vec<_> = quant.sources.iter().filter(|s| request.only.is_none_or(|k| s.kind() == k)).collect();
        if sources.is_empty() {
            let kinds: Vec<_> = quant.sources.iter().map(|s| s.kind().to_string()).collect();
            return Err(DownloadError::BadSource {
                source_name: request.only.map(|k| k.to_string()).unwrap_or_default(),
                reason: format!("{} {} is not offered there; it comes from {}", model.id, quant.name, kinds.join(", ")),
            });
        }
        let mut failures = Vec::new();
        for source in sources {
            let kind = source.kind();
            let _ = events.send(DownloadEvent::Source { source: kind });
            let result = match downloader.plan(quant, source, request.endpoints, request.token, &dest).await {
                Ok(Plan::File(download)) => {
                    downloader.fetch(&download, events, cancel).await.map(|p| (p, download.sha256))
                }
                Ok(Plan::Wheels(wheels)) => {
                    downloader.fetch_from_pypi(&wheels, events, cancel).await.map(|p| (p, wheels.sha256))
                }
                Err(err) => Err(err),
            };
            match result {
                Ok((path, sha256)) => {
                    let size = tokio::fs::metadata(&path).await.map_err(|e| io_error(&path, e))?.len();
                    let installed = InstalledModel {
                        id: model.id.clone(),
                        quant: quant.name.clone(),
                        file: quant.file.clone(),
                        path,
                        size,
                        sha256,
                        source: kind.to_string(),
                    };
                    write_manifest(&installed)?;
                    return Ok(installed);
                }
                // These say something about this machine or the user's wish, not the source.
                Err(
                    err @ (DownloadError::Cancelled { .. } | DownloadError::DiskFull { .. } | DownloadError::Io { .. }),
                ) => {
                    return Err(err);
                }
                Err(err) => {
                    let reason = err.to_string();
                    tracing::warn!(source = %kind, %reason, "model source failed");
                    let _ = events.send(DownloadEvent::SourceFailed { source: kind, reason: reason.clone() });
                    failures.push(format!("{kind}: {reason}"));
                }
            }
        }
        Err(DownloadError::AllSourcesFailed {
            what: format!("{} {}", model.id, quant.name),
            failures: failures.join("; "),
        })
    }

    /// Copies a GGUF file into the store. A file whose SHA-256 is a catalog quantization's becomes that
    /// model; any other becomes `as_id` (default: the file name's stem), with the quantization its header
    /// names. The original is left where it is.
    pub async fn import(
        &self,
        path: &Path,
        catalog: &Catalog,
        as_id: Option<&str>,
        events: &mpsc::UnboundedSender<DownloadEvent>,
    ) -> Result<InstalledModel, DownloadError> {
        let owned = path.to_path_buf();
        let header = tokio::task::spawn_blocking(move || GgufHeader::read_file(&owned).and_then(|h| h.facts()))
            .await
            .map_err(|e| io_error(path, std::io::Error::other(e.to_string())))?
            .map_err(|e| DownloadError::NotGguf { path: path.display().to_string(), reason: e.to_string() })?;
        let _ = events.send(DownloadEvent::Verifying);
        let sha256 = sha256_of(path).await?;
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let known = catalog
            .models
            .iter()
            .find_map(|m| m.quants.iter().find(|q| q.sha256.as_deref() == Some(sha256.as_str())).map(|q| (m, q)));
        let (id, quant, file) = match known {
            Some((model, quant)) => (model.id.clone(), quant.name.clone(), quant.file.clone()),
            None => {
                let id = match as_id {
                    Some(id) => id.to_string(),
                    None => file_name.trim_end_matches(".gguf").to_ascii_lowercase(),
                };
                if catalog.model(&id).is_ok() {
                    return Err(DownloadError::NotThatModel { path: path.display().to_string(), id });
                }
                if id.is_empty() || id.contains(['/', '\\']) || id.starts_with('.') {
                    return Err(DownloadError::BadName { name: id });
                }
                (id, header.quantization, file_name)
            }
        };
        let dest = self.dir.join(&id).join(&file);
        let part = part_path(&dest);
        tokio::fs::create_dir_all(self.dir.join(&id)).await.map_err(|e| io_error(&self.dir, e))?;
        tokio::fs::copy(path, &part).await.map_err(|e| crate::download::write_error(&part, e, None))?;
        // The copy is checked too: the original may have changed while it was read.
        if sha256_of(&part).await? != sha256 {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(DownloadError::Io {
                path: path.display().to_string(),
                source: std::io::Error::other("the file changed while it was being imported; try again"),
            });
        }
        tokio::fs::rename(&part, &dest).await.map_err(|e| io_error(&dest, e))?;
        let size = tokio::fs::metadata(&dest).await.map_err(|e| io_error(&dest, e))?.len();
        let installed = InstalledModel {
            id,
            quant,
            file,
            path: dest.clone(),
            size,
            sha256,
            source: format!("local:{}", path.display()),
        };
        write_manifest(&installed)?;
        let _ = events.send(DownloadEvent::Finished { path: dest, bytes: size });
        Ok(installed)
    }

    /// Deletes `id`'s files (only `quant`'s when given); returns what was removed.
    pub fn remove(&self, id: &str, quant: Option<&str>) -> Result<Vec<InstalledModel>, DownloadError> {
        let doomed: Vec<_> = self
            .installed()?
            .into_iter()
            .filter(|m| m.id == id && quant.is_none_or(|q| m.quant.eq_ignore_ascii_case(q)))
            .collect();
        if doomed.is_empty() {
            return Err(DownloadError::NotInstalled { id: id.to_string() });
        }
        for model in &doomed {
            // The manifest first: a crash in between leaves an unlisted file, not a listed missing one.
            let manifest = manifest_path(&model.path);
            std::fs::remove_file(&manifest).map_err(|e| io_error(&manifest, e))?;
            std::fs::remove_file(&model.path).map_err(|e| io_error(&model.path, e))?;
        }
        // Leftovers of interrupted downloads go with the model; the dir too once it is empty.
        let dir = self.dir.join(id);
        if quant.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            let _ = std::fs::remove_dir(&dir);
        }
        Ok(doomed)
    }
}

fn manifest_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(MANIFEST_SUFFIX);
    file.with_file_name(name)
}

fn write_manifest(model: &InstalledModel) -> Result<(), DownloadError> {
    let manifest = manifest_path(&model.path);
    let json = serde_json::to_vec_pretty(model).map_err(|e| io_error(&manifest, std::io::Error::other(e)))?;
    let tmp = part_path(&manifest);
    std::fs::write(&tmp, json).map_err(|e| io_error(&tmp, e))?;
    std::fs::rename(&tmp, &manifest).map_err(|e| io_error(&manifest, e))
}

/// The manifest's model, if its file is there with the recorded size.
fn read_manifest(manifest: &Path) -> Option<InstalledModel> {
    let mut model: InstalledModel = serde_json::from_slice(&std::fs::read(manifest).ok()?).ok()?;
    model.path = manifest.with_file_name(&model.file);
    let size = std::fs::metadata(&model.path).ok()?.len();
    (size == model.size && !model.file.contains(['/', '\\'])).then_some(model)
}
