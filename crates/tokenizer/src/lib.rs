//! Text to numbers and back.
//!
//! A network only takes numbers, so text must become a list of ids before a
//! language model sees it, and the ids it predicts must become text again. A
//! *tokenizer* fixes that correspondence: the article starts with one number
//! per character (a = 1, b = 2, ...), and real models use *subwords*, pieces
//! learned from a corpus so that frequent words are one token and rare ones
//! a few ("cats" = "cat" + "s").
//!
//! | tokenizer | ids | learned from | used by |
//! |---|---|---|---|
//! | [`ArticleChars`] | a = 1 ... z = 26, space 27, newline 28, punctuation | nothing | the article's first language model |
//! | [`CharTokenizer`] | one per distinct character | a corpus's character set | character-level models (nanoGPT's `shakespeare_char`) |
//! | [`Bpe`] | 256 bytes, then merges, then special tokens | [`BpeTrainer`], or OpenAI's files | GPT-2, GPT-3, tiktoken |
//! | [`Unigram`] | 256 byte pieces, then pieces by score | [`UnigramTrainer`] (EM) | SentencePiece's default (T5, ALBERT, ...) |
//! | [`SentencePieceBpe`] | 256 byte pieces, characters, merges | [`SentencePieceBpeTrainer`] | SentencePiece's BPE (Llama 2, ...) |
//!
//! All of them implement [`Tokenizer`], and all round-trip:
//! `decode(encode(s)) == s` for every string they accept (the byte-level and
//! SentencePiece-style ones accept every string; [`ArticleChars`] reads
//! capitals as small letters, so it gives lower case back), and
//! [`Bpe::encode_bytes`] round-trips every byte sequence.
//!
//! [`Bpe`] encodes exactly as OpenAI's tiktoken: loaded from GPT-2's
//! `encoder.json` + `vocab.bpe` or from a tiktoken rank file, it gives the
//! same ids as tiktoken's `gpt2` encoding, special tokens included (tested
//! against `tiktoken-rs` and against ids recorded from Python tiktoken).
//!
//! Bad input is a typed [`Error`], never a panic: a corrupt or truncated
//! vocabulary file, an unknown id, a vocabulary too small, bytes that are not
//! UTF-8 where text is required.
//!
//! # Example
//! ```
//! use addmul_tokenizer::{BpeTrainer, Tokenizer};
//!
//! let text = "a cat and a cat and the cat and the cats";
//! // 256 byte tokens + 8 merges.
//! let bpe = BpeTrainer::new(264).train(text)?;
//! let ids = bpe.encode(" cats")?;
//! let pieces: Vec<String> = ids.iter().map(|&id| bpe.token_text(id)).collect::<Result<_, _>>()?;
//! assert_eq!(pieces, [" cat", "s"]);
//! assert_eq!(bpe.decode(&ids)?, " cats");
//! # Ok::<(), addmul_tokenizer::Error>(())
//! ```
#![deny(missing_docs)]

mod bpe;
pub mod bytes;
mod chars;
mod error;
mod merge;
mod pretok;
mod subword;
mod train;

pub use bpe::{Bpe, ENDOFTEXT, Merge, SpecialPolicy, SpecialSet};
pub use chars::{ARTICLE_EXTRA, ArticleChars, CharTokenizer, UnknownChars};
pub use error::{Error, Result};
pub use pretok::{GPT2_PATTERN, Pattern, split};
pub use subword::{FIRST_PIECE, META, SentencePieceBpe, SentencePieceBpeTrainer, Unigram, UnigramTrainer};
pub use train::BpeTrainer;

// ANCHOR: tokenizer_trait
/// What every tokenizer does: text to ids and back.
pub trait Tokenizer {
    /// The number of ids; every id [`Tokenizer::encode`] returns is below it.
    fn vocab_size(&self) -> usize;

    /// The ids of `text`.
    ///
    /// # Errors
    /// Depends on the tokenizer: [`Error::UnknownChar`] for a character
    /// tokenizer, [`Error::DisallowedSpecial`] for special-token text given to
    /// a [`Bpe`], never for the SentencePiece-style ones.
    fn encode(&self, text: &str) -> Result<Vec<u32>>;

    /// The bytes that `ids` stand for.
    ///
    /// # Errors
    /// [`Error::UnknownId`] for an id outside the vocabulary.
    fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>>;

    /// The text that `ids` stand for.
    ///
    /// # Errors
    /// [`Error::UnknownId`], or [`Error::InvalidUtf8`] when the ids cut a
    /// character in two (possible with byte-level tokens).
    fn decode(&self, ids: &[u32]) -> Result<String> {
        error::utf8(self.decode_bytes(ids)?)
    }

    /// A readable form of one token, for display: its text (lossily, for a
    /// byte-level token that is part of a character), or `<0xE2>` for a
    /// SentencePiece byte piece.
    ///
    /// # Errors
    /// [`Error::UnknownId`].
    fn token_text(&self, id: u32) -> Result<String>;
}
// ANCHOR_END: tokenizer_trait
