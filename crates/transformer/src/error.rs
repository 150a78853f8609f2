//! What can go wrong when building, feeding, training or decoding a
//! Transformer.

use std::fmt;

use crate::TokenId;

/// Which half of the model a sequence or vocabulary belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The encoder's input (the sentence to translate).
    Source,
    /// The decoder's input and output (the translation).
    Target,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Target => "target",
        })
    }
}

/// Errors of `addmul-transformer`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TransformerError {
    /// A numeric error in a layer (shapes, values).
    #[error(transparent)]
    Numeric(#[from] addmul_core::Error),
    /// A configuration value is invalid.
    #[error("invalid configuration: {field} = {value}: {reason}")]
    Config {
        /// The field, e.g. `"d_model"`.
        field: &'static str,
        /// Its value, as written.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A vocabulary does not match the one the model was built for.
    #[error("{side} vocabulary mismatch: the model expects {expected}, got {got}")]
    VocabularyMismatch {
        /// Which vocabulary.
        side: Side,
        /// What the model was built for, e.g. `"35 tokens"`.
        expected: String,
        /// What was given.
        got: String,
    },
    /// A sequence is longer than the model can read.
    #[error("{side} sequence {index} has {len} tokens; the model reads at most {max}")]
    TooLong {
        /// Which side.
        side: Side,
        /// The sequence's index in its batch (0 for a single sequence).
        index: usize,
        /// Its length in tokens (for a target, counting the start or end token).
        len: usize,
        /// The most the model accepts.
        max: usize,
    },
    /// A source sequence has no tokens: there is nothing to attend to.
    #[error("source sequence {index} is empty; the encoder needs at least one token")]
    EmptySource {
        /// The sequence's index in its batch (0 for a single sequence).
        index: usize,
    },
    /// A token id is outside the vocabulary.
    #[error(
        "{side} token id {id} at position {position} of sequence {index} is outside the vocabulary of {vocab_size}"
    )]
    TokenOutOfRange {
        /// Which side.
        side: Side,
        /// The id.
        id: TokenId,
        /// The sequence's index in its batch.
        index: usize,
        /// The token's position in its sequence.
        position: usize,
        /// The vocabulary's size.
        vocab_size: usize,
    },
    /// A padding, start or end id appears inside a sequence: the batch adds
    /// those itself.
    #[error(
        "{side} sequence {index} holds the special token {name} (id {id}) at position {position}; \
         sequences hold ordinary tokens only (batching adds start, end and padding)"
    )]
    SpecialToken {
        /// Which side.
        side: Side,
        /// The special's name, e.g. `"<pad>"`.
        name: &'static str,
        /// Its id.
        id: TokenId,
        /// The sequence's index in its batch.
        index: usize,
        /// Where it was found.
        position: usize,
    },
    /// A word is not in the vocabulary.
    #[error("the {side} vocabulary has no token `{word}`")]
    UnknownWord {
        /// Which side.
        side: Side,
        /// The word.
        word: String,
    },
    /// A vocabulary lists the same token twice.
    #[error("the token `{token}` appears twice in a vocabulary")]
    DuplicateToken {
        /// The token.
        token: String,
    },
    /// The training loss stopped being a finite number.
    #[error("the training loss became {loss} at step {step}; the step was not applied")]
    NonFiniteLoss {
        /// The optimizer step.
        step: u64,
        /// The loss.
        loss: f64,
    },
}

/// `Result` with [`TransformerError`].
pub type Result<T, E = TransformerError> = std::result::Result<T, E>;

impl TransformerError {
    pub(crate) fn config(field: &'static str, value: impl ToString, reason: impl Into<String>) -> Self {
        TransformerError::Config { field, value: value.to_string(), reason: reason.into() }
    }
}
