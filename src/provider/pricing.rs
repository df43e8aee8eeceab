//! Model prices, for the cost column of reports and `max_cost_usd` budgets.
//!
//! The built-in table covers common OpenAI and Anthropic models at their
//! published list prices (USD per million tokens, standard tier). A model
//! that is not in the table has no cost (`null` in reports), never a guess;
//! a task file or configuration can give its price instead. The table holds
//! the list prices as of [`PRICE_TABLE_DATE`].

use serde::{Deserialize, Serialize};

use super::types::Usage;
use super::wire::WireFormat;

/// Price of one model in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Uncached input tokens.
    pub input_per_mtok: f64,
    /// Input tokens served from the prompt cache; `None` charges them as
    /// uncached input.
    #[serde(default)]
    pub cached_input_per_mtok: Option<f64>,
    /// Output tokens (reasoning included).
    pub output_per_mtok: f64,
    /// Input tokens written to the prompt cache; `None` charges them as
    /// uncached input.
    #[serde(default)]
    pub cache_write_input_per_mtok: Option<f64>,
}

/// The day the built-in table's list prices were taken from the providers'
/// pricing pages; `pricing:` in a task file or configuration overrides them.
pub const PRICE_TABLE_DATE: &str = "2026-11-24";

impl ModelPrice {
    /// The cost of `usage` in USD. Reasoning tokens are part of the output
    /// tokens and cost what output costs.
    pub fn cost_usd(&self, usage: &Usage) -> f64 {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let written = usage
            .cache_write_input_tokens
            .min(usage.input_tokens - cached);
        let uncached = usage.input_tokens - cached - written;
        let cached_price = self.cached_input_per_mtok.unwrap_or(self.input_per_mtok);
        let write_price = self
            .cache_write_input_per_mtok
            .unwrap_or(self.input_per_mtok);
        (uncached as f64 * self.input_per_mtok
            + cached as f64 * cached_price
            + written as f64 * write_price
            + usage.output_tokens as f64 * self.output_per_mtok)
            / 1_000_000.0
    }
}

const fn price(input: f64, cached: f64, output: f64) -> ModelPrice {
    ModelPrice {
        input_per_mtok: input,
        cached_input_per_mtok: Some(cached),
        output_per_mtok: output,
        cache_write_input_per_mtok: None,
    }
}

/// OpenAI list prices.
const OPENAI: &[(&str, ModelPrice)] = &[
    ("gpt-5", price(1.25, 0.125, 10.0)),
    ("gpt-5-mini", price(0.25, 0.025, 2.0)),
    ("gpt-5-nano", price(0.05, 0.005, 0.40)),
    ("gpt-4.1", price(2.0, 0.50, 8.0)),
    ("gpt-4.1-mini", price(0.40, 0.10, 1.60)),
    ("gpt-4.1-nano", price(0.10, 0.025, 0.40)),
    ("gpt-4o", price(2.50, 1.25, 10.0)),
    ("gpt-4o-mini", price(0.15, 0.075, 0.60)),
    ("o3", price(2.0, 0.50, 8.0)),
    ("o4-mini", price(1.10, 0.275, 4.40)),
];

/// An Anthropic price: cache reads at a tenth of input, cache writes (the
/// five-minute cache kkrun's requests use) at 1.25× input.
const fn anthropic(input: f64, cached: f64, output: f64) -> ModelPrice {
    ModelPrice {
        input_per_mtok: input,
        cached_input_per_mtok: Some(cached),
        output_per_mtok: output,
        cache_write_input_per_mtok: Some(input * 1.25),
    }
}

/// Anthropic list prices.
const ANTHROPIC: &[(&str, ModelPrice)] = &[
    ("claude-opus-4-5", anthropic(5.0, 0.50, 25.0)),
    ("claude-opus-4-1", anthropic(15.0, 1.50, 75.0)),
    ("claude-opus-4", anthropic(15.0, 1.50, 75.0)),
    ("claude-sonnet-4-5", anthropic(3.0, 0.30, 15.0)),
    ("claude-sonnet-4", anthropic(3.0, 0.30, 15.0)),
    ("claude-3-7-sonnet", anthropic(3.0, 0.30, 15.0)),
    ("claude-haiku-4-5", anthropic(1.0, 0.10, 5.0)),
    ("claude-3-5-haiku", anthropic(0.80, 0.08, 4.0)),
];

/// The built-in price of `model` on `provider`. Dated snapshots
/// (`gpt-4.1-2025-04-14`, `claude-sonnet-4-5-20250929`) and `-latest`
/// aliases share their family's price; anything else unknown is `None`.
pub fn builtin_price(provider: WireFormat, model: &str) -> Option<ModelPrice> {
    let table = match provider {
        WireFormat::OpenAi | WireFormat::OpenAiResponses => OPENAI,
        WireFormat::Anthropic => ANTHROPIC,
    };
    let family = strip_snapshot_suffix(model);
    table
        .iter()
        .find(|(name, _)| *name == model || *name == family)
        .map(|(_, price)| *price)
}

/// `model` without a `-YYYY-MM-DD`, `-YYYYMMDD` or `-latest` suffix.
fn strip_snapshot_suffix(model: &str) -> &str {
    if let Some(base) = model.strip_suffix("-latest") {
        return base;
    }
    let bytes = model.as_bytes();
    let is_digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    // -YYYYMMDD
    if bytes.len() > 9 && bytes[bytes.len() - 9] == b'-' && is_digits(&bytes[bytes.len() - 8..]) {
        return &model[..model.len() - 9];
    }
    // -YYYY-MM-DD
    if bytes.len() > 11 {
        let tail = &bytes[bytes.len() - 11..];
        if tail[0] == b'-'
            && is_digits(&tail[1..5])
            && tail[5] == b'-'
            && is_digits(&tail[6..8])
            && tail[8] == b'-'
            && is_digits(&tail[9..11])
        {
            return &model[..model.len() - 11];
        }
    }
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_share_the_family_price_and_unknowns_have_none() {
        let family = builtin_price(WireFormat::OpenAi, "gpt-4.1").unwrap();
        assert_eq!(
            builtin_price(WireFormat::OpenAi, "gpt-4.1-2025-04-14"),
            Some(family)
        );
        assert_eq!(
            builtin_price(WireFormat::Anthropic, "claude-sonnet-4-5-20250929"),
            builtin_price(WireFormat::Anthropic, "claude-sonnet-4-5")
        );
        assert_ne!(
            builtin_price(WireFormat::OpenAi, "gpt-4.1-mini"),
            Some(family)
        );
        assert_eq!(builtin_price(WireFormat::OpenAi, "gpt-4.1-turbo"), None);
        assert_eq!(builtin_price(WireFormat::OpenAi, "qwen2.5-coder:7b"), None);
        assert_eq!(builtin_price(WireFormat::Anthropic, "gpt-4.1"), None);
    }

    #[test]
    fn cost_counts_cached_input_at_the_cached_price() {
        let price = price(2.0, 0.5, 8.0);
        let usage = Usage {
            input_tokens: 1_000_000,
            cached_input_tokens: 400_000,
            output_tokens: 100_000,
            estimated: false,
            cache_write_input_tokens: 0,
            reasoning_tokens: 0,
        };
        let cost = price.cost_usd(&usage);
        assert!((cost - (1.2 + 0.2 + 0.8)).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn anthropic_cache_writes_cost_a_quarter_more_and_reasoning_costs_output() {
        let sonnet = builtin_price(WireFormat::Anthropic, "claude-sonnet-4-5").unwrap();
        assert_eq!(sonnet.cache_write_input_per_mtok, Some(3.75));
        // 1M input: 200k cache reads, 300k cache writes, 500k uncached.
        let usage = Usage {
            input_tokens: 1_000_000,
            cached_input_tokens: 200_000,
            cache_write_input_tokens: 300_000,
            output_tokens: 100_000,
            reasoning_tokens: 40_000,
            estimated: false,
        };
        let cost = sonnet.cost_usd(&usage);
        let expected = 0.5 * 3.0 + 0.2 * 0.30 + 0.3 * 3.75 + 0.1 * 15.0;
        assert!((cost - expected).abs() < 1e-9, "{cost} != {expected}");
        // Reasoning is part of the output: it adds nothing on top.
        let without = Usage {
            reasoning_tokens: 0,
            ..usage
        };
        assert!((sonnet.cost_usd(&without) - cost).abs() < 1e-12);
        // Without a write price, writes cost plain input.
        let plain = price(3.0, 0.30, 15.0);
        let expected = 0.8 * 3.0 + 0.2 * 0.30 + 0.1 * 15.0;
        assert!((plain.cost_usd(&usage) - expected).abs() < 1e-9);
    }
}
