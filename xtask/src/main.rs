//! addmul's automation, in Rust: `cargo xtask <command>`.
//!
//! - `cargo xtask book`: generate every number, transcript and figure the book
//!   cites (by running the crates' own code), check every `{{#include}}`
//!   anchor and `{{#value}}` key, and build the book into `book/build`.
//! - `cargo xtask bench-record`: merge criterion's medians from `cargo bench`
//!   into `book/measured/criterion.json`, where the book reads its timings.

mod book;
mod chapters;
mod checks;
mod measured;
mod tidy;
mod values;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "addmul's automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate the book's numbers and figures, check it, and build it.
    Book {
        /// Only check includes and build; reuse the generated files.
        #[arg(long)]
        no_generate: bool,
    },
    /// Merge criterion's medians (from `cargo bench`) into
    /// book/measured/criterion.json, where the book reads its timings.
    BenchRecord,
}

/// The repository root (the parent of `xtask/`).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the repository").to_path_buf()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Book { no_generate } => book::run(&project_root(), !no_generate),
        Command::BenchRecord => measured::record(&project_root()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
