//! Reading a GGUF model file's header: its metadata (architecture, layers, heads, context, quantization)
//! and tensor table, without reading the weights. The file is untrusted: every length is checked
//! against limits and the file's size, so a corrupt or hostile file gives an error, never a panic or a
//! huge allocation.

mod facts;

pub use facts::{ModelFacts, quantization_name};

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::Path;

/// What can go wrong reading a GGUF header.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot read {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("not a GGUF file (it starts with {0:?}, not \"GGUF\"); pick the model's .gguf file")]
    NotGguf([u8; 4]),
    #[error("GGUF version {0} is not supported (versions 2 and 3 are); convert the model with a current llama.cpp")]
    Version(u32),
    #[error("the GGUF header is cut short or corrupt: {0}; download the file again")]
    Corrupt(String),
    #[error("the GGUF metadata lacks {0}, which Fixbox needs to size the model")]
    Missing(String),
}

/// One metadata value. Integers of every width are widened; arrays keep only their length and item
/// type (the tokenizer's vocabulary is an array of ~100k strings that nothing here needs).
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    String(String),
    Array { item_type: u32, len: u64 },
}

impl MetaValue {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::Uint(v) => Some(v),
            Self::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }
}

/// A tensor's entry in the table: name, shape and storage type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    /// ggml type id (0 F32, 1 F16, 2 Q4_0, 3 Q4_1, 12 Q4_K, …).
    pub ggml_type: u32,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).unwrap_or(u64::MAX)
    }
}

/// A GGUF file's header.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: BTreeMap<String, MetaValue>,
    pub tensors: Vec<TensorInfo>,
}

impl GgufHeader {
    /// Reads the header of the GGUF file at `path`.
    pub fn read_file(path: &Path) -> Result<Self, GgufError> {
        let open = |source| GgufError::Open { path: path.display().to_string(), source };
        let file = std::fs::File::open(path).map_err(open)?;
        let size = file.metadata().map_err(open)?.len();
        Self::read(BufReader::new(file), size)
    }

    /// Reads a header from `reader`, which holds `size` bytes in all (bounds every length read).
    pub fn read(reader: impl Read, size: u64) -> Result<Self, GgufError> {
        let mut r = Reader { inner: reader, size, pos: 0 };
        let magic: [u8; 4] = r.array()?;
        if &magic != b"GGUF" {
            return Err(GgufError::NotGguf(magic));
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::Version(version));
        }
        let tensor_count = r.u64()?;
        let kv_count = r.u64()?;
        let mut metadata = BTreeMap::new();
        for _ in 0..kv_count {
            let key = r.string(MAX_KEY_LEN)?;
            let value_type = r.u32()?;
            let value = r.value(value_type)?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::new();
        for _ in 0..tensor_count {
            let name = r.string(MAX_KEY_LEN)?;
            let n_dims = r.u32()?;
            if n_dims > MAX_DIMS {
                return Err(GgufError::Corrupt(format!("tensor {name} has {n_dims} dimensions")));
            }
            let dims = (0..n_dims).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
            let ggml_type = r.u32()?;
            let _offset = r.u64()?;
            tensors.push(TensorInfo { name, dims, ggml_type });
        }
        Ok(Self { version, metadata, tensors })
    }

    /// The total number of weights in the tensor table.
    pub fn parameter_count(&self) -> u64 {
        self.tensors.iter().map(TensorInfo::elements).fold(0u64, u64::saturating_add)
    }
}

/// Keys and tensor names are short; anything longer is a corrupt file.
const MAX_KEY_LEN: u64 = 64 * 1024;
/// String values (a chat template is the longest real one, a few KB).
const MAX_STRING_LEN: u64 = 16 * 1024 * 1024;
/// ggml tensors have at most 4 dimensions.
const MAX_DIMS: u32 = 4;

struct Reader<R> {
    inner: R,
    size: u64,
    pos: u64,
}

impl<R: Read> Reader<R> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf).map_err(|_| self.cut_short())?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn cut_short(&self) -> GgufError {
        GgufError::Corrupt(format!("the file ends inside the header (at byte {})", self.pos))
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        self.array().map(u64::from_le_bytes)
    }

    /// A length-prefixed UTF-8 string of at most `limit` bytes (and at most what the file has left).
    fn string(&mut self, limit: u64) -> Result<String, GgufError> {
        let len = self.u64()?;
        if len > limit || len > self.size.saturating_sub(self.pos) {
            return Err(GgufError::Corrupt(format!("a string of {len} bytes at byte {}", self.pos)));
        }
        let mut buf = vec![0u8; len as usize];
        self.inner.read_exact(&mut buf).map_err(|_| self.cut_short())?;
        self.pos += len;
        String::from_utf8(buf)
            .map_err(|_| GgufError::Corrupt(format!("a string that is not UTF-8 near byte {}", self.pos)))
    }

    fn skip(&mut self, bytes: u64) -> Result<(), GgufError> {
        if bytes > self.size.saturating_sub(self.pos) {
            return Err(self.cut_short());
        }
        let copied =
            std::io::copy(&mut (&mut self.inner).take(bytes), &mut std::io::sink()).map_err(|_| self.cut_short())?;
        if copied != bytes {
            return Err(self.cut_short());
        }
        self.pos += bytes;
        Ok(())
    }

    fn value(&mut self, value_type: u32) -> Result<MetaValue, GgufError> {
        Ok(match value_type {
            0 => MetaValue::Uint(self.array::<1>()?[0].into()),
            1 => MetaValue::Int(i8::from_le_bytes(self.array()?).into()),
            2 => MetaValue::Uint(u16::from_le_bytes(self.array()?).into()),
            3 => MetaValue::Int(i16::from_le_bytes(self.array()?).into()),
            4 => MetaValue::Uint(self.u32()?.into()),
            5 => MetaValue::Int(i32::from_le_bytes(self.array()?).into()),
            6 => MetaValue::Float(f32::from_le_bytes(self.array()?).into()),
            7 => MetaValue::Bool(self.array::<1>()?[0] != 0),
            8 => MetaValue::String(self.string(MAX_STRING_LEN)?),
            9 => {
                let item_type = self.u32()?;
                let len = self.u64()?;
                self.skip_array(item_type, len)?;
                MetaValue::Array { item_type, len }
            }
            10 => MetaValue::Uint(self.u64()?),
            11 => MetaValue::Int(i64::from_le_bytes(self.array()?)),
            12 => MetaValue::Float(f64::from_le_bytes(self.array()?)),
            other => return Err(GgufError::Corrupt(format!("unknown value type {other} at byte {}", self.pos))),
        })
    }

    fn skip_array(&mut self, item_type: u32, len: u64) -> Result<(), GgufError> {
        let fixed = match item_type {
            0 | 1 | 7 => Some(1u64),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        };
        match fixed {
            Some(width) => self.skip(len.checked_mul(width).ok_or_else(|| self.cut_short())?),
            None => {
                // Strings (and, in principle, nested arrays) one by one; each item takes at least
                // 8 bytes, so `len` cannot exceed what is left of the file.
                if len > self.size.saturating_sub(self.pos) / 8 {
                    return Err(self.cut_short());
                }
                for _ in 0..len {
                    match item_type {
                        8 => {
                            let n = self.u64()?;
                            self.skip(n)?;
                        }
                        9 => {
                            let inner_type = self.u32()?;
                            let inner_len = self.u64()?;
                            self.skip_array(inner_type, inner_len)?;
                        }
                        other => return Err(GgufError::Corrupt(format!("an array of unknown type {other}"))),
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a small GGUF header the way llama.cpp's writer lays it out.
    pub(crate) fn sample(version: u32) -> Vec<u8> {
        let mut b = Vec::new();
        let string = |b: &mut Vec<u8>, s: &str| {
            b.extend((s.len() as u64).to_le_bytes());
            b.extend(s.as_bytes());
        };
        b.extend(b"GGUF");
        b.extend(version.to_le_bytes());
        b.extend(2u64.to_le_bytes()); // tensors
        b.extend(5u64.to_le_bytes()); // metadata entries
        string(&mut b, "general.architecture");
        b.extend(8u32.to_le_bytes());
        string(&mut b, "llama");
        string(&mut b, "llama.block_count");
        b.extend(4u32.to_le_bytes());
        b.extend(30u32.to_le_bytes());
        string(&mut b, "llama.rope.freq_base");
        b.extend(6u32.to_le_bytes());
        b.extend(10000f32.to_le_bytes());
        string(&mut b, "tokenizer.ggml.tokens");
        b.extend(9u32.to_le_bytes());
        b.extend(8u32.to_le_bytes());
        b.extend(3u64.to_le_bytes());
        for token in ["<s>", "a", "bc"] {
            string(&mut b, token);
        }
        string(&mut b, "general.file_type");
        b.extend(4u32.to_le_bytes());
        b.extend(3u32.to_le_bytes());
        for (name, dims, ty) in [("token_embd.weight", vec![576u64, 49152], 3u32), ("output_norm.weight", vec![576], 0)]
        {
            string(&mut b, name);
            b.extend((dims.len() as u32).to_le_bytes());
            for d in &dims {
                b.extend(d.to_le_bytes());
            }
            b.extend(ty.to_le_bytes());
            b.extend(0u64.to_le_bytes());
        }
        b
    }

    #[test]
    fn reads_metadata_arrays_and_tensors() {
        let bytes = sample(3);
        let header = GgufHeader::read(bytes.as_slice(), bytes.len() as u64).unwrap();
        assert_eq!(header.version, 3);
        assert_eq!(header.metadata["general.architecture"].as_str(), Some("llama"));
        assert_eq!(header.metadata["llama.block_count"].as_u64(), Some(30));
        assert_eq!(header.metadata["llama.rope.freq_base"], MetaValue::Float(10000.0));
        assert_eq!(header.metadata["tokenizer.ggml.tokens"], MetaValue::Array { item_type: 8, len: 3 });
        assert_eq!(header.tensors.len(), 2);
        assert_eq!(header.parameter_count(), 576 * 49152 + 576);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample(3);
        for cut in 0..bytes.len() {
            let err = GgufHeader::read(&bytes[..cut], cut as u64).unwrap_err();
            assert!(matches!(err, GgufError::Corrupt(_) | GgufError::NotGguf(_)), "cut at {cut}: {err}");
        }
    }

    #[test]
    fn other_files_and_versions_are_refused_with_a_reason() {
        let err = GgufHeader::read(&b"PK\x03\x04rest"[..], 8).unwrap_err();
        assert!(err.to_string().contains("not a GGUF file"), "{err}");
        let mut v1 = sample(3);
        v1[4..8].copy_from_slice(&1u32.to_le_bytes());
        assert!(matches!(GgufHeader::read(v1.as_slice(), v1.len() as u64), Err(GgufError::Version(1))));
    }

    #[test]
    fn a_huge_length_does_not_allocate_it() {
        let mut bytes = sample(3);
        // The first key's length: claim 2^62 bytes.
        bytes[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes());
        let err = GgufHeader::read(bytes.as_slice(), bytes.len() as u64).unwrap_err();
        assert!(matches!(err, GgufError::Corrupt(_)), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut with_magic = b"GGUF\x03\x00\x00\x00".to_vec();
            with_magic.extend(&bytes);
            let _ = GgufHeader::read(with_magic.as_slice(), with_magic.len() as u64);
            let _ = GgufHeader::read(bytes.as_slice(), bytes.len() as u64);
        }

        #[test]
        fn flipping_any_byte_never_panics(index in 0usize..400, value in proptest::num::u8::ANY) {
            let mut bytes = sample(3);
            let i = index % bytes.len();
            bytes[i] = value;
            let _ = GgufHeader::read(bytes.as_slice(), bytes.len() as u64);
        }
    }
}
