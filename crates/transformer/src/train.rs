//! Training with the paper's recipe: teacher forcing, label smoothing, Adam
//! with β₂ = 0.98, and the warmup / inverse-square-root learning rate; each
//! batch split across worker threads.

use std::time::Instant;

use addmul_core::rng;
use addmul_train::{AdamW, AdamWConfig, DataParallel, Optimizer, Schedule};

use crate::{Batch, Loss, Pair, Result, Transformer, TransformerError};

// ANCHOR: train_config
/// How to train. [`TransformerTrainConfig::paper`] is section 5 of "Attention Is All You
/// Need".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransformerTrainConfig {
    /// Warmup steps of the learning-rate schedule (the paper: 4000).
    pub warmup: u64,
    /// A multiplier on the schedule (the paper: 1), so that the rate is
    /// `factor · d_model^-½ · min(step^-½, step · warmup^-1.5)`.
    pub lr_factor: f64,
    /// Adam's β₁ (0.9).
    pub beta1: f64,
    /// Adam's β₂ (0.98: the paper's, lower than the usual 0.999, so the
    /// second moment follows the fast-changing gradients of early training).
    pub beta2: f64,
    /// Adam's ε (1e-9).
    pub eps: f64,
    /// Label smoothing `ε_ls` (0.1): the target distribution puts `1 - ε_ls`
    /// on the right token and spreads `ε_ls` over the whole vocabulary.
    pub label_smoothing: f64,
    /// Global gradient-norm clip (0: none; the paper does not clip).
    pub grad_clip: f64,
    /// Seed of the dropout masks.
    pub seed: u64,
    /// Worker threads (0: one per core). The sum of the gradients depends on
    /// this number only through rounding (and the dropout masks, drawn per
    /// thread).
    pub threads: usize,
}
// ANCHOR_END: train_config

impl TransformerTrainConfig {
    /// The paper's settings: warmup 4000, factor 1, Adam (0.9, 0.98, 1e-9),
    /// label smoothing 0.1, no clipping.
    pub fn paper() -> Self {
        TransformerTrainConfig {
            warmup: 4000,
            lr_factor: 1.0,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-9,
            label_smoothing: 0.1,
            grad_clip: 0.0,
            seed: 0,
            threads: 0,
        }
    }

    /// The learning-rate schedule for a model of width `d_model`.
    pub fn schedule(&self, d_model: usize) -> Schedule {
        Schedule::InverseSqrt { d_model, warmup: self.warmup, factor: self.lr_factor }
    }

    fn adam(&self) -> AdamWConfig {
        AdamWConfig { lr: 1.0, beta1: self.beta1, beta2: self.beta2, eps: self.eps, weight_decay: 0.0 }
    }

    fn thread_count(&self) -> usize {
        addmul_core::parallel::threads(self.threads)
    }
}

impl Default for TransformerTrainConfig {
    fn default() -> Self {
        TransformerTrainConfig::paper()
    }
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Steps taken so far, this one included.
    pub step: u64,
    /// The batch's loss (with label smoothing) and plain cross-entropy.
    pub loss: Loss,
    /// The learning rate used.
    pub lr: f64,
    /// The gradient norm before clipping.
    pub grad_norm: f64,
    /// Wall time of the step.
    pub seconds: f64,
}

/// A training run in progress: the model (one copy per worker thread), Adam's
/// state and the step count.
pub struct TransformerTrainer {
    config: TransformerTrainConfig,
    /// The model, one copy per worker thread.
    workers: DataParallel<Transformer<f32>>,
    optimizer: AdamW<f32>,
    step: u64,
}

impl std::fmt::Debug for TransformerTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformerTrainer")
            .field("config", &self.config)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl TransformerTrainer {
    /// Starts training `model`.
    ///
    /// # Errors
    /// [`TransformerError::Config`] or a numeric error for invalid settings.
    pub fn new(model: Transformer<f32>, config: TransformerTrainConfig) -> Result<Self> {
        config.schedule(model.config().d_model).validate()?;
        if !(0.0..1.0).contains(&config.label_smoothing) {
            return Err(TransformerError::config("label_smoothing", config.label_smoothing, "must be in [0, 1)"));
        }
        if !(config.grad_clip >= 0.0) {
            return Err(TransformerError::config("grad_clip", config.grad_clip, "must be >= 0 (0 turns it off)"));
        }
        let optimizer = AdamW::new(config.adam())?;
        let workers = DataParallel::new(model, config.thread_count());
        Ok(TransformerTrainer { config, workers, optimizer, step: 0 })
    }

    /// The settings.
    pub fn config(&self) -> &TransformerTrainConfig {
        &self.config
    }

    /// The model being trained.
    pub fn model(&self) -> &Transformer<f32> {
        self.workers.model()
    }

    /// The trained model.
    pub fn into_model(self) -> Transformer<f32> {
        self.workers.into_model()
    }

    /// Steps taken.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.workers.threads()
    }

    // ANCHOR: step
    /// One optimizer step on `pairs`: the pairs are split into one batch per
    /// worker, every worker runs forward and backward on its share with its
    /// own copy of the weights (each scaled by its share of the target
    /// tokens, so that together they give the gradient of the mean over all
    /// tokens), the gradients are summed in worker order, optionally clipped,
    /// and Adam applies them; the new weights are copied back to every worker.
    ///
    /// # Errors
    /// As [`Batch::new`] for bad pairs (nothing is changed);
    /// [`TransformerError::NonFiniteLoss`] if the loss is not finite (the
    /// weights are left as they were).
    pub fn train_step(&mut self, pairs: &[Pair]) -> Result<StepReport> {
        let start = Instant::now();
        let config = *self.workers.model().config();
        if pairs.is_empty() {
            Batch::new(pairs, &config)?; // the error for an empty batch
        }
        let shares = self.workers.shares(pairs.len());
        let batches =
            shares.iter().map(|share| Batch::new(&pairs[share.clone()], &config)).collect::<Result<Vec<_>>>()?;
        let tokens: usize = batches.iter().map(Batch::target_tokens).sum();
        let lr = self.config.schedule(config.d_model).lr(self.step);
        self.optimizer.set_lr(lr)?;
        let (smoothing, seed, n) = (self.config.label_smoothing, self.config.seed, self.step);
        let mut step = self.workers.step();
        let results = step.accumulate(&shares, |w, model, _| {
            let batch = &batches[w];
            let mut masks = rng(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ w as u64);
            let share = batch.target_tokens() as f64 / tokens as f64;
            model.forward_backward(batch, smoothing, Some(&mut masks), share).map(|l| (l, share))
        })?;
        let (mut loss, mut nll) = (0.0, 0.0);
        for (l, share) in results {
            loss += l.loss * share;
            nll += l.nll * share;
        }
        if !loss.is_finite() {
            return Err(TransformerError::NonFiniteLoss { step: self.step + 1, loss });
        }
        let grad_norm = step.update(&mut self.optimizer, self.config.grad_clip)?;
        self.step += 1;
        let loss = Loss { loss, nll, tokens };
        Ok(StepReport { step: self.step, loss, lr, grad_norm, seconds: start.elapsed().as_secs_f64() })
    }
    // ANCHOR_END: step
}
