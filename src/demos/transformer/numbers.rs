//! The number task: a Transformer learns to translate numbers from English
//! to German words and is measured, greedy and with beam search, on numbers
//! it never saw.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use addmul_core::{ParametersExt, Rng, rng};
use addmul_transformer::tasks::numbers::{self, Split};
use addmul_transformer::{
    BeamConfig, Pair, TokenId, Transformer, TransformerConfig, TransformerTrainConfig, TransformerTrainer, Vocab,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::gpt_contrast::{GptRun, gpt_comparison, gpt_setup};
use super::{AttentionMap, ModelSize, attention_map, count_parallel, io, progress_due, threads, write_numbers_record};
use crate::{Error, Result};

/// Options of the number-translation task.
#[derive(Debug, Clone, PartialEq)]
pub struct NumbersOptions {
    /// The Transformer.
    pub size: ModelSize,
    /// Optimizer steps.
    pub steps: u64,
    /// Pairs per step.
    pub batch_size: usize,
    /// Warmup steps of the learning-rate schedule.
    pub warmup: u64,
    /// Factor of the learning-rate schedule.
    pub lr_factor: f64,
    /// Label smoothing.
    pub label_smoothing: f64,
    /// Numbers held out for testing.
    pub test_size: usize,
    /// Beam search settings.
    pub beam: BeamConfig,
    /// Worker threads for training and evaluation (0: one per core).
    pub threads: usize,
    /// Seed of the split, the weights and the training numbers.
    pub seed: u64,
    /// Also train a decoder-only GPT on `English <sep> German` with the same
    /// data, steps and schedule.
    pub gpt: bool,
    /// Print every `progress_every`-th step, with the greedy accuracy on the
    /// first 200 test numbers (0: never).
    pub progress_every: u64,
    /// Where to write the cross-attention figure (none if `None`).
    pub figures: Option<PathBuf>,
}

impl Default for NumbersOptions {
    fn default() -> Self {
        NumbersOptions {
            size: ModelSize { d_model: 64, n_head: 4, d_ff: 256, layers: 2 },
            steps: 2000,
            batch_size: 64,
            warmup: 400,
            lr_factor: 0.5,
            label_smoothing: 0.1,
            test_size: 2000,
            beam: BeamConfig::PAPER,
            threads: 0,
            seed: 1,
            gpt: true,
            progress_every: 250,
            figures: None,
        }
    }
}

/// The longest English and German token sequences (777,777), plus one.
pub(super) const NUMBERS_MAX_LEN: usize = 12;

/// Everything the number run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NumbersReport {
    /// The model's size.
    pub size: ModelSize,
    /// Parameters.
    pub params: usize,
    /// Optimizer steps.
    pub steps: u64,
    /// Pairs per step.
    pub batch_size: usize,
    /// Warmup of the schedule.
    pub warmup: u64,
    /// Factor of the schedule.
    pub lr_factor: f64,
    /// Label smoothing.
    pub label_smoothing: f64,
    /// Threads used.
    pub threads: usize,
    /// Seconds spent in training steps.
    pub train_seconds: f64,
    /// Floating-point operations of all training steps (padding included).
    pub train_flops: f64,
    /// Distinct training numbers drawn.
    pub distinct_train_numbers: usize,
    /// `(step, cross-entropy)` at every progress point.
    pub curve: Vec<(u64, f64)>,
    /// Test numbers (never drawn for training).
    pub test_size: usize,
    /// Translated exactly by greedy decoding.
    pub greedy_correct: usize,
    /// Seconds of greedy decoding of the test set.
    pub greedy_seconds: f64,
    /// Beam width.
    pub beam_width: usize,
    /// Length penalty `α`.
    pub length_penalty: f64,
    /// Translated exactly by beam search.
    pub beam_correct: usize,
    /// Seconds of beam search over the test set.
    pub beam_seconds: f64,
    /// Up to 10 test numbers greedy decoding got wrong, with its output.
    pub greedy_errors: Vec<(u32, String)>,
    /// The cross-attention of one test number.
    pub attention: AttentionMap,
    /// The decoder-only comparison, if run.
    pub gpt: Option<GptRun>,
    /// The SHA-256 of the data the models were trained and tested on
    /// ([`numbers_data_sha256`] computes it without training).
    pub data_sha256: String,
}

/// The number run's report and trained model.
#[derive(Debug, Clone)]
pub struct NumbersRun {
    /// What was measured.
    pub report: NumbersReport,
    /// The trained model.
    pub model: Transformer<f32>,
}

/// Trains a Transformer to translate numbers from English to German words,
/// measures greedy and beam-search accuracy on numbers it never saw, draws
/// the cross-attention of one of them, and (with `options.gpt`) trains a
/// decoder-only GPT on the same data for comparison.
///
/// # Errors
/// A model, training or plotting error, or a failed write to `out`.
pub fn numbers_task(options: &NumbersOptions, out: &mut dyn Write) -> Result<NumbersRun> {
    if options.test_size == 0 {
        let problem = "must be at least 1: the accuracy is measured on the test numbers".to_string();
        return Err(Error::Invalid { what: "test_size 0".into(), problem });
    }
    let languages = Languages::new()?;
    let config = model_config(options, &languages)?;
    let model = Transformer::new(config, &mut rng(options.seed))?;
    let params = model.num_params();
    let threads = threads(options.threads);
    let split = test_split(options)?;
    print_setup(options, params, threads, split.test(), out)?;
    let training = train(options, model, &languages, &split, threads, out)?;
    let model = &training.model;
    let test = split.test();
    let eval = evaluate(model, &languages, test, &options.beam, threads)?;
    print_results(options, &training, &eval, test.len(), out)?;
    let greedy_errors = print_errors(model, &languages, &eval.greedy_wrong, out)?;
    let attention = draw_attention(options, model, &split, out)?;
    let gpt = if options.gpt { Some(gpt_comparison(options, &split, threads, out)?) } else { None };
    let report = NumbersReport {
        size: options.size,
        params,
        steps: options.steps,
        batch_size: options.batch_size,
        warmup: options.warmup,
        lr_factor: options.lr_factor,
        label_smoothing: options.label_smoothing,
        threads,
        train_seconds: training.seconds,
        train_flops: training.flops,
        distinct_train_numbers: training.distinct,
        curve: training.curve,
        test_size: test.len(),
        greedy_correct: eval.greedy_correct,
        greedy_seconds: eval.greedy_seconds,
        beam_width: options.beam.width,
        length_penalty: options.beam.length_penalty,
        beam_correct: eval.beam_correct,
        beam_seconds: eval.beam_seconds,
        greedy_errors,
        attention,
        gpt,
        data_sha256: training.data_sha256,
    };
    Ok(NumbersRun { report, model: training.model })
}

/// The Transformer the options describe.
fn model_config(options: &NumbersOptions, languages: &Languages) -> Result<TransformerConfig> {
    options.size.config(&languages.en, &languages.de, NUMBERS_MAX_LEN)
}

/// The held-out test numbers (and so the training numbers) of a run.
fn test_split(options: &NumbersOptions) -> Result<Split> {
    Ok(Split::new(options.test_size, &mut rng(options.seed ^ 0x7e57))?)
}

/// How the Transformer is trained with `threads` workers.
fn train_config(options: &NumbersOptions, threads: usize) -> TransformerTrainConfig {
    TransformerTrainConfig {
        warmup: options.warmup,
        lr_factor: options.lr_factor,
        label_smoothing: options.label_smoothing,
        threads,
        seed: options.seed,
        ..TransformerTrainConfig::paper()
    }
}

/// The training numbers of a run, batch by batch: the same for the
/// Transformer and the GPT contrast (one generator, seeded by the run's seed).
pub(super) struct TrainingNumbers<'a> {
    split: &'a Split,
    rng: Rng,
    batch_size: usize,
}

impl<'a> TrainingNumbers<'a> {
    /// The numbers of the run `options` describes, drawn outside `split`'s test set.
    pub(super) fn new(options: &NumbersOptions, split: &'a Split) -> Self {
        TrainingNumbers { split, rng: rng(options.seed ^ 0xda7a), batch_size: options.batch_size }
    }

    /// The next step's numbers.
    pub(super) fn next_batch(&mut self) -> Vec<u32> {
        (0..self.batch_size).map(|_| self.split.sample_train(&mut self.rng)).collect()
    }
}

/// The SHA-256 of a run's data: the test numbers (each a little-endian
/// `u32`), then every training pair in the order trained (the source's
/// length and ids, the target's length and ids, all little-endian `u32`).
struct DataHash(Sha256);

impl DataHash {
    /// Starts with the test numbers.
    fn new(test: &[u32]) -> Self {
        let mut hash = Sha256::new();
        for n in test {
            hash.update(n.to_le_bytes());
        }
        DataHash(hash)
    }

    /// Adds a training pair.
    fn pair(&mut self, pair: &Pair) {
        for ids in [&pair.source, &pair.target] {
            self.0.update((ids.len() as u32).to_le_bytes());
            for id in ids.iter() {
                self.0.update(id.to_le_bytes());
            }
        }
    }

    /// The digest in lower-case hex.
    fn finish(self) -> String {
        self.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The SHA-256 of the data the run `options` describes trains and tests
/// on (as [`NumbersReport::data_sha256`]), computed without training: the
/// book checks a recorded run against it.
///
/// # Errors
/// A vocabulary or split error (a `test_size` above half the numbers).
pub fn numbers_data_sha256(options: &NumbersOptions) -> Result<String> {
    let languages = Languages::new()?;
    let split = test_split(options)?;
    let mut hash = DataHash::new(split.test());
    let mut draws = TrainingNumbers::new(options, &split);
    for _ in 0..options.steps {
        for n in draws.next_batch() {
            hash.pair(&numbers::pair(n, &languages.en, &languages.de)?);
        }
    }
    Ok(hash.finish())
}

/// Everything that decides a run's result, as the run records it: the
/// options (all but the threads, the progress lines and the figures), the
/// Transformer's configuration and training settings, and the GPT
/// contrast's, the last three in Rust's `Debug` form so that a field added
/// later is recorded too. The threads are in the report.
///
/// # Errors
/// A vocabulary or configuration error.
pub fn numbers_config(options: &NumbersOptions) -> Result<serde_json::Value> {
    let languages = Languages::new()?;
    let gpt = if options.gpt {
        let (model, adam) = gpt_setup(options)?;
        serde_json::json!({ "model": format!("{model:?}"), "optimizer": format!("{adam:?}") })
    } else {
        serde_json::Value::Null
    };
    Ok(serde_json::json!({
        "options": {
            "size": options.size,
            "steps": options.steps,
            "batch_size": options.batch_size,
            "warmup": options.warmup,
            "lr_factor": options.lr_factor,
            "label_smoothing": options.label_smoothing,
            "test_size": options.test_size,
            "beam_width": options.beam.width,
            "length_penalty": options.beam.length_penalty,
            "seed": options.seed,
            "gpt": options.gpt,
        },
        "transformer": format!("{:?}", model_config(options, &languages)?),
        "training": format!("{:?}", train_config(options, 0)),
        "gpt": gpt,
    }))
}

/// The English and German vocabularies, and translating with them.
struct Languages {
    en: Vocab,
    de: Vocab,
}

impl Languages {
    fn new() -> Result<Self> {
        Ok(Languages { en: numbers::english_vocabulary()?, de: numbers::german_vocabulary()? })
    }

    /// Whether `model` translates `n` exactly (by beam search with `beam`,
    /// greedily without), and the German it wrote.
    fn translate(&self, model: &Transformer<f32>, n: u32, beam: Option<&BeamConfig>) -> Result<(bool, Vec<TokenId>)> {
        let p = numbers::pair(n, &self.en, &self.de)?;
        let h = match beam {
            None => model.greedy(&p.source)?,
            Some(b) => model.beam_search(&p.source, b)?,
        };
        Ok((h.tokens == p.target, h.tokens))
    }

    /// How many of `items` `model` translates exactly, and the others.
    fn count_correct(
        &self,
        model: &Transformer<f32>,
        items: &[u32],
        beam: Option<&BeamConfig>,
        threads: usize,
    ) -> Result<(usize, Vec<u32>)> {
        count_parallel(items, threads, |n| Ok(self.translate(model, n, beam)?.0))
    }
}

/// Prints the model and the task.
fn print_setup(
    options: &NumbersOptions,
    params: usize,
    threads: usize,
    test: &[u32],
    out: &mut dyn Write,
) -> Result<()> {
    let size = options.size;
    writeln!(
        out,
        "English -> German number words: {} + {} layers, d_model {}, {} heads, d_ff {}, {params} parameters, {threads} threads",
        size.layers, size.layers, size.d_model, size.n_head, size.d_ff
    )
    .map_err(io)?;
    writeln!(
        out,
        "{} steps of {} pairs; {} test numbers never drawn for training; e.g. {} -> {}",
        options.steps,
        options.batch_size,
        test.len(),
        numbers::english(test[0])?,
        numbers::german(test[0])?
    )
    .map_err(io)
}

/// The trained model and what its training measured.
struct Training {
    model: Transformer<f32>,
    /// Seconds spent in training steps.
    seconds: f64,
    /// Floating-point operations of all training steps.
    flops: f64,
    /// `(step, cross-entropy)` at every progress point.
    curve: Vec<(u64, f64)>,
    /// Distinct training numbers drawn.
    distinct: usize,
    /// The SHA-256 of the test numbers and the training pairs.
    data_sha256: String,
}

/// Trains `model` on batches of training numbers, printing progress with
/// the greedy accuracy on the first 200 test numbers.
fn train(
    options: &NumbersOptions,
    model: Transformer<f32>,
    languages: &Languages,
    split: &Split,
    threads: usize,
    out: &mut dyn Write,
) -> Result<Training> {
    let mut trainer = TransformerTrainer::new(model, train_config(options, threads))?;
    let test = split.test();
    let probe = &test[..test.len().min(200)];
    let mut draws = TrainingNumbers::new(options, split);
    let mut hash = DataHash::new(test);
    let mut seen = HashSet::new();
    let (mut seconds, mut flops, mut curve) = (0.0, 0.0, Vec::new());
    for step in 1..=options.steps {
        let batch = draws.next_batch();
        seen.extend(batch.iter().copied());
        let pairs = batch
            .iter()
            .map(|&n| numbers::pair(n, &languages.en, &languages.de))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        pairs.iter().for_each(|p| hash.pair(p));
        let model = trainer.model();
        flops += model.config().training_flops(&model.batch(&pairs)?);
        let report = trainer.train_step(&pairs)?;
        seconds += report.seconds;
        if progress_due(options.progress_every, step, options.steps) {
            let (ok, _) = languages.count_correct(trainer.model(), probe, None, threads)?;
            curve.push((step, report.loss.nll));
            writeln!(
                out,
                "step {step:>5}  loss {:.3}  cross-entropy {:.4}  lr {:.2e}  test greedy {:>5.1}% of {}  {seconds:.1}s",
                report.loss.loss,
                report.loss.nll,
                report.lr,
                100.0 * ok as f64 / probe.len() as f64,
                probe.len()
            )
            .map_err(io)?;
        }
    }
    let data_sha256 = hash.finish();
    Ok(Training { model: trainer.into_model(), seconds, flops, curve, distinct: seen.len(), data_sha256 })
}

/// The test set's exact matches, greedy and by beam search.
struct Evaluation {
    greedy_correct: usize,
    /// The test numbers greedy decoding got wrong, in order.
    greedy_wrong: Vec<u32>,
    greedy_seconds: f64,
    beam_correct: usize,
    beam_seconds: f64,
}

/// Translates every test number greedily, then by beam search with `beam`.
fn evaluate(
    model: &Transformer<f32>,
    languages: &Languages,
    test: &[u32],
    beam: &BeamConfig,
    threads: usize,
) -> Result<Evaluation> {
    let start = Instant::now();
    let (greedy_correct, greedy_wrong) = languages.count_correct(model, test, None, threads)?;
    let greedy_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let (beam_correct, _) = languages.count_correct(model, test, Some(beam), threads)?;
    let beam_seconds = start.elapsed().as_secs_f64();
    Ok(Evaluation { greedy_correct, greedy_wrong, greedy_seconds, beam_correct, beam_seconds })
}

/// Prints the training cost and the test accuracies.
fn print_results(
    options: &NumbersOptions,
    training: &Training,
    eval: &Evaluation,
    tests: usize,
    out: &mut dyn Write,
) -> Result<()> {
    let pct = |k: usize| 100.0 * k as f64 / tests as f64;
    let Evaluation { greedy_correct, greedy_seconds, beam_correct, beam_seconds, .. } = *eval;
    writeln!(
        out,
        "trained in {:.1}s ({:.2} GFLOP); {} distinct training numbers\n\
         test exact match: greedy {greedy_correct}/{tests} ({:.2}%) in {greedy_seconds:.1}s; \
         beam (width {}, alpha {}) {beam_correct}/{tests} ({:.2}%) in {beam_seconds:.1}s",
        training.seconds,
        training.flops / 1e9,
        training.distinct,
        pct(greedy_correct),
        options.beam.width,
        options.beam.length_penalty,
        pct(beam_correct)
    )
    .map_err(io)
}

/// Prints up to 10 of the numbers greedy decoding got wrong, with what it
/// wrote, and returns them.
fn print_errors(
    model: &Transformer<f32>,
    languages: &Languages,
    wrong: &[u32],
    out: &mut dyn Write,
) -> Result<Vec<(u32, String)>> {
    let mut errors = Vec::new();
    for &n in wrong.iter().take(10) {
        let got = numbers::german_text(&languages.de.tokens(&languages.translate(model, n, None)?.1));
        writeln!(out, "  wrong: {n} {} -> {got} (want {})", numbers::english(n)?, numbers::german(n)?).map_err(io)?;
        errors.push((n, got));
    }
    Ok(errors)
}

/// The test number shown in the figure: the first with a tens-and-units
/// pair in both halves ("X-Y thousand ... Z-W"), so that the reordering
/// happens twice.
fn figure_number(split: &Split) -> u32 {
    let twice = |n: &u32| {
        let (hi, lo) = (n / 1000 % 100, n % 100);
        hi > 20 && hi % 10 != 0 && lo > 20 && lo % 10 != 0
    };
    split.test().iter().copied().find(twice).unwrap_or(split.test()[0])
}

/// The last decoder layer's cross-attention translating the figure's
/// number: prints its alignment and, with `options.figures`, writes the
/// heatmap there.
fn draw_attention(
    options: &NumbersOptions,
    model: &Transformer<f32>,
    split: &Split,
    out: &mut dyn Write,
) -> Result<AttentionMap> {
    let number = figure_number(split);
    let attention = attention_map(model, number, options.size.layers - 1)?;
    let aligned: Vec<String> = attention.alignment().iter().map(|(t, s)| format!("{t}<-{s}")).collect();
    writeln!(out, "cross-attention, {number}: {}", aligned.join(" ")).map_err(io)?;
    if let Some(dir) = &options.figures {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Io { context: format!("creating {}", dir.display()), source: e })?;
        let path = dir.join("transformer_cross_attention.svg");
        attention.heatmap(format!("Cross-attention translating {number}")).save(&path)?;
        writeln!(out, "wrote {}", path.display()).map_err(io)?;
    }
    Ok(attention)
}

/// The number task's options on the command line (`addmul transformer
/// numbers` and `examples/transformer_numbers.rs`).
#[derive(Debug, Clone, clap::Args)]
pub struct NumbersArgs {
    /// Optimizer steps.
    #[arg(long, default_value_t = NumbersOptions::default().steps)]
    pub steps: u64,
    /// Pairs per step.
    #[arg(long, default_value_t = NumbersOptions::default().batch_size)]
    pub batch_size: usize,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Test numbers (never drawn for training).
    #[arg(long, default_value_t = NumbersOptions::default().test_size)]
    pub test_size: usize,
    /// Warmup steps of the learning-rate schedule.
    #[arg(long, default_value_t = NumbersOptions::default().warmup)]
    pub warmup: u64,
    /// Factor of the learning-rate schedule (peak rate: factor / sqrt(d_model · warmup)).
    #[arg(long, default_value_t = NumbersOptions::default().lr_factor)]
    pub lr_factor: f64,
    /// Seed of the split, the weights and the training numbers.
    #[arg(long, default_value_t = NumbersOptions::default().seed)]
    pub seed: u64,
    /// Skip the decoder-only GPT comparison.
    #[arg(long)]
    pub no_gpt: bool,
    /// Write the cross-attention figure (SVG) into this folder.
    #[arg(long, value_name = "DIR")]
    pub figures: Option<PathBuf>,
    /// Write the measurements as JSON to this file (with the command and
    /// today's date); the book reads `book/measured/transformer_numbers.json`.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

impl NumbersArgs {
    /// The options these arguments choose.
    pub fn options(&self) -> NumbersOptions {
        NumbersOptions {
            steps: self.steps,
            batch_size: self.batch_size,
            threads: self.threads,
            test_size: self.test_size,
            warmup: self.warmup,
            lr_factor: self.lr_factor,
            seed: self.seed,
            gpt: !self.no_gpt,
            figures: self.figures.clone(),
            ..NumbersOptions::default()
        }
    }

    /// Runs the task, printing progress to `out`, and writes the JSON record
    /// if asked, naming `command` as what produced it.
    ///
    /// # Errors
    /// As [`numbers_task`] and [`write_numbers_record`].
    pub fn run(&self, command: &str, out: &mut dyn Write) -> Result<NumbersRun> {
        let options = self.options();
        let run = numbers_task(&options, out)?;
        if let Some(path) = &self.json {
            write_numbers_record(&run.report, &numbers_config(&options)?, command, path)?;
            writeln!(out, "wrote {}", path.display()).map_err(io)?;
        }
        Ok(run)
    }
}
