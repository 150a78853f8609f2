//! Chapter 3 of the book: the article's first language model. It reads 12
//! characters, one number each (a = 1, b = 2, ...), predicts the next one,
//! and writes text one character at a time.
//!
//! ```text
//! cargo run --release --example char_model [TEXT_FILE]
//! ```
//!
//! Without a file it trains on the nursery rhymes built into `addmul-charlm`.

fn main() -> Result<(), addmul::Error> {
    let text = std::env::args_os().nth(1).map(std::path::PathBuf::from);
    let options = addmul::demos::CharModelOptions { text, ..Default::default() };
    addmul::demos::char_model(&options, &mut std::io::stdout().lock())?;
    Ok(())
}
