//! Chapter 15: a Transformer learns to copy random sequences of the symbols
//! 1 to 10, then copies sequences it never saw (the same as
//! `addmul transformer copy`).
//!
//! ```text
//! cargo run --release --example transformer_copy [-- --steps 3000 --threads 2]
//! ```

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Train a Transformer on the copy task.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: addmul::demos::CopyArgs,
}

fn main() -> Result<(), addmul::Error> {
    addmul::alloc::keep_freed_memory();
    addmul::demos::copy_task(&Cli::parse().args.options(), &mut std::io::stdout().lock())?;
    Ok(())
}
