//! `cargo xtask book`.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::chapters::{self, Gen};
use crate::checks::check_book;
use crate::values::Values;
#[cfg(feature = "book")]
use crate::values::ValuesPreprocessor;

/// Generates (unless `generate` is false), checks and builds the book.
pub fn run(root: &Path, generate: bool) -> Result<()> {
    let book_dir = root.join("book");
    let src = book_dir.join("src");
    let generated = src.join("generated");
    let values_file = generated.join("values.json");
    let values = if generate {
        let start = Instant::now();
        if generated.exists() {
            std::fs::remove_dir_all(&generated).with_context(|| format!("cleaning {}", generated.display()))?;
        }
        std::fs::create_dir_all(generated.join("figures"))?;
        let mut g = Gen::new(generated.clone());
        chapters::generate_all(&mut g)?;
        std::fs::write(&values_file, g.values.to_json())?;
        eprintln!(
            "generated {} values and the figures in {:.1}s",
            g.values.keys().count(),
            start.elapsed().as_secs_f64()
        );
        g.values
    } else {
        let text = std::fs::read_to_string(&values_file)
            .with_context(|| format!("reading {} (run `cargo xtask book` once first)", values_file.display()))?;
        Values::from_json(&text)?
    };
    crate::readme::update(root)?;
    check_book(root, Some(&values))?;
    build(&book_dir, values)
}

/// Renders the book with mdBook, the values and KaTeX.
#[cfg(feature = "book")]
fn build(book_dir: &Path, values: Values) -> Result<()> {
    let mut book = mdbook_driver::MDBook::load(book_dir).map_err(|e| anyhow::anyhow!("loading the book: {e:#}"))?;
    book.with_preprocessor(ValuesPreprocessor(values));
    book.with_preprocessor(mdbook_katex::preprocess::KatexProcessor);
    book.with_preprocessor(crate::math::MathGuard);
    book.build().map_err(|e| anyhow::anyhow!("building the book: {e:#}"))?;
    eprintln!("book built: {}", book_dir.join("build").join("index.html").display());
    Ok(())
}

/// Without the `book` feature (the test build), the book cannot be rendered.
#[cfg(not(feature = "book"))]
fn build(_: &Path, _: Values) -> Result<()> {
    anyhow::bail!("this xtask was built without the `book` feature; run `cargo xtask book`, whose alias enables it")
}
