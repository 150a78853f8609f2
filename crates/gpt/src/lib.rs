//! A GPT: the decoder-only transformer of GPT-2, built from addmul's concept
//! crates, trainable on any text and compatible with Hugging Face.
//!
//! ```text
//! x = wte[ids] + wpe[positions]                      token + position embeddings
//! repeat n_layer times:
//!     x = x + attn(ln_1(x))                          causal multi-head self-attention
//!     x = x + mlp(ln_2(x))                           n_embd → 4·n_embd → n_embd, GELU
//! logits = wteᵀ ln_f(x)                              the output head is the embedding (tied)
//! ```
//!
//! Every piece comes from its own crate (`addmul-embedding`,
//! `addmul-posenc`, `addmul-layernorm`, `addmul-multihead`, `addmul-nn`,
//! `addmul-dropout`, `addmul-softmax`), each with a hand-written backward;
//! this crate composes them and adds what a real model needs: GPT-2's
//! initialisation, checkpoints in Hugging Face's safetensors layout (a model
//! trained here loads in `transformers` as a `GPT2LMHeadModel`, and back),
//! training with AdamW, and sampling with a key/value cache.
//!
//! # Example
//! ```
//! use addmul_core::rng;
//! use addmul_gpt::{Batch, Gpt, GptConfig};
//!
//! let config = GptConfig::new(65, 16, 2, 2, 32); // vocab, block, layers, heads, width
//! let mut model = Gpt::<f32>::new(config, &mut rng(0))?;
//! let inputs = [1, 2, 3, 4];
//! let targets = [2, 3, 4, 5];
//! let loss = model.forward_backward(&Batch { inputs: &inputs, targets: &targets, seq_len: 4, ignore: None }, None, 1.0)?;
//! assert!((loss - 65f64.ln()).abs() < 0.1); // an untrained model guesses uniformly
//! # Ok::<(), addmul_gpt::GptError>(())
//! ```
#![deny(missing_docs)]

pub mod checkpoint;
mod config;
mod error;
mod eval;
mod model;
pub mod safetensors_io;
mod sample;
mod train;

pub use config::GptConfig;
pub use error::{GptError, Result};
pub use eval::{Perplexity, perplexity};
pub use model::{Batch, Block, DecodeState, Gpt, TokenId};
pub use sample::{Sampler, SamplingConfig, choose, distribution};
pub use train::{
    CheckpointPlan, EvalReport, GptTrainConfig, GptTrainer, MemoryEstimate, ModelFiles, Observer, PRESETS, StepReport,
};
