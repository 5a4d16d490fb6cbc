//! The GGUF reader on a real model: SmolLM2-135M-Instruct Q4_1 from PyPI (`scripts/setup` fetches and
//! checksums it). The expected values were read independently with llama.cpp's own reader (gguf-py).

use std::path::PathBuf;

use fixbox_hardware::fit::Architecture;
use fixbox_hardware::gguf::{GgufHeader, ModelFacts};

fn model(file: &str) -> PathBuf {
    let dir = std::env::var_os("FIXBOX_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/fixbox/models"));
    let path = dir.join(file);
    assert!(path.exists(), "{} is missing: scripts/setup fetches it", path.display());
    path
}

#[test]
fn reads_smollm2_as_llama_cpp_does() {
    let header = GgufHeader::read_file(&model("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    assert_eq!(header.version, 3);
    assert_eq!(header.tensors.len(), 272);
    let facts = header.facts().unwrap();
    assert_eq!(
        facts,
        ModelFacts {
            name: Some("Smollm2 135M 8k Lc100K Mix1 Ep2".into()),
            architecture: Architecture {
                arch: "llama".into(),
                layers: 30,
                heads: 9,
                kv_heads: 3,
                embedding: 576,
                head_dim: 64,
                ffn: 1536,
                vocab: 49152,
                experts: None,
            },
            context_length: 8192,
            quantization: "Q4_1".into(),
            parameters: 134_515_008,
        }
    );
}

#[test]
fn a_file_that_is_not_a_model_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, b"<html>429 Too Many Requests</html>").unwrap();
    let err = GgufHeader::read_file(&path).unwrap_err();
    assert!(err.to_string().contains("not a GGUF file"), "{err}");
    let err = GgufHeader::read_file(&dir.path().join("absent.gguf")).unwrap_err();
    assert!(err.to_string().starts_with("cannot read"), "{err}");
}
