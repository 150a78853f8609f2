//! addmul builds large language models from nothing but addition and
//! multiplication, one concept per crate. This facade re-exports them all:
//!
//! | module | crate | concept |
//! |---|---|---|
//! | [`core`] | `addmul-core` | matrices, parameters, initialisation, gradient checks |
//! | [`nn`] | `addmul-nn` | linear layers, ReLU, GELU, multi-layer networks |
//! | [`softmax`] | `addmul-softmax` | softmax, cross-entropy, L1 loss |
//! | [`train`] | `addmul-train` | optimizers, schedules, the epoch loop |
//! | [`leafflower`] | `addmul-leafflower` | the article's leaf/flower network |
//! | [`embedding`] | `addmul-embedding` | token embeddings, nearest neighbours |
//! | [`posenc`] | `addmul-posenc` | learned, sinusoidal and rotary positions |
//! | [`attention`] | `addmul-attention` | single-head attention, masks, cross-attention |
//! | [`layernorm`] | `addmul-layernorm` | layer normalization, RMSNorm |
//! | [`dropout`] | `addmul-dropout` | inverted and classic dropout |
//! | [`residual`] | `addmul-residual` | residual connections |
//! | [`multihead`] | `addmul-multihead` | multi-head attention, key/value cache |
//! | [`gpt`] | `addmul-gpt` | GPT-2: training, sampling, Hugging Face checkpoints |
//! | [`lora`] | `addmul-lora` | low-rank adapters (LoRA): a frozen base, merge and unmerge, Hugging Face PEFT's files |
//! | [`transformer`] | `addmul-transformer` | the encoder-decoder Transformer, beam search, translation tasks |
//! | [`plot`] | `addmul-plot` | SVG figures |
//! | [`tokenizer`] | `addmul-tokenizer` | characters, byte-level BPE (GPT-2), SentencePiece-style subwords |
//! | [`charlm`] | `addmul-charlm` | the article's 12-character language model |
//!
//! The `addmul` command runs the book's examples; see `addmul --help`.
#![deny(missing_docs)]

pub use addmul_attention as attention;
pub use addmul_charlm as charlm;
pub use addmul_core as core;
pub use addmul_dropout as dropout;
pub use addmul_embedding as embedding;
pub use addmul_gpt as gpt;
pub use addmul_layernorm as layernorm;
pub use addmul_leafflower as leafflower;
pub use addmul_lora as lora;
pub use addmul_multihead as multihead;
pub use addmul_nn as nn;
pub use addmul_plot as plot;
pub use addmul_posenc as posenc;
pub use addmul_residual as residual;
pub use addmul_softmax as softmax;
pub use addmul_tokenizer as tokenizer;
pub use addmul_train as train;
pub use addmul_transformer as transformer;

pub mod adapters;
pub mod alloc;
pub mod app;
pub mod cli;
pub mod corpus;
pub mod demos;
pub mod explore;
pub mod text;

/// What can go wrong in a demo or command: the underlying crates' errors,
/// kept whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A numeric error (shapes, values, configuration).
    #[error(transparent)]
    Numeric(#[from] addmul_core::Error),
    /// An error of the encoder-decoder Transformer (configuration, input,
    /// training).
    #[error(transparent)]
    Transformer(#[from] addmul_transformer::TransformerError),
    /// The character model failed (a character outside its alphabet, ...).
    #[error(transparent)]
    CharLm(#[from] addmul_charlm::Error),
    /// A figure could not be drawn or saved.
    #[error(transparent)]
    Plot(#[from] addmul_plot::PlotError),
    /// A tokenizer failed (an unknown character, a corrupt file, ...).
    #[error(transparent)]
    Tokenizer(#[from] addmul_tokenizer::Error),
    /// Building, training, loading or sampling a GPT failed.
    #[error(transparent)]
    Gpt(#[from] addmul_gpt::GptError),
    /// Low-rank adapters could not be made, attached, read or written.
    #[error(transparent)]
    Lora(#[from] addmul_lora::LoraError),
    /// The training text could not be found, fetched or read.
    #[error(transparent)]
    Corpus(#[from] corpus::CorpusError),
    /// A command-line argument or configuration file is invalid.
    #[error("{what}: {problem}")]
    Invalid {
        /// The argument or file.
        what: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Reading or writing a file or the terminal failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
