//! Chapter 3: the article's first language model, trained on nursery rhymes
//! (or any text) and sampled one character at a time.

use std::io::Write;
use std::path::PathBuf;

use addmul_charlm::{CharModelConfig, NURSERY_RHYMES, Sampling, TrainingRun, train};
use addmul_core::rng;
use addmul_tokenizer::{ArticleChars, Tokenizer};
use addmul_train::EpochRecord;

use crate::{Error, Result};

/// Options of the character-model demo.
#[derive(Debug, Clone, Default)]
pub struct CharModelOptions {
    /// A text file to train on instead of the built-in nursery rhymes.
    pub text: Option<PathBuf>,
    /// Passes over the text (default: the article configuration's).
    pub epochs: Option<usize>,
    /// Seed of the weights and shuffling (default: the configuration's).
    pub seed: Option<u64>,
    /// Print every `progress_every`-th epoch (0: every 20th).
    pub progress_every: usize,
    /// The prompt to continue (default: "humpty dumpt").
    pub prompt: Option<String>,
    /// How many characters to generate (0: 200).
    pub length: usize,
}

/// What the demo trained and generated.
#[derive(Debug, Clone)]
pub struct CharModelDemo {
    /// The training run.
    pub run: TrainingRun,
    /// The prompt.
    pub prompt: String,
    /// The most likely next characters after the prompt, with probabilities.
    pub next: Vec<(char, f64)>,
    /// The greedy continuation.
    pub greedy: String,
    /// A continuation sampled at temperature 0.8 (seed 1).
    pub sampled: String,
}

/// Encodes the prompt as the article does, trains the 12-character model,
/// and continues the prompt greedily and by sampling, printing everything to
/// `out`.
///
/// # Errors
/// A file that cannot be read, a prompt outside the article's alphabet, or a
/// training error.
pub fn char_model(options: &CharModelOptions, out: &mut dyn Write) -> Result<CharModelDemo> {
    let w = |e| Error::Io { context: "writing progress".into(), source: e };
    let (name, text) = match &options.text {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path)
                .map_err(|source| Error::Io { context: format!("reading {}", path.display()), source })?,
        ),
        None => ("nursery rhymes".to_string(), NURSERY_RHYMES.to_string()),
    };
    let prompt = options.prompt.clone().unwrap_or_else(|| "humpty dumpt".to_string());
    let length = if options.length == 0 { 200 } else { options.length };
    let every = if options.progress_every == 0 { 20 } else { options.progress_every };

    writeln!(out, "== The article's code: one number per character ==").map_err(w)?;
    let ids = ArticleChars.encode(&prompt).map_err(addmul_charlm::Error::from)?;
    writeln!(out, "{prompt:?} -> {ids:?}").map_err(w)?;

    let mut config = CharModelConfig::article();
    config.epochs = options.epochs.unwrap_or(config.epochs);
    config.seed = options.seed.unwrap_or(config.seed);
    let hidden: Vec<String> = config.hidden.iter().map(ToString::to_string).collect();
    writeln!(
        out,
        "\n== Training on {name} ({} characters): {} inputs, hidden {}, {} outputs ==",
        text.chars().count(),
        config.context,
        hidden.join("-"),
        addmul_charlm::NUM_CHARS
    )
    .map_err(w)?;
    let run = train(&config, &text, &mut |r: &EpochRecord| {
        if r.epoch == 1 || r.epoch.is_multiple_of(every) {
            let val = r.val_loss.map_or(String::new(), |v| format!(", validation loss {v:.4}"));
            // Progress output is best effort: a closed pipe must not stop training.
            let _ = writeln!(out, "epoch {:>4}: training loss {:.4}{val}", r.epoch, r.train_loss);
        }
    })?;
    writeln!(out, "{} training windows, {} validation windows (the end of the text)", run.n_train, run.n_val)
        .map_err(w)?;
    if run.dropped > 0 {
        writeln!(out, "{} characters outside the article's alphabet were dropped", run.dropped).map_err(w)?;
    }

    let next = run.model.probabilities(&prompt).map_err(Error::from)?;
    writeln!(out, "\n== What comes after {prompt:?}? ==").map_err(w)?;
    for (c, p) in next.iter().take(3) {
        writeln!(out, "{c:?}: {:.1}%", 100.0 * p).map_err(w)?;
    }
    let greedy = run.model.generate(&prompt, length, Sampling::Greedy, &mut rng(0))?;
    writeln!(out, "\n== Greedy: always the most likely character ==\n{prompt}{greedy}").map_err(w)?;
    let sampled = run.model.generate(&prompt, length, Sampling::Temperature(0.8), &mut rng(1))?;
    writeln!(out, "\n== Sampled at temperature 0.8 ==\n{prompt}{sampled}").map_err(w)?;
    let next = next.into_iter().take(5).collect();
    Ok(CharModelDemo { run, prompt, next, greedy, sampled })
}
