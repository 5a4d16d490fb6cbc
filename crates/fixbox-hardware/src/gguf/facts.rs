use super::{GgufError, GgufHeader};
use crate::fit::{Architecture, Experts};

/// What a GGUF file's header says about its model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFacts {
    pub name: Option<String>,
    pub architecture: Architecture,
    /// The context length it was trained for (`<arch>.context_length`).
    pub context_length: u32,
    /// `general.file_type` as llama.cpp names it, e.g. `Q4_K_M`.
    pub quantization: String,
    /// Weights in the tensor table.
    pub parameters: u64,
}

impl GgufHeader {
    /// The facts of the model this header describes.
    pub fn facts(&self) -> Result<ModelFacts, GgufError> {
        let arch = self
            .metadata
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .ok_or_else(|| GgufError::Missing("general.architecture".into()))?
            .to_string();
        let number = |suffix: &str| -> Option<u32> {
            self.metadata.get(&format!("{arch}.{suffix}")).and_then(|v| v.as_u64()).and_then(|v| u32::try_from(v).ok())
        };
        let required = |suffix: &str| number(suffix).ok_or_else(|| GgufError::Missing(format!("{arch}.{suffix}")));
        let heads = required("attention.head_count")?;
        let embedding = required("embedding_length")?;
        if heads == 0 {
            return Err(GgufError::Corrupt(format!("{arch}.attention.head_count is 0")));
        }
        let file_type = self.metadata.get("general.file_type").and_then(|v| v.as_u64());
        let experts = match (number("expert_count"), number("expert_used_count"), number("expert_feed_forward_length"))
        {
            (Some(count), Some(used), Some(ffn)) if count > 1 => Some(Experts { count, used, ffn }),
            _ => None,
        };
        let context_length = required("context_length")?;
        let architecture = Architecture {
            layers: required("block_count")?,
            heads,
            kv_heads: number("attention.head_count_kv").unwrap_or(heads),
            embedding,
            head_dim: number("attention.key_length").unwrap_or(embedding / heads),
            ffn: required("feed_forward_length")?,
            vocab: number("vocab_size")
                .or_else(|| match self.metadata.get("tokenizer.ggml.tokens") {
                    Some(super::MetaValue::Array { len, .. }) => u32::try_from(*len).ok(),
                    _ => None,
                })
                .ok_or_else(|| GgufError::Missing("tokenizer.ggml.tokens".into()))?,
            experts,
            arch,
        };
        Ok(ModelFacts {
            name: self.metadata.get("general.name").and_then(|v| v.as_str()).map(String::from),
            context_length,
            quantization: file_type.map_or_else(|| "unknown".to_string(), quantization_name),
            parameters: self.parameter_count(),
            architecture,
        })
    }
}

impl ModelFacts {
    /// The shape the fit calculator sizes, for this model's file of `weights_bytes`.
    pub fn shape(&self, weights_bytes: u64) -> crate::fit::ModelShape {
        self.architecture.shape(self.parameters, weights_bytes)
    }
}

/// llama.cpp's name for a `general.file_type` value (its `llama_ftype` enum).
pub fn quantization_name(file_type: u64) -> String {
    let name = match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        39 => "NVFP4",
        // Values from 40 on are still being settled upstream.
        other => return format!("file type {other}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    #[test]
    fn facts_fall_back_where_llama_cpp_does_and_name_what_is_missing() {
        let bytes = sample(3);
        let header = GgufHeader::read(bytes.as_slice(), bytes.len() as u64).unwrap();
        // The sample has no head count: a model Fixbox cannot size is an error that says why.
        let err = header.facts().unwrap_err();
        assert_eq!(
            err.to_string(),
            "the GGUF metadata lacks llama.attention.head_count, which Fixbox needs to size the model"
        );
        assert_eq!(quantization_name(15), "Q4_K_M");
        assert_eq!(quantization_name(999), "file type 999");
    }
}
