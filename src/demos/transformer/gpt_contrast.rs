//! The article's contrast: a decoder-only GPT given `English <sep> German`
//! on the same numbers, steps and schedule as the encoder-decoder.

use std::io::Write;
use std::time::Instant;

use addmul_core::{ParametersExt, rng};
use addmul_gpt::{Batch as GptBatch, Gpt, GptConfig};
use addmul_train::{AdamW, AdamWConfig, DataParallel, Optimizer, Schedule};
use addmul_transformer::tasks::numbers::{self, Split};
use addmul_transformer::{Side, TokenId, Vocab};
use serde::Serialize;

use super::numbers::{NUMBERS_MAX_LEN, NumbersOptions, TrainingNumbers};
use super::{argmax, count_parallel, io, progress_due};
use crate::Result;

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

/// The GPT's vocabulary and the ids of its special tokens.
struct Tokens {
    vocab: Vocab,
    /// Between the English and the German.
    sep: TokenId,
    /// Padding after a short sequence.
    pad: TokenId,
    /// After the German.
    end: TokenId,
}

impl Tokens {
    /// The specials, the English words, the German pieces and `<sep>`.
    fn new() -> Result<Self> {
        let mut tokens = numbers::english_words();
        tokens.extend(numbers::german_pieces());
        tokens.push("<sep>");
        let vocab = Vocab::new(Side::Target, tokens)?;
        let specials = vocab.specials();
        let sep = vocab.id("<sep>").expect("<sep> is in the vocabulary");
        Ok(Tokens { sep, pad: specials.pad, end: specials.end, vocab })
    }

    /// `English <sep> German </s>` as one sequence.
    fn sequence(&self, n: u32) -> Result<Vec<TokenId>> {
        let mut ids = self.vocab.encode(&numbers::english_tokens(n)?)?;
        ids.push(self.sep);
        ids.extend(self.vocab.encode(&numbers::german_tokens(n)?)?);
        ids.push(self.end);
        Ok(ids)
    }

    /// `model`'s greedy German for `n` and the German it should write.
    fn translate(&self, model: &Gpt<f32>, n: u32) -> Result<(Vec<TokenId>, Vec<TokenId>)> {
        let seq = self.sequence(n)?;
        let cut = seq.iter().position(|&t| t == self.sep).expect("a sequence has <sep>") + 1;
        Ok((greedy(model, &seq[..cut], self.end)?, seq[cut..seq.len() - 1].to_vec()))
    }

    /// How many of `items` `model` translates exactly, and the others.
    fn accuracy(&self, model: &Gpt<f32>, items: &[u32], threads: usize) -> Result<(usize, Vec<u32>)> {
        count_parallel(items, threads, |n| {
            let (got, want) = self.translate(model, n)?;
            Ok(got == want)
        })
    }
}

/// Inputs and next-token targets of `seqs` (`English <sep> German </s>`),
/// right-padded to the longest. Only the German and `</s>` are targets, as
/// for the encoder-decoder: the positions that would predict the English
/// half, `<sep>` or padding get the target `pad`, which the loss ignores.
fn batch(seqs: &[Vec<TokenId>], pad: TokenId, sep: TokenId) -> (Vec<TokenId>, Vec<TokenId>, usize) {
    let len = seqs.iter().map(Vec::len).max().unwrap_or(2) - 1;
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    for s in seqs {
        let n = s.len() - 1;
        let first_german = s.iter().position(|&t| t == sep).expect("a sequence has <sep>") + 1;
        inputs.extend_from_slice(&s[..n]);
        targets.extend((1..=n).map(|k| if k >= first_german { s[k] } else { pad }));
        inputs.extend(std::iter::repeat_n(pad, len - n));
        targets.extend(std::iter::repeat_n(pad, len - n));
    }
    (inputs, targets, len)
}

/// Greedy continuation of `English <sep>` until `</s>` or the context is full.
fn greedy(model: &Gpt<f32>, prompt: &[TokenId], end: TokenId) -> Result<Vec<TokenId>> {
    let mut state = model.decode_state();
    let mut logits = model.decode(&mut state, prompt)?;
    let mut out = Vec::new();
    loop {
        let next = argmax(&logits) as TokenId;
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
/// batch size; like the encoder-decoder's, its loss covers the German and
/// `</s>` only (the English prompt and the padding are ignored).
pub(super) fn gpt_comparison(
    options: &NumbersOptions,
    split: &Split,
    threads: usize,
    out: &mut dyn Write,
) -> Result<GptRun> {
    let tokens = Tokens::new()?;
    let size = options.size;
    let (config, adam) = gpt_setup(options)?;
    let n_layer = config.n_layer;
    let model = Gpt::<f32>::new(config, &mut rng(options.seed))?;
    let params = model.num_params();
    writeln!(
        out,
        "\nDecoder-only GPT on \"English <sep> German\": {n_layer} blocks, n_embd {}, {params} parameters (GELU, learned positions, pre-norm, no label smoothing)",
        size.d_model
    )
    .map_err(io)?;
    let mut workers = DataParallel::new(model, threads);
    let (train_seconds, train_flops) = train(options, split, &tokens, (&mut workers, adam), threads, out)?;
    let model = workers.model();
    let test = split.test();
    let start = Instant::now();
    let (correct, wrong) = tokens.accuracy(model, test, threads)?;
    let eval_seconds = start.elapsed().as_secs_f64();
    writeln!(
        out,
        "trained in {train_seconds:.1}s ({:.2} GFLOP); test exact match (greedy): {correct}/{} ({:.2}%) in {eval_seconds:.1}s",
        train_flops / 1e9,
        test.len(),
        100.0 * correct as f64 / test.len() as f64
    )
    .map_err(io)?;
    let errors = print_errors(model, &tokens, &wrong, out)?;
    Ok(GptRun { params, n_layer, train_seconds, train_flops, correct, eval_seconds, errors })
}

/// The GPT of the contrast and its optimizer: as many blocks as the
/// Transformer's encoder and decoder together, of the same width, heads and
/// context for `English <sep> German`; Adam with the Transformer's betas and
/// ε (the learning rate comes from the schedule).
///
/// # Errors
/// A vocabulary error.
pub(super) fn gpt_setup(options: &NumbersOptions) -> Result<(GptConfig, AdamWConfig)> {
    let size = options.size;
    let vocab = Tokens::new()?.vocab.len();
    let config = GptConfig::new(vocab, 2 * NUMBERS_MAX_LEN, 2 * size.layers, size.n_head, size.d_model);
    Ok((config, AdamWConfig { lr: 1.0, beta1: 0.9, beta2: 0.98, eps: 1e-9, weight_decay: 0.0 }))
}

/// The training loop: AdamW on the inverse-square-root schedule, printing
/// progress with the greedy accuracy on the first 200 test numbers; returns
/// the seconds and floating-point operations of the training steps.
fn train(
    options: &NumbersOptions,
    split: &Split,
    tokens: &Tokens,
    (workers, adam): (&mut DataParallel<Gpt<f32>>, AdamWConfig),
    threads: usize,
    out: &mut dyn Write,
) -> Result<(f64, f64)> {
    let mut adam = AdamW::new(adam)?;
    let d_model = options.size.d_model;
    let schedule = Schedule::InverseSqrt { d_model, warmup: options.warmup, factor: options.lr_factor };
    let mut draws = TrainingNumbers::new(options, split); // the same numbers as the Transformer's
    let (mut seconds, mut flops) = (0.0, 0.0);
    let test = split.test();
    let probe = &test[..test.len().min(200)];
    for step in 1..=options.steps {
        let seqs = draws.next_batch().into_iter().map(|n| tokens.sequence(n)).collect::<Result<Vec<_>>>()?;
        let start = Instant::now();
        adam.set_lr(schedule.lr(step - 1))?;
        let loss = gpt_step(workers, &mut adam, &seqs, (tokens.pad, tokens.sep), &mut flops)?;
        seconds += start.elapsed().as_secs_f64();
        if progress_due(options.progress_every, step, options.steps) {
            let (ok, _) = tokens.accuracy(workers.model(), probe, threads)?;
            writeln!(
                out,
                "step {step:>5}  cross-entropy {loss:.4}  test greedy {:>5.1}% of {}  {seconds:.1}s",
                100.0 * ok as f64 / probe.len() as f64,
                probe.len()
            )
            .map_err(io)?;
        }
    }
    Ok((seconds, flops))
}

/// Prints up to 10 of the `wrong` numbers with `model`'s German for them,
/// and returns them.
fn print_errors(model: &Gpt<f32>, tokens: &Tokens, wrong: &[u32], out: &mut dyn Write) -> Result<Vec<(u32, String)>> {
    let mut errors = Vec::new();
    for &n in wrong.iter().take(10) {
        let got = numbers::german_text(&tokens.vocab.tokens(&tokens.translate(model, n)?.0));
        writeln!(out, "  wrong: {n} -> {got} (want {})", numbers::german(n)?).map_err(io)?;
        errors.push((n, got));
    }
    Ok(errors)
}

/// One data-parallel GPT step, as `addmul_gpt::GptTrainer` takes them but on
/// whole sequences instead of windows of a text: returns the mean loss.
fn gpt_step(
    workers: &mut DataParallel<Gpt<f32>>,
    adam: &mut AdamW<f32>,
    seqs: &[Vec<TokenId>],
    (pad, sep): (TokenId, TokenId),
    flops: &mut f64,
) -> Result<f64> {
    let batches: Vec<_> = workers.shares(seqs.len()).into_iter().map(|share| batch(&seqs[share], pad, sep)).collect();
    let counted = |targets: &[TokenId]| targets.iter().filter(|&&t| t != pad).count();
    let predicted: usize = batches.iter().map(|(_, y, _)| counted(y)).sum();
    for (x, _, len) in &batches {
        *flops += workers.model().config().training_flops(x.len(), *len);
    }
    let mut step = workers.step();
    let shares = step.shares(seqs.len());
    let losses = step.accumulate(&shares, |w, model, _| {
        let (inputs, targets, seq_len) = &batches[w];
        // Each share's mean, weighted by its predicted tokens: together the
        // mean over the whole batch's.
        let share = counted(targets) as f64 / predicted as f64;
        let batch = GptBatch { inputs, targets, seq_len: *seq_len, ignore: Some(pad) };
        Ok::<_, crate::Error>(model.forward_backward(&batch, None, share)? * share)
    })?;
    step.update(adam, 0.0)?;
    Ok(losses.into_iter().sum())
}
