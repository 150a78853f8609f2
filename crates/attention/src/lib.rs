//! Self-attention: each token looks at the others and takes in what it needs.
//!
//! Every token makes three vectors from its features: a **query** (what am I
//! looking for?), a **key** (what do I offer?) and a **value** (what do I pass
//! on?). A token's output is the average of all values, weighted by how well
//! each key matches its query:
//!
//! ```text
//! Q = W_q x,   K = W_k x,   V = W_v x
//! weights = softmax(Kᵀ Q / sqrt(d_k))        one column per query, summing to 1
//! y = V · weights
//! ```
//!
//! A **causal mask** hides every token's future (a language model predicting
//! the next token must not see it); a **padding mask** hides filler tokens.
//! In **cross-attention** the queries come from one sequence and the keys and
//! values from another (a decoder reading its encoder).
//!
//! - [`attend`] / [`attend_backward`]: the kernel on raw matrices (also used
//!   per head by multi-head attention).
//! - [`attend_tiled`] / [`attend_tiled_backward`]: the same kernel a tile of
//!   queries at a time, never holding the `[S, T]` weights (memory linear in
//!   the sequence; the backward computes the weights again); multi-head
//!   attention uses it for long sequences.
//! - [`Attention`]: the layer with its projections `W_q`, `W_k`, `W_v`.
//!
//! # Example
//! ```
//! use addmul_attention::AttentionConfig;
//! use addmul_core::{rng, Init, Matrix};
//!
//! let layer = AttentionConfig::new(8, 4).causal().init::<f64>(Init::Normal { std: 0.5 }, &mut rng(0))?;
//! let x = Matrix::from_fn(8, 5, |i, j| ((i * 5 + j) as f64).sin()); // 5 tokens
//! let (y, cache) = layer.forward_self(&x, 5, None)?;
//! assert_eq!(y.shape(), (4, 5));
//! // Token 0 can only look at itself.
//! assert_eq!(cache.weights()[(0, 0)], 1.0);
//! # Ok::<(), addmul_core::Error>(())
//! ```
#![deny(missing_docs)]

mod kernel;
mod layer;
mod mask;
mod tiled;

pub use addmul_core::Error;
pub use kernel::{attend, attend_backward};
pub use layer::{Attention, AttentionCache, AttentionConfig, AttentionGrads};
pub use mask::Mask;
pub use tiled::{QUERY_TILE, attend_tiled, attend_tiled_backward};
