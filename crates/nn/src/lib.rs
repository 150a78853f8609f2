//! The building blocks of the article's first network: linear layers and
//! activation functions.
//!
//! A *neuron* multiplies each input by a weight, adds them up, and adds a
//! bias; a [`Linear`] layer is many neurons at once, `y = W x + b`. Between
//! layers sits an [`Activation`] (ReLU, or GELU as GPT-2 uses), without which
//! a stack of linear layers would collapse into one. [`Mlp`] stacks them.
//!
//! Every piece implements [`Layer`](addmul_core::Layer): a `forward` that
//! returns the output and a cache, and a hand-written `backward`:
//!
//! | piece | forward | backward |
//! |---|---|---|
//! | [`Linear`] | `y = W x + b` | `dW += dy xᵀ`, `db += Σ dy`, `dx = Wᵀ dy` |
//! | [`Activation`] | `y = f(x)` | `dx = f'(x) ⊙ dy` |
//!
//! Shapes follow [`addmul_core`]: one column per example.
//!
//! # Example
//! ```
//! use addmul_core::{rng, Init, Layer, Matrix, ParametersExt};
//! use addmul_nn::{Activation, Mlp};
//!
//! let mut net = Mlp::<f64>::new(&[4, 8, 2], Activation::Relu, Init::HeNormal, &mut rng(1))?;
//! let x = Matrix::from_fn(4, 3, |i, j| (i + j) as f64 / 10.0);
//! let (scores, cache) = net.forward(&x)?;
//! // Pretend the loss is the sum of the scores: dL/dscores is all ones.
//! let dx = net.backward(&cache, &Matrix::from_element(2, 3, 1.0))?;
//! assert_eq!(dx.shape(), (4, 3));
//! assert!(net.grad_norm() > 0.0);
//! # Ok::<(), addmul_core::Error>(())
//! ```
#![deny(missing_docs)]

mod activation;
mod linear;
mod mlp;

pub use activation::Activation;
pub use addmul_core::Error;
pub use linear::{Linear, SidePath};
pub use mlp::{Mlp, MlpCache};
