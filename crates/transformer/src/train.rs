//! Training with the paper's recipe: teacher forcing, label smoothing, Adam
//! with β₂ = 0.98, and the warmup / inverse-square-root learning rate; each
//! batch split across worker threads.

use std::time::Instant;

use addmul_core::parallel::run_each;
use addmul_core::{ParametersExt, rng};
use addmul_train::{AdamW, AdamWConfig, Optimizer, Schedule, clip_grad_norm};

use crate::{Batch, Loss, Pair, Result, Transformer, TransformerError};

// ANCHOR: train_config
/// How to train. [`TrainConfig::paper`] is section 5 of "Attention Is All You
/// Need".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
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
    /// this number only through rounding.
    pub threads: usize,
}
// ANCHOR_END: train_config

impl TrainConfig {
    /// The paper's settings: warmup 4000, factor 1, Adam (0.9, 0.98, 1e-9),
    /// label smoothing 0.1, no clipping.
    pub fn paper() -> Self {
        TrainConfig {
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
        if self.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { self.threads }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig::paper()
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
pub struct Trainer {
    config: TrainConfig,
    workers: Vec<Transformer<f32>>,
    optimizer: AdamW<f32>,
    step: u64,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer").field("config", &self.config).field("step", &self.step).finish_non_exhaustive()
    }
}

impl Trainer {
    /// Starts training `model`.
    ///
    /// # Errors
    /// [`TransformerError::Config`] or a numeric error for invalid settings.
    pub fn new(model: Transformer<f32>, config: TrainConfig) -> Result<Self> {
        config.schedule(model.config().d_model).validate()?;
        if !(0.0..1.0).contains(&config.label_smoothing) {
            return Err(TransformerError::config("label_smoothing", config.label_smoothing, "must be in [0, 1)"));
        }
        if !(config.grad_clip >= 0.0) {
            return Err(TransformerError::config("grad_clip", config.grad_clip, "must be >= 0 (0 turns it off)"));
        }
        let optimizer = AdamW::new(config.adam())?;
        let workers = vec![model; config.thread_count().max(1)];
        Ok(Trainer { config, workers, optimizer, step: 0 })
    }

    /// The settings.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The model being trained.
    pub fn model(&self) -> &Transformer<f32> {
        &self.workers[0]
    }

    /// The trained model.
    pub fn into_model(mut self) -> Transformer<f32> {
        self.workers.swap_remove(0)
    }

    /// Steps taken.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.workers.len()
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
    pub fn step(&mut self, pairs: &[Pair]) -> Result<StepReport> {
        let start = Instant::now();
        let config = *self.workers[0].config();
        let n = self.workers.len().min(pairs.len()).max(1);
        let mut batches = Vec::with_capacity(n);
        let mut from = 0;
        for w in 0..n {
            let share = pairs.len() / n + usize::from(w < pairs.len() % n);
            batches.push(Batch::new(&pairs[from..from + share], &config)?);
            from += share;
        }
        let tokens: usize = batches.iter().map(Batch::target_tokens).sum();
        let lr = self.config.schedule(config.d_model).lr(self.step);
        self.optimizer.set_lr(lr)?;
        let (smoothing, seed, step) = (self.config.label_smoothing, self.config.seed, self.step);
        let work = |w: usize, model: &mut Transformer<f32>, batch: &Batch| {
            model.zero_grads();
            let mut masks = rng(seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ w as u64);
            let share = batch.target_tokens() as f64 / tokens as f64;
            model.forward_backward(batch, smoothing, Some(&mut masks), share).map(|l| (l, share))
        };
        // Each worker is a job on the shared thread pool; results in order.
        let jobs: Vec<_> = self.workers.iter_mut().zip(&batches).enumerate().collect();
        let results = run_each(jobs, |(w, (model, batch))| work(w, model, batch));
        let (mut loss, mut nll) = (0.0, 0.0);
        for result in results {
            let (l, share) = result?;
            loss += l.loss * share;
            nll += l.nll * share;
        }
        if !loss.is_finite() {
            return Err(TransformerError::NonFiniteLoss { step: self.step + 1, loss });
        }
        // Sum the workers' gradients into the first, in order.
        let (first, rest) = self.workers.split_first_mut().expect("at least one worker");
        for replica in &rest[..n - 1] {
            for (master, other) in first.params_mut().into_iter().zip(replica.params()) {
                *master.grad_mut() += other.grad();
            }
        }
        let grad_norm =
            if self.config.grad_clip > 0.0 { clip_grad_norm(first, self.config.grad_clip)? } else { first.grad_norm() };
        self.optimizer.step(first)?;
        for replica in rest.iter_mut() {
            for (mine, master) in replica.params_mut().into_iter().zip(first.params()) {
                mine.value_mut().as_mut_slice().copy_from_slice(master.value().as_slice());
            }
        }
        self.step += 1;
        let loss = Loss { loss, nll, tokens };
        Ok(StepReport { step: self.step, loss, lr, grad_norm, seconds: start.elapsed().as_secs_f64() })
    }
    // ANCHOR_END: step
}
