//! Training a GPT on a stream of token ids: random windows, AdamW with
//! warmup and cosine decay, gradient clipping and accumulation, periodic
//! validation, data-parallel threads, checkpoints that resume bit for bit.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use addmul_core::{Parameters, Rng, RngState, rng};
use addmul_train::{AdamW, AdamWConfig, DataParallel, Moments, Optimizer, Schedule};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{model_safetensors, prune, resolve, save_checkpoint};
use crate::safetensors_io::{Tensors, read_tensors, serialize};
use crate::{Batch, Gpt, GptConfig, GptError, Result, TokenId};

/// Everything that decides a training run. Missing fields in a config file
/// take the values of the `cpu-small` preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GptTrainConfig {
    /// Transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block.
    pub n_head: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Tokens per training window (and the model's maximum context).
    pub block_size: usize,
    /// Dropout probability.
    pub dropout: f64,
    /// Biases in linear layers and layer norms.
    pub bias: bool,
    /// Windows per micro-batch.
    pub batch_size: usize,
    /// Micro-batches whose gradients are summed before each optimizer step.
    pub grad_accum: usize,
    /// Optimizer steps.
    pub max_iters: u64,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate of the cosine decay.
    pub min_lr: f64,
    /// Steps of linear warmup.
    pub warmup_iters: u64,
    /// Step at which the decay reaches `min_lr` (default: `max_iters`).
    pub lr_decay_iters: Option<u64>,
    /// AdamW β1.
    pub beta1: f64,
    /// AdamW β2.
    pub beta2: f64,
    /// AdamW weight decay, applied to matrices only.
    pub weight_decay: f64,
    /// Global gradient-norm clip (0: none).
    pub grad_clip: f64,
    /// Fraction of the tokens (the end of the text) held out for validation.
    pub val_fraction: f64,
    /// Steps between validation measurements.
    pub eval_interval: u64,
    /// Batches per split per validation measurement.
    pub eval_iters: usize,
    /// Steps between checkpoints (0: only at the end).
    pub checkpoint_interval: u64,
    /// Checkpoints kept in the run folder.
    pub keep_checkpoints: usize,
    /// Seed of initialisation, batches and dropout.
    pub seed: u64,
    /// Worker threads (0: one per core). Results depend on this number (the
    /// order of summation changes), so it is saved with a checkpoint.
    pub threads: usize,
}

impl Default for GptTrainConfig {
    fn default() -> Self {
        GptTrainConfig::cpu_small()
    }
}

/// The named presets.
pub const PRESETS: [&str; 4] = ["cpu-small", "shakespeare-char", "tiny", "finetune"];

impl GptTrainConfig {
    // ANCHOR: cpu_small
    /// nanoGPT's configuration for a CPU: block 64, batch 12, 4 layers, 4
    /// heads, 128 dimensions, 2000 iterations, learning rate 1e-3 decaying to
    /// 1e-4 after 100 warmup steps, betas 0.9/0.99, weight decay 0.1, clip
    /// 1.0, no dropout.
    pub fn cpu_small() -> Self {
        GptTrainConfig {
            n_layer: 4,
            n_head: 4,
            n_embd: 128,
            block_size: 64,
            dropout: 0.0,
            bias: true,
            batch_size: 12,
            grad_accum: 1,
            max_iters: 2000,
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_iters: 100,
            lr_decay_iters: None,
            beta1: 0.9,
            beta2: 0.99,
            weight_decay: 0.1,
            grad_clip: 1.0,
            val_fraction: 0.1,
            eval_interval: 250,
            eval_iters: 20,
            checkpoint_interval: 500,
            keep_checkpoints: 2,
            seed: 1337,
            threads: 0,
        }
    }
    // ANCHOR_END: cpu_small

    /// A preset by name: `cpu-small`; `shakespeare-char` (nanoGPT's GPU
    /// configuration: 6 layers, 6 heads, 384 dimensions, block 256, batch 64,
    /// dropout 0.2, 5000 iterations); `tiny` (seconds on a laptop, for tests
    /// and demos); `finetune` (the recipe of `addmul finetune`: windows of
    /// 128 tokens, batch 4, 300 steps at a learning rate of 1e-4, whose
    /// architecture fields the pretrained model replaces).
    ///
    /// # Errors
    /// [`GptError::UnknownPreset`] listing the known names.
    pub fn preset(name: &str) -> Result<Self> {
        let base = GptTrainConfig::cpu_small();
        match name {
            "cpu-small" => Ok(base),
            "shakespeare-char" => Ok(GptTrainConfig {
                n_layer: 6,
                n_head: 6,
                n_embd: 384,
                block_size: 256,
                batch_size: 64,
                dropout: 0.2,
                max_iters: 5000,
                eval_iters: 200,
                ..base
            }),
            // The architecture fields are cpu-small's, and `addmul finetune`
            // replaces them with the pretrained model's.
            "finetune" => Ok(GptTrainConfig {
                block_size: 128,
                batch_size: 4,
                max_iters: 300,
                lr: 1e-4,
                min_lr: 1e-5,
                warmup_iters: 20,
                weight_decay: 0.01,
                eval_interval: 50,
                eval_iters: 10,
                checkpoint_interval: 100,
                ..base
            }),
            "tiny" => Ok(GptTrainConfig {
                n_layer: 2,
                n_head: 2,
                n_embd: 32,
                block_size: 32,
                batch_size: 8,
                max_iters: 200,
                warmup_iters: 20,
                eval_interval: 50,
                eval_iters: 5,
                checkpoint_interval: 0,
                ..base
            }),
            _ => Err(GptError::UnknownPreset { name: name.to_string(), known: PRESETS.join(", ") }),
        }
    }

    /// The model architecture for a vocabulary of `vocab_size`.
    pub fn model_config(&self, vocab_size: usize) -> GptConfig {
        GptConfig {
            dropout: self.dropout,
            bias: self.bias,
            ..GptConfig::new(vocab_size, self.block_size, self.n_layer, self.n_head, self.n_embd)
        }
    }

    /// The learning-rate schedule.
    pub fn schedule(&self) -> Schedule {
        Schedule::WarmupCosine {
            max_lr: self.lr,
            min_lr: self.min_lr,
            warmup: self.warmup_iters,
            decay_steps: self.lr_decay_iters.unwrap_or(self.max_iters),
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`GptError::Config`] naming the first bad field.
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        self.model_config(vocab_size).validate()?;
        for (field, v) in
            [("batch_size", self.batch_size), ("grad_accum", self.grad_accum), ("eval_iters", self.eval_iters)]
        {
            if v == 0 {
                return Err(GptError::config(field, v, "must be at least 1"));
            }
        }
        if self.eval_interval == 0 {
            return Err(GptError::config("eval_interval", 0, "must be at least 1"));
        }
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            return Err(GptError::config("val_fraction", self.val_fraction, "must be in (0, 1)"));
        }
        if !(self.grad_clip >= 0.0) {
            return Err(GptError::config("grad_clip", self.grad_clip, "must be >= 0 (0 turns clipping off)"));
        }
        self.schedule().validate()?;
        AdamW::<f32>::new(self.adamw())?;
        Ok(())
    }

    fn adamw(&self) -> AdamWConfig {
        AdamWConfig { lr: self.lr, beta1: self.beta1, beta2: self.beta2, eps: 1e-8, weight_decay: self.weight_decay }
    }

    fn thread_count(&self) -> usize {
        addmul_core::parallel::threads(self.threads).clamp(1, self.batch_size)
    }
}

/// The memory a training run needs, in bytes (an estimate, counted in `f64`
/// so that no size can overflow).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MemoryEstimate {
    /// Weights and gradients of every worker's copy.
    pub weights: f64,
    /// AdamW's two moments.
    pub optimizer: f64,
    /// What the forward passes keep for the backward passes, over all
    /// workers: per token and layer about 16 · n_embd numbers (layer norms,
    /// queries, keys, values, the feed-forward's 4 · n_embd twice) and
    /// n_head · block_size attention weights, plus the logits and their
    /// gradient.
    pub activations: f64,
}

impl MemoryEstimate {
    /// Everything.
    pub fn total(&self) -> f64 {
        self.weights + self.optimizer + self.activations
    }
}

impl GptTrainConfig {
    /// What training this configuration on a vocabulary of `vocab_size`
    /// needs, before anything is allocated.
    pub fn memory_estimate(&self, vocab_size: usize) -> MemoryEstimate {
        let f = |n: usize| n as f64;
        let (c, t, l, h, v) = (f(self.n_embd), f(self.block_size), f(self.n_layer), f(self.n_head), f(vocab_size));
        let params = l * (12.0 * c * c + 13.0 * c) + (v + t + 2.0) * c;
        let bytes = std::mem::size_of::<f32>() as f64;
        let tokens = f(self.batch_size) * t;
        MemoryEstimate {
            weights: 2.0 * params * bytes * f(self.thread_count()),
            optimizer: 2.0 * params * bytes,
            activations: tokens * (l * (16.0 * c + h * t) + 3.0 * v) * bytes,
        }
    }
}

/// Memory available to this process (Linux's `MemAvailable`), in bytes;
/// `None` where it cannot be read.
fn available_memory() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Steps taken so far (this one included).
    pub step: u64,
    /// Mean training loss of the step's batches.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Wall time of the step.
    pub seconds: f64,
    /// Of which: the forward and backward passes on the worker threads.
    pub compute_seconds: f64,
    /// Tokens processed.
    pub tokens: usize,
}

/// A validation measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Steps taken when measured.
    pub step: u64,
    /// Mean loss over `eval_iters` random training batches.
    pub train_loss: f64,
    /// Mean loss over `eval_iters` random validation batches.
    pub val_loss: f64,
}

/// Receives progress from [`GptTrainer::run`].
pub trait Observer {
    /// After each optimizer step.
    fn step(&mut self, _report: &StepReport) {}
    /// After each validation measurement.
    fn eval(&mut self, _report: &EvalReport) {}
    /// After each checkpoint.
    fn checkpoint(&mut self, _dir: &Path) {}
    /// Asked after each step: `true` stops the run there (with a
    /// checkpoint), for example when the user pressed Ctrl-C.
    fn stop_requested(&mut self) -> bool {
        false
    }
}

/// An observer that ignores everything.
impl Observer for () {}

/// Files made from the model at each checkpoint: name and contents.
pub type ModelFiles = std::sync::Arc<dyn Fn(&Gpt<f32>) -> Result<Vec<(String, Vec<u8>)>> + Send + Sync>;

/// Where [`GptTrainer::run`] writes checkpoints.
#[derive(Clone, Default)]
pub struct CheckpointPlan {
    /// The run folder.
    pub dir: PathBuf,
    /// Files written into every checkpoint beside the model (e.g. the
    /// tokenizer): name and contents.
    pub extra_files: Vec<(String, Vec<u8>)>,
    /// Files made from the model as it is at each checkpoint, written beside
    /// it: a run that trains low-rank adapters writes them this way (as
    /// PEFT's `adapter_model.safetensors` and `adapter_config.json`), since
    /// `model.safetensors` holds GPT-2's own weights only.
    pub model_files: Option<ModelFiles>,
}

impl std::fmt::Debug for CheckpointPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointPlan")
            .field("dir", &self.dir)
            .field("extra_files", &self.extra_files.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("model_files", &self.model_files.is_some())
            .finish()
    }
}

/// The training state that is not weights: saved as `trainer.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    format: String,
    step: u64,
    vocab_size: usize,
    threads: usize,
    config: GptTrainConfig,
    batch_rng: SavedRng,
    eval_rng: SavedRng,
    corpus_tokens: usize,
    corpus_fingerprint: String,
    evals: Vec<EvalReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedRng {
    seed: String,
    stream: u64,
    word_pos: String,
}

impl SavedRng {
    fn of(r: &Rng) -> Self {
        let s = RngState::of(r);
        SavedRng {
            seed: s.seed.iter().map(|b| format!("{b:02x}")).collect(),
            stream: s.stream,
            word_pos: s.word_pos.to_string(),
        }
    }

    fn restore(&self, path: &Path) -> Result<Rng> {
        let bad = || GptError::checkpoint(path, "malformed random generator state");
        if self.seed.len() != 64 {
            return Err(bad());
        }
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        let word_pos = self.word_pos.parse().map_err(|_| bad())?;
        Ok(RngState { seed, stream: self.stream, word_pos }.restore())
    }
}

/// The folder of the checkpoint at `step`: `step-000500`.
fn checkpoint_name(step: u64) -> String {
    format!("step-{step:06}")
}

/// FNV-1a over the token ids: resuming on a different corpus is refused.
fn fingerprint(tokens: &[TokenId]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for t in tokens {
        for b in t.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// A training run in progress.
pub struct GptTrainer {
    config: GptTrainConfig,
    /// The model, one copy per worker thread.
    workers: DataParallel<Gpt<f32>>,
    optimizer: AdamW<f32>,
    step: u64,
    batch_rng: Rng,
    eval_rng: Rng,
    train: Vec<TokenId>,
    val: Vec<TokenId>,
    corpus: (usize, String),
    evals: Vec<EvalReport>,
    last_saved: Option<u64>,
}

impl std::fmt::Debug for GptTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GptTrainer").field("config", &self.config).field("step", &self.step).finish_non_exhaustive()
    }
}

/// Splits `tokens` into training and validation parts, in order.
fn split(tokens: &[TokenId], config: &GptTrainConfig) -> Result<(Vec<TokenId>, Vec<TokenId>)> {
    let n_train = ((1.0 - config.val_fraction) * tokens.len() as f64) as usize;
    let (train, val) = tokens.split_at(n_train.min(tokens.len()));
    let needed = config.block_size + 1;
    for (name, part) in [("training", train), ("validation", val)] {
        if part.len() < needed {
            return Err(GptError::CorpusTooShort { split: name, tokens: part.len(), needed });
        }
    }
    Ok((train.to_vec(), val.to_vec()))
}

impl GptTrainer {
    /// A fresh run on `tokens` (ids below `vocab_size`).
    ///
    /// # Errors
    /// [`GptError::Config`] for an invalid configuration;
    /// [`GptError::CorpusTooShort`] if either split is shorter than a window;
    /// [`GptError::TokenOutOfRange`] for an id outside the vocabulary.
    pub fn new(config: GptTrainConfig, vocab_size: usize, tokens: &[TokenId]) -> Result<Self> {
        config.validate(vocab_size)?;
        Self::check_data_and_memory(&config, vocab_size, tokens)?;
        let model = Gpt::new(config.model_config(vocab_size), &mut rng(config.seed))?;
        Self::start(model, config, tokens)
    }

    // ANCHOR: from_model
    /// Training that starts from `model`'s weights (a pretrained GPT-2, say:
    /// fine-tuning). The architecture is the model's: `config`'s `n_layer`,
    /// `n_head`, `n_embd` and `bias` are set from it, and the model's dropout
    /// is set to `config.dropout`. `config.block_size`, the length of the
    /// training windows, may be shorter than the model's context.
    ///
    /// # Errors
    /// [`GptError::Config`] for a bad setting or a `block_size` longer than
    /// the model's context; otherwise as [`GptTrainer::new`].
    pub fn from_model(mut model: Gpt<f32>, mut config: GptTrainConfig, tokens: &[TokenId]) -> Result<Self> {
        let m = *model.config();
        if config.block_size > m.block_size {
            return Err(GptError::config(
                "block_size",
                config.block_size,
                format!("the training windows cannot be longer than the model's context, {}", m.block_size),
            ));
        }
        (config.n_layer, config.n_head, config.n_embd, config.bias) = (m.n_layer, m.n_head, m.n_embd, m.bias);
        config.validate(m.vocab_size)?;
        model.set_dropout(config.dropout)?;
        Self::check_data_and_memory(&config, m.vocab_size, tokens)?;
        Self::start(model, config, tokens)
    }
    // ANCHOR_END: from_model

    /// Refuses token ids outside the vocabulary and a run larger than the
    /// memory available.
    fn check_data_and_memory(config: &GptTrainConfig, vocab_size: usize, tokens: &[TokenId]) -> Result<()> {
        if let Some((position, &id)) = tokens.iter().enumerate().find(|(_, t)| **t as usize >= vocab_size) {
            return Err(GptError::TokenOutOfRange { id, position, vocab_size });
        }
        let estimate = config.memory_estimate(vocab_size);
        if let Some(available) = available_memory()
            && estimate.total() > 0.9 * available
        {
            return Err(GptError::TooLarge { estimate, threads: config.thread_count(), available });
        }
        Ok(())
    }

    /// The trainer of `model` (checked against `config` by the callers).
    fn start(model: Gpt<f32>, config: GptTrainConfig, tokens: &[TokenId]) -> Result<Self> {
        let (train, val) = split(tokens, &config)?;
        let workers = DataParallel::new(model, config.thread_count());
        let optimizer = AdamW::new(config.adamw())?;
        Ok(GptTrainer {
            batch_rng: rng(config.seed.wrapping_add(1)),
            eval_rng: rng(config.seed.wrapping_add(2)),
            config,
            workers,
            optimizer,
            step: 0,
            train,
            val,
            corpus: (tokens.len(), fingerprint(tokens)),
            evals: Vec::new(),
            last_saved: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GptTrainConfig {
        &self.config
    }

    /// The model being trained.
    pub fn model(&self) -> &Gpt<f32> {
        self.workers.model()
    }

    /// Steps taken.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// Validation measurements so far.
    pub fn evals(&self) -> &[EvalReport] {
        &self.evals
    }

    /// Worker threads in use.
    pub fn threads(&self) -> usize {
        self.workers.threads()
    }

    /// Sets the last step (to extend a resumed run).
    ///
    /// # Errors
    /// [`GptError::Config`] if the schedule becomes invalid.
    pub fn set_max_iters(&mut self, max_iters: u64) -> Result<()> {
        self.config.max_iters = max_iters;
        self.config.schedule().validate()?;
        Ok(())
    }

    /// `B` random windows of `block_size + 1` tokens from `data`: inputs and
    /// the targets shifted by one.
    fn sample(data: &[TokenId], b: usize, t: usize, rng: &mut Rng) -> (Vec<TokenId>, Vec<TokenId>) {
        let mut x = Vec::with_capacity(b * t);
        let mut y = Vec::with_capacity(b * t);
        for _ in 0..b {
            let i = rng.random_range(0..data.len() - t);
            x.extend_from_slice(&data[i..i + t]);
            y.extend_from_slice(&data[i + 1..i + t + 1]);
        }
        (x, y)
    }

    // ANCHOR: step
    /// One optimizer step: `grad_accum` micro-batches, each split across the
    /// worker threads (every thread runs forward and backward on its share
    /// with its own copy of the weights), gradients summed in a fixed order,
    /// clipped, and applied by AdamW; the new weights are copied back to every
    /// worker.
    ///
    /// # Errors
    /// [`GptError::NonFiniteLoss`] if the loss is NaN or infinite (the weights
    /// are left as they were before the step).
    pub fn train_step(&mut self) -> Result<StepReport> {
        let start = Instant::now();
        let (b, t) = (self.config.batch_size, self.config.block_size);
        let lr = self.config.schedule().lr(self.step);
        self.optimizer.set_lr(lr)?;
        let mut step = self.workers.step();
        let shares = step.shares(b);
        let mut loss = 0.0;
        for micro in 0..self.config.grad_accum {
            let (x, y) = Self::sample(&self.train, b, t, &mut self.batch_rng);
            let scale = 1.0 / (b * self.config.grad_accum) as f64;
            let seed = (self.config.seed, self.step, micro as u64);
            let losses = step.accumulate(&shares, |w, model, range| {
                let batch = Batch {
                    inputs: &x[range.start * t..range.end * t],
                    targets: &y[range.start * t..range.end * t],
                    seq_len: t,
                    ignore: None,
                };
                let mut masks = rng(seed.0 ^ seed.1.wrapping_mul(0x9e37_79b9) ^ ((seed.2 << 32) | w as u64));
                let chunk = range.len() as f64;
                Ok::<_, GptError>(model.forward_backward(&batch, Some(&mut masks), chunk * scale)? * chunk * scale)
            })?;
            loss += losses.into_iter().sum::<f64>();
        }
        let compute_seconds = start.elapsed().as_secs_f64();
        if !loss.is_finite() {
            return Err(GptError::NonFiniteLoss { step: self.step + 1, loss });
        }
        let grad_norm = step.update(&mut self.optimizer, self.config.grad_clip)?;
        self.step += 1;
        let tokens = b * t * self.config.grad_accum;
        Ok(StepReport {
            step: self.step,
            loss,
            lr,
            grad_norm,
            seconds: start.elapsed().as_secs_f64(),
            compute_seconds,
            tokens,
        })
    }
    // ANCHOR_END: step

    /// Mean loss over `eval_iters` random batches of each split, measured with
    /// a generator of its own (so measuring does not change training).
    ///
    /// # Errors
    /// As [`Gpt::loss`].
    pub fn evaluate(&mut self) -> Result<EvalReport> {
        let (b, t) = (self.config.batch_size, self.config.block_size);
        let shares = self.workers.shares(b);
        let mut mean = [0.0; 2];
        for (k, data) in [&self.train, &self.val].into_iter().enumerate() {
            for _ in 0..self.config.eval_iters {
                let (x, y) = Self::sample(data, b, t, &mut self.eval_rng);
                let losses = self.workers.map(&shares, |_, model, range| {
                    let batch = Batch {
                        inputs: &x[range.start * t..range.end * t],
                        targets: &y[range.start * t..range.end * t],
                        seq_len: t,
                        ignore: None,
                    };
                    Ok::<_, GptError>(model.loss(&batch)? * range.len() as f64 / b as f64)
                })?;
                mean[k] += losses.into_iter().sum::<f64>() / self.config.eval_iters as f64;
            }
        }
        let report = EvalReport { step: self.step, train_loss: mean[0], val_loss: mean[1] };
        self.evals.push(report);
        Ok(report)
    }

    /// Trains until `max_iters`, measuring every `eval_interval` steps (and at
    /// the start and the end) and saving checkpoints as planned. When the
    /// observer asks to stop, the step in progress finishes, a checkpoint is
    /// saved (with a plan) and the run ends with [`GptError::Stopped`].
    ///
    /// # Errors
    /// Any error of a step, a measurement or a checkpoint; the checkpoints
    /// already written stay as they are. [`GptError::Stopped`] when stopped.
    pub fn run(&mut self, observer: &mut dyn Observer, checkpoints: Option<&CheckpointPlan>) -> Result<()> {
        while self.step < self.config.max_iters {
            if self.step.is_multiple_of(self.config.eval_interval)
                && self.evals.last().is_none_or(|e| e.step != self.step)
            {
                let report = self.evaluate()?;
                observer.eval(&report);
            }
            let report = self.train_step()?;
            observer.step(&report);
            let interval = self.config.checkpoint_interval;
            if let Some(plan) = checkpoints
                && interval > 0
                && self.step.is_multiple_of(interval)
                && self.step < self.config.max_iters
            {
                let dir = self.save(plan)?;
                observer.checkpoint(&dir);
            }
            if self.step < self.config.max_iters && observer.stop_requested() {
                let checkpoint = match checkpoints {
                    Some(plan) if self.last_saved != Some(self.step) => {
                        let dir = self.save(plan)?;
                        observer.checkpoint(&dir);
                        Some(dir)
                    }
                    Some(plan) => Some(plan.dir.join(checkpoint_name(self.step))),
                    None => None,
                };
                return Err(GptError::Stopped { step: self.step, checkpoint });
            }
        }
        if self.evals.last().is_none_or(|e| e.step != self.step) {
            let report = self.evaluate()?;
            observer.eval(&report);
        }
        if let Some(plan) = checkpoints
            && self.last_saved != Some(self.step)
        {
            let dir = self.save(plan)?;
            observer.checkpoint(&dir);
        }
        Ok(())
    }

    /// Saves a checkpoint `step-NNNNNN` into the run folder and prunes old
    /// ones.
    ///
    /// # Errors
    /// [`GptError::Io`] or [`GptError::Checkpoint`].
    pub fn save(&mut self, plan: &CheckpointPlan) -> Result<PathBuf> {
        let name = checkpoint_name(self.step);
        let model = self.workers.model();
        let mut files: Vec<(&str, Vec<u8>)> = vec![
            ("config.json", model.config().to_hf_json().into_bytes()),
            ("model.safetensors", model_safetensors(model, &plan.dir)?),
            ("optimizer.safetensors", self.optimizer_safetensors(&plan.dir)?),
            ("trainer.json", self.state_json().into_bytes()),
        ];
        files.extend(plan.extra_files.iter().map(|(n, b)| (n.as_str(), b.clone())));
        let made = match &plan.model_files {
            Some(make) => make(model)?,
            None => Vec::new(),
        };
        files.extend(made.iter().map(|(n, b)| (n.as_str(), b.clone())));
        let dir = save_checkpoint(&plan.dir, &name, &files)?;
        prune(&plan.dir, "step-", self.config.keep_checkpoints.max(1))?;
        self.last_saved = Some(self.step);
        Ok(dir)
    }

    fn state_json(&self) -> String {
        let state = TrainerState {
            format: "addmul-trainer/1".into(),
            step: self.step,
            vocab_size: self.workers.model().config().vocab_size,
            threads: self.workers.threads(),
            config: self.config.clone(),
            batch_rng: SavedRng::of(&self.batch_rng),
            eval_rng: SavedRng::of(&self.eval_rng),
            corpus_tokens: self.corpus.0,
            corpus_fingerprint: self.corpus.1.clone(),
            evals: self.evals.clone(),
        };
        serde_json::to_string_pretty(&state).expect("the trainer state serialises")
    }

    fn optimizer_safetensors(&self, path: &Path) -> Result<Vec<u8>> {
        let mut shapes = HashMap::new();
        self.workers.model().visit(&mut |name, p| {
            shapes.insert(name.to_string(), p.row_major_shape());
        });
        let mut tensors = Vec::new();
        for (name, m) in self.optimizer.moments() {
            let shape = shapes.get(name).cloned().unwrap_or_else(|| vec![m.m.len()]);
            tensors.push((format!("m.{name}"), shape.clone(), m.m.clone()));
            tensors.push((format!("v.{name}"), shape, m.v.clone()));
        }
        let metadata = HashMap::from([("steps_taken".to_string(), self.optimizer.steps_taken().to_string())]);
        serialize(&tensors, metadata, path)
    }

    /// Continues a run from a checkpoint (a `step-N` folder, or a run folder,
    /// whose newest complete checkpoint is used: see
    /// [`recover_latest`](crate::checkpoint::recover_latest)) on the same
    /// token stream.
    ///
    /// # Errors
    /// [`GptError::Checkpoint`] if a file is missing, corrupt or does not
    /// match, or `tokens` is not the corpus the run was trained on.
    pub fn resume(path: &Path, tokens: &[TokenId]) -> Result<Self> {
        Self::resume_with(path, tokens, |_, _| Ok(()))
    }

    /// [`GptTrainer::resume`] for a run whose model is more than GPT-2's
    /// weights: `prepare(model, checkpoint_dir)` runs on the checkpoint's
    /// model before training state is restored, to freeze what the run froze
    /// and attach what it attached (low-rank adapters, with their saved
    /// values), so that the optimizer's moments find their parameters.
    ///
    /// # Errors
    /// As [`GptTrainer::resume`], and what `prepare` returns.
    pub fn resume_with(
        path: &Path,
        tokens: &[TokenId],
        prepare: impl FnOnce(&mut Gpt<f32>, &Path) -> Result<()>,
    ) -> Result<Self> {
        crate::checkpoint::recover_latest(path, "step-")?;
        let dir = resolve(path)?;
        let state_path = dir.join("trainer.json");
        let text = std::fs::read_to_string(&state_path).map_err(GptError::io("reading", &state_path))?;
        let state: TrainerState =
            serde_json::from_str(&text).map_err(|e| GptError::checkpoint(&state_path, format!("malformed: {e}")))?;
        if (state.corpus_tokens, &state.corpus_fingerprint) != (tokens.len(), &fingerprint(tokens)) {
            return Err(GptError::CorpusMismatch {
                path: state_path,
                trained: state.corpus_tokens,
                given: tokens.len(),
            });
        }
        let config = GptTrainConfig { threads: state.threads, ..state.config.clone() };
        // The checkpoint's model as it is (a fine-tuned GPT-2 keeps its
        // Hugging Face settings), which must be the architecture
        // trainer.json describes.
        let mut model = crate::checkpoint::load_model::<f32>(&dir)?;
        prepare(&mut model, &dir)?;
        let m = *model.config();
        let architecture = |c: &GptTrainConfig| (c.n_layer, c.n_head, c.n_embd, c.bias, c.dropout);
        if architecture(&config) != (m.n_layer, m.n_head, m.n_embd, m.bias, m.dropout)
            || m.vocab_size != state.vocab_size
            || config.block_size > m.block_size
        {
            return Err(GptError::checkpoint(dir.join("config.json"), "does not match trainer.json's configuration"));
        }
        let mut trainer = GptTrainer::from_model(model, config, tokens)?;
        // The run's threads, as chosen (0: one per core), not as resolved:
        // the next checkpoint records the same configuration.
        trainer.config.threads = state.config.threads;
        let opt_path = dir.join("optimizer.safetensors");
        let bytes = std::fs::read(&opt_path).map_err(GptError::io("reading", &opt_path))?;
        let mut tensors: Tensors<f32> = read_tensors(&bytes, &opt_path)?;
        let mut moments = BTreeMap::new();
        let mut missing = None;
        trainer.workers.model().visit(&mut |name, p| {
            if p.is_frozen() {
                return; // no moments: the optimizer leaves it alone
            }
            let shape = p.value().shape();
            let take = |t: &mut Tensors<f32>, key: String| {
                t.remove(&key)
                    .map(|(_, m)| m)
                    .filter(|m| m.len() == shape.0 * shape.1)
                    .map(|m| m.reshape_generic(nalgebra::Dyn(shape.0), nalgebra::Dyn(shape.1)))
            };
            match (take(&mut tensors, format!("m.{name}")), take(&mut tensors, format!("v.{name}"))) {
                (Some(m), Some(v)) => {
                    moments.insert(name.to_string(), Moments { m, v });
                }
                _ if state.step == 0 => {}
                _ => missing = Some(name.to_string()),
            }
        });
        if let Some(name) = missing {
            return Err(GptError::checkpoint(&opt_path, format!("moments of {name} are missing or misshapen")));
        }
        trainer.optimizer.restore(state.step, moments);
        trainer.step = state.step;
        trainer.batch_rng = state.batch_rng.restore(&state_path)?;
        trainer.eval_rng = state.eval_rng.restore(&state_path)?;
        trainer.evals = state.evals;
        trainer.last_saved = Some(state.step);
        Ok(trainer)
    }
}
