//! The `addmul` command's arguments ([`Cli`]), what they choose
//! ([`TrainArgs::options`], ...), and [`run`], which hands them to the
//! functions in [`crate::app`]: tests parse arguments and call [`run`] the
//! way a user does; the binary only calls [`run`].

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use addmul_gpt::SamplingConfig;

use crate::adapters::LoraOptions;
use crate::app::{
    BenchOptions, SampleOptions, TrainOptions, bench, compare_bench, generate, load, tokenizer_train, train,
    train_config_given,
};
use crate::text::TokenizerKind;
use crate::{Error, Result, corpus};

/// Large language models from addition and multiplication.
#[derive(Debug, Parser)]
#[command(name = "addmul", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `addmul`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a GPT on a text (tinyshakespeare unless --data is given), then
    /// print a sample.
    Train(TrainArgs),
    /// Continue a trained model's text.
    Sample(SampleArgs),
    /// A model's perplexity on a text, by the sliding-window recipe of the
    /// `transformers` documentation.
    Eval(EvalArgs),
    /// Continue training a pretrained model (an addmul run or a Hugging Face
    /// GPT-2 folder) on a text: every weight (full fine-tuning), or with
    /// --lora-rank low-rank adapters only; each checkpoint is again a Hugging
    /// Face folder (with PEFT's adapter files for LoRA).
    Finetune(FinetuneArgs),
    /// Tokenizers.
    #[command(subcommand)]
    Tokenizer(TokenizerCommand),
    /// Measure: cpu-small's quality and speed on a text, sampling speed, and a
    /// larger configuration's speed; writes a JSON report.
    Bench(BenchArgs),
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
    /// A web page on 127.0.0.1 to explore every chapter's real model: change
    /// a number and see the sums, type a sentence and see its tokens, see
    /// where each head attends, move the temperature, train and watch the
    /// loss fall.
    Explore(ExploreArgs),
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

/// `addmul explore`'s arguments.
#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// The model the pages use: a run, a checkpoint or a Hugging Face GPT-2
    /// folder (default: runs/cpu-small when it holds a run; else train one
    /// from the page).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// The port (default: any free one; the address is printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// The address to listen on. Anything but 127.0.0.1 lets other machines
    /// use the explorer (a warning says so).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Where runs are: the Train page trains into it, and models are read
    /// only from it and from --model.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub runs: PathBuf,
    /// The built book, for the pages' chapter links (default: book/build
    /// when it exists).
    #[arg(long, value_name = "DIR")]
    pub book: Option<PathBuf>,
    /// Open the page in the desktop's browser.
    #[arg(long)]
    pub open: bool,
}

/// The subcommands of `addmul transformer`.
#[derive(Debug, Subcommand)]
pub enum TransformerCommand {
    /// Learn to copy random sequences of the symbols 1 to 10, then copy
    /// held-out sequences with greedy decoding.
    Copy(crate::demos::CopyArgs),
    /// Learn to translate numbers (0 to 999,999) from English into German
    /// words; test greedy and beam decoding on numbers never seen in
    /// training; compare with a decoder-only GPT.
    Numbers(crate::demos::NumbersArgs),
}

/// The subcommands of `addmul tokenizer`.
#[derive(Debug, Subcommand)]
pub enum TokenizerCommand {
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

/// The arguments of `addmul train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// A named configuration: cpu-small, shakespeare-char or tiny.
    #[arg(long, default_value = "cpu-small")]
    pub preset: String,
    /// A TOML file whose keys override the preset's.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Any configuration key, overriding preset and file: --set lr=3e-4.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,
    /// Optimizer steps. A preset's warmup longer than this is shortened to
    /// fit; a warmup_iters you set must fit. With --resume: the step to train
    /// the run to.
    #[arg(long)]
    pub max_iters: Option<u64>,
    /// Windows per batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Worker threads (0: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Random seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The text to train on (default: tinyshakespeare, downloaded once; the
    /// book's own text when offline).
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// The run folder (default: runs/<preset>).
    #[allow(rustdoc::invalid_html_tags, reason = "the text is also `--help`'s, where <preset> reads as meant")]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its latest checkpoint, with its
    /// configuration, tokenizer and text (give the same --data): only
    /// --max-iters may change, to train further. Without it, --out must not
    /// hold a run (see --force).
    #[arg(long)]
    pub resume: bool,
    /// Start a new run in --out even if it holds one: the old run's
    /// checkpoints, `latest`, log and loss curve are deleted first.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// `char` (the default) or `bpe`.
    #[arg(long)]
    pub tokenizer: Option<TokenizerKind>,
    /// BPE vocabulary size (default: 1024).
    #[arg(long)]
    pub vocab_size: Option<usize>,
    /// Characters to sample after training (0: none).
    #[arg(long, default_value_t = 500)]
    pub sample: usize,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl TrainArgs {
    /// What these arguments choose: the preset, then the `--config` file's
    /// keys, then `--set`'s, then the named flags (`--max-iters`, ...), each
    /// on top of the one before.
    ///
    /// # Errors
    /// As [`train_config`](crate::app::train_config).
    pub fn options(&self) -> Result<TrainOptions> {
        let mut overrides = self.set.clone();
        let flags = [
            ("max_iters", self.max_iters.map(|v| v.to_string())),
            ("batch_size", self.batch_size.map(|v| v.to_string())),
            ("threads", self.threads.map(|v| v.to_string())),
            ("seed", self.seed.map(|v| v.to_string())),
        ];
        overrides.extend(flags.into_iter().filter_map(|(key, value)| Some((key.to_string(), value?))));
        let (config, mut given) = train_config_given(&self.preset, self.config.as_deref(), &overrides)?;
        let chosen = [("--tokenizer", self.tokenizer.is_some()), ("--vocab-size", self.vocab_size.is_some())];
        given.extend(chosen.into_iter().filter(|(_, chosen)| *chosen).map(|(flag, _)| flag.to_string()));
        Ok(TrainOptions {
            config,
            given,
            data: self.data.clone(),
            remote: corpus::Remote::tinyshakespeare(),
            out: self.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&self.preset)),
            resume: self.resume,
            force: self.force,
            base: None,
            lora: None,
            tokenizer: self.tokenizer.unwrap_or(TokenizerKind::Char),
            vocab_size: self.vocab_size.unwrap_or(1024),
            sample_chars: self.sample,
            quiet: self.quiet,
        })
    }
}

/// The arguments of `addmul sample`.
#[derive(Debug, Clone, Args)]
pub struct SampleArgs {
    /// A run folder (its latest checkpoint) or a checkpoint folder.
    #[arg(long, value_name = "DIR", default_value = "runs/cpu-small")]
    pub model: PathBuf,
    /// The text to continue.
    #[arg(long, default_value = "\n")]
    pub prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 500)]
    pub tokens: usize,
    /// Below 1: more predictable; above 1: more surprising; 0: always the
    /// most likely token.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Sample only among the k most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Sample only among the most likely tokens that make up probability p.
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop at this string (repeatable); it is not printed.
    #[arg(long = "stop", value_name = "TEXT")]
    pub stops: Vec<String>,
}

impl SampleArgs {
    /// The default `--model`: where `addmul train` writes its run.
    pub fn default_model() -> PathBuf {
        PathBuf::from("runs/cpu-small")
    }

    /// What these arguments choose (the model is [`SampleArgs::model`]).
    pub fn options(&self) -> SampleOptions {
        let sampling =
            SamplingConfig { temperature: self.temperature, top_k: self.top_k, top_p: self.top_p, seed: self.seed };
        SampleOptions {
            prompt: self.prompt.clone(),
            echo_prompt: true,
            max_tokens: self.tokens,
            sampling,
            stops: self.stops.clone(),
        }
    }
}

/// The arguments of `addmul finetune`.
#[derive(Debug, Clone, Args)]
pub struct FinetuneArgs {
    /// The pretrained model: a run folder, a checkpoint folder or a Hugging
    /// Face GPT-2 folder (it is only read).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// The text to fine-tune on.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// The run folder for checkpoints, the log and the loss curve.
    #[arg(long, value_name = "DIR", default_value = "runs/finetune")]
    pub out: PathBuf,
    /// Optimizer steps (the `finetune` preset: 300).
    #[arg(long)]
    pub max_iters: Option<u64>,
    /// Windows per batch (the preset: 4).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Worker threads (0: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Any training key, on top of the `finetune` preset: --set lr=3e-5,
    /// --set block_size=256 (the architecture is the model's).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,
    /// Replace a run already in --out.
    #[arg(long)]
    pub force: bool,
    /// Train low-rank adapters of this rank (LoRA) instead of every weight:
    /// the pretrained weights stay frozen, and each checkpoint holds the
    /// adapters as Hugging Face PEFT's adapter_model.safetensors and
    /// adapter_config.json (the learning rate, unless --set, is 1e-3).
    #[arg(long, value_name = "R")]
    pub lora_rank: Option<usize>,
    /// LoRA's alpha: the adapters' update is scaled by alpha / rank
    /// (default: 2 x rank).
    #[arg(long, value_name = "ALPHA", requires = "lora_rank")]
    pub lora_alpha: Option<f64>,
    /// The layers that get adapters, by name, as PEFT's target_modules:
    /// any of c_attn, c_proj, c_fc (the attention's c_proj and the MLP's
    /// both match c_proj).
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "c_attn", requires = "lora_rank")]
    pub lora_targets: Vec<String>,
    /// Characters to sample after training (0: none).
    #[arg(long, default_value_t = 200)]
    pub sample: usize,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl FinetuneArgs {
    /// What these arguments choose: the `finetune` preset, `--set`, the
    /// named flags, starting from `--model`. (A fine-tuning run is resumed
    /// as any run: `addmul train --resume --out DIR --data FILE`.)
    ///
    /// # Errors
    /// As [`TrainArgs::options`].
    pub fn options(&self) -> Result<TrainOptions> {
        let train = TrainArgs {
            preset: "finetune".into(),
            config: None,
            set: self.set.clone(),
            max_iters: self.max_iters,
            batch_size: self.batch_size,
            threads: self.threads,
            seed: None,
            data: Some(self.data.clone()),
            out: Some(self.out.clone()),
            resume: false,
            force: self.force,
            tokenizer: None,
            vocab_size: None,
            sample: self.sample,
            quiet: self.quiet,
        };
        let lora = self.lora_rank.map(|rank| LoraOptions {
            rank,
            alpha: self.lora_alpha.unwrap_or(2.0 * rank as f64),
            targets: self.lora_targets.clone(),
        });
        Ok(TrainOptions { base: Some(self.model.clone()), lora, ..train.options()? })
    }
}

/// The arguments of `addmul eval`.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// A run folder (its latest checkpoint), a checkpoint folder, or a
    /// Hugging Face GPT-2 folder.
    #[arg(long, value_name = "DIR", default_value = "runs/cpu-small")]
    pub model: PathBuf,
    /// The text.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Tokens between the starts of two windows (default: half the
    /// context, as the documentation's 512 of GPT-2's 1024).
    #[arg(long)]
    pub stride: Option<usize>,
}

/// The arguments of `addmul bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The text (default: tinyshakespeare, as `train` finds it).
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// cpu-small steps.
    #[arg(long, default_value_t = 2000)]
    pub iters: u64,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Tokens per round of the sampling speed (median of five rounds).
    #[arg(long, default_value_t = 1000)]
    pub sample_tokens: usize,
    /// Steps of the larger configuration (0: skip).
    #[arg(long, default_value_t = 30)]
    pub large_iters: u64,
    /// Where to write the JSON report.
    #[arg(long, value_name = "FILE", default_value = "bench.json")]
    pub out: PathBuf,
    /// An earlier report to print the speeds beside (ratios, > 1 is faster
    /// now); refused unless it was measured on the same CPU, vector
    /// instructions, threads, text and model shape. The new report is written
    /// first either way.
    #[arg(long, value_name = "FILE")]
    pub compare: Option<PathBuf>,
}

impl BenchArgs {
    /// What these arguments choose (the report goes to [`BenchArgs::out`]).
    pub fn options(&self) -> BenchOptions {
        let BenchArgs { ref data, iters, threads, sample_tokens, large_iters, out: _, compare: _ } = *self;
        let remote = corpus::Remote::tinyshakespeare();
        BenchOptions { data: data.clone(), remote, iters, threads, sample_tokens, large_iters }
    }
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}`: expected KEY=VALUE"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

/// Does what a command line asks: results (samples, the demos' output) go to
/// `out`, progress and summaries to `say`. A closed `out` (`addmul sample |
/// head`) ends the command quietly, as command-line tools do.
///
/// # Errors
/// Whatever the subcommand's function returns.
pub fn run(cli: Cli, out: &mut dyn Write, say: impl FnMut(&str) + 'static) -> Result<()> {
    match run_command(cli, out, say) {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result,
    }
}

fn run_command(cli: Cli, out: &mut dyn Write, mut say: impl FnMut(&str) + 'static) -> Result<()> {
    match cli.command {
        Command::Train(args) => {
            train(&args.options()?, out, say)?;
        }
        Command::Sample(args) => {
            let options = args.options();
            // The options first: a mistake shows before a model is loaded.
            options.sampling.validate()?;
            if !args.model.exists() {
                let train = if args.model == SampleArgs::default_model() {
                    "`addmul train`".to_string()
                } else {
                    format!("`addmul train --out {}`", args.model.display())
                };
                return Err(Error::Invalid {
                    what: format!("--model {}", args.model.display()),
                    problem: format!(
                        "does not exist; train a model into it with {train}, or give --model a run folder or checkpoint"
                    ),
                });
            }
            let (model, tokenizer) = load(&args.model)?;
            generate(&model, &tokenizer, &options, out)?;
        }
        Command::Finetune(args) => {
            train(&args.options()?, out, say)?;
        }
        Command::Eval(args) => {
            let (model, tokenizer) = load(&args.model)?;
            let text = crate::corpus::read_text(&args.data)?;
            let stride = args.stride.unwrap_or((model.config().block_size / 2).max(1));
            let ids = tokenizer.encode_text(&text)?;
            let p = addmul_gpt::perplexity(&model, &ids, stride).map_err(|e| match e {
                addmul_gpt::GptError::Config { field: "stride", .. } => Error::Invalid {
                    what: format!("--stride {stride}"),
                    problem: format!("must be in 1..={} (the model's context)", model.config().block_size),
                },
                e => e.into(),
            })?;
            writeln!(out, "perplexity {:.4}", p.perplexity)
                .map_err(|source| Error::Io { context: "writing the perplexity".into(), source })?;
            say(&format!(
                "{} tokens of {}; mean negative log-likelihood {:.6} nats over {} of them, {} windows of up to {} \
                 tokens, stride {stride}",
                ids.len(),
                args.data.display(),
                p.nll,
                p.tokens,
                p.windows,
                model.config().block_size
            ));
        }
        Command::Bench(args) => {
            let report = bench(&args.options(), &mut say)?;
            let json = serde_json::to_string_pretty(&report).expect("the report serialises") + "\n";
            addmul_gpt::checkpoint::write_atomically(&args.out, json.as_bytes())?;
            say(&format!("report: {}", args.out.display()));
            if let Some(earlier) = &args.compare {
                for line in compare_bench(&report, earlier)? {
                    say(&line);
                }
            }
        }
        Command::Tokenizer(TokenizerCommand::Train { data, kind, vocab_size, out: file }) => {
            say(&tokenizer_train(&data, kind, vocab_size, &file)?);
        }
        Command::LeafFlower { seed, figures, every } => {
            let options = crate::demos::LeafFlowerOptions { seed, figures, progress_every: every as usize };
            crate::demos::leaf_flower(&options, out)?;
        }
        Command::Transformer(TransformerCommand::Copy(args)) => {
            crate::demos::copy_task(&args.options(), out)?;
        }
        Command::Transformer(TransformerCommand::Numbers(args)) => {
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            args.run(&command, out)?;
        }
        Command::Explore(args) => {
            let options = crate::explore::ExploreOptions {
                host: args.host,
                port: args.port,
                model: args.model,
                runs: args.runs,
                book: args
                    .book
                    .or_else(|| Some(PathBuf::from("book/build")).filter(|b| b.join("index.html").is_file())),
            };
            // The address goes to standard output (first line), for scripts
            // and tests; the rest to `say`.
            let mut first = true;
            crate::explore::run(&options, args.open, |line| {
                if std::mem::take(&mut first) {
                    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
                } else {
                    say(line);
                }
            })?;
        }
        Command::CharModel { data, epochs } => {
            let options = crate::demos::CharModelOptions { text: data, epochs, ..Default::default() };
            crate::demos::char_model(&options, out)?;
        }
    }
    Ok(())
}
