//! Generators: each runs the crates' own code and records the numbers,
//! transcripts and figures its chapters cite.

mod attention;
mod blocks;
mod embeddings;
mod gpt;
mod leaf_flower;
mod tokenizer;
mod transformer;

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::values::Values;

/// Where generated files go, and the values computed so far.
pub struct Gen {
    /// `book/src/generated`.
    pub dir: PathBuf,
    /// Every `{{#value}}`.
    pub values: Values,
}

impl Gen {
    /// A generator writing into `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Gen { dir, values: Values::default() }
    }

    /// The path of figure `name` (under `generated/figures`).
    pub fn figure(&self, name: &str) -> PathBuf {
        self.dir.join("figures").join(name)
    }

    /// Writes a generated text file (a transcript, a table) for `{{#include}}`.
    pub fn text(&self, name: &str, contents: &str) -> Result<()> {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))
    }

    /// Records `key` = `value` with `decimals` decimals.
    pub fn num(&mut self, key: &str, value: f64, decimals: usize) {
        self.values.set(key, format!("{value:.decimals$}"));
    }

    /// Records `key` = `100 · fraction` with one decimal and a percent sign.
    pub fn percent(&mut self, key: &str, fraction: f64) {
        self.values.set(key, format!("{:.1}%", 100.0 * fraction));
    }
}

/// Runs every generator.
pub fn generate_all(g: &mut Gen) -> Result<()> {
    leaf_flower::generate(g).context("chapters 1-2 (leaf/flower)")?;
    embeddings::generate(g).context("chapter 5 (embeddings)")?;
    attention::generate(g).context("chapters 7, 8, 13 (attention, softmax, positions)")?;
    gpt::generate(g).context("chapters 4 and 14 (the GPT)")?;
    blocks::generate(g).context("chapters 9-12 (residual, layer norm, dropout, multi-head)")?;
    tokenizer::generate(g).context("chapters 3 and 6 (text as numbers, tokenizers)")?;
    transformer::generate(g).context("chapter 15 (the Transformer)")?;
    g.text("appendix_benchmarks.md", &crate::measured::table(&crate::project_root())?).context("the appendix")?;
    Ok(())
}
