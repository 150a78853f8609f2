//! Chapter 15: a Transformer learns to translate numbers from English words
//! into German ("twenty-one" -> "einundzwanzig"), is tested on numbers it
//! never saw, with greedy decoding and beam search, and is compared with a
//! decoder-only GPT trained on "English <sep> German" with the same data.
//!
//! ```text
//! cargo run --release --example transformer_numbers [-- --threads 2 --figures DIR --json FILE]
//! ```
//!
//! `--json` writes the measurements (with this command and today's date);
//! the book reads `book/measured/transformer_numbers.json`.

use std::path::PathBuf;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Train and test the number-translation Transformer (and the GPT contrast).
#[derive(Debug, Parser)]
struct Args {
    /// Optimizer steps.
    #[arg(long, default_value_t = 2000)]
    steps: u64,
    /// Pairs per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Test numbers (never drawn for training).
    #[arg(long, default_value_t = 2000)]
    test_size: usize,
    /// Warmup steps of the learning-rate schedule.
    #[arg(long)]
    warmup: Option<u64>,
    /// Factor of the learning-rate schedule (peak rate: factor / sqrt(d_model · warmup)).
    #[arg(long)]
    lr_factor: Option<f64>,
    /// Seed of the split, the weights and the training numbers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Skip the decoder-only GPT comparison.
    #[arg(long)]
    no_gpt: bool,
    /// Write the cross-attention figure into this folder.
    #[arg(long, value_name = "DIR")]
    figures: Option<PathBuf>,
    /// Write the measurements as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn main() -> Result<(), addmul::Error> {
    let args = Args::parse();
    let defaults = addmul::demos::NumbersOptions::default();
    let options = addmul::demos::NumbersOptions {
        warmup: args.warmup.unwrap_or(defaults.warmup),
        lr_factor: args.lr_factor.unwrap_or(defaults.lr_factor),
        steps: args.steps,
        batch_size: args.batch_size,
        threads: args.threads,
        test_size: args.test_size,
        seed: args.seed,
        gpt: !args.no_gpt,
        figures: args.figures.clone(),
        ..defaults
    };
    let run = addmul::demos::numbers_task(&options, &mut std::io::stdout().lock())?;
    if let Some(path) = &args.json {
        let command = std::iter::once("cargo run --release --example transformer_numbers --".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" ");
        addmul::demos::write_numbers_record(&run.report, &command, path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
