//! The copy task: a Transformer learns to copy random sequences of the
//! symbols 1 to 10, then copies sequences it never saw.

use std::collections::HashSet;
use std::io::Write;

use addmul_core::{ParametersExt, Rng, rng};
use addmul_transformer::tasks::copy;
use addmul_transformer::{Pair, Side, TokenId, Transformer, TransformerTrainConfig, TransformerTrainer, Vocab};

use super::{ModelSize, io, progress_due, threads};
use crate::{Error, Result};

/// Options of the copy task.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyOptions {
    /// The model.
    pub size: ModelSize,
    /// Optimizer steps.
    pub steps: u64,
    /// Pairs per step, drawn afresh every step.
    pub batch_size: usize,
    /// Shortest sequence.
    pub min_len: usize,
    /// Longest sequence.
    pub max_len: usize,
    /// Warmup steps of the learning-rate schedule.
    pub warmup: u64,
    /// Factor of the learning-rate schedule.
    pub lr_factor: f64,
    /// Sequences never drawn for training to copy at the end.
    pub held_out: usize,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Seed of weights and data.
    pub seed: u64,
    /// Print every `progress_every`-th step (0: never).
    pub progress_every: u64,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            size: ModelSize { d_model: 32, n_head: 4, d_ff: 128, layers: 2 },
            steps: 3000,
            batch_size: 32,
            min_len: 1,
            max_len: 10,
            warmup: 200,
            lr_factor: 0.5,
            held_out: 500,
            threads: 0,
            seed: 1,
            progress_every: 100,
        }
    }
}

/// What the copy run did.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyRun {
    /// Parameters of the model.
    pub params: usize,
    /// Seconds spent in training steps.
    pub train_seconds: f64,
    /// `(step, cross-entropy)` after every step.
    pub curve: Vec<(u64, f64)>,
    /// Held-out sequences tried.
    pub held_out: usize,
    /// Held-out sequences copied exactly by greedy decoding.
    pub correct: usize,
    /// One held-out sequence and the model's copy of it.
    pub example: (Vec<TokenId>, Vec<TokenId>),
    /// The trained model.
    pub model: Transformer<f32>,
}

/// Trains a Transformer to copy random sequences of the symbols 1 to 10,
/// then greedily decodes sequences it never saw.
///
/// # Errors
/// A model or training error, or a failed write to `out`;
/// [`Error::Invalid`] for no held-out sequences.
pub fn copy_task(options: &CopyOptions, out: &mut dyn Write) -> Result<CopyRun> {
    if options.held_out == 0 {
        return Err(Error::Invalid { what: "held_out".into(), problem: "must be at least 1".into() });
    }
    let (src, tgt) = (copy::vocabulary(Side::Source)?, copy::vocabulary(Side::Target)?);
    let config = options.size.config(&src, &tgt, options.max_len + 1)?;
    let model = Transformer::new(config, &mut rng(options.seed))?;
    let params = model.num_params();
    let threads = threads(options.threads);
    writeln!(
        out,
        "Copy task: sequences of {}..={} symbols from 1..=10; a {}-layer encoder and decoder, d_model {}, {params} parameters, {threads} threads",
        options.min_len, options.max_len, options.size.layers, options.size.d_model
    )
    .map_err(io)?;
    let mut data = rng(options.seed ^ 0x5eed);
    let training = train(options, model, threads, &mut data, out)?;
    let held_out = held_out_sequences(options, &training.seen, &mut data);
    let model = training.model;
    let correct = count_copied(&model, &held_out)?;
    let example = (held_out[0].clone(), model.greedy(&held_out[0])?.tokens);
    print_copies(correct, held_out.len(), (&example.0, &example.1), &tgt, out)?;
    let (train_seconds, curve) = (training.seconds, training.curve);
    Ok(CopyRun { params, train_seconds, curve, held_out: held_out.len(), correct, example, model })
}

/// The trained model and what its training measured.
struct Training {
    model: Transformer<f32>,
    /// Every sequence drawn for training.
    seen: HashSet<Vec<TokenId>>,
    /// `(step, cross-entropy)` after every step.
    curve: Vec<(u64, f64)>,
    /// Seconds spent in training steps.
    seconds: f64,
}

/// Trains `model` on batches of random sequences drawn from `data`, printing
/// progress to `out`.
fn train(
    options: &CopyOptions,
    model: Transformer<f32>,
    threads: usize,
    data: &mut Rng,
    out: &mut dyn Write,
) -> Result<Training> {
    let config = TransformerTrainConfig {
        warmup: options.warmup,
        lr_factor: options.lr_factor,
        threads,
        ..TransformerTrainConfig::paper()
    };
    let mut trainer = TransformerTrainer::new(model, config)?;
    let mut seen: HashSet<Vec<TokenId>> = HashSet::new();
    let (mut curve, mut seconds) = (Vec::new(), 0.0);
    for step in 1..=options.steps {
        let mut pairs = Vec::with_capacity(options.batch_size);
        for _ in 0..options.batch_size {
            let s = copy::random_sequence(options.min_len, options.max_len, data);
            seen.insert(s.clone());
            pairs.push(Pair { target: s.clone(), source: s });
        }
        let report = trainer.train_step(&pairs)?;
        seconds += report.seconds;
        curve.push((step, report.loss.nll));
        if progress_due(options.progress_every, step, options.steps) {
            writeln!(
                out,
                "step {step:>5}  loss {:.3}  cross-entropy {:.4}  lr {:.2e}  {seconds:.1}s",
                report.loss.loss, report.loss.nll, report.lr
            )
            .map_err(io)?;
        }
    }
    Ok(Training { model: trainer.into_model(), seen, curve, seconds })
}

/// `options.held_out` distinct random sequences that training never drew
/// (so, in practice, none of length 1 or 2: training drew all of those).
fn held_out_sequences(options: &CopyOptions, seen: &HashSet<Vec<TokenId>>, data: &mut Rng) -> Vec<Vec<TokenId>> {
    let mut held_out = Vec::with_capacity(options.held_out);
    while held_out.len() < options.held_out {
        let s = copy::random_sequence(options.min_len, options.max_len, data);
        if !seen.contains(&s) && !held_out.contains(&s) {
            held_out.push(s);
        }
    }
    held_out
}

/// How many of the held-out sequences `model` copies exactly by greedy
/// decoding.
fn count_copied(model: &Transformer<f32>, held_out: &[Vec<TokenId>]) -> Result<usize> {
    let mut correct = 0;
    for s in held_out {
        correct += usize::from(&model.greedy(s)?.tokens == s);
    }
    Ok(correct)
}

/// Prints how many of `held_out` sequences were copied, and one example.
fn print_copies(
    correct: usize,
    held_out: usize,
    (source, copy): (&[TokenId], &[TokenId]),
    tgt: &Vocab,
    out: &mut dyn Write,
) -> Result<()> {
    let show = |ids: &[TokenId]| tgt.tokens(ids).join(" ");
    writeln!(
        out,
        "held-out sequences copied exactly (greedy): {correct}/{held_out} ({:.1}%)\n  e.g. {}  ->  {}",
        100.0 * correct as f64 / held_out as f64,
        show(source),
        show(copy)
    )
    .map_err(io)
}

/// The copy task's options on the command line (`addmul transformer copy`
/// and `examples/transformer_copy.rs`).
#[derive(Debug, Clone, clap::Args)]
pub struct CopyArgs {
    /// Optimizer steps.
    #[arg(long, default_value_t = CopyOptions::default().steps)]
    pub steps: u64,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Warmup steps of the learning-rate schedule.
    #[arg(long, default_value_t = CopyOptions::default().warmup)]
    pub warmup: u64,
    /// Factor of the learning-rate schedule (peak rate: factor / sqrt(d_model · warmup)).
    #[arg(long, default_value_t = CopyOptions::default().lr_factor)]
    pub lr_factor: f64,
    /// Seed of weights and data.
    #[arg(long, default_value_t = CopyOptions::default().seed)]
    pub seed: u64,
}

impl CopyArgs {
    /// The options these arguments choose.
    pub fn options(&self) -> CopyOptions {
        let CopyArgs { steps, threads, warmup, lr_factor, seed } = *self;
        CopyOptions { steps, threads, warmup, lr_factor, seed, ..CopyOptions::default() }
    }
}
