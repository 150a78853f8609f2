//! Chapter 15: the encoder-decoder Transformer on the copy task and on
//! English-to-German number words, and the article's contrast, a
//! decoder-only GPT given "source <SEP> target" on the same data.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use addmul_core::{ParametersExt, rng};
use addmul_gpt::{Batch as GptBatch, Gpt, GptConfig};
use addmul_plot::Heatmap;
use addmul_train::{AdamW, AdamWConfig, DataParallel, Optimizer, Schedule};
use addmul_transformer::tasks::copy;
use addmul_transformer::tasks::numbers::{self, Split};
use addmul_transformer::{
    BeamConfig, Pair, Side, TokenId, Transformer, TransformerConfig, TransformerError, TransformerTrainConfig,
    TransformerTrainer, Vocab,
};
use serde::Serialize;

use crate::{Error, Result};

fn io(e: std::io::Error) -> Error {
    Error::Io { context: "writing progress".into(), source: e }
}

/// The size of a Transformer: the paper's base model is
/// `{ d_model: 512, n_head: 8, d_ff: 2048, layers: 6 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelSize {
    /// Width of every token's vector.
    pub d_model: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Hidden width of the feed-forward networks.
    pub d_ff: usize,
    /// Encoder layers, and as many decoder layers.
    pub layers: usize,
}

impl ModelSize {
    fn config(&self, src: &Vocab, tgt: &Vocab, max_len: usize) -> Result<TransformerConfig> {
        let config = TransformerConfig::for_vocabularies(src, tgt, self.d_model, self.n_head, self.layers)?;
        Ok(TransformerConfig { d_ff: self.d_ff, max_len, ..config })
    }
}

/// Counts the items `f` accepts, on `threads` threads; returns the count and
/// the rejected items, in order.
fn count_parallel<F>(items: &[u32], threads: usize, f: F) -> Result<(usize, Vec<u32>)>
where
    F: Fn(u32) -> std::result::Result<bool, Error> + Sync,
{
    let threads = threads.clamp(1, items.len().max(1));
    let chunk = items.len().div_ceil(threads).max(1);
    let f = &f;
    let parts: Vec<Result<Vec<u32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut wrong = Vec::new();
                    for &n in part {
                        if !f(n)? {
                            wrong.push(n);
                        }
                    }
                    Ok(wrong)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("an evaluation thread panicked")).collect()
    });
    let mut wrong = Vec::new();
    for part in parts {
        wrong.extend(part?);
    }
    Ok((items.len() - wrong.len(), wrong))
}

fn threads(requested: usize) -> usize {
    if requested == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { requested }
}

// ---------------------------------------------------------------- copy task

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
/// A model or training error, or a failed write to `out`.
pub fn copy_task(options: &CopyOptions, out: &mut dyn Write) -> Result<CopyRun> {
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
    let mut seen: HashSet<Vec<TokenId>> = HashSet::new();
    let train = TransformerTrainConfig {
        warmup: options.warmup,
        lr_factor: options.lr_factor,
        threads,
        ..TransformerTrainConfig::paper()
    };
    let mut trainer = TransformerTrainer::new(model, train)?;
    let (mut curve, mut seconds) = (Vec::new(), 0.0);
    for step in 1..=options.steps {
        let mut pairs = Vec::with_capacity(options.batch_size);
        for _ in 0..options.batch_size {
            let s = copy::random_sequence(options.min_len, options.max_len, &mut data);
            seen.insert(s.clone());
            pairs.push(Pair { target: s.clone(), source: s });
        }
        let report = trainer.train_step(&pairs)?;
        seconds += report.seconds;
        curve.push((step, report.loss.nll));
        if options.progress_every > 0 && (step % options.progress_every == 0 || step == options.steps) {
            writeln!(
                out,
                "step {step:>5}  loss {:.3}  cross-entropy {:.4}  lr {:.2e}  {seconds:.1}s",
                report.loss.loss, report.loss.nll, report.lr
            )
            .map_err(io)?;
        }
    }
    let model = trainer.into_model();
    // Held out: random sequences that training never drew (so, in practice,
    // none of length 1 or 2: training drew all of those).
    let mut held_out = Vec::with_capacity(options.held_out);
    while held_out.len() < options.held_out {
        let s = copy::random_sequence(options.min_len, options.max_len, &mut data);
        if !seen.contains(&s) && !held_out.contains(&s) {
            held_out.push(s);
        }
    }
    let mut correct = 0;
    for s in &held_out {
        correct += usize::from(&model.greedy(s)?.tokens == s);
    }
    let example = (held_out[0].clone(), model.greedy(&held_out[0])?.tokens);
    let show = |ids: &[TokenId]| tgt.tokens(ids).join(" ");
    writeln!(
        out,
        "held-out sequences copied exactly (greedy): {correct}/{} ({:.1}%)\n  e.g. {}  ->  {}",
        held_out.len(),
        100.0 * correct as f64 / held_out.len() as f64,
        show(&example.0),
        show(&example.1)
    )
    .map_err(io)?;
    Ok(CopyRun { params, train_seconds: seconds, curve, held_out: held_out.len(), correct, example, model })
}

// ------------------------------------------------------------- number words

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
    /// Also train a decoder-only GPT on "English <sep> German" with the same
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
const NUMBERS_MAX_LEN: usize = 12;

/// The cross-attention weights of one translation: `weights[t][s]` is how
/// much the decoder position that wrote `target[t]` took from `source[s]`,
/// averaged over one layer's heads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttentionMap {
    /// The number translated.
    pub number: u32,
    /// The decoder layer (0-based).
    pub layer: usize,
    /// English tokens.
    pub source: Vec<String>,
    /// German pieces written, then `</s>`.
    pub target: Vec<String>,
    /// `[target][source]`, each row summing to 1 (to four decimals).
    pub weights: Vec<Vec<f64>>,
}

impl AttentionMap {
    /// The figure: one row per German piece, one column per English token.
    pub fn heatmap(&self, title: impl Into<String>) -> Heatmap {
        Heatmap::new(title, self.weights.clone())
            .labels(self.target.clone(), self.source.clone())
            .axes("English (source)", "German (written)")
            .range(0.0, 1.0)
            .annotate()
    }

    /// The source token each target token takes most from.
    pub fn alignment(&self) -> Vec<(String, String)> {
        self.weights
            .iter()
            .zip(&self.target)
            .map(|(row, t)| {
                let best = (0..row.len()).fold(0, |b, s| if row[s] > row[b] { s } else { b });
                (t.clone(), self.source[best].clone())
            })
            .collect()
    }
}

/// The cross-attention of `model` translating `number` greedily, averaged
/// over the heads of decoder layer `layer`.
///
/// # Errors
/// A model error (e.g. `layer` out of range is [`addmul_core::Error::OutOfRange`]).
pub fn attention_map(model: &Transformer<f32>, number: u32, layer: usize) -> Result<AttentionMap> {
    let (en, de) = (numbers::english_vocabulary()?, numbers::german_vocabulary()?);
    model.check_vocabularies(&en, &de)?;
    let source = en.encode(&numbers::english_tokens(number)?)?;
    let output = model.greedy(&source)?.tokens;
    let maps = model.cross_attention(&source, &output)?;
    let Some(heads) = maps.get(layer) else {
        let err = addmul_core::Error::OutOfRange { what: "decoder layer", index: layer, len: maps.len() };
        return Err(TransformerError::from(err).into());
    };
    let (s, t) = (source.len(), output.len() + 1);
    let weights = (0..t)
        .map(|j| {
            (0..s)
                .map(|i| {
                    let mean = heads.iter().map(|w| f64::from(w[(i, j)])).sum::<f64>() / heads.len() as f64;
                    (mean * 1e4).round() / 1e4 // four decimals are plenty for a figure
                })
                .collect()
        })
        .collect();
    let mut target: Vec<String> = de.tokens(&output).iter().map(|t| t.to_string()).collect();
    target.push("</s>".into());
    Ok(AttentionMap {
        number,
        layer,
        source: en.tokens(&source).iter().map(|t| t.to_string()).collect(),
        target,
        weights,
    })
}

/// The decoder-only GPT's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GptRun {
    /// Parameters.
    pub params: usize,
    /// Transformer blocks (as many as the encoder and decoder together).
    pub n_layer: usize,
    /// Seconds spent in training steps.
    pub train_seconds: f64,
    /// Floating-point operations of all training steps (padding included).
    pub train_flops: f64,
    /// Test numbers translated exactly (greedy).
    pub correct: usize,
    /// Seconds to translate the test set.
    pub eval_seconds: f64,
    /// Up to 10 test numbers it got wrong, with its output.
    pub errors: Vec<(u32, String)>,
}

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
}

/// The number run's report and trained model.
#[derive(Debug, Clone)]
pub struct NumbersRun {
    /// What was measured.
    pub report: NumbersReport,
    /// The trained model.
    pub model: Transformer<f32>,
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
    let (en, de) = (numbers::english_vocabulary()?, numbers::german_vocabulary()?);
    let config = options.size.config(&en, &de, NUMBERS_MAX_LEN)?;
    let model = Transformer::new(config, &mut rng(options.seed))?;
    let params = model.num_params();
    let threads = threads(options.threads);
    let split = Split::new(options.test_size, &mut rng(options.seed ^ 0x7e57))?;
    let test = split.test();
    let probe = &test[..test.len().min(200)];
    writeln!(
        out,
        "English -> German number words: {} + {} layers, d_model {}, {} heads, d_ff {}, {params} parameters, {threads} threads",
        options.size.layers, options.size.layers, options.size.d_model, options.size.n_head, options.size.d_ff
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
    .map_err(io)?;
    let train = TransformerTrainConfig {
        warmup: options.warmup,
        lr_factor: options.lr_factor,
        label_smoothing: options.label_smoothing,
        threads,
        seed: options.seed,
        ..TransformerTrainConfig::paper()
    };
    let mut trainer = TransformerTrainer::new(model, train)?;
    let mut data = rng(options.seed ^ 0xda7a);
    let mut seen = HashSet::new();
    let (mut seconds, mut flops, mut curve) = (0.0, 0.0, Vec::new());
    for step in 1..=options.steps {
        let batch: Vec<u32> = (0..options.batch_size).map(|_| split.sample_train(&mut data)).collect();
        seen.extend(batch.iter().copied());
        let pairs = batch.iter().map(|&n| numbers::pair(n, &en, &de)).collect::<std::result::Result<Vec<_>, _>>()?;
        flops += config.training_flops(&trainer.model().batch(&pairs)?);
        let report = trainer.train_step(&pairs)?;
        seconds += report.seconds;
        if options.progress_every > 0 && (step % options.progress_every == 0 || step == options.steps) {
            let model = trainer.model();
            let (ok, _) = count_parallel(probe, threads, |n| {
                let p = numbers::pair(n, &en, &de)?;
                Ok(model.greedy(&p.source)?.tokens == p.target)
            })?;
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
    let model = trainer.into_model();

    let translate = |n: u32, beam: Option<&BeamConfig>| -> Result<(bool, String)> {
        let p = numbers::pair(n, &en, &de)?;
        let h = match beam {
            None => model.greedy(&p.source)?,
            Some(b) => model.beam_search(&p.source, b)?,
        };
        Ok((h.tokens == p.target, numbers::german_text(&de.tokens(&h.tokens))))
    };
    let start = Instant::now();
    let (greedy_correct, greedy_wrong) = count_parallel(test, threads, |n| Ok(translate(n, None)?.0))?;
    let greedy_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let (beam_correct, _) = count_parallel(test, threads, |n| Ok(translate(n, Some(&options.beam))?.0))?;
    let beam_seconds = start.elapsed().as_secs_f64();
    let pct = |k: usize| 100.0 * k as f64 / test.len() as f64;
    writeln!(
        out,
        "trained in {seconds:.1}s ({:.2} GFLOP); {} distinct training numbers\n\
         test exact match: greedy {greedy_correct}/{} ({:.2}%) in {greedy_seconds:.1}s; \
         beam (width {}, alpha {}) {beam_correct}/{} ({:.2}%) in {beam_seconds:.1}s",
        flops / 1e9,
        seen.len(),
        test.len(),
        pct(greedy_correct),
        options.beam.width,
        options.beam.length_penalty,
        test.len(),
        pct(beam_correct)
    )
    .map_err(io)?;
    let mut greedy_errors = Vec::new();
    for &n in greedy_wrong.iter().take(10) {
        let got = translate(n, None)?.1;
        writeln!(out, "  wrong: {n} {} -> {got} (want {})", numbers::english(n)?, numbers::german(n)?).map_err(io)?;
        greedy_errors.push((n, got));
    }

    let number = figure_number(&split);
    let attention = attention_map(&model, number, options.size.layers - 1)?;
    let aligned: Vec<String> = attention.alignment().iter().map(|(t, s)| format!("{t}<-{s}")).collect();
    writeln!(out, "cross-attention, {number}: {}", aligned.join(" ")).map_err(io)?;
    if let Some(dir) = &options.figures {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Io { context: format!("creating {}", dir.display()), source: e })?;
        let path = dir.join("transformer_cross_attention.svg");
        attention.heatmap(format!("Cross-attention translating {number}")).save(&path)?;
        writeln!(out, "wrote {}", path.display()).map_err(io)?;
    }

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
        train_seconds: seconds,
        train_flops: flops,
        distinct_train_numbers: seen.len(),
        curve,
        test_size: test.len(),
        greedy_correct,
        greedy_seconds,
        beam_width: options.beam.width,
        length_penalty: options.beam.length_penalty,
        beam_correct,
        beam_seconds,
        greedy_errors,
        attention,
        gpt,
    };
    Ok(NumbersRun { report, model })
}

// ------------------------------------------------- the decoder-only contrast

/// The GPT's vocabulary: the specials, the English words, the German pieces
/// and `<sep>`.
fn gpt_vocabulary() -> Result<Vocab> {
    let mut tokens = numbers::english_words();
    tokens.extend(numbers::german_pieces());
    tokens.push("<sep>");
    Ok(Vocab::new(Side::Target, tokens)?)
}

/// `English <sep> German </s>` as one sequence.
fn gpt_sequence(n: u32, vocab: &Vocab, sep: TokenId) -> Result<Vec<TokenId>> {
    let mut ids = vocab.encode(&numbers::english_tokens(n)?)?;
    ids.push(sep);
    ids.extend(vocab.encode(&numbers::german_tokens(n)?)?);
    ids.push(vocab.specials().end);
    Ok(ids)
}

/// Inputs and next-token targets of `seqs`, right-padded to the longest.
fn gpt_batch(seqs: &[Vec<TokenId>], pad: TokenId) -> (Vec<TokenId>, Vec<TokenId>, usize) {
    let len = seqs.iter().map(Vec::len).max().unwrap_or(2) - 1;
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    for s in seqs {
        let n = s.len() - 1;
        inputs.extend_from_slice(&s[..n]);
        targets.extend_from_slice(&s[1..]);
        inputs.extend(std::iter::repeat_n(pad, len - n));
        targets.extend(std::iter::repeat_n(pad, len - n));
    }
    (inputs, targets, len)
}

/// Greedy continuation of `English <sep>` until `</s>` or the context is full.
fn gpt_translate(model: &Gpt<f32>, prompt: &[TokenId], end: TokenId) -> Result<Vec<TokenId>> {
    let mut state = model.decode_state();
    let mut logits = model.decode(&mut state, prompt)?;
    let mut out = Vec::new();
    loop {
        let next = (0..logits.len()).fold(0, |b, i| if logits[i] > logits[b] { i } else { b }) as TokenId;
        if next == end || state.len() == model.config().block_size {
            return Ok(out);
        }
        out.push(next);
        logits = model.decode(&mut state, &[next])?;
    }
}

/// Trains a GPT with as many blocks as the Transformer's encoder and decoder
/// together, of the same width, on `English <sep> German </s>` sequences of
/// the same numbers (same seed), with the same optimizer, schedule, steps and
/// batch size; the loss covers every position (the GPT crate's loss has no
/// mask), padding included.
fn gpt_comparison(options: &NumbersOptions, split: &Split, threads: usize, out: &mut dyn Write) -> Result<GptRun> {
    let vocab = gpt_vocabulary()?;
    let specials = vocab.specials();
    let (sep, pad, end) = (vocab.id("<sep>").expect("<sep> is in the vocabulary"), specials.pad, specials.end);
    let size = options.size;
    let n_layer = 2 * size.layers;
    let config = GptConfig::new(vocab.len(), 2 * NUMBERS_MAX_LEN, n_layer, size.n_head, size.d_model);
    let model = Gpt::<f32>::new(config, &mut rng(options.seed))?;
    let params = model.num_params();
    writeln!(
        out,
        "\nDecoder-only GPT on \"English <sep> German\": {n_layer} blocks, n_embd {}, {params} parameters (GELU, learned positions, pre-norm, no label smoothing)",
        size.d_model
    )
    .map_err(io)?;
    let mut workers = DataParallel::new(model, threads);
    let mut adam = AdamW::new(AdamWConfig { lr: 1.0, beta1: 0.9, beta2: 0.98, eps: 1e-9, weight_decay: 0.0 })?;
    let schedule = Schedule::InverseSqrt { d_model: size.d_model, warmup: options.warmup, factor: options.lr_factor };
    let mut data = rng(options.seed ^ 0xda7a); // the same numbers as the Transformer's
    let (mut seconds, mut flops) = (0.0, 0.0);
    let test = split.test();
    let probe = &test[..test.len().min(200)];
    let accuracy = |model: &Gpt<f32>, items: &[u32]| {
        count_parallel(items, threads, |n| {
            let seq = gpt_sequence(n, &vocab, sep)?;
            let cut = seq.iter().position(|&t| t == sep).expect("a sequence has <sep>") + 1;
            Ok(gpt_translate(model, &seq[..cut], end)? == seq[cut..seq.len() - 1])
        })
    };
    for step in 1..=options.steps {
        let seqs = (0..options.batch_size)
            .map(|_| gpt_sequence(split.sample_train(&mut data), &vocab, sep))
            .collect::<Result<Vec<_>>>()?;
        let start = Instant::now();
        adam.set_lr(schedule.lr(step - 1))?;
        let loss = gpt_step(&mut workers, &mut adam, &seqs, pad, &mut flops)?;
        seconds += start.elapsed().as_secs_f64();
        if options.progress_every > 0 && (step % options.progress_every == 0 || step == options.steps) {
            let (ok, _) = accuracy(workers.model(), probe)?;
            writeln!(
                out,
                "step {step:>5}  cross-entropy {loss:.4}  test greedy {:>5.1}% of {}  {seconds:.1}s",
                100.0 * ok as f64 / probe.len() as f64,
                probe.len()
            )
            .map_err(io)?;
        }
    }
    let model = workers.model();
    let start = Instant::now();
    let (correct, wrong) = accuracy(model, test)?;
    let eval_seconds = start.elapsed().as_secs_f64();
    writeln!(
        out,
        "trained in {seconds:.1}s ({:.2} GFLOP); test exact match (greedy): {correct}/{} ({:.2}%) in {eval_seconds:.1}s",
        flops / 1e9,
        test.len(),
        100.0 * correct as f64 / test.len() as f64
    )
    .map_err(io)?;
    let mut errors = Vec::new();
    for &n in wrong.iter().take(10) {
        let seq = gpt_sequence(n, &vocab, sep)?;
        let cut = seq.iter().position(|&t| t == sep).expect("a sequence has <sep>") + 1;
        let got = numbers::german_text(&vocab.tokens(&gpt_translate(model, &seq[..cut], end)?));
        writeln!(out, "  wrong: {n} -> {got} (want {})", numbers::german(n)?).map_err(io)?;
        errors.push((n, got));
    }
    Ok(GptRun { params, n_layer, train_seconds: seconds, train_flops: flops, correct, eval_seconds, errors })
}

/// One data-parallel GPT step, as `addmul_gpt::GptTrainer` takes them but on
/// whole sequences instead of windows of a text: returns the mean loss.
fn gpt_step(
    workers: &mut DataParallel<Gpt<f32>>,
    adam: &mut AdamW<f32>,
    seqs: &[Vec<TokenId>],
    pad: TokenId,
    flops: &mut f64,
) -> Result<f64> {
    let batches: Vec<_> = workers.shares(seqs.len()).into_iter().map(|share| gpt_batch(&seqs[share], pad)).collect();
    let positions: usize = batches.iter().map(|(x, _, _)| x.len()).sum();
    for (x, _, len) in &batches {
        *flops += workers.model().config().training_flops(x.len(), *len);
    }
    let mut step = workers.step();
    let shares = step.shares(seqs.len());
    let losses = step.accumulate(&shares, |w, model, _| {
        let (inputs, targets, seq_len) = &batches[w];
        let share = inputs.len() as f64 / positions as f64;
        let batch = GptBatch { inputs, targets, seq_len: *seq_len };
        Ok::<_, crate::Error>(model.forward_backward(&batch, None, share)? * share)
    })?;
    step.update(adam, 0.0)?;
    Ok(losses.into_iter().sum())
}

/// Today's date (UTC) as `YYYY-MM-DD`, for the record of a measured run.
pub fn utc_date() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Writes a number run's report as JSON to `path`, with the command that
/// produced it, today's date, the core count and the one-minute load average
/// (Linux), so that a reader can tell how busy the machine was.
///
/// # Errors
/// [`Error::Io`] if the file cannot be written.
pub fn write_numbers_record(report: &NumbersReport, command: &str, path: &Path) -> Result<()> {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|l| l.parse::<f64>().ok()));
    let record = serde_json::json!({
        "command": command,
        "date": utc_date(),
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "load_average": load,
        "report": report,
    });
    let text = serde_json::to_string_pretty(&record).expect("the report serialises") + "\n";
    Ok(addmul_gpt::checkpoint::write_atomically(path, text.as_bytes())?)
}

// ------------------------------------------------------- command-line options

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
        let run = numbers_task(&self.options(), out)?;
        if let Some(path) = &self.json {
            write_numbers_record(&run.report, command, path)?;
            writeln!(out, "wrote {}", path.display())
                .map_err(|source| Error::Io { context: "writing progress".into(), source })?;
        }
        Ok(run)
    }
}
