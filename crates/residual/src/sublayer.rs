//! A sub-layer inside a model: the residual connection together with a
//! norm and dropout, as every block of the GPT and the Transformer uses it.
//!
//! [`Residual`](crate::Residual) wraps a [`Layer`] that has one input and one
//! cache. A model's sub-layers are more varied (attention takes the
//! sequence length and a padding mask, cross-attention reads a second input,
//! decoding reads a key/value cache), so here the sub-layer `f` is a closure,
//! and around it sit the norm and the dropout of its output:
//!
//! ```text
//! Pre  (GPT-2):      x ← x + dropout(f(norm(x)))
//! Post (the paper):  x ← norm(x + dropout(f(x)))
//! ```
//!
//! `x` is updated in place, and `f` receives its input by value (an owned
//! copy that it may keep for its backward pass), so no matrix is copied that
//! the plain formula does not need.

use addmul_core::{Float, Layer, Matrix, Result};
use addmul_dropout::{DropoutMask, Dropper};

// ANCHOR: placement
/// Where each sub-layer's layer normalization sits.
///
/// Every sub-layer `f` (self-attention, cross-attention, feed-forward) is
/// wrapped in a residual connection and a layer norm, in one of two ways:
///
/// ```text
/// Post (the paper):  x ← LayerNorm(x + f(x))
/// Pre  (GPT-2 on):   x ← x + f(LayerNorm(x))      and one last LayerNorm at the end
/// ```
///
/// Post-norm normalizes the residual stream itself after every sub-layer, so
/// the sum that reaches the next layer always has mean 0 and variance 1; the
/// gradient on its way back passes through every layer norm, which is why
/// post-norm models need the learning-rate warmup to train at all. Pre-norm
/// normalizes only what enters `f`; the stream `x` travels from the embedding
/// to the output through nothing but additions (the clean residual path of
/// chapter 9), so it trains more easily when deep, but the stream's size
/// grows with depth and needs a final layer norm before anything reads it
/// (the GPT's `ln_f`, the Transformer's `encoder.norm` and `decoder.norm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NormPlacement {
    /// `LayerNorm(x + f(x))`, as in "Attention Is All You Need".
    #[default]
    Post,
    /// `x + f(LayerNorm(x))`, with a final layer norm after the last layer.
    Pre,
}
// ANCHOR_END: placement

/// What [`sublayer`] keeps for the backward pass: `f`'s cache, the norm's,
/// and the dropout mask.
#[derive(Debug, Clone)]
pub struct SublayerCache<T: Float, N, C> {
    inner: C,
    norm: N,
    drop: Option<DropoutMask<T>>,
}

impl<T: Float, N, C> SublayerCache<T, N, C> {
    /// `f`'s cache (for example the attention weights, to show them).
    pub fn inner(&self) -> &C {
        &self.inner
    }
}

// ANCHOR: sublayer
/// Applies one sub-layer `f` with its residual connection, its `norm` placed
/// as `placement` says, and dropout on `f`'s output; updates `x` in place.
///
/// # Errors
/// The norm's or `f`'s error.
pub fn sublayer<T: Float, N: Layer<T>, C>(
    placement: NormPlacement,
    norm: &N,
    x: &mut Matrix<T>,
    drop: &mut Dropper<'_>,
    f: impl FnOnce(Matrix<T>) -> Result<(Matrix<T>, C)>,
) -> Result<SublayerCache<T, N::Cache, C>> {
    match placement {
        NormPlacement::Pre => {
            let (h, norm) = norm.forward(x)?;
            let (fx, inner) = f(h)?;
            let (fx, drop) = drop.apply(fx);
            *x += fx; // x + f(norm(x))
            Ok(SublayerCache { inner, norm, drop })
        }
        NormPlacement::Post => {
            let (fx, inner) = f(x.clone())?;
            let (mut sum, drop) = drop.apply(fx);
            sum += &*x;
            let (y, norm) = norm.forward(&sum)?; // norm(x + f(x))
            *x = y;
            Ok(SublayerCache { inner, norm, drop })
        }
    }
}

/// The backward of [`sublayer`]: turns the gradient of its output into the
/// gradient of its input. `f_back` turns the gradient of `f`'s output into
/// the gradient of its input (adding `f`'s parameter gradients); the norm's
/// parameter gradients are added too.
///
/// # Errors
/// The norm's or `f_back`'s error.
pub fn sublayer_backward<T: Float, N: Layer<T>, C>(
    placement: NormPlacement,
    norm: &mut N,
    cache: &SublayerCache<T, N::Cache, C>,
    dy: Matrix<T>,
    f_back: impl FnOnce(&C, &Matrix<T>) -> Result<Matrix<T>>,
) -> Result<Matrix<T>> {
    match placement {
        NormPlacement::Pre => {
            let dfx = DropoutMask::backward_of(cache.drop.as_ref(), &dy)?;
            let dh = f_back(&cache.inner, &dfx)?;
            drop(dfx);
            let mut dx = dy;
            dx += norm.backward(&cache.norm, &dh)?; // straight through, plus through f and the norm
            Ok(dx)
        }
        NormPlacement::Post => {
            let mut dsum = norm.backward(&cache.norm, &dy)?; // the gradient of x + f(x)
            let dfx = DropoutMask::backward_of(cache.drop.as_ref(), &dsum)?;
            let through_f = f_back(&cache.inner, &dfx)?;
            drop(dfx);
            dsum += through_f; // straight through, plus through f
            Ok(dsum)
        }
    }
}
// ANCHOR_END: sublayer
