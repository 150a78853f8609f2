//! The `addmul` command's work, as library functions (the binary only parses
//! arguments): `train`, `sample`, `tokenizer train` and `bench`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use addmul_gpt::checkpoint::resolve;
use addmul_gpt::{
    CheckpointPlan, EvalReport, Gpt, Observer, Sampler, SamplingConfig, StepReport, TrainConfig, Trainer,
};
use addmul_plot::{LineChart, Series};
use indicatif::{ProgressBar, ProgressStyle};

use crate::corpus;
use crate::text::{TextStream, TextTokenizer, TokenizerKind};
use crate::{Error, Result};

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

fn invalid(what: &str, problem: impl Into<String>) -> Error {
    Error::Invalid { what: what.to_string(), problem: problem.into() }
}

/// Builds a training configuration: a preset, then a TOML file's keys on top,
/// then `overrides` (`key = value` pairs, as TOML values) on top of that.
///
/// # Errors
/// [`Error::Gpt`] for an unknown preset; [`Error::Invalid`] for a file or
/// override that is not valid TOML or names an unknown key.
pub fn train_config(preset: &str, file: Option<&Path>, overrides: &[(String, String)]) -> Result<TrainConfig> {
    let base = TrainConfig::preset(preset)?;
    let mut table = toml::Table::try_from(&base).map_err(|e| invalid("preset", e.to_string()))?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(io(format!("reading {}", path.display())))?;
        let from_file: toml::Table =
            text.parse().map_err(|e: toml::de::Error| invalid(&path.display().to_string(), e.to_string()))?;
        table.extend(from_file);
    }
    for (key, value) in overrides {
        let parsed: toml::Table = format!("{key} = {value}")
            .parse()
            .or_else(|_| format!("{key} = {:?}", value).parse())
            .map_err(|e: toml::de::Error| invalid(&format!("--{key}"), e.to_string()))?;
        table.extend(parsed);
    }
    toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| invalid("configuration", e.message().to_string()))
}

/// What `addmul train` does.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The configuration.
    pub config: TrainConfig,
    /// The text file (else tinyshakespeare, else the book's text).
    pub data: Option<PathBuf>,
    /// The run folder for checkpoints, the log and the loss curve.
    pub out: PathBuf,
    /// Continue the run in `out` instead of starting a new one.
    pub resume: bool,
    /// Character or BPE tokens.
    pub tokenizer: TokenizerKind,
    /// BPE vocabulary size.
    pub vocab_size: usize,
    /// Characters of text to sample after training (0: none).
    pub sample_chars: usize,
    /// Hide the progress bar (the log and summaries are still written).
    pub quiet: bool,
}

/// A step or measurement, as a line of `log.jsonl`.
#[derive(serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum LogLine<'a> {
    Step(&'a StepReport),
    Eval(&'a EvalReport),
}

struct Progress {
    bar: Option<ProgressBar>,
    log: std::fs::File,
    steps: Vec<StepReport>,
    evals: Vec<EvalReport>,
    say: Box<dyn FnMut(&str)>,
}

impl Progress {
    fn write(&mut self, line: &LogLine<'_>) {
        let text = serde_json::to_string(line).expect("reports serialise");
        // The log is best effort: a full disk must not stop training.
        let _ = writeln!(self.log, "{text}");
    }
}

impl Observer for Progress {
    fn step(&mut self, r: &StepReport) {
        self.write(&LogLine::Step(r));
        self.steps.push(*r);
        if let Some(bar) = &self.bar {
            bar.set_position(r.step);
            let recent = &self.steps[self.steps.len().saturating_sub(20)..];
            let secs: f64 = recent.iter().map(|s| s.seconds).sum();
            let tokens: usize = recent.iter().map(|s| s.tokens).sum();
            bar.set_message(format!("loss {:.4}  {:.0} tok/s", r.loss, tokens as f64 / secs.max(1e-9)));
        }
    }
    fn eval(&mut self, r: &EvalReport) {
        self.write(&LogLine::Eval(r));
        self.evals.push(*r);
        let line = format!("step {:>5}: train loss {:.4}, validation loss {:.4}", r.step, r.train_loss, r.val_loss);
        match &self.bar {
            Some(bar) => bar.println(line),
            None => (self.say)(&line),
        }
    }
    fn checkpoint(&mut self, dir: &Path) {
        let line = format!("checkpoint: {}", dir.display());
        match &self.bar {
            Some(bar) => bar.println(line),
            None => (self.say)(&line),
        }
    }
}

/// The median of `xs` (0 for none).
fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Trains a GPT as `options` say, printing through `say`; returns the run
/// folder.
///
/// # Errors
/// A corpus, tokenizer, configuration, training or checkpoint error.
pub fn train(options: &TrainOptions, mut say: impl FnMut(&str) + 'static) -> Result<PathBuf> {
    let corpus = corpus::load(options.data.as_deref(), &mut say)?;
    std::fs::create_dir_all(&options.out).map_err(io(format!("creating {}", options.out.display())))?;
    let (tokenizer, mut trainer) = if options.resume {
        let dir = resolve(&options.out)?;
        let tok_path = dir.join("tokenizer.json");
        let text = std::fs::read_to_string(&tok_path).map_err(io(format!("reading {}", tok_path.display())))?;
        let tokenizer = TextTokenizer::from_json(&text)?;
        let ids = tokenizer.as_dyn().encode(&corpus.text)?;
        let mut trainer = Trainer::resume(&options.out, &ids)?;
        if options.config.max_iters > trainer.step() {
            trainer.set_max_iters(options.config.max_iters)?;
        }
        say(&format!("resuming {} at step {}", dir.display(), trainer.step()));
        (tokenizer, trainer)
    } else {
        let start = Instant::now();
        let tokenizer = TextTokenizer::train(options.tokenizer, &corpus.text, options.vocab_size)?;
        let ids = tokenizer.as_dyn().encode(&corpus.text)?;
        say(&format!(
            "tokenizer: {} ids; the corpus is {} tokens ({:.1}s)",
            tokenizer.as_dyn().vocab_size(),
            ids.len(),
            start.elapsed().as_secs_f64()
        ));
        let trainer = Trainer::new(options.config.clone(), tokenizer.as_dyn().vocab_size(), &ids)?;
        (tokenizer, trainer)
    };
    let config = trainer.config().clone();
    let model_config = *trainer.model().config();
    say(&format!(
        "model: {} layers, {} heads, {} dims, block {}, {} parameters; {} threads",
        model_config.n_layer,
        model_config.n_head,
        model_config.n_embd,
        model_config.block_size,
        addmul_core::ParametersExt::num_params(trainer.model()),
        trainer.threads()
    ));
    let log_path = options.out.join("log.jsonl");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io(format!("opening {}", log_path.display())))?;
    let bar = (!options.quiet).then(|| {
        let bar = ProgressBar::new(config.max_iters);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} elapsed, {eta_precise} left]",
            )
            .expect("a valid template"),
        );
        bar.set_position(trainer.step());
        bar
    });
    let mut progress = Progress { bar, log, steps: Vec::new(), evals: Vec::new(), say: Box::new(say) };
    let plan = CheckpointPlan {
        dir: options.out.clone(),
        extra_files: vec![("tokenizer.json".into(), tokenizer.to_json().into_bytes())],
    };
    let result = trainer.run(&mut progress, Some(&plan));
    if let Some(bar) = &progress.bar {
        bar.finish_and_clear();
    }
    result?;

    // A summary, and the loss curve.
    let times: Vec<f64> = progress.steps.iter().skip(20).map(|s| s.seconds).collect();
    let ms = median(times) * 1000.0;
    let tokens_per_step = (config.batch_size * config.block_size * config.grad_accum) as f64;
    if let Some(last) = trainer.evals().last() {
        (progress.say)(&format!(
            "done: step {}, train loss {:.4}, validation loss {:.4}; median {:.1} ms per step, {:.0} tokens/s, {:.1} GFLOP/s",
            last.step,
            last.train_loss,
            last.val_loss,
            ms,
            tokens_per_step / (ms / 1000.0),
            model_config.training_flops(tokens_per_step as usize, config.block_size) / (ms / 1000.0) / 1e9,
        ));
    }
    let evals = trainer.evals();
    let train_steps: Vec<(f64, f64)> = progress.steps.iter().map(|s| (s.step as f64, s.loss)).collect();
    if !train_steps.is_empty() {
        LineChart::new("Training a GPT", "step", "cross-entropy")
            .series(Series::new("training batches", train_steps))
            .series(Series::new("training (evaluated)", evals.iter().map(|e| (e.step as f64, e.train_loss)).collect()))
            .series(Series::new("validation", evals.iter().map(|e| (e.step as f64, e.val_loss)).collect()))
            .save(options.out.join("loss.svg"))?;
        (progress.say)(&format!("loss curve: {}", options.out.join("loss.svg").display()));
    }
    if options.sample_chars > 0 {
        (progress.say)("sample:");
        let prompt = corpus.text.chars().next().map(String::from).unwrap_or_else(|| "\n".into());
        let mut stdout = std::io::stdout().lock();
        let options =
            SampleOptions { prompt, max_tokens: options.sample_chars, stops: Vec::new(), ..SampleOptions::default() };
        generate(trainer.model(), &tokenizer, &options, &mut stdout)?;
    }
    Ok(options.out.clone())
}

/// What `addmul sample` does.
#[derive(Debug, Clone)]
pub struct SampleOptions {
    /// The text to continue.
    pub prompt: String,
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Temperature, top-k, top-p, seed.
    pub sampling: SamplingConfig,
    /// Stop (without printing it) at the first of these strings.
    pub stops: Vec<String>,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions { prompt: "\n".into(), max_tokens: 500, sampling: SamplingConfig::default(), stops: Vec::new() }
    }
}

/// Loads a model and its tokenizer from a run folder or a checkpoint folder.
///
/// # Errors
/// A missing or corrupt checkpoint or tokenizer file.
pub fn load(path: &Path) -> Result<(Gpt<f32>, TextTokenizer)> {
    let dir = resolve(path)?;
    let model = addmul_gpt::checkpoint::load_model(&dir)?;
    let tok_path = dir.join("tokenizer.json");
    let text = std::fs::read_to_string(&tok_path).map_err(io(format!("reading {}", tok_path.display())))?;
    let tokenizer = TextTokenizer::from_json(&text)?;
    if tokenizer.as_dyn().vocab_size() != model.config().vocab_size {
        return Err(invalid(
            &tok_path.display().to_string(),
            format!("has {} ids but the model has {}", tokenizer.as_dyn().vocab_size(), model.config().vocab_size),
        ));
    }
    Ok((model, tokenizer))
}

// ANCHOR: generate
/// Generates text after `options.prompt`, writing each piece to `out` as soon
/// as it is a whole character (and cannot be the start of a stop string).
/// Returns the text generated and the number of tokens.
///
/// # Errors
/// A prompt the tokenizer cannot encode; a write error.
pub fn generate(
    model: &Gpt<f32>,
    tokenizer: &TextTokenizer,
    options: &SampleOptions,
    out: &mut dyn Write,
) -> Result<(String, usize)> {
    let tok = tokenizer.as_dyn();
    let prompt = tok.encode(&options.prompt)?;
    if prompt.is_empty() {
        return Err(invalid("--prompt", "is empty after tokenizing; give at least one character"));
    }
    let mut sampler = Sampler::new(model, &prompt, options.sampling)?;
    let mut stream = TextStream::new(options.stops.clone());
    let mut text = String::new();
    let mut count = 0;
    let w = |e| Error::Io { context: "writing the sample".into(), source: e };
    while count < options.max_tokens && !stream.stopped() {
        let id = sampler.next_token()?;
        count += 1;
        let piece = stream.push(&tok.decode_bytes(&[id])?);
        out.write_all(piece.as_bytes()).map_err(w)?;
        out.flush().map_err(w)?;
        text.push_str(&piece);
    }
    let rest = stream.finish();
    out.write_all(rest.as_bytes()).map_err(w)?;
    writeln!(out).map_err(w)?;
    text.push_str(&rest);
    Ok((text, count))
}
// ANCHOR_END: generate

/// What `addmul tokenizer train` does: trains a tokenizer on a text file and
/// saves it; returns a summary.
///
/// # Errors
/// A file or tokenizer error.
pub fn tokenizer_train(data: &Path, kind: TokenizerKind, vocab_size: usize, out: &Path) -> Result<String> {
    let text = corpus::read_text(data)?;
    let start = Instant::now();
    let tokenizer = TextTokenizer::train(kind, &text, vocab_size)?;
    let seconds = start.elapsed().as_secs_f64();
    let ids = tokenizer.as_dyn().encode(&text)?;
    std::fs::write(out, tokenizer.to_json()).map_err(io(format!("writing {}", out.display())))?;
    Ok(format!(
        "trained a {} tokenizer with {} ids in {seconds:.2}s; {} bytes become {} tokens ({:.2} bytes per token); saved to {}",
        match kind {
            TokenizerKind::Char => "character",
            TokenizerKind::Bpe => "byte-level BPE",
        },
        tokenizer.as_dyn().vocab_size(),
        text.len(),
        ids.len(),
        text.len() as f64 / ids.len().max(1) as f64,
        out.display()
    ))
}
