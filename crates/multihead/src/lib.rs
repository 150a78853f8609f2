//! Multi-head attention: several small attentions side by side, each free to
//! look for something different.
//!
//! With `h` heads of width `d/h`, every token's query, key and value are cut
//! into `h` slices; head `i` attends with slice `i` only. The heads' outputs
//! are put back side by side (concatenated) and mixed by an output projection
//! `W_O`, so that what one head found can reach every feature:
//!
//! ```text
//! [Q; K; V] = W_qkv x                      one projection for all heads (GPT-2's c_attn)
//! head_i    = attention(Q_i, K_i, V_i)     Q_i = rows i·d/h .. (i+1)·d/h of Q
//! y         = W_O [head_1; …; head_h] + b  (GPT-2's c_proj)
//! ```
//!
//! The cost is that of one attention of width `d`; the gain is `h`
//! independent patterns of attention. The article leaves out `W_O`.
//!
//! - [`MultiHeadAttention`]: causal or not, self-attention (`c_attn`,
//!   `c_proj`) or cross-attention (`c_q`, `c_kv`, `c_proj`).
//! - [`KvCache`]: keys and values of the tokens already seen, so that
//!   generating one more token costs one position, not the whole sequence.
//!
//! # Example
//! ```
//! use addmul_core::{rng, Init, Matrix};
//! use addmul_multihead::{KvCache, MultiHeadConfig};
//!
//! let mha = MultiHeadConfig::self_attention(8, 2).causal().init::<f64>(Init::Normal { std: 0.3 }, &mut rng(0))?;
//! let x = Matrix::from_fn(8, 4, |i, j| ((3 * i + j) as f64).cos());
//! let (full, _) = mha.forward_self(&x, 4, None)?;
//! // The same outputs, one token at a time, with a cache.
//! let mut cache = KvCache::new(8, 16);
//! for t in 0..4 {
//!     let y = mha.forward_cached(&x.columns(t, 1).into_owned(), &mut cache)?;
//!     assert!((y - full.column(t)).abs().max() < 1e-12);
//! }
//! # Ok::<(), addmul_core::Error>(())
//! ```
#![deny(missing_docs)]

mod cache;
mod mha;

pub use addmul_attention::AttentionGrads;
pub use addmul_core::Error;
pub use cache::{CrossKv, KvCache, LayerCaches};
pub use mha::{MultiHeadAttention, MultiHeadCache, MultiHeadConfig, TILED_FROM_SCORES};
