//! How a network learns: measure how wrong it is (the loss), find which way
//! each weight should move to make it less wrong (the gradient), and move a
//! little (the optimizer step), over and over.
//!
//! - Optimizers ([`Optimizer`]): [`Sgd`] (with optional momentum) and
//!   [`AdamW`] (Adam with decoupled weight decay, applied only to the
//!   parameters its rule chooses: matrices by default).
//! - Learning-rate [`Schedule`]s: constant; linear warmup then cosine decay
//!   (GPT training); warmup then inverse square root (the Transformer paper).
//! - [`clip_grad_norm`]: scale all gradients down when their global norm is
//!   too large.
//! - [`DataParallel`]: one copy of any model per thread, each running
//!   forward and backward on its share of a batch, and one shared update
//!   (gradient sum in a fixed order, clipping, AdamW, weights back to every
//!   copy); the GPT's and the Transformer's trainers both take their steps
//!   with it.
//! - Data: [`train_val_split`], [`split_in_order`], [`shuffled_batches`].
//! - [`fit`]: the epoch loop, recording training and validation loss and
//!   stopping early when validation stops improving (the cure for
//!   overfitting that needs no change to the model).
//! - [`NudgeTrainer`]: the article's explanation of a gradient made literal:
//!   nudge each weight, watch the loss. A test shows it takes the same step as
//!   backpropagation.
//!
//! # Example
//! ```
//! use addmul_core::{Param, Parameters, Matrix};
//! use addmul_train::{Optimizer, Sgd};
//!
//! // One weight w = 3 and the loss (w - 1)², gradient 2 (w - 1) = 4.
//! let mut w = Param::vector(vec![3.0_f64]);
//! w.grad_mut()[0] = 4.0;
//! Sgd::new(0.25)?.step(&mut w)?;
//! assert_eq!(w.value()[0], 2.0); // 3 - 0.25 · 4
//! # Ok::<(), addmul_core::Error>(())
//! ```
#![deny(missing_docs)]

mod data;
mod data_parallel;
mod fit;
mod nudge;
mod optim;
mod schedule;

pub use addmul_core::Error;
pub use data::{shuffled_batches, split_in_order, train_val_split};
pub use data_parallel::{DataParallel, ParallelStep};
pub use fit::{EarlyStopping, EpochRecord, FitConfig, History, Mode, Objective, fit};
pub use nudge::NudgeTrainer;
pub use optim::{AdamW, AdamWConfig, DecayRule, Moments, Optimizer, Sgd, clip_factor, clip_grad_norm};
pub use schedule::Schedule;
