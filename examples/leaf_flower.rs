//! Chapters 1 and 2 of the book: the article's leaf/flower network with fixed
//! weights, then a network that learns its weights from generated data, and
//! one that overfits.
//!
//! ```text
//! cargo run --release --example leaf_flower [FIGURES_DIR]
//! ```

fn main() -> Result<(), addmul::Error> {
    let figures = std::env::args_os().nth(1).map(std::path::PathBuf::from);
    let options = addmul::demos::LeafFlowerOptions { figures, ..Default::default() };
    addmul::demos::leaf_flower(&options, &mut std::io::stdout().lock())?;
    Ok(())
}
