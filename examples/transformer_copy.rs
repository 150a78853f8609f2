//! Chapter 15: a Transformer learns to copy random sequences of the symbols
//! 1 to 10, then copies sequences it never saw.
//!
//! ```text
//! cargo run --release --example transformer_copy [-- --steps 1500 --threads 2]
//! ```

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Train a Transformer on the copy task.
#[derive(Debug, Parser)]
struct Args {
    /// Optimizer steps.
    #[arg(long, default_value_t = 1500)]
    steps: u64,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Warmup steps of the learning-rate schedule.
    #[arg(long)]
    warmup: Option<u64>,
    /// Factor of the learning-rate schedule (peak rate: factor / sqrt(d_model · warmup)).
    #[arg(long)]
    lr_factor: Option<f64>,
    /// Seed of weights and data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> Result<(), addmul::Error> {
    let args = Args::parse();
    let defaults = addmul::demos::CopyOptions::default();
    let options = addmul::demos::CopyOptions {
        steps: args.steps,
        threads: args.threads,
        seed: args.seed,
        warmup: args.warmup.unwrap_or(defaults.warmup),
        lr_factor: args.lr_factor.unwrap_or(defaults.lr_factor),
        ..defaults
    };
    addmul::demos::copy_task(&options, &mut std::io::stdout().lock())?;
    Ok(())
}
