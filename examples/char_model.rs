//! Chapter 3 of the book: the article's first language model. It reads 12
//! characters, one number each (a = 1, b = 2, ...), predicts the next one,
//! and writes text one character at a time.
//!
//! ```text
//! cargo run --release --example char_model [TEXT_FILE [EPOCHS]]
//! ```
//!
//! Without a file it trains on the nursery rhymes built into `addmul-charlm`
//! for the book's 200 epochs; a large text needs fewer.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let text = args.next().map(std::path::PathBuf::from);
    let epochs = args.next().map(|e| e.to_string_lossy().parse::<usize>()).transpose()?;
    let options = addmul::demos::CharModelOptions { text, epochs, ..Default::default() };
    addmul::demos::char_model(&options, &mut std::io::stdout().lock())?;
    Ok(())
}
