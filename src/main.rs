//! The `addmul` command: parses the arguments and hands them to
//! [`addmul::cli::run`], where the subcommands live (so that tests can reach
//! them without a process).

use std::process::ExitCode;

use addmul::cli::{self, Cli};
use clap::Parser;

/// Training allocates and frees the same large buffers every step; mimalloc
/// keeps them instead of returning them to the system and faulting them back
/// in (measured: about a sixth of a training step's time with glibc's malloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match cli::run(Cli::parse(), &mut std::io::stdout(), |line| eprintln!("{line}")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
