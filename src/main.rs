//! The `addmul` command: parses the arguments and hands them to
//! [`addmul::cli::run`], where the subcommands live (so that tests can reach
//! them without a process).

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use addmul::Error;
use addmul::app;
use addmul::cli::{self, Cli};
use addmul::gpt::GptError;
use clap::Parser;

/// Training allocates and frees the same large buffers every step; mimalloc
/// keeps them instead of returning them to the system and faulting them back
/// in (measured: about a sixth of a training step's time with glibc's malloc;
/// `keep_freed_memory` makes it keep even the largest).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Ctrl-C presses so far.
static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);

/// The first Ctrl-C during training lets the current step finish and a
/// checkpoint be written (`addmul train` then exits with 130); a second one,
/// or one when nothing is training, stops at once. Checkpoints are written
/// atomically, so stopping at once never damages the last one.
fn on_interrupt() {
    if INTERRUPTS.fetch_add(1, Ordering::SeqCst) == 0 && app::request_stop() {
        eprintln!("\nstopping after this step and saving a checkpoint (Ctrl-C again to stop at once)");
    } else {
        std::process::exit(130);
    }
}

fn main() -> ExitCode {
    addmul::alloc::keep_freed_memory();
    if let Err(e) = ctrlc::set_handler(on_interrupt) {
        eprintln!("warning: Ctrl-C will stop training without a checkpoint ({e})");
    }
    match cli::run(Cli::parse(), &mut std::io::stdout(), |line| eprintln!("{line}")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Gpt(e @ GptError::Stopped { .. })) => {
            eprintln!("{e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
