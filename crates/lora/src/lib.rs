//! Low-rank adapters (LoRA): fine-tune a big linear layer by training two
//! thin matrices beside it, and leave the layer itself alone.
//!
//! # The idea
//! A linear layer's weight `W` is a table of `out × in` numbers. Fine-tuning
//! a model on new text changes every one of them: for GPT-2 small's
//! `c_attn` (768 inputs, 2304 outputs) that is 1,769,472 numbers, for one
//! layer. LoRA bets that the *change* needs far fewer: that it can be
//! written as a tall, thin table `B` (`out × r`) times a wide, flat table
//! `A` (`r × in`), with a small rank `r` such as 2, 8 or 16. Their product
//! `B A` is again a full `out × in` table, but it is described by only
//! `r · (in + out)` numbers: with `r = 8`, `8 · (768 + 2304) = 24,576`,
//! 72 times fewer. The layer computes
//!
//! ```text
//! y = W x + b + s · B (A x)        s = alpha / r
//! ```
//!
//! The input goes the old way through `W`, and also down a narrow side
//! path: `A` squeezes every token to `r` numbers, `B` spreads them back out
//! to `out`. `W` and `b` stay frozen; only `A` and `B` learn, so the
//! gradients and the optimizer's memory shrink in the same ratio.
//!
//! **Why `B` starts at zero.** Then `B A = 0` and the adapted model starts
//! out *exactly* as the pretrained one: training moves it from there
//! instead of from a random detour. `A` starts random, not zero, because a
//! product of two zeros never learns: `B`'s gradient is `s · dy (A x)ᵀ`,
//! zero when `A` is, and `A`'s is `s · Bᵀ dy xᵀ`, zero when `B` is. With
//! `A` random, `B` moves at the first step, and `A` from the second on.
//!
//! **Why the scale `alpha / r`.** Each of the `r` numbers on the side path
//! adds its share to the output, so the update's size grows with `r`.
//! Dividing by `r` keeps it about the same when you try another rank, so
//! the learning rate that worked for one rank works for the next; `alpha`
//! is the knob, in the same units for every `r` (PEFT's `lora_alpha`).
//!
//! **Merging.** After training, `W + s · B A` is one table the size of `W`:
//! [`LoraLinear::merge`] folds the adapter in, and the adapted layer costs
//! nothing extra to run. [`LoraLinear::unmerge`] takes it back out (up to
//! rounding), to train on or to swap in another adapter.
//!
//! # Forward and backward
//! With `x` the input (`[in, n]`, one column per token), `drop` PEFT's
//! `lora_dropout` on the side path's input and `u = A drop(x)` (`[r, n]`):
//!
//! | | |
//! |---|---|
//! | forward | `y = W x + b + s · B u` |
//! | `B`'s gradient | `dB += s · dy uᵀ` |
//! | `A`'s gradient | `dA += s · (Bᵀ dy) drop(x)ᵀ` |
//! | the input's gradient | `dx = Wᵀ dy + drop'(s · Aᵀ Bᵀ dy)` |
//! | `W`'s and `b`'s | never computed: they are frozen |
//!
//! [`LoraAdapter`] is the side path alone (`A`, `B`, `s`), to run beside a
//! model's own [`Linear`](addmul_nn::Linear) layers; [`LoraLinear`] is a
//! frozen `Linear` with its adapter, as one [`Layer`](addmul_core::Layer).
//! [`AdapterSet`] holds one adapter per layer name
//! (`transformer.h.0.attn.c_attn`) and saves and loads them as Hugging Face
//! PEFT does ([`peft`]), so that an adapter trained here loads in PEFT and
//! the reverse.
//!
//! # Example
//! ```
//! use addmul_core::{rng, Init, Layer, Matrix, ParametersExt};
//! use addmul_lora::{LoraConfig, LoraLinear};
//! use addmul_nn::Linear;
//!
//! // A "pretrained" layer: 16 inputs, 12 outputs, 204 numbers.
//! let base = Linear::<f64>::new(16, 12, true, Init::Normal { std: 0.3 }, &mut rng(1));
//! let mut layer = LoraLinear::new(base, &LoraConfig::new(2, 4.0, &["c_attn"]), &mut rng(2))?;
//! assert_eq!(layer.num_params(), 2 * (16 + 12)); // what is trained: 56 numbers
//!
//! let x = Matrix::from_fn(16, 5, |i, j| ((i * 5 + j) as f64).sin());
//! let (y, cache) = layer.forward(&x)?;
//! assert_eq!(y, layer.base().apply(&x)?); // B = 0: exactly the base, to start
//! layer.backward(&cache, &Matrix::from_element(12, 5, 1.0))?;
//! assert!(layer.grad_norm() > 0.0); // B learns from the first step
//! # Ok::<(), addmul_lora::LoraError>(())
//! ```
//!
//! From Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models"
//! (2021); the file format is Hugging Face PEFT's.
#![deny(missing_docs)]

mod adapter;
mod config;
mod error;
mod linear;
pub mod peft;

pub use adapter::{AdapterCache, LoraAdapter, frozen_backward};
pub use config::LoraConfig;
pub use error::{LoraError, Result};
pub use linear::{LoraCache, LoraLinear};
pub use peft::{AdapterSet, BaseLayers, PeftInfo};
