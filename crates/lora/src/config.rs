//! Which layers get adapters, and of what rank, scale and dropout.

use serde::{Deserialize, Serialize};

use crate::{LoraError, Result};

/// The settings of a set of low-rank adapters, as PEFT's `LoraConfig`
/// (`r`, `lora_alpha`, `lora_dropout`, `target_modules`).
///
/// ```
/// use addmul_lora::LoraConfig;
/// let config = LoraConfig::new(8, 16.0, &["c_attn"]);
/// assert_eq!(config.scale(), 2.0); // alpha / r
/// assert!(config.matches("transformer.h.0.attn.c_attn"));
/// assert!(!config.matches("transformer.h.0.attn.c_proj"));
/// config.validate()?;
/// # Ok::<(), addmul_lora::LoraError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// The rank `r`: how many numbers each token passes through on the
    /// adapter's narrow path. At least 1, at most the smaller side of every
    /// adapted layer.
    pub rank: usize,
    /// `alpha`: the update `B A` is scaled by `alpha / r`, so that changing
    /// the rank does not change how large the update starts out.
    pub alpha: f64,
    /// The probability of dropping each input number on the adapter's path
    /// (PEFT's `lora_dropout`), in training only. In `[0, 1)`.
    #[serde(default)]
    pub dropout: f64,
    /// Names of the layers to adapt, matched as PEFT matches them: a layer
    /// named `transformer.h.0.attn.c_attn` is adapted if the list holds its
    /// whole name or the part after any dot (`c_attn`, `attn.c_attn`).
    pub target_modules: Vec<String>,
}

impl LoraConfig {
    /// A configuration without dropout.
    pub fn new(rank: usize, alpha: f64, target_modules: &[&str]) -> Self {
        LoraConfig { rank, alpha, dropout: 0.0, target_modules: target_modules.iter().map(|s| s.to_string()).collect() }
    }

    /// The scale of the update, `alpha / r`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Checks the values that do not depend on a layer.
    ///
    /// # Errors
    /// [`LoraError::Config`] for a rank of 0, a dropout outside `[0, 1)` or
    /// a non-finite alpha.
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 {
            return Err(LoraError::config("rank", self.rank, "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(LoraError::config("dropout", self.dropout, "must be in [0, 1)"));
        }
        if !self.alpha.is_finite() {
            return Err(LoraError::config("alpha", self.alpha, "must be a finite number"));
        }
        Ok(())
    }

    /// Checks that the rank fits a layer with `in_features` inputs and
    /// `out_features` outputs.
    ///
    /// # Errors
    /// [`LoraError::RankTooLarge`] naming `layer` if `rank > min(in, out)`.
    pub fn check_layer(&self, layer: &str, in_features: usize, out_features: usize) -> Result<()> {
        check_rank(layer, self.rank, in_features, out_features)
    }

    /// Whether the layer named `layer` is adapted: PEFT's rule for a list of
    /// target modules (the whole name, or a suffix after a dot).
    pub fn matches(&self, layer: &str) -> bool {
        self.target_modules.iter().any(|target| {
            layer == target
                || layer.strip_suffix(target.as_str()).is_some_and(|head| head.ends_with('.') && !target.is_empty())
        })
    }
}

pub(crate) fn check_rank(layer: &str, rank: usize, in_features: usize, out_features: usize) -> Result<()> {
    if rank > in_features.min(out_features) {
        return Err(LoraError::RankTooLarge { layer: layer.to_string(), rank, in_features, out_features });
    }
    Ok(())
}
