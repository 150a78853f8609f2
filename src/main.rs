//! The `addmul` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::LeafFlower { seed, figures, every } => {
            let options = addmul::demos::LeafFlowerOptions { seed, figures, progress_every: every as usize };
            addmul::demos::leaf_flower(&options, &mut std::io::stdout().lock()).map(drop)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
