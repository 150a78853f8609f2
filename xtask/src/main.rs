//! addmul's automation, in Rust: `cargo xtask <command>`.
//!
//! - `cargo xtask book`: generate every number, transcript and figure the book
//!   cites (by running the crates' own code), write the README's table of
//!   measured figures, check every `{{#include}}` anchor and `{{#value}}` key
//!   and that no prose types a measured-looking number by hand, and build the
//!   book into `book/build`.
//! - `cargo xtask bench-record`: merge criterion's medians from `cargo bench`
//!   into `book/measured/criterion.json`, where the book reads its timings.
//! - `cargo xtask fuzz --seconds S`: run every libFuzzer target in `fuzz/`
//!   and report executions, crashes, out-of-memory and time-outs.
//! - `cargo xtask seeds N`: run every property test under N different
//!   `PROPTEST_RNG_SEED`s and report each failure with its minimal input.

mod book;
mod browser;
mod chapters;
mod checks;
mod explorer_check;
mod fuzz;
mod math;
mod measured;
mod prose_numbers;
mod readme;
mod seeds;
mod tidy;
mod values;
mod webdriver;

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
    /// Open every page of the built book and of `addmul explore` in headless
    /// Chromium: images loaded, formulas laid out, no TeX showing as text, no
    /// console error; one real interaction per explorer page; screenshots in
    /// target/browser/screenshots.
    Browser {
        /// Only the book.
        #[arg(long, conflicts_with = "explorer_only")]
        book_only: bool,
        /// Only the explorer.
        #[arg(long)]
        explorer_only: bool,
        /// Replace the explorer screenshot the book's introduction shows
        /// (book/src/images/explorer.png) with this run's.
        #[arg(long)]
        update_book_screenshot: bool,
    },
    /// Merge criterion's medians (from `cargo bench`) into
    /// book/measured/criterion.json, where the book reads its timings.
    BenchRecord,
    /// Run every property test under N different PROPTEST_RNG_SEEDs (first,
    /// first + 1, ...) and report each failure with its seed and minimal
    /// failing input; fails if any test failed.
    Seeds {
        /// How many seeds.
        count: u64,
        /// The first seed.
        #[arg(long, default_value_t = 1)]
        first: u64,
    },
    /// Run the libFuzzer targets in fuzz/ (cargo fuzz, nightly) with a 2 GB
    /// memory limit; report executions, crashes, out-of-memory and time-outs
    /// per target; fails on any finding.
    Fuzz {
        /// Seconds per target at most.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Stop a target after this many executions.
        #[arg(long)]
        runs: Option<u64>,
        /// Only these targets (default: all).
        targets: Vec<String>,
    },
}

/// The repository root (the parent of `xtask/`).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the repository").to_path_buf()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Book { no_generate } => book::run(&project_root(), !no_generate),
        Command::Browser { book_only, explorer_only, update_book_screenshot } => {
            browser::run(&project_root(), !explorer_only, !book_only, update_book_screenshot)
        }
        Command::BenchRecord => measured::record(&project_root()),
        Command::Seeds { count, first } => seeds::run(&project_root(), count, first),
        Command::Fuzz { seconds, runs, targets } => {
            fuzz::run(&project_root(), seconds, runs, &targets).and_then(|reports| {
                let found: u32 = reports.iter().map(|r| r.crashes + r.ooms + r.timeouts).sum();
                if found > 0 {
                    anyhow::bail!("{found} finding(s); the inputs are in fuzz/artifacts/");
                }
                Ok(())
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
