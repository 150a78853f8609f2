//! The shape every differentiable piece of addmul takes.

use crate::{Float, Matrix, Parameters, Result};

/// A differentiable map from `[in_features, n]` to `[out_features, n]`.
///
/// `forward` returns the output together with a *cache*: whatever `backward`
/// needs (usually the input, sometimes an intermediate). `backward` takes the
/// gradient of the loss with respect to the output, **adds** the gradients of
/// the layer's parameters into their [`Param::grad`](crate::Param::grad), and
/// returns the gradient with respect to the input.
///
/// `forward` takes `&self`, so one set of weights can run several forward
/// passes (for example on several threads) before any backward.
pub trait Layer<T: Float>: Parameters<T> {
    /// What `forward` keeps for `backward`.
    type Cache;

    /// Computes the output for `x` (one column per token or example).
    ///
    /// # Errors
    /// A shape or value error when `x` does not fit the layer.
    fn forward(&self, x: &Matrix<T>) -> Result<(Matrix<T>, Self::Cache)>;

    /// Turns `dy = dLoss/dOutput` into `dLoss/dInput`, accumulating parameter
    /// gradients on the way.
    ///
    /// # Errors
    /// A shape error when `dy` does not match the forward output.
    fn backward(&mut self, cache: &Self::Cache, dy: &Matrix<T>) -> Result<Matrix<T>>;
}
