//! The article's first language model: read 12 characters, predict the
//! 13th.
//!
//! Each character becomes one number as the article encodes them (a = 1,
//! b = 2, ..., see [`ArticleChars`]); the 12 numbers of a window go into a
//! feed-forward network ([`Mlp`]) whose output layer has one neuron per
//! character. Softmax turns those scores into probabilities, training
//! minimises the cross-entropy of the character that really came next, and
//! generation appends a character and slides the window by one: "humpty
//! dumpt" → "y", then "umpty dumpty" → " ", and so on.
//!
//! The way characters become inputs is an [`InputEncoding`]: the article's
//! one number per character ([`InputEncoding::Number`]), or a learned
//! embedding of several numbers per character ([`InputEncoding::Embedding`],
//! chapter 5), trained with the rest of the network.
//!
//! # Example
//! ```
//! use addmul_charlm::{CharModelConfig, Sampling, train, NURSERY_RHYMES};
//!
//! let config = CharModelConfig { epochs: 2, ..CharModelConfig::article() };
//! let run = train(&config, NURSERY_RHYMES, &mut |_| {})?;
//! let next = run.model.predict("humpty dumpt")?;
//! let text = run.model.generate("humpty dumpt", 20, Sampling::Greedy, &mut addmul_core::rng(0))?;
//! assert_eq!(text.chars().count(), 20);
//! # let _ = next;
//! # Ok::<(), addmul_charlm::Error>(())
//! ```
#![deny(missing_docs)]

use addmul_core::{Init, Layer, Matrix, Param, Parameters, Rng, rng, visit_child, visit_child_mut};
use addmul_embedding::Embedding;
use addmul_nn::{Activation, Mlp};
use addmul_softmax::{cross_entropy, softmax_in_place};
use addmul_tokenizer::{ArticleChars, Tokenizer};
use addmul_train::{AdamW, AdamWConfig, EpochRecord, FitConfig, History, Mode, fit, split_in_order};
use rand::RngExt;

/// Nursery rhymes in the public domain (Humpty Dumpty among them), written
/// in the article's alphabet: the training text of chapter 3.
pub const NURSERY_RHYMES: &str = include_str!("../data/nursery_rhymes.txt");

/// The article's context: 12 characters.
pub const ARTICLE_CONTEXT: usize = 12;

/// The number of characters the model can predict: every id of the
/// article's code but the padding (ids 1..=36 are classes 0..=35).
pub const NUM_CHARS: usize = ArticleChars::VOCAB_SIZE - 1;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A numeric error (shapes, a bad setting, a loss that is not finite).
    #[error(transparent)]
    Numeric(#[from] addmul_core::Error),
    /// A character outside the article's alphabet, or an unknown id.
    #[error(transparent)]
    Tokenizer(#[from] addmul_tokenizer::Error),
    /// The text has fewer characters than the model needs.
    #[error("the training text has {chars} characters after normalising; at least {needed} are needed")]
    TextTooShort {
        /// Characters in the text.
        chars: usize,
        /// Characters needed.
        needed: usize,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

// ANCHOR: input_encoding
/// How a window of character ids becomes the network's input column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputEncoding {
    /// The article's way: one number per character, its id (a = 1, ...,
    /// padding 0). A window of 12 characters is 12 inputs.
    Number,
    /// A learned table of `dim` numbers per character (the padding has its
    /// own vector): a window of 12 characters with `dim` = 10 is 120 inputs.
    Embedding {
        /// Numbers per character.
        dim: usize,
    },
}

impl InputEncoding {
    /// Numbers per character.
    pub fn width(self) -> usize {
        match self {
            InputEncoding::Number => 1,
            InputEncoding::Embedding { dim } => dim,
        }
    }
}
// ANCHOR_END: input_encoding

/// One training example: a window of character ids and the id that follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// `context` ids, oldest first; [`ArticleChars::PAD`] before the text
    /// starts.
    pub window: Vec<u32>,
    /// The id of the next character (never the padding).
    pub next: u32,
}

// ANCHOR: examples
/// Every position of `ids` as an example: the `context` ids before it
/// (padded on the left at the start of the text) and the id itself.
pub fn examples(ids: &[u32], context: usize) -> Vec<Example> {
    (0..ids.len())
        .map(|i| {
            let mut window = vec![ArticleChars::PAD; context.saturating_sub(i)];
            window.extend_from_slice(&ids[i.saturating_sub(context)..i]);
            Example { window, next: ids[i] }
        })
        .collect()
}
// ANCHOR_END: examples

/// Everything that decides a training run.
#[derive(Debug, Clone, PartialEq)]
pub struct CharModelConfig {
    /// Characters the model reads.
    pub context: usize,
    /// How characters become inputs.
    pub encoding: InputEncoding,
    /// Widths of the hidden layers (ReLU between layers).
    pub hidden: Vec<usize>,
    /// Passes over the training text.
    pub epochs: usize,
    /// Windows per optimizer step.
    pub batch_size: usize,
    /// AdamW's learning rate.
    pub lr: f64,
    /// The share of the text, at its end, held out for validation (0: none).
    pub val_fraction: f64,
    /// Seed for the initial weights and the shuffling.
    pub seed: u64,
}

impl CharModelConfig {
    // ANCHOR: article_config
    /// The article's model: 12 characters in, one number each; two hidden
    /// layers of 128 neurons; one output per character.
    pub fn article() -> Self {
        CharModelConfig {
            context: ARTICLE_CONTEXT,
            encoding: InputEncoding::Number,
            hidden: vec![128, 128],
            epochs: 200,
            batch_size: 64,
            lr: 3e-3,
            val_fraction: 0.1,
            seed: 3,
        }
    }
    // ANCHOR_END: article_config

    // ANCHOR: embedding_config
    /// The article's embedding step: the same model, but every character is
    /// 10 learned numbers, so 12 characters are 120 inputs.
    pub fn article_embedding() -> Self {
        CharModelConfig { encoding: InputEncoding::Embedding { dim: 10 }, ..CharModelConfig::article() }
    }
    // ANCHOR_END: embedding_config
}

/// How the next character is chosen from the predicted probabilities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Always the most likely character (the article's "largest output wins").
    Greedy,
    /// Draw a character at random with probabilities `softmax(scores / T)`:
    /// `T < 1` sharpens them, `T > 1` flattens them.
    Temperature(f64),
}

/// The network and how it reads its input.
#[derive(Debug, Clone, PartialEq)]
pub struct CharModel {
    context: usize,
    encoding: InputEncoding,
    embedding: Option<Embedding<f32>>,
    net: Mlp<f32>,
}

impl CharModel {
    /// A model with fresh weights.
    ///
    /// # Errors
    /// [`addmul_core::Error::InvalidValue`] for a context or layer width of 0.
    pub fn new(config: &CharModelConfig, rng: &mut Rng) -> Result<Self> {
        if config.context == 0 {
            return Err(addmul_core::Error::InvalidValue { what: "context", value: 0.0, requirement: ">= 1" }.into());
        }
        let embedding = match config.encoding {
            InputEncoding::Number => None,
            InputEncoding::Embedding { dim } => {
                Some(Embedding::new(ArticleChars::VOCAB_SIZE, dim, Init::Normal { std: 0.1 }, rng)?)
            }
        };
        let mut sizes = vec![config.context * config.encoding.width()];
        sizes.extend(&config.hidden);
        sizes.push(NUM_CHARS);
        let net = Mlp::new(&sizes, Activation::Relu, Init::HeNormal, rng)?;
        Ok(CharModel { context: config.context, encoding: config.encoding, embedding, net })
    }

    /// Characters the model reads.
    pub fn context(&self) -> usize {
        self.context
    }

    /// The network.
    pub fn network(&self) -> &Mlp<f32> {
        &self.net
    }

    /// The learned character vectors, `[dim, vocab]` (one column per
    /// [`ArticleChars`] id), if the model has them.
    pub fn embedding(&self) -> Option<&Embedding<f32>> {
        self.embedding.as_ref()
    }

    // ANCHOR: features
    /// The input matrix for `windows`: one column per window,
    /// `[context × width, n]`.
    ///
    /// # Errors
    /// [`addmul_core::Error::OutOfRange`] for an id outside the article's
    /// alphabet when the model has an embedding.
    pub fn features(&self, windows: &[&[u32]]) -> Result<Matrix<f32>> {
        Ok(self.inputs(windows)?)
    }

    fn inputs(&self, windows: &[&[u32]]) -> addmul_core::Result<Matrix<f32>> {
        Ok(match &self.embedding {
            None => Matrix::from_fn(self.context, windows.len(), |i, j| windows[j].get(i).map_or(0.0, |&id| id as f32)),
            Some(table) => {
                // Looking up every window's characters gives [dim, n · context]:
                // each window's vectors one after the other, which is the same
                // memory as [context · dim, n], one stacked column per window.
                let looked_up = table.forward(&self.flat_ids(windows))?;
                looked_up.reshape_generic(nalgebra::Dyn(self.context * table.dim()), nalgebra::Dyn(windows.len()))
            }
        })
    }

    /// The windows' ids one after the other, padded to `context` each.
    fn flat_ids(&self, windows: &[&[u32]]) -> Vec<usize> {
        windows
            .iter()
            .flat_map(|w| (0..self.context).map(|i| w.get(i).map_or(ArticleChars::PAD as usize, |&id| id as usize)))
            .collect()
    }
    // ANCHOR_END: features

    /// The window the model reads after `text`: its last `context`
    /// characters as ids, padded on the left.
    ///
    /// # Errors
    /// [`addmul_tokenizer::Error::UnknownChar`] for a character outside the
    /// article's alphabet.
    pub fn window(&self, text: &str) -> Result<Vec<u32>> {
        let ids = ArticleChars.encode(text)?;
        let mut window = vec![ArticleChars::PAD; self.context.saturating_sub(ids.len())];
        window.extend_from_slice(&ids[ids.len().saturating_sub(self.context)..]);
        Ok(window)
    }

    /// The probability of every character following `text`, most likely
    /// first.
    ///
    /// # Errors
    /// As [`CharModel::window`].
    pub fn probabilities(&self, text: &str) -> Result<Vec<(char, f64)>> {
        let window = self.window(text)?;
        let scores = self.net.predict(&self.features(&[&window])?)?;
        let mut p: Vec<f32> = scores.column(0).iter().copied().collect();
        softmax_in_place(&mut p);
        let mut out: Vec<(char, f64)> = p.iter().enumerate().map(|(c, &p)| (class_char(c), f64::from(p))).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// The most likely character after `text`.
    ///
    /// # Errors
    /// As [`CharModel::window`].
    pub fn predict(&self, text: &str) -> Result<char> {
        Ok(self.probabilities(text)?[0].0)
    }

    // ANCHOR: generate
    /// `n` characters generated after `prompt`, one at a time: predict,
    /// append, slide the window by one.
    ///
    /// # Errors
    /// As [`CharModel::window`]; [`addmul_core::Error::InvalidValue`] for a
    /// temperature that is not positive.
    pub fn generate(&self, prompt: &str, n: usize, sampling: Sampling, rng: &mut Rng) -> Result<String> {
        if let Sampling::Temperature(t) = sampling
            && !(t > 0.0 && t.is_finite())
        {
            return Err(addmul_core::Error::InvalidValue { what: "temperature", value: t, requirement: "> 0" }.into());
        }
        let mut window = self.window(prompt)?;
        let mut out = String::with_capacity(n);
        for _ in 0..n {
            let scores = self.net.predict(&self.features(&[&window])?)?;
            let class = match sampling {
                Sampling::Greedy => argmax(scores.column(0).as_slice()),
                Sampling::Temperature(t) => {
                    let mut p: Vec<f32> = scores.column(0).iter().map(|&s| s / t as f32).collect();
                    softmax_in_place(&mut p);
                    draw(&p, rng)
                }
            };
            out.push(class_char(class));
            window.remove(0);
            window.push(class as u32 + 1);
        }
        Ok(out)
    }
    // ANCHOR_END: generate

    /// Mean cross-entropy of the next character over `batch`; in training
    /// mode also the backward pass into the parameters.
    fn objective(&mut self, batch: &[Example], mode: Mode) -> addmul_core::Result<f64> {
        let windows: Vec<&[u32]> = batch.iter().map(|e| e.window.as_slice()).collect();
        let x = self.inputs(&windows)?;
        let (scores, cache) = self.net.forward(&x)?;
        let targets: Vec<usize> = batch.iter().map(|e| e.next as usize - 1).collect();
        let (loss, ce) = cross_entropy(&scores, &targets)?;
        if mode == Mode::Train {
            let dx = self.net.backward(&cache, &ce.backward())?;
            // With an embedding, the inputs' gradient goes on into the table:
            // the same reshape as in `features`, then a scatter-add.
            let ids = self.flat_ids(&windows);
            if let Some(table) = &mut self.embedding {
                let dx = dx.reshape_generic(nalgebra::Dyn(table.dim()), nalgebra::Dyn(ids.len()));
                table.backward(&ids, &dx)?;
            }
        }
        Ok(loss)
    }
}

fn class_char(class: usize) -> char {
    ArticleChars::char(class as u32 + 1).expect("classes are the article's characters")
}

fn argmax(x: &[f32]) -> usize {
    x.iter().enumerate().fold(0, |best, (i, &v)| if v > x[best] { i } else { best })
}

fn draw(p: &[f32], rng: &mut Rng) -> usize {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (i, &pi) in p.iter().enumerate() {
        acc += f64::from(pi);
        if u < acc {
            return i;
        }
    }
    p.len() - 1
}

/// Parameter names: `embedding.weight` (with an embedding),
/// `mlp.layers.{i}.weight`, `mlp.layers.{i}.bias`.
impl Parameters<f32> for CharModel {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<f32>)) {
        if let Some(table) = &self.embedding {
            visit_child("embedding", table, f);
        }
        visit_child("mlp", &self.net, f);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<f32>)) {
        if let Some(table) = &mut self.embedding {
            visit_child_mut("embedding", table, f);
        }
        visit_child_mut("mlp", &mut self.net, f);
    }
}

/// The result of [`train`].
#[derive(Debug, Clone)]
pub struct TrainingRun {
    /// The trained model.
    pub model: CharModel,
    /// Losses per epoch.
    pub history: History,
    /// Training windows.
    pub n_train: usize,
    /// Validation windows (the end of the text).
    pub n_val: usize,
    /// Characters dropped from the text because the article's code has no
    /// number for them.
    pub dropped: usize,
}

// ANCHOR: train
/// Trains a model on `text` (brought into the article's alphabet first, see
/// [`ArticleChars::normalize`]): every position is an example, the last
/// `val_fraction` of them are held out, AdamW minimises cross-entropy.
/// `on_epoch` sees every epoch's losses.
///
/// # Errors
/// [`Error::TextTooShort`] for a text with too few characters, and any
/// numeric error from the configuration.
pub fn train(config: &CharModelConfig, text: &str, on_epoch: &mut dyn FnMut(&EpochRecord)) -> Result<TrainingRun> {
    let (text, dropped) = ArticleChars::normalize(text);
    let ids = ArticleChars.encode(&text)?;
    if ids.len() < 20 {
        return Err(Error::TextTooShort { chars: ids.len(), needed: 20 });
    }
    let all = examples(&ids, config.context);
    let (train_set, val_set) =
        if config.val_fraction == 0.0 { (&all[..], &all[..0]) } else { split_in_order(&all, config.val_fraction)? };
    let mut model = CharModel::new(config, &mut rng(config.seed))?;
    let mut optimizer = AdamW::new(AdamWConfig { lr: config.lr, weight_decay: 0.0, ..AdamWConfig::default() })?;
    let fit_config = FitConfig {
        epochs: config.epochs,
        batch_size: Some(config.batch_size),
        seed: config.seed ^ 0x5eed,
        ..FitConfig::default()
    };
    let history = fit(
        &mut model,
        &mut optimizer,
        train_set,
        val_set,
        &fit_config,
        &mut |m: &mut CharModel, batch: &[Example], mode| m.objective(batch, mode),
        on_epoch,
    )?;
    Ok(TrainingRun { model, history, n_train: train_set.len(), n_val: val_set.len(), dropped })
}
// ANCHOR_END: train
