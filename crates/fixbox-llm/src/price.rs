//! What calls cost: the price table in `resources/llm/prices.toml`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::LlmError;
use crate::usage::TokenUsage;

const EMBEDDED: &str = include_str!("../../../resources/llm/prices.toml");

/// US dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    #[serde(default)]
    pub cache_read: Option<f64>,
    #[serde(default)]
    pub cache_write: Option<f64>,
}

impl Price {
    pub const FREE: Price = Price { input: 0.0, output: 0.0, cache_read: None, cache_write: None };

    pub fn cost(&self, usage: &TokenUsage) -> f64 {
        let cached = usage.cache_read + usage.cache_write;
        let fresh = usage.prompt.saturating_sub(cached) as f64;
        (fresh * self.input
            + usage.cache_read as f64 * self.cache_read.unwrap_or(self.input)
            + usage.cache_write as f64 * self.cache_write.unwrap_or(self.input)
            + usage.completion as f64 * self.output)
            / 1e6
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// When the prices were taken from the providers' lists.
    pub as_of: String,
    /// The model whose prices give local calls their equivalent cloud cost.
    pub local_equivalent: String,
    pub models: BTreeMap<String, Price>,
}

impl PriceTable {
    pub fn embedded() -> Result<Self, LlmError> {
        Self::parse(EMBEDDED)
    }

    pub fn parse(text: &str) -> Result<Self, LlmError> {
        let table: Self = toml::from_str(text).map_err(|e| LlmError::Config(format!("price table: {e}")))?;
        if !table.models.contains_key(&table.local_equivalent) {
            return Err(LlmError::Config(format!(
                "price table: local_equivalent `{}` has no prices",
                table.local_equivalent
            )));
        }
        Ok(table)
    }

    /// `model`'s price: its own entry, else the entry for its name without a vendor prefix
    /// (`openai/gpt-4o` → `gpt-4o`), else the longest entry it starts with (`gpt-4o-2024-08-06` →
    /// `gpt-4o`).
    pub fn price(&self, model: &str) -> Option<Price> {
        let bare = model.rsplit('/').next().unwrap_or(model);
        self.models.get(model).or_else(|| self.models.get(bare)).copied().or_else(|| {
            self.models
                .iter()
                .filter(|(name, _)| bare.starts_with(name.as_str()) || model.starts_with(name.as_str()))
                .max_by_key(|(name, _)| name.len())
                .map(|(_, price)| *price)
        })
    }

    pub fn local_equivalent(&self) -> Price {
        self.models.get(&self.local_equivalent).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_table_parses_and_prices_by_name() {
        let table = PriceTable::embedded().unwrap();
        let gpt = table.price("gpt-4o").unwrap();
        assert_eq!(table.price("gpt-4o-2024-08-06"), Some(gpt));
        assert_eq!(table.price("openai/gpt-4o"), Some(gpt));
        // The longest match wins: gpt-4o-mini is not priced as gpt-4o.
        assert_eq!(table.price("gpt-4o-mini-2024-07-18").unwrap().input, 0.15);
        assert_eq!(table.price("smollm2-135m-instruct"), None);
        assert!(table.local_equivalent().output > 0.0);
    }

    #[test]
    fn cached_prompt_tokens_are_priced_at_the_cache_rates() {
        let price = Price { input: 3.0, output: 15.0, cache_read: Some(0.3), cache_write: Some(3.75) };
        let usage = TokenUsage { prompt: 1_000_000, completion: 100_000, cache_read: 600_000, cache_write: 200_000 };
        // 200k fresh × 3 + 600k × 0.3 + 200k × 3.75 + 100k × 15, per million.
        let expected = 0.6 + 0.18 + 0.75 + 1.5;
        assert!((price.cost(&usage) - expected).abs() < 1e-9, "{}", price.cost(&usage));
        assert_eq!(Price::FREE.cost(&usage), 0.0);
    }
}
