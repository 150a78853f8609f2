//! Learning BPE merges: count neighbouring pairs, merge the most frequent,
//! update the counts where the merge happened, repeat.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use crate::bpe::{Bpe, Merge};
use crate::pretok::{Pattern, Splitter};
use crate::{Error, Result};

type Pair = (u32, u32);
const NONE: u32 = u32::MAX;
const DEAD: u32 = u32::MAX;

// ANCHOR: pair_merger
/// The symbols of every distinct word laid end to end, linked so that a merge
/// is a local edit, with the count of every neighbouring pair and where it
/// occurs. Merging a pair visits only its occurrences, so a whole training
/// run costs about as much as the text is long, not (text × merges).
pub(crate) struct PairMerger {
    /// The symbol at each position (`DEAD` once merged into its left
    /// neighbour).
    sym: Vec<u32>,
    /// The next and previous live position in the same word, or `NONE`.
    next: Vec<u32>,
    prev: Vec<u32>,
    /// How often the word holding each position occurs.
    weight: Vec<u64>,
    /// Weighted count of every neighbouring pair.
    counts: FxHashMap<Pair, u64>,
    /// Positions of the left symbol of each pair's occurrences (may hold
    /// stale entries, checked when used).
    places: FxHashMap<Pair, Vec<u32>>,
    /// Candidates: (count, smaller left id first, smaller right id first).
    heap: BinaryHeap<(u64, Reverse<u32>, Reverse<u32>)>,
}
// ANCHOR_END: pair_merger

impl PairMerger {
    /// `words`: each word's symbols and how often it occurs.
    pub(crate) fn new<'a>(words: impl IntoIterator<Item = (&'a [u32], u64)>) -> Result<Self> {
        let mut m = PairMerger {
            sym: Vec::new(),
            next: Vec::new(),
            prev: Vec::new(),
            weight: Vec::new(),
            counts: FxHashMap::default(),
            places: FxHashMap::default(),
            heap: BinaryHeap::new(),
        };
        for (word, count) in words {
            let base = m.sym.len();
            if base + word.len() >= u32::MAX as usize {
                return Err(Error::InvalidConfig {
                    what: "training text",
                    value: format!("{} symbols", base + word.len()),
                    requirement: "shorter than 4 Gi symbols",
                });
            }
            for (i, &s) in word.iter().enumerate() {
                let pos = (base + i) as u32;
                m.sym.push(s);
                m.weight.push(count);
                m.prev.push(if i == 0 { NONE } else { pos - 1 });
                m.next.push(if i + 1 == word.len() { NONE } else { pos + 1 });
                if i > 0 {
                    let pair = (word[i - 1], s);
                    *m.counts.entry(pair).or_insert(0) += count;
                    m.places.entry(pair).or_default().push(pos - 1);
                }
            }
        }
        for (&(a, b), &c) in &m.counts {
            m.heap.push((c, Reverse(a), Reverse(b)));
        }
        Ok(m)
    }

    // ANCHOR: best_pair
    /// The most frequent pair and its count; among equal counts the pair with
    /// the smallest left id, then the smallest right id (so the result never
    /// depends on hashing or on the order of the text).
    pub(crate) fn best(&mut self) -> Option<(Pair, u64)> {
        while let Some(&(c, Reverse(a), Reverse(b))) = self.heap.peek() {
            if self.counts.get(&(a, b)) == Some(&c) && c > 0 {
                return Some(((a, b), c));
            }
            self.heap.pop(); // stale: the count changed since it was pushed
        }
        None
    }
    // ANCHOR_END: best_pair

    fn add(&mut self, pair: Pair, delta: u64, changed: &mut Vec<Pair>) {
        *self.counts.entry(pair).or_insert(0) += delta;
        changed.push(pair);
    }

    fn sub(&mut self, pair: Pair, delta: u64, changed: &mut Vec<Pair>) {
        if let Some(c) = self.counts.get_mut(&pair) {
            *c = c.saturating_sub(delta);
            changed.push(pair);
        }
    }

    // ANCHOR: merge
    /// Replaces every occurrence of `pair`, left to right within each word,
    /// by the symbol `new`, and updates the counts of the neighbouring pairs:
    /// in `x a b y`, the pairs `(x, a)` and `(b, y)` lose one occurrence and
    /// `(x, new)` and `(new, y)` gain one.
    pub(crate) fn merge(&mut self, pair: Pair, new: u32) {
        let (a, b) = pair;
        let mut places = self.places.remove(&pair).unwrap_or_default();
        places.sort_unstable();
        places.dedup();
        let mut changed = Vec::new();
        for pos in places {
            let p = pos as usize;
            let j = self.next[p];
            if self.sym[p] != a || j == NONE || self.sym[j as usize] != b {
                continue; // stale, or consumed by the previous (overlapping) merge
            }
            let w = self.weight[p];
            let before = self.prev[p];
            if before != NONE {
                let x = self.sym[before as usize];
                self.sub((x, a), w, &mut changed);
                self.add((x, new), w, &mut changed);
                self.places.entry((x, new)).or_default().push(before);
            }
            let after = self.next[j as usize];
            if after != NONE {
                let y = self.sym[after as usize];
                self.sub((b, y), w, &mut changed);
                self.add((new, y), w, &mut changed);
                self.places.entry((new, y)).or_default().push(pos);
            }
            self.sym[p] = new;
            self.sym[j as usize] = DEAD;
            self.next[p] = after;
            if after != NONE {
                self.prev[after as usize] = pos;
            }
        }
        self.counts.remove(&pair);
        changed.sort_unstable();
        changed.dedup();
        for q in changed {
            match self.counts.get(&q) {
                Some(&c) if c > 0 && q != pair => self.heap.push((c, Reverse(q.0), Reverse(q.1))),
                Some(_) => {
                    self.counts.remove(&q);
                }
                None => {}
            }
        }
    }
    // ANCHOR_END: merge

    /// The live symbols of every word, in order (for tests).
    #[cfg(test)]
    pub(crate) fn symbols(&self) -> Vec<u32> {
        self.sym.iter().copied().filter(|&s| s != DEAD).collect()
    }
}

/// Distinct pieces of `text` (after removing `specials` and pre-splitting
/// with `splitter`) with their counts, sorted by piece.
pub(crate) fn count_pieces<'t>(
    text: &'t str,
    specials: &[String],
    splitter: Option<&Splitter>,
) -> Result<Vec<(&'t str, u64)>> {
    let mut counts: FxHashMap<&'t str, u64> = FxHashMap::default();
    let mut segments = vec![text];
    for s in specials {
        segments = segments.iter().flat_map(|seg| seg.split(s.as_str())).collect();
    }
    for seg in segments {
        match splitter {
            Some(sp) => sp.for_each_piece(seg, |p| *counts.entry(p).or_insert(0) += 1)?,
            None if !seg.is_empty() => *counts.entry(seg).or_insert(0) += 1,
            None => {}
        }
    }
    let mut pieces: Vec<(&str, u64)> = counts.into_iter().collect();
    pieces.sort_unstable();
    Ok(pieces)
}

/// Trains a byte-level BPE tokenizer.
///
/// 1. Special tokens are cut out of the text (they are never learned; they
///    get the ids after the learned tokens).
/// 2. The rest is pre-split by the [`Pattern`] (GPT-2's by default; `None`
///    treats each stretch between special tokens as one piece, as minbpe's
///    `BasicTokenizer` does). Identical pieces are counted once, with their
///    number of occurrences.
/// 3. Every piece starts as its UTF-8 bytes, token `b` for byte `b`.
/// 4. Repeatedly, the most frequent neighbouring pair of tokens is merged
///    into a new token with the next id (256, 257, ...). **Ties** go to the
///    pair with the smaller left id, then the smaller right id. Merges stop
///    at the vocabulary size, or earlier when no pair occurs at least
///    `min_frequency` times.
///
/// Only the pairs next to a merge change their counts, and those are
/// updated in place (see `PairMerger`), so training does not recount the
/// text after every merge.
///
/// If a merge joins two tokens into bytes that are already a token (which
/// different merge orders can produce), the occurrences become that token
/// and no id is spent: ids and bytes stay one-to-one, which the encoder
/// needs.
///
/// # Example
/// ```
/// use addmul_tokenizer::{BpeTrainer, Tokenizer};
/// let text = "the cat sat on the mat with the other cats";
/// let bpe = BpeTrainer::new(270).train(text)?;
/// assert!(bpe.encode(" cats")?.len() < " cats".len());
/// assert_eq!(bpe.decode(&bpe.encode(text)?)?, text);
/// # Ok::<(), addmul_tokenizer::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpeTrainer {
    vocab_size: usize,
    pattern: Option<Pattern>,
    special_tokens: Vec<String>,
    min_frequency: u64,
}

impl BpeTrainer {
    /// A trainer for `vocab_size` ids in all: 256 bytes, the learned merges
    /// and the special tokens. GPT-2's pattern, no special tokens, pairs must
    /// occur at least twice.
    pub fn new(vocab_size: usize) -> Self {
        BpeTrainer { vocab_size, pattern: Some(Pattern::Gpt2), special_tokens: Vec::new(), min_frequency: 2 }
    }

    /// The pre-splitting pattern (`None`: no pre-splitting).
    pub fn pattern(mut self, pattern: Option<Pattern>) -> Self {
        self.pattern = pattern;
        self
    }

    /// Special tokens, given ids after the learned tokens in this order.
    pub fn special_tokens<S: Into<String>>(mut self, tokens: impl IntoIterator<Item = S>) -> Self {
        self.special_tokens = tokens.into_iter().map(Into::into).collect();
        self
    }

    /// The fewest occurrences a pair needs to be merged (at least 1).
    pub fn min_frequency(mut self, n: u64) -> Self {
        self.min_frequency = n.max(1);
        self
    }

    /// Learns the merges from `text`.
    ///
    /// # Errors
    /// [`Error::VocabTooSmall`] if `vocab_size` cannot hold the 256 bytes and
    /// the special tokens; [`Error::InconsistentVocab`] for an empty or
    /// repeated special token; [`Error::Pattern`] for a bad pattern.
    pub fn train(&self, text: &str) -> Result<Bpe> {
        self.train_with_progress(text, &mut |_, _| {})
    }

    /// [`BpeTrainer::train`], calling `on_merge(merge, count)` after each
    /// merge.
    ///
    /// # Errors
    /// As [`BpeTrainer::train`].
    pub fn train_with_progress(&self, text: &str, on_merge: &mut dyn FnMut(Merge, u64)) -> Result<Bpe> {
        let minimum = 256 + self.special_tokens.len();
        if self.vocab_size < minimum {
            return Err(Error::VocabTooSmall {
                requested: self.vocab_size,
                minimum,
                what: format!("byte-level BPE (256 bytes + {} special tokens)", self.special_tokens.len()),
            });
        }
        if let Some(s) = self.special_tokens.iter().find(|s| s.is_empty()) {
            return Err(Error::inconsistent(format!("special token {s:?} is empty")));
        }
        let splitter = self.pattern.as_ref().map(Splitter::new).transpose()?;
        let pieces = count_pieces(text, &self.special_tokens, splitter.as_ref())?;
        let words: Vec<(Vec<u32>, u64)> =
            pieces.iter().map(|(p, c)| (p.bytes().map(u32::from).collect(), *c)).collect();
        let mut merger = PairMerger::new(words.iter().map(|(w, c)| (w.as_slice(), *c)))?;

        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let mut ids: FxHashMap<Vec<u8>, u32> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let learned = self.vocab_size - self.special_tokens.len();
        while tokens.len() < learned {
            let Some(((a, b), count)) = merger.best() else { break };
            if count < self.min_frequency {
                break;
            }
            let bytes = [tokens[a as usize].as_slice(), tokens[b as usize].as_slice()].concat();
            let id = match ids.get(&bytes) {
                Some(&existing) => existing,
                None => {
                    let id = tokens.len() as u32;
                    ids.insert(bytes.clone(), id);
                    tokens.push(bytes);
                    on_merge(Merge { left: a, right: b, token: id }, count);
                    id
                }
            };
            merger.merge((a, b), id);
        }
        let first_special = tokens.len() as u32;
        let specials =
            self.special_tokens.iter().enumerate().map(|(i, s)| (s.clone(), first_special + i as u32)).collect();
        Bpe::new(tokens, specials, self.pattern.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_update_counts_like_a_recount() {
        // "aaaa" and "abab" stress overlapping pairs.
        let words: Vec<(Vec<u32>, u64)> = vec![(vec![0, 0, 0, 0, 0], 2), (vec![0, 1, 0, 1, 0, 0], 3), (vec![1], 1)];
        let mut m = PairMerger::new(words.iter().map(|(w, c)| (w.as_slice(), *c))).unwrap();
        let mut next_id = 2;
        while let Some((pair, _)) = m.best() {
            m.merge(pair, next_id);
            next_id += 1;
            // Recount from the live symbols, word by word.
            let mut recount: FxHashMap<Pair, u64> = FxHashMap::default();
            for p in 0..m.sym.len() {
                if m.sym[p] != DEAD && m.next[p] != NONE {
                    *recount.entry((m.sym[p], m.sym[m.next[p] as usize])).or_insert(0) += m.weight[p];
                }
            }
            let live: FxHashMap<Pair, u64> = m.counts.iter().filter(|(_, c)| **c > 0).map(|(k, v)| (*k, *v)).collect();
            assert_eq!(live, recount);
        }
        assert_eq!(m.symbols().len(), 3);
    }
}
