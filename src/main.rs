//! The `addmul` command.

use std::path::PathBuf;
use std::process::ExitCode;

use addmul::app;
use addmul::text::TokenizerKind;
use clap::{Args, Parser, Subcommand};

/// Training allocates and frees the same large buffers every step; mimalloc
/// keeps them instead of returning them to the system and faulting them back
/// in (measured: about a sixth of a training step's time with glibc's malloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Large language models from addition and multiplication.
#[derive(Debug, Parser)]
#[command(name = "addmul", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a GPT on a text (tinyshakespeare unless --data is given), then
    /// print a sample.
    Train(TrainArgs),
    /// Continue a trained model's text.
    Sample(SampleArgs),
    /// Tokenizers.
    #[command(subcommand)]
    Tokenizer(TokenizerCommand),
    /// Measure: cpu-small's quality and speed on a text, sampling speed, and a
    /// larger configuration's speed; writes a JSON report.
    Bench {
        /// The text (default: tinyshakespeare, as `train` finds it).
        #[arg(long, value_name = "FILE")]
        data: Option<PathBuf>,
        /// cpu-small steps.
        #[arg(long, default_value_t = 2000)]
        iters: u64,
        /// Worker threads (0: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Tokens per round of the sampling speed (median of five rounds).
        #[arg(long, default_value_t = 1000)]
        sample_tokens: usize,
        /// Steps of the larger configuration (0: skip).
        #[arg(long, default_value_t = 30)]
        large_iters: u64,
        /// Where to write the JSON report.
        #[arg(long, value_name = "FILE", default_value = "bench.json")]
        out: PathBuf,
    },
    /// Chapters 1-2: the article's leaf/flower network, then learning its
    /// weights, overfitting and early stopping.
    LeafFlower {
        /// Seed for the well-behaved training run.
        #[arg(long)]
        seed: Option<u64>,
        /// Write the chapter's figures (SVG) into this folder.
        #[arg(long, value_name = "DIR")]
        figures: Option<PathBuf>,
        /// Print the losses every N epochs.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        every: u64,
    },
    /// Chapter 15: the encoder-decoder Transformer on the copy task and on
    /// translating numbers from English into German words.
    #[command(subcommand)]
    Transformer(TransformerCommand),
    /// Chapter 3: the article's first language model, 12 characters in, the
    /// next one out.
    CharModel {
        /// A text to train on (default: the built-in nursery rhymes).
        #[arg(long, value_name = "FILE")]
        data: Option<PathBuf>,
        /// Training epochs.
        #[arg(long)]
        epochs: Option<usize>,
    },
}

#[derive(Debug, Subcommand)]
enum TransformerCommand {
    /// Learn to copy random sequences of the symbols 1 to 10, then copy
    /// held-out sequences with greedy decoding.
    Copy(addmul::demos::CopyArgs),
    /// Learn to translate numbers (0 to 999,999) from English into German
    /// words; test greedy and beam decoding on numbers never seen in
    /// training; compare with a decoder-only GPT.
    Numbers(addmul::demos::NumbersArgs),
}

#[derive(Debug, Subcommand)]
enum TokenizerCommand {
    /// Train a tokenizer on a text file and save it as JSON.
    Train {
        /// The text.
        #[arg(long, value_name = "FILE")]
        data: PathBuf,
        /// `char` or `bpe`.
        #[arg(long, default_value = "bpe")]
        kind: TokenizerKind,
        /// Vocabulary size (BPE).
        #[arg(long, default_value_t = 4096)]
        vocab_size: usize,
        /// Where to save it.
        #[arg(long, value_name = "FILE", default_value = "tokenizer.json")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
struct TrainArgs {
    /// A named configuration: cpu-small, shakespeare-char or tiny.
    #[arg(long, default_value = "cpu-small")]
    preset: String,
    /// A TOML file whose keys override the preset's.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Any configuration key, overriding preset and file: --set lr=3e-4.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    set: Vec<(String, String)>,
    /// Optimizer steps.
    #[arg(long)]
    max_iters: Option<u64>,
    /// Windows per batch.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Worker threads (0: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Random seed.
    #[arg(long)]
    seed: Option<u64>,
    /// The text to train on (default: tinyshakespeare, downloaded once; the
    /// book's own text when offline).
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// The run folder (default: runs/<preset>).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue the run in --out from its latest checkpoint.
    #[arg(long)]
    resume: bool,
    /// `char` (default) or `bpe`.
    #[arg(long, default_value = "char")]
    tokenizer: TokenizerKind,
    /// BPE vocabulary size.
    #[arg(long, default_value_t = 1024)]
    vocab_size: usize,
    /// Characters to sample after training (0: none).
    #[arg(long, default_value_t = 500)]
    sample: usize,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct SampleArgs {
    /// A run folder (its latest checkpoint) or a checkpoint folder.
    #[arg(long, value_name = "DIR", default_value = "runs/cpu-small")]
    model: PathBuf,
    /// The text to continue.
    #[arg(long, default_value = "\n")]
    prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 500)]
    tokens: usize,
    /// Below 1: more predictable; above 1: more surprising; 0: always the
    /// most likely token.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Sample only among the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Sample only among the most likely tokens that make up probability p.
    #[arg(long)]
    top_p: Option<f64>,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop at this string (repeatable); it is not printed.
    #[arg(long = "stop", value_name = "TEXT")]
    stops: Vec<String>,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}`: expected KEY=VALUE"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

fn run(cli: Cli) -> addmul::Result<()> {
    match cli.command {
        Command::Train(a) => {
            let mut overrides = a.set.clone();
            let mut flag = |key: &str, value: Option<String>| {
                if let Some(v) = value {
                    overrides.push((key.to_string(), v));
                }
            };
            flag("max_iters", a.max_iters.map(|v| v.to_string()));
            flag("batch_size", a.batch_size.map(|v| v.to_string()));
            flag("threads", a.threads.map(|v| v.to_string()));
            flag("seed", a.seed.map(|v| v.to_string()));
            let config = app::train_config(&a.preset, a.config.as_deref(), &overrides)?;
            let options = app::TrainOptions {
                config,
                data: a.data,
                out: a.out.unwrap_or_else(|| PathBuf::from("runs").join(&a.preset)),
                resume: a.resume,
                tokenizer: a.tokenizer,
                vocab_size: a.vocab_size,
                sample_chars: a.sample,
                quiet: a.quiet,
            };
            app::train(&options, |line| eprintln!("{line}"))?;
        }
        Command::Sample(a) => {
            let (model, tokenizer) = app::load(&a.model)?;
            let sampling = addmul::gpt::SamplingConfig {
                temperature: a.temperature,
                top_k: a.top_k,
                top_p: a.top_p,
                seed: a.seed,
            };
            let options = app::SampleOptions { prompt: a.prompt, max_tokens: a.tokens, sampling, stops: a.stops };
            print!("{}", options.prompt);
            app::generate(&model, &tokenizer, &options, &mut std::io::stdout().lock())?;
        }
        Command::Bench { data, iters, threads, sample_tokens, large_iters, out } => {
            let options = app::BenchOptions { data, iters, threads, sample_tokens, large_iters };
            let report = app::bench(&options, |line| eprintln!("{line}"))?;
            let json = serde_json::to_string_pretty(&report).expect("the report serialises") + "\n";
            addmul::gpt::checkpoint::write_atomically(&out, json.as_bytes())?;
            eprintln!("report: {}", out.display());
        }
        Command::Tokenizer(TokenizerCommand::Train { data, kind, vocab_size, out }) => {
            eprintln!("{}", app::tokenizer_train(&data, kind, vocab_size, &out)?);
        }
        Command::LeafFlower { seed, figures, every } => {
            let options = addmul::demos::LeafFlowerOptions { seed, figures, progress_every: every as usize };
            addmul::demos::leaf_flower(&options, &mut std::io::stdout().lock())?;
        }
        Command::Transformer(TransformerCommand::Copy(args)) => {
            addmul::demos::copy_task(&args.options(), &mut std::io::stdout().lock())?;
        }
        Command::Transformer(TransformerCommand::Numbers(args)) => {
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            args.run(&command, &mut std::io::stdout().lock())?;
        }
        Command::CharModel { data, epochs } => {
            let options = addmul::demos::CharModelOptions { text: data, epochs, ..Default::default() };
            addmul::demos::char_model(&options, &mut std::io::stdout().lock())?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
