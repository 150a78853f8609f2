//! Chapter 15: a Transformer learns to translate numbers from English words
//! into German ("twenty-one" -> "einundzwanzig"), is tested on numbers it
//! never saw, with greedy decoding and beam search, and is compared with a
//! decoder-only GPT trained on "English <sep> German" with the same data
//! (the same as `addmul transformer numbers`).
//!
//! ```text
//! cargo run --release --example transformer_numbers [-- --threads 2 --figures DIR --json FILE]
//! ```
//!
//! `--json` writes the measurements with this command, today's date, the
//! CPU, the configuration and the SHA-256 of the generated data; the book
//! reads `book/measured/transformer_numbers.json` and refuses it once the
//! configuration or the data the example would use have changed.

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Train and test the number-translation Transformer (and the GPT contrast).
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: addmul::demos::NumbersArgs,
}

fn main() -> Result<(), addmul::Error> {
    addmul::alloc::keep_freed_memory();
    let command = std::iter::once("cargo run --release --example transformer_numbers --".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    Cli::parse().args.run(&command, &mut std::io::stdout().lock())?;
    Ok(())
}
