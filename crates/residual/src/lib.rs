//! Residual connections: add a layer's input to its output.
//!
//! A residual block computes `y = x + f(x)`: the layer `f` only has to learn
//! a *change* to its input, and the input itself travels on untouched. On the
//! way back the gradient does the same:
//!
//! ```text
//! dL/dx = dL/dy + f'(x)ᵀ dL/dy
//! ```
//!
//! The first term reaches `x` directly, however many blocks are stacked, so
//! deep networks keep getting a useful gradient in their first layers.
//!
//! [`Residual`] wraps any [`Layer`]; inside a model, [`sublayer`] adds the
//! norm and the dropout that sit around each residual branch (pre-norm as
//! GPT-2, or post-norm as the 2017 Transformer), for sub-layers such as
//! attention that take more than one input.
//!
//! # Example
//! ```
//! use addmul_core::{rng, Init, Layer, Matrix};
//! use addmul_nn::Linear;
//! use addmul_residual::Residual;
//! // A block whose layer outputs zeros is the identity.
//! let mut block = Residual::new(Linear::<f64>::new(3, 3, true, Init::Zeros, &mut rng(0)));
//! let x = Matrix::from_element(3, 2, 1.5);
//! let (y, cache) = block.forward(&x)?;
//! assert_eq!(y, x);
//! // And the gradient passes straight through.
//! assert_eq!(block.backward(&cache, &x)?, x);
//! # Ok::<(), addmul_core::Error>(())
//! ```
#![deny(missing_docs)]

mod sublayer;

pub use sublayer::{NormPlacement, SublayerCache, sublayer, sublayer_backward};

use addmul_core::{Error, Float, Layer, Matrix, Param, Parameters, Result, Shape};

/// `y = x + f(x)` around any [`Layer`] `f` whose output has its input's shape.
///
/// Parameters are `f`'s, under the same names.
#[derive(Debug, Clone, PartialEq)]
pub struct Residual<L> {
    inner: L,
}

impl<L> Residual<L> {
    /// Wraps `inner`.
    pub fn new(inner: L) -> Self {
        Residual { inner }
    }

    /// The wrapped layer.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// The wrapped layer, mutably.
    pub fn inner_mut(&mut self) -> &mut L {
        &mut self.inner
    }
}

// ANCHOR: residual
impl<T: Float, L: Layer<T>> Layer<T> for Residual<L> {
    type Cache = L::Cache;

    fn forward(&self, x: &Matrix<T>) -> Result<(Matrix<T>, L::Cache)> {
        let (fx, cache) = self.inner.forward(x)?;
        if fx.shape() != x.shape() {
            return Err(Error::shape(
                "Residual::forward",
                format!("f(x) shaped like x {}", Shape::of(x)),
                Shape::of(&fx),
            ));
        }
        Ok((x + fx, cache))
    }

    fn backward(&mut self, cache: &L::Cache, dy: &Matrix<T>) -> Result<Matrix<T>> {
        // Straight through, plus through f.
        Ok(dy + self.inner.backward(cache, dy)?)
    }
}
// ANCHOR_END: residual

impl<T: Float, L: Parameters<T>> Parameters<T> for Residual<L> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        self.inner.visit(f);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        self.inner.visit_mut(f);
    }
}
