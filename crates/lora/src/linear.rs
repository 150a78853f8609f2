//! A linear layer with a low-rank adapter: `y = W x + b + s · B A drop(x)`.

use addmul_core::{Error, Float, Layer, Matrix, Param, Parameters, Result, Rng};
use addmul_nn::Linear;

use crate::adapter::{AdapterCache, frozen_backward};
use crate::{LoraAdapter, LoraConfig, LoraError};

/// A frozen [`Linear`] layer and a trainable [`LoraAdapter`] beside it.
///
/// # Shapes
/// - base weight `W`: `[out, in]`, bias `b`: `[out]` (frozen)
/// - `A`: `[r, in]`, `B`: `[out, r]` (trained)
/// - input `x`: `[in, n]`, output `y`: `[out, n]`: one column per token
///
/// Only the adapter's parameters are visited ([`Parameters`]: `lora_A.weight`,
/// `lora_B.weight`), so an optimizer given this layer trains the adapter and
/// nothing else; the backward pass never computes the base's gradients. The
/// base is reached through [`LoraLinear::base`].
///
/// Merging ([`LoraLinear::merge`]) folds `s · B A` into `W`: the forward pass
/// then costs what the base alone costs, and gives the same output.
///
/// # Example
/// ```
/// use addmul_core::{rng, Init, Layer, Matrix, ParametersExt};
/// use addmul_lora::{LoraConfig, LoraLinear};
/// use addmul_nn::Linear;
///
/// let base = Linear::<f64>::new(6, 4, true, Init::Normal { std: 0.5 }, &mut rng(1));
/// let mut layer = LoraLinear::new(base, &LoraConfig::new(2, 4.0, &["c_attn"]), &mut rng(2))?;
/// let x = Matrix::from_fn(6, 3, |i, j| (i + j) as f64 / 10.0);
/// // B starts at zero: the adapted layer starts out as the base.
/// let (y, cache) = layer.forward(&x)?;
/// assert_eq!(y, layer.base().apply(&x)?);
/// let dx = layer.backward(&cache, &Matrix::from_element(4, 3, 1.0))?;
/// assert_eq!(dx.shape(), (6, 3));
/// assert_eq!(layer.param_names(), ["lora_A.weight", "lora_B.weight"]);
/// assert_eq!(layer.num_params(), 2 * (6 + 4)); // r (in + out), not in · out
/// assert!(layer.base().weight().grad().iter().all(|&g| g == 0.0)); // frozen
/// # Ok::<(), addmul_lora::LoraError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LoraLinear<T: Float> {
    base: Linear<T>,
    adapter: LoraAdapter<T>,
    merged: bool,
}

/// What [`LoraLinear`]'s forward pass keeps for the backward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraCache<T: Float> {
    /// `None` when the forward pass ran merged (there is no adapter path to
    /// differentiate).
    adapter: Option<AdapterCache<T>>,
}

impl<T: Float> LoraLinear<T> {
    /// `base` with a fresh adapter ([`LoraAdapter::new`]: `B = 0`, so the
    /// output starts out as the base's).
    ///
    /// # Errors
    /// [`LoraError::Config`] for an invalid configuration,
    /// [`LoraError::RankTooLarge`] if the rank exceeds the layer's smaller
    /// side.
    pub fn new(base: Linear<T>, config: &LoraConfig, rng: &mut Rng) -> Result<Self, LoraError> {
        let adapter = LoraAdapter::new(base.in_features(), base.out_features(), config, rng)?;
        Ok(LoraLinear { base, adapter, merged: false })
    }

    /// `base` with the given (unmerged) adapter.
    ///
    /// # Errors
    /// [`LoraError::Numeric`] if the adapter is not for a layer of `base`'s
    /// sizes.
    pub fn with_adapter(base: Linear<T>, adapter: LoraAdapter<T>) -> Result<Self, LoraError> {
        adapter.check_fits("", base.in_features(), base.out_features())?;
        Ok(LoraLinear { base, adapter, merged: false })
    }

    /// The frozen base layer (holding `W + s · B A` while merged).
    pub fn base(&self) -> &Linear<T> {
        &self.base
    }

    /// The adapter.
    pub fn adapter(&self) -> &LoraAdapter<T> {
        &self.adapter
    }

    /// The adapter, mutably (to load new weights into it; not while merged).
    ///
    /// # Errors
    /// [`Error::Unsupported`] while merged: a change to the adapter would not
    /// reach the merged weight, and unmerging would subtract the wrong update.
    pub fn adapter_mut(&mut self) -> Result<&mut LoraAdapter<T>> {
        if self.merged {
            return Err(Error::Unsupported {
                op: "LoraLinear::adapter_mut",
                reason: "the adapter is merged into the base weight; unmerge it first",
            });
        }
        Ok(&mut self.adapter)
    }

    /// Whether `s · B A` is currently folded into the base weight.
    pub fn is_merged(&self) -> bool {
        self.merged
    }

    /// Folds the adapter into the base weight, `W ← W + s · B A` (nothing
    /// happens if it is merged already).
    ///
    /// # Errors
    /// Never for a layer built by this crate.
    pub fn merge(&mut self) -> Result<()> {
        if !self.merged {
            self.adapter.merge_into(&mut self.base)?;
            self.merged = true;
        }
        Ok(())
    }

    /// Takes the adapter back out, `W ← W - s · B A` (the base weight is
    /// restored up to rounding; nothing happens if it is not merged).
    ///
    /// # Errors
    /// Never for a layer built by this crate.
    pub fn unmerge(&mut self) -> Result<()> {
        if self.merged {
            self.adapter.unmerge_from(&mut self.base)?;
            self.merged = false;
        }
        Ok(())
    }

    /// The base layer with the adapter merged into it, as PEFT's
    /// `merge_and_unload`.
    ///
    /// # Errors
    /// Never for a layer built by this crate.
    pub fn merge_and_unload(mut self) -> Result<Linear<T>> {
        self.merge()?;
        Ok(self.base)
    }

    /// The base layer as it was, without the adapter, as PEFT's `unload`.
    ///
    /// # Errors
    /// Never for a layer built by this crate.
    pub fn unload(mut self) -> Result<Linear<T>> {
        self.unmerge()?;
        Ok(self.base)
    }

    /// The forward pass, with dropout on the adapter's input drawn from `rng`
    /// when there is one (training) and none without (evaluation). While
    /// merged it is the base's forward pass, as in PEFT.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` is not `[in, n]`.
    pub fn forward_with(&self, x: &Matrix<T>, rng: Option<&mut Rng>) -> Result<(Matrix<T>, LoraCache<T>)> {
        let mut y = self.base.apply(x)?;
        if self.merged {
            return Ok((y, LoraCache { adapter: None }));
        }
        let cache = self.adapter.forward_add(x, rng, &mut y)?;
        Ok((y, LoraCache { adapter: Some(cache) }))
    }
}

// ANCHOR: lora_linear
impl<T: Float> Layer<T> for LoraLinear<T> {
    type Cache = LoraCache<T>;

    /// Evaluation mode: no dropout. See [`LoraLinear::forward_with`].
    fn forward(&self, x: &Matrix<T>) -> Result<(Matrix<T>, LoraCache<T>)> {
        self.forward_with(x, None)
    }

    /// Returns `dx` and adds `dA`, `dB` into the adapter's gradients; the
    /// base's gradients are never computed.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `dy` is not `[out, n]`;
    /// [`Error::Unsupported`] for a forward pass that ran merged.
    fn backward(&mut self, cache: &LoraCache<T>, dy: &Matrix<T>) -> Result<Matrix<T>> {
        let Some(adapter_cache) = &cache.adapter else {
            return Err(Error::Unsupported {
                op: "LoraLinear::backward",
                reason: "the forward pass ran with the adapter merged into the base weight; unmerge it to train",
            });
        };
        let mut dx = frozen_backward(&self.base, dy)?;
        self.adapter.backward_add(adapter_cache, dy, &mut dx)?;
        Ok(dx)
    }
}
// ANCHOR_END: lora_linear

/// Only the adapter: the base is frozen.
impl<T: Float> Parameters<T> for LoraLinear<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        self.adapter.visit(f);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        self.adapter.visit_mut(f);
    }
}
