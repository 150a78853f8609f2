//! SentencePiece-style subwords: whitespace as `▁`, no pre-splitting, byte
//! fallback, with a unigram language model (`unigram.rs`) and BPE (`bpe.rs`)
//! in that convention, saved in one text format (`file.rs`).
//! This file holds what both models share: the `▁` word boundaries, the byte
//! fallback to the pieces `<0x00>` ... `<0xFF>`, the vocabulary with the one
//! [`Tokenizer`] implementation built on it, and the character counts both
//! trainers start from.

use rustc_hash::FxHashMap;

use crate::{Error, Result, Tokenizer};

mod bpe;
mod file;
mod unigram;

pub use bpe::{SentencePieceBpe, SentencePieceBpeTrainer};
pub use unigram::{Unigram, UnigramTrainer};

/// The character that stands for a space inside pieces (U+2581).
pub const META: char = '\u{2581}';

/// The first id after the 256 byte pieces `<0x00>` ... `<0xFF>`.
pub const FIRST_PIECE: u32 = 256;

/// A stretch of text as the subword models see it.
enum Segment<'t> {
    /// A word: `▁` for the space before it, then its characters.
    Word(String),
    /// Bytes that are always encoded as byte pieces (a literal `▁` in the
    /// input, which must not turn into a space on the way back).
    Bytes(&'t [u8]),
}

// ANCHOR: whitespace
/// Cuts `text` into words the SentencePiece way: every space becomes `▁` and
/// starts a new word; with `dummy_prefix` the text gets a `▁` in front, so
/// that "cat" at the start of a text is the same word as in " cat". This is
/// the only splitting: punctuation, digits and newlines stay inside words.
fn segments(text: &str, dummy_prefix: bool, mut f: impl FnMut(Segment<'_>)) {
    if text.is_empty() {
        return;
    }
    let mut word = String::new();
    if dummy_prefix {
        word.push(META);
    }
    for (i, c) in text.char_indices() {
        if c == ' ' || c == META {
            if !word.is_empty() {
                f(Segment::Word(std::mem::take(&mut word)));
            }
            if c == ' ' {
                word.push(META);
            } else {
                f(Segment::Bytes(&text.as_bytes()[i..i + c.len_utf8()]));
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        f(Segment::Word(word));
    }
}
// ANCHOR_END: whitespace

/// Splits a word at characters that have no piece: calls `f(Ok(run))` for
/// every run of known characters and `f(Err(c))` for the others.
fn runs(word: &str, is_known: impl Fn(char) -> bool, mut f: impl FnMut(Result<&str, char>)) {
    let mut start = 0;
    for (i, c) in word.char_indices() {
        if !is_known(c) {
            if i > start {
                f(Ok(&word[start..i]));
            }
            f(Err(c));
            start = i + c.len_utf8();
        }
    }
    if start < word.len() {
        f(Ok(&word[start..]));
    }
}

/// The byte pieces for a character without a piece. A `▁` stands for a
/// space, so it falls back to the byte of a space.
fn byte_fallback(c: char, out: &mut Vec<u32>) {
    if c == META {
        out.push(u32::from(b' '));
    } else {
        let mut buf = [0u8; 4];
        out.extend(c.encode_utf8(&mut buf).bytes().map(u32::from));
    }
}

/// The learned pieces of a subword model (piece `i` has id `FIRST_PIECE + i`,
/// after the byte pieces) and whether texts get a dummy prefix.
#[derive(Clone)]
struct Vocab {
    pieces: Vec<String>,
    /// Every piece's id.
    ids: FxHashMap<String, u32>,
    /// Whether a `▁` is put in front of the text (and one leading space
    /// dropped again when decoding).
    dummy_prefix: bool,
}

impl Vocab {
    /// The number of ids: the byte pieces and the learned pieces.
    fn size(&self) -> usize {
        FIRST_PIECE as usize + self.pieces.len()
    }

    /// The id of piece `piece`.
    fn id(&self, piece: &str) -> Option<u32> {
        self.ids.get(piece).copied()
    }

    /// Whether character `c` is a piece of its own.
    fn is_known(&self, c: char) -> bool {
        let mut buf = [0u8; 4];
        self.ids.contains_key(&*c.encode_utf8(&mut buf))
    }

    /// The learned piece with id `id`, which must not be a byte piece
    /// (`id >= FIRST_PIECE`).
    fn piece(&self, id: u32) -> Result<&str> {
        self.pieces
            .get((id - FIRST_PIECE) as usize)
            .map(String::as_str)
            .ok_or(Error::UnknownId { id, vocab_size: self.size() })
    }
}

/// A subword model: a [`Vocab`] and a way to segment a run of characters
/// that all have pieces. Everything else about encoding and decoding is the
/// same for every model, so [`Tokenizer`] is implemented once, below.
trait SubwordModel {
    /// The model's pieces.
    fn vocab(&self) -> &Vocab;

    /// Appends the ids of `run`, a part of a word whose every character is a
    /// piece (so that some segmentation always exists).
    fn segment(&self, run: &str, out: &mut Vec<u32>);
}

impl<T: SubwordModel> Tokenizer for T {
    fn vocab_size(&self) -> usize {
        self.vocab().size()
    }

    /// Words are cut at characters without a piece; the runs between them
    /// are segmented by the model, and the characters become their UTF-8
    /// bytes (byte fallback).
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let vocab = self.vocab();
        let mut out = Vec::with_capacity(text.len() / 3);
        segments(text, vocab.dummy_prefix, |s| match s {
            Segment::Word(w) => runs(
                &w,
                |c| vocab.is_known(c),
                |r| match r {
                    Ok(r) => self.segment(r, &mut out),
                    Err(c) => byte_fallback(c, &mut out),
                },
            ),
            Segment::Bytes(b) => out.extend(b.iter().map(|&b| u32::from(b))),
        });
        Ok(out)
    }

    /// Byte pieces decode to themselves, other pieces to their text with `▁`
    /// as a space; one leading space is dropped if the model adds a dummy
    /// prefix.
    fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let vocab = self.vocab();
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            if id < FIRST_PIECE {
                out.push(id as u8);
                continue;
            }
            for c in vocab.piece(id)?.chars() {
                let c = if c == META { ' ' } else { c };
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
        if vocab.dummy_prefix && out.first() == Some(&b' ') {
            out.remove(0);
        }
        Ok(out)
    }

    fn token_text(&self, id: u32) -> Result<String> {
        if id < FIRST_PIECE {
            return Ok(format!("<0x{id:02X}>"));
        }
        self.vocab().piece(id).map(str::to_string)
    }
}

// --- what both trainers start from -------------------------------------------

fn check_coverage(coverage: f64) -> Result<()> {
    if coverage > 0.0 && coverage <= 1.0 {
        Ok(())
    } else {
        Err(Error::InvalidConfig { what: "character coverage", value: coverage.to_string(), requirement: "in (0, 1]" })
    }
}

/// The characters that must be pieces ([`covered_chars`]) and the number of
/// pieces that fit in `vocab_size` after the byte pieces.
///
/// # Errors
/// [`Error::VocabTooSmall`] if those pieces cannot hold the characters (and
/// at least one piece); `model` names the model in the message.
fn alphabet(
    text: &str,
    dummy_prefix: bool,
    coverage: f64,
    vocab_size: usize,
    model: &str,
) -> Result<(Vec<(char, u64)>, usize)> {
    let chars = covered_chars(text, dummy_prefix, coverage);
    let budget = vocab_size.saturating_sub(FIRST_PIECE as usize);
    if budget < chars.len().max(1) {
        return Err(Error::VocabTooSmall {
            requested: vocab_size,
            minimum: FIRST_PIECE as usize + chars.len().max(1),
            what: format!("{model} (256 byte pieces + {} characters)", chars.len()),
        });
    }
    Ok((chars, budget))
}

/// The distinct words of `text` (runs of characters that `keep` accepts)
/// with their counts, sorted.
fn count_words(text: &str, dummy_prefix: bool, keep: impl Fn(char) -> bool) -> Vec<(String, u64)> {
    let mut counts: FxHashMap<String, u64> = FxHashMap::default();
    segments(text, dummy_prefix, |s| {
        if let Segment::Word(w) = s {
            runs(&w, &keep, |r| {
                // (A new `String` only for a word not seen before.)
                if let Ok(r) = r {
                    match counts.get_mut(r) {
                        Some(n) => *n += 1,
                        None => _ = counts.insert(r.to_string(), 1),
                    }
                }
            });
        }
    });
    let mut words: Vec<(String, u64)> = counts.into_iter().collect();
    words.sort_unstable();
    words
}

/// The characters that cover `coverage` of the text's characters, most
/// frequent first (ties by code point), with their counts.
fn covered_chars(text: &str, dummy_prefix: bool, coverage: f64) -> Vec<(char, u64)> {
    let mut counts: FxHashMap<char, u64> = FxHashMap::default();
    segments(text, dummy_prefix, |s| {
        if let Segment::Word(w) = s {
            for c in w.chars() {
                *counts.entry(c).or_insert(0) += 1;
            }
        }
    });
    let mut chars: Vec<(char, u64)> = counts.into_iter().collect();
    chars.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let total: u64 = chars.iter().map(|c| c.1).sum();
    let mut covered = 0u64;
    let mut keep = 0;
    for &(_, n) in &chars {
        if total > 0 && covered as f64 / total as f64 >= coverage {
            break;
        }
        covered += n;
        keep += 1;
    }
    chars.truncate(keep);
    chars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_the_whitespace_convention() {
        let mut words = Vec::new();
        segments("a  b\u{2581}c", true, |s| {
            words.push(match s {
                Segment::Word(w) => w,
                Segment::Bytes(b) => format!("{b:?}"),
            })
        });
        assert_eq!(words, ["▁a", "▁", "▁b", "[226, 150, 129]", "c"]);
    }
}
