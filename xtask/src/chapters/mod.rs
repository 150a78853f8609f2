//! Generators: each runs the crates' own code and records the numbers,
//! transcripts and figures its chapters cite.

mod ablations;
mod architecture;
mod attention;
mod blocks;
mod embeddings;
mod exercises;
mod gpt;
mod leaf_flower;
mod real_gpt2;
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
    /// The GPT trained on the book's text (chapter 14's generator makes it;
    /// chapter 16's loads, measures and fine-tunes it).
    pub book_gpt: Option<addmul::gpt::Gpt<f32>>,
    /// Chapter 5's network on the book's text: validation loss by training
    /// examples seen (chapter 4 draws it beside the GPT's).
    pub book_mlp_curve: Vec<(f64, f64)>,
    /// That network itself (chapter 4 asks it and the GPT the same question).
    pub book_mlp: Option<addmul::charlm::CharModel>,
}

impl Gen {
    /// A generator writing into `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Gen { dir, values: Values::default(), book_gpt: None, book_mlp_curve: Vec::new(), book_mlp: None }
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

/// `1234567` as `1,234,567`, as the book prints large counts.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Runs every generator.
pub fn generate_all(g: &mut Gen) -> Result<()> {
    type Generator = fn(&mut Gen) -> Result<()>;
    let chapters: [(&str, Generator); 11] = [
        ("chapters 1-2 (leaf/flower)", leaf_flower::generate),
        ("chapter 5 (embeddings)", embeddings::generate),
        ("chapters 7, 8, 13 (attention, softmax, positions)", attention::generate),
        ("chapters 4 and 14 (the GPT)", gpt::generate),
        ("chapters 9-12 (residual, layer norm, dropout, multi-head)", blocks::generate),
        ("chapters 3 and 6 (text as numbers, tokenizers)", tokenizer::generate),
        ("chapter 15 (the Transformer)", transformer::generate),
        ("chapter 16 (the real GPT-2)", real_gpt2::generate),
        ("the exercises' answers", exercises::generate),
        ("chapters 8 and 12 (what breaks without the scale, with one head)", ablations::generate),
        ("chapters 14 and 15 (the architectures drawn)", architecture::generate),
    ];
    for (i, (name, generate)) in chapters.iter().enumerate() {
        // The whole run takes minutes: say where it is.
        eprint!("[{}/{}] {name} ...", i + 1, chapters.len());
        let start = std::time::Instant::now();
        generate(g).context(*name)?;
        eprintln!(" {:.1}s", start.elapsed().as_secs_f64());
    }
    g.text("appendix_benchmarks.md", &crate::measured::table(&crate::project_root())?).context("the appendix")?;
    Ok(())
}
