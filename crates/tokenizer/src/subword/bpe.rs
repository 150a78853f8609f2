//! BPE over characters in SentencePiece's whitespace convention (its
//! `--model_type=bpe`). This file holds the model, how it merges a run of
//! characters, its file format and its trainer.

use std::fmt;
use std::path::Path;

use rustc_hash::FxHashMap;

use super::file::{PieceLine, read_model, write_file, write_model};
use super::{FIRST_PIECE, SubwordModel, Vocab, alphabet, check_coverage, count_words};
use crate::error::read_text;
use crate::merge::merge_by_rank;
use crate::train::PairMerger;
use crate::{Error, Result};

/// BPE over characters in SentencePiece's whitespace convention (its
/// `--model_type=bpe`).
///
/// Words start with `▁`; a word's characters are merged while some pair of
/// neighbouring pieces joins into a piece, earliest-learned merge first (the
/// same rule as [`Bpe`](crate::Bpe), on characters instead of bytes).
/// Characters without a piece fall back to bytes. Ids: 0..256 byte pieces,
/// then the characters (most frequent first), then the merges in the order
/// they were learned.
#[derive(Clone)]
pub struct SentencePieceBpe {
    vocab: Vocab,
    /// Rank (merge order) of every merged piece.
    ranks: FxHashMap<String, u32>,
}

impl fmt::Debug for SentencePieceBpe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentencePieceBpe")
            .field("pieces", &self.vocab.pieces.len())
            .field("merges", &self.ranks.len())
            .finish_non_exhaustive()
    }
}

impl SentencePieceBpe {
    /// The pieces (without the byte pieces), in id order.
    pub fn pieces(&self) -> &[String] {
        &self.vocab.pieces
    }

    /// The id of piece `piece`.
    pub fn piece_id(&self, piece: &str) -> Option<u32> {
        self.vocab.id(piece)
    }
}

/// A word's runs of known characters are merged by rank, as
/// [`Bpe`](crate::Bpe) merges bytes.
impl SubwordModel for SentencePieceBpe {
    fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    fn segment(&self, run: &str, out: &mut Vec<u32>) {
        let ids = &self.vocab.ids;
        if let Some(&id) = ids.get(run) {
            out.push(id);
            return;
        }
        let starts: Vec<usize> = run.char_indices().map(|(i, _)| i).collect();
        let bounds = merge_by_rank(run.as_bytes(), starts, |b| {
            std::str::from_utf8(b).ok().and_then(|s| self.ranks.get(s).copied())
        });
        out.extend(bounds.windows(2).map(|w| ids[&run[w[0]..w[1]]]));
    }
}

/// Trains a [`SentencePieceBpe`]: words and characters as for
/// [`UnigramTrainer`](crate::UnigramTrainer), then the most frequent
/// neighbouring pair of pieces is merged, over and over, with the same
/// incremental counting and the same tie-break as
/// [`BpeTrainer`](crate::BpeTrainer).
///
/// Where this differs from SentencePiece's BPE trainer: no normalisation;
/// SentencePiece re-scores a shortlist of candidate pairs lazily, which
/// picks the same most-frequent pair but may break ties differently.
#[derive(Debug, Clone, PartialEq)]
pub struct SentencePieceBpeTrainer {
    vocab_size: usize,
    character_coverage: f64,
    dummy_prefix: bool,
    min_frequency: u64,
}

impl SentencePieceBpeTrainer {
    /// A trainer for `vocab_size` ids in all (256 byte pieces, the
    /// characters, the merges); coverage 0.9995, dummy prefix on, pairs
    /// must occur at least twice.
    pub fn new(vocab_size: usize) -> Self {
        SentencePieceBpeTrainer { vocab_size, character_coverage: 0.9995, dummy_prefix: true, min_frequency: 2 }
    }

    /// The share of the text's characters that must have their own piece.
    pub fn character_coverage(mut self, coverage: f64) -> Self {
        self.character_coverage = coverage;
        self
    }

    /// Whether a `▁` is put in front of the text.
    pub fn dummy_prefix(mut self, on: bool) -> Self {
        self.dummy_prefix = on;
        self
    }

    /// Trains on `text`.
    ///
    /// # Errors
    /// As [`UnigramTrainer::train`](crate::UnigramTrainer::train).
    pub fn train(&self, text: &str) -> Result<SentencePieceBpe> {
        check_coverage(self.character_coverage)?;
        let (chars, budget) =
            alphabet(text, self.dummy_prefix, self.character_coverage, self.vocab_size, "a SentencePiece-style BPE")?;
        let mut pieces: Vec<String> = chars.iter().map(|(c, _)| c.to_string()).collect();
        let mut ids: FxHashMap<String, u32> = pieces.iter().enumerate().map(|(i, p)| (p.clone(), i as u32)).collect();
        let char_ids: FxHashMap<char, u32> = chars.iter().enumerate().map(|(i, (c, _))| (*c, i as u32)).collect();
        let words = count_words(text, self.dummy_prefix, |c| char_ids.contains_key(&c));
        let symbols: Vec<(Vec<u32>, u64)> =
            words.iter().map(|(w, n)| (w.chars().map(|c| char_ids[&c]).collect(), *n)).collect();
        let mut merger = PairMerger::new(symbols.iter().map(|(w, n)| (w.as_slice(), *n)))?;
        let mut ranks = FxHashMap::default();
        while pieces.len() < budget {
            let Some(((a, b), count)) = merger.best() else { break };
            if count < self.min_frequency {
                break;
            }
            let joined = format!("{}{}", pieces[a as usize], pieces[b as usize]);
            let id = match ids.get(&joined) {
                Some(&id) => id,
                None => {
                    let id = pieces.len() as u32;
                    ranks.insert(joined.clone(), ranks.len() as u32);
                    ids.insert(joined.clone(), id);
                    pieces.push(joined);
                    id
                }
            };
            merger.merge((a, b), id);
        }
        let ids = ids.into_iter().map(|(p, i)| (p, i + FIRST_PIECE)).collect();
        Ok(SentencePieceBpe { vocab: Vocab { pieces, ids, dummy_prefix: self.dummy_prefix }, ranks })
    }
}

const SPBPE_MAGIC: &str = "addmul-sentencepiece-bpe v1";

impl SentencePieceBpe {
    /// The model as UTF-8 text: as
    /// [`Unigram::to_file_string`](crate::Unigram::to_file_string), with
    /// `addmul-sentencepiece-bpe v1` as the header and, instead of a score,
    /// each piece's merge rank (`-` for a character).
    pub fn to_file_string(&self) -> String {
        write_model(
            SPBPE_MAGIC,
            self.vocab.dummy_prefix,
            self.vocab.pieces.iter().map(|p| (self.ranks.get(p).map_or("-".to_string(), u32::to_string), p.clone())),
        )
    }

    /// Reads [`SentencePieceBpe::to_file_string`]'s format.
    ///
    /// # Errors
    /// [`Error::Parse`] with the line for anything malformed or missing;
    /// [`Error::InconsistentVocab`] for a repeated piece or rank.
    pub fn from_file_string(text: &str) -> Result<Self> {
        const F: &str = "addmul-sentencepiece-bpe file";
        let (dummy_prefix, lines) = read_model(F, SPBPE_MAGIC, text)?;
        let mut pieces = Vec::with_capacity(lines.len());
        let mut ids = FxHashMap::default();
        let mut ranks = FxHashMap::default();
        let mut used = std::collections::HashSet::new();
        for (i, PieceLine { line, value: rank, piece }) in lines.into_iter().enumerate() {
            if piece.is_empty() || ids.insert(piece.clone(), FIRST_PIECE + i as u32).is_some() {
                return Err(Error::inconsistent(format!("piece {piece:?} is empty or repeated")));
            }
            if rank != "-" {
                let r: u32 = rank.parse().map_err(|_| Error::parse(F, line, format!("bad rank {rank:?}")))?;
                if !used.insert(r) {
                    return Err(Error::inconsistent(format!("merge rank {r} is used twice")));
                }
                ranks.insert(piece.clone(), r);
            }
            pieces.push(piece);
        }
        Ok(SentencePieceBpe { vocab: Vocab { pieces, ids, dummy_prefix }, ranks })
    }

    /// Saves the model (see [`SentencePieceBpe::to_file_string`]).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_file(path.as_ref(), self.to_file_string())
    }

    /// Loads a model saved by [`SentencePieceBpe::save`].
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be read, and as
    /// [`SentencePieceBpe::from_file_string`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_file_string(&read_text(path.as_ref())?)
    }
}
