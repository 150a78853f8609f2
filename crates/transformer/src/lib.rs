//! The Transformer of "Attention Is All You Need" (Vaswani et al., 2017): an
//! encoder that reads a whole source sentence, and a decoder that writes the
//! translation one token at a time while looking back at the encoder.
//!
//! A decoder-only GPT (chapter 14) sees one stream of tokens and predicts the
//! next. Here the sentence to translate and its translation are kept apart:
//! the **encoder** lets every source token attend to every other (no mask),
//! and the **decoder** attends to the translation so far (causal mask) and,
//! through **cross-attention**, to the encoder's output, the same output for
//! every decoder layer:
//!
//! ```text
//! x = √d · src_embed[source] + PE                y = √d · tgt_embed[<s> target] + PE
//! N times:                                       N times:
//!     x = Sub(x, self_attn(x))                       y = Sub(y, masked_self_attn(y))
//!     x = Sub(x, ffn(x))                             y = Sub(y, cross_attn(y, memory = x))
//!                                                    y = Sub(y, ffn(y))
//! memory = x                                     logits = tgt_embedᵀ y      (tied output)
//! ```
//!
//! `ffn(x) = W₂ relu(W₁ x + b₁) + b₂`, and `Sub` is a residual connection
//! with a layer norm, after the sum as in the paper (`LayerNorm(x + f(x))`,
//! [`NormPlacement::Post`]) or before the sub-layer
//! (`x + f(LayerNorm(x))`, [`NormPlacement::Pre`]); see [`NormPlacement`]
//! for the difference. Every piece comes from its own crate with its own
//! backward (`addmul-embedding`, `addmul-posenc`, `addmul-multihead`,
//! `addmul-nn`, `addmul-layernorm`, `addmul-dropout`, `addmul-softmax`); this
//! crate composes them and adds what a translation model needs:
//!
//! - [`Specials`] and [`Vocab`]: padding, start and end ids, defined once.
//! - [`Batch`]: pairs of variable length, padded, with the start token added
//!   to the decoder's input and the end token to its target (teacher
//!   forcing); padding is masked in every attention and ignored by the loss.
//! - [`Transformer::forward_backward`]: cross-entropy with label smoothing,
//!   and the hand-written backward of the whole model.
//! - [`TransformerTrainer`]: Adam (0.9, 0.98, 1e-9) and the warmup/inverse-square-root
//!   schedule, each batch split across threads.
//! - [`Transformer::greedy`] and [`Transformer::beam_search`] (width, length
//!   penalty), both stopping at the end token, with each decoder layer's
//!   self-attention keys and values cached and the encoder output projected
//!   for cross-attention once per sentence.
//! - [`tasks`]: the copy task and English-to-German number words.
//!
//! # Shapes
//! Activations are `[d_model, B·S]` in the encoder and `[d_model, B·T]` in
//! the decoder: one column per token, `B` sequences side by side, each
//! padded to the batch's longest (`S` source tokens, `T` decoder inputs).
//! The logits are `[tgt_vocab, B·T]`.
//!
//! # Example
//! ```
//! use addmul_core::rng;
//! use addmul_transformer::{Pair, TransformerTrainConfig, TransformerTrainer, Transformer, TransformerConfig};
//!
//! // A tiny model learns to copy two short sequences.
//! let config = TransformerConfig { max_len: 8, ..TransformerConfig::new(8, 8, 16, 2, 1) };
//! let pairs = [
//!     Pair { source: vec![3, 4, 5], target: vec![3, 4, 5] },
//!     Pair { source: vec![7, 6], target: vec![7, 6] },
//! ];
//! let model = Transformer::new(config, &mut rng(0))?;
//! let mut trainer = TransformerTrainer::new(model, TransformerTrainConfig { warmup: 20, lr_factor: 2.0, threads: 1, ..TransformerTrainConfig::paper() })?;
//! for _ in 0..120 {
//!     trainer.train_step(&pairs)?;
//! }
//! assert_eq!(trainer.model().greedy(&[3, 4, 5])?.tokens, [3, 4, 5]);
//! # Ok::<(), addmul_transformer::TransformerError>(())
//! ```
#![deny(missing_docs)]

mod config;
mod decode;
mod error;
mod layers;
mod model;
pub mod tasks;
mod train;
mod vocab;

pub use config::{NormPlacement, PositionKind, TransformerConfig};
pub use decode::{BeamConfig, Hypothesis, length_penalty};
pub use error::{Result, Side, TransformerError};
pub use layers::{DecoderLayer, EncoderLayer};
pub use model::{Batch, DecoderState, Encoded, Loss, Pair, Transformer};
pub use train::{StepReport, TransformerTrainConfig, TransformerTrainer};
pub use vocab::{Specials, TokenId, Vocab};
