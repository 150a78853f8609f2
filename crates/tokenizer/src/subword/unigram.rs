//! The unigram language model (SentencePiece's default model type): every
//! piece has a score and a word is split into the pieces whose scores add up
//! to the most. This file holds the model, its Viterbi segmentation and file
//! format, and its EM trainer with SentencePiece's pruning.

use std::fmt;
use std::path::Path;

use rustc_hash::FxHashMap;

use super::file::{PieceLine, read_model, write_file, write_model};
use super::{FIRST_PIECE, SubwordModel, Vocab, alphabet, check_coverage, count_words};
use crate::error::read_text;
use crate::{Error, Result};

/// A unigram language-model tokenizer (Kudo 2018), as SentencePiece's
/// default model type.
///
/// Every piece has a score, the log of its probability; a word's
/// segmentation is the one whose pieces' scores add up to the most, found by
/// the Viterbi algorithm ([`Unigram::encode`](crate::Tokenizer::encode)).
/// Ids 0..256 are the byte pieces `<0x00>`...`<0xFF>` used for characters
/// without a piece (byte fallback); the learned pieces follow, by decreasing
/// score.
///
/// ```
/// use addmul_tokenizer::{Tokenizer, UnigramTrainer};
/// let text = "the cat sat on the mat. the cats sat on the mats. a cat, two cats.";
/// let model = UnigramTrainer::new(256 + 30).train(text)?;
/// let ids = model.encode("the cats")?;
/// assert_eq!(model.decode(&ids)?, "the cats");
/// assert_eq!(model.decode(&model.encode("€5")?)?, "€5"); // byte fallback
/// # Ok::<(), addmul_tokenizer::Error>(())
/// ```
#[derive(Clone)]
pub struct Unigram {
    vocab: Vocab,
    /// The score of every piece, in id order.
    scores: Vec<f64>,
    /// The longest piece, in characters: how far back Viterbi looks.
    max_chars: usize,
}

impl fmt::Debug for Unigram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unigram")
            .field("pieces", &self.vocab.pieces.len())
            .field("dummy_prefix", &self.vocab.dummy_prefix)
            .finish_non_exhaustive()
    }
}

impl Unigram {
    /// A model from its pieces and their scores (log-probabilities); pieces
    /// get ids from 256 in the given order.
    ///
    /// # Errors
    /// [`Error::InconsistentVocab`] for an empty or repeated piece or a
    /// non-finite score.
    pub fn new(pieces: Vec<(String, f64)>, dummy_prefix: bool) -> Result<Self> {
        let mut ids = FxHashMap::default();
        for (i, (p, s)) in pieces.iter().enumerate() {
            if p.is_empty() || !s.is_finite() || ids.insert(p.clone(), FIRST_PIECE + i as u32).is_some() {
                return Err(Error::inconsistent(format!("piece {p:?} (score {s}) is empty, repeated or not finite")));
            }
        }
        let max_chars = pieces.iter().map(|(p, _)| p.chars().count()).max().unwrap_or(1);
        let (pieces, scores) = pieces.into_iter().unzip();
        Ok(Unigram { vocab: Vocab { pieces, ids, dummy_prefix }, scores, max_chars })
    }

    /// The pieces (without the byte pieces) with their scores, in id order.
    pub fn pieces(&self) -> impl Iterator<Item = (&str, f64)> {
        self.vocab.pieces.iter().map(String::as_str).zip(self.scores.iter().copied())
    }

    /// The id of piece `piece`.
    pub fn piece_id(&self, piece: &str) -> Option<u32> {
        self.vocab.id(piece)
    }

    // ANCHOR: viterbi
    /// The best segmentation of a run of known characters: `best[j]` is the
    /// highest total score of any segmentation of the first `j` characters,
    /// and `from[j]` where its last piece starts.
    fn viterbi(&self, run: &str, out: &mut Vec<u32>) {
        let bounds: Vec<usize> = run.char_indices().map(|(i, _)| i).chain([run.len()]).collect();
        let n = bounds.len() - 1;
        let mut best = vec![f64::NEG_INFINITY; n + 1];
        let mut from = vec![(0usize, 0u32); n + 1];
        best[0] = 0.0;
        for end in 1..=n {
            for start in end.saturating_sub(self.max_chars)..end {
                if let Some(&id) = self.vocab.ids.get(&run[bounds[start]..bounds[end]]) {
                    let score = best[start] + self.scores[(id - FIRST_PIECE) as usize];
                    if score > best[end] {
                        best[end] = score;
                        from[end] = (start, id);
                    }
                }
            }
        }
        let mut pieces = Vec::new();
        let mut end = n;
        while end > 0 {
            let (start, id) = from[end];
            pieces.push(id);
            end = start;
        }
        out.extend(pieces.into_iter().rev());
    }
    // ANCHOR_END: viterbi
}

/// A word's runs of known characters are segmented by the Viterbi algorithm.
impl SubwordModel for Unigram {
    fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    fn segment(&self, run: &str, out: &mut Vec<u32>) {
        self.viterbi(run, out);
    }
}

/// Trains a [`Unigram`] model the way SentencePiece does.
///
/// 1. **Words.** The text is cut into words at spaces (each word starts with
///    `▁`), and identical words are counted once.
/// 2. **Characters.** The most frequent characters covering
///    `character_coverage` of the text (99.95 % by default) are always
///    pieces; rarer ones are left to byte fallback.
/// 3. **Seeds.** Every substring of a word, up to `max_piece_chars`
///    characters, that occurs at least twice is a candidate, scored by
///    frequency × length; the best `seed_size` are kept, and each piece's
///    score starts as the log of its relative frequency.
/// 4. **EM.** The E-step computes, by forward-backward over every word's
///    lattice of possible pieces, how often each piece is expected to be
///    used; the M-step turns expected counts into new scores with
///    SentencePiece's Bayesian update `ψ(count) − ψ(total)` (ψ is the
///    digamma function) and drops pieces expected fewer than 0.5 times.
/// 5. **Pruning.** After `sub_iterations` EM steps, each piece's loss is
///    measured: how much the corpus likelihood drops if the piece is removed
///    and its Viterbi uses fall back to its second-best segmentation. The
///    pieces with the smallest loss are removed, keeping `shrinking_factor`
///    (0.75) of them. Steps 4-5 repeat until at most 1.1 × the target remain.
/// 6. **Finalising.** The required characters and the highest-scoring pieces
///    fill the vocabulary.
///
/// Where this differs from SentencePiece's trainer: there is no text
/// normalisation (no NFKC, spaces are not collapsed, so every text
/// round-trips); seeds are counted per distinct word instead of with a
/// suffix array over sentences, which gives the same counts for pieces that
/// do not cross a space; newlines are ordinary characters (SentencePiece
/// trains on one sentence per line and never sees them); the vocabulary
/// has no `<unk>`, `<s>`, `</s>` pieces (the 256 byte pieces make `<unk>`
/// unnecessary); and required characters are never pruned.
#[derive(Debug, Clone, PartialEq)]
pub struct UnigramTrainer {
    vocab_size: usize,
    character_coverage: f64,
    max_piece_chars: usize,
    seed_size: usize,
    shrinking_factor: f64,
    sub_iterations: usize,
    dummy_prefix: bool,
}

impl UnigramTrainer {
    /// A trainer for `vocab_size` ids in all (256 byte pieces + learned
    /// pieces), with SentencePiece's defaults: coverage 0.9995, pieces of up
    /// to 16 characters, 1,000,000 seeds, shrinking factor 0.75, 2 EM steps
    /// per pruning, dummy prefix on.
    pub fn new(vocab_size: usize) -> Self {
        UnigramTrainer {
            vocab_size,
            character_coverage: 0.9995,
            max_piece_chars: 16,
            seed_size: 1_000_000,
            shrinking_factor: 0.75,
            sub_iterations: 2,
            dummy_prefix: true,
        }
    }

    /// The share of the text's characters that must have their own piece.
    pub fn character_coverage(mut self, coverage: f64) -> Self {
        self.character_coverage = coverage;
        self
    }

    /// The longest piece, in characters.
    pub fn max_piece_chars(mut self, n: usize) -> Self {
        self.max_piece_chars = n;
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
    /// [`Error::InvalidConfig`] for a coverage outside (0, 1] or a maximum
    /// piece length of 0; [`Error::VocabTooSmall`] if the vocabulary cannot
    /// hold the byte pieces and the required characters.
    pub fn train(&self, text: &str) -> Result<Unigram> {
        check_coverage(self.character_coverage)?;
        if self.max_piece_chars == 0 {
            return Err(Error::InvalidConfig { what: "max piece length", value: "0".into(), requirement: ">= 1" });
        }
        let (chars, budget) =
            alphabet(text, self.dummy_prefix, self.character_coverage, self.vocab_size, "a unigram model")?;
        let required: FxHashMap<char, u64> = chars.iter().copied().collect();
        let words = count_words(text, self.dummy_prefix, |c| required.contains_key(&c));
        let mut pieces = self.seed_pieces(&chars, &words);
        let is_required = |p: &str| {
            let mut cs = p.chars();
            matches!((cs.next(), cs.next()), (Some(c), None) if required.contains_key(&c))
        };

        let desired = (budget as f64 * 1.1) as usize;
        loop {
            for _ in 0..self.sub_iterations {
                let model = Lattices::new(&pieces, &words, self.max_piece_chars);
                let expected = model.expected_counts(&pieces);
                pieces = m_step(&pieces, &expected, &is_required);
            }
            if pieces.len() <= desired {
                break;
            }
            let target = desired.max((self.shrinking_factor * pieces.len() as f64) as usize);
            let pruned = prune(&pieces, &words, self.max_piece_chars, target, &is_required);
            if pruned.len() == pieces.len() {
                break;
            }
            pieces = pruned;
        }
        Unigram::new(finalise(&pieces, budget, &is_required), self.dummy_prefix)
    }

    /// The pieces EM starts from: the required characters, then the
    /// substrings of the words that occur at least twice, by frequency ×
    /// length; each scored by the log of its relative frequency.
    fn seed_pieces(&self, chars: &[(char, u64)], words: &[(String, u64)]) -> Vec<(String, f64)> {
        let mut subs: FxHashMap<&str, u64> = FxHashMap::default();
        for (w, count) in words {
            let bounds: Vec<usize> = w.char_indices().map(|(i, _)| i).chain([w.len()]).collect();
            let n = bounds.len() - 1;
            for i in 0..n {
                for j in i + 2..=n.min(i + self.max_piece_chars) {
                    *subs.entry(&w[bounds[i]..bounds[j]]).or_insert(0) += count;
                }
            }
        }
        let mut seeds: Vec<(&str, u64)> = subs.into_iter().filter(|(_, c)| *c >= 2).collect();
        seeds.sort_unstable_by(|a, b| {
            let score = |s: &(&str, u64)| s.1 * s.0.chars().count() as u64;
            score(b).cmp(&score(a)).then(a.0.cmp(b.0))
        });
        seeds.truncate(self.seed_size.saturating_sub(chars.len()));
        let mut pieces: Vec<(String, f64)> = chars.iter().map(|(c, n)| (c.to_string(), *n as f64)).collect();
        pieces.extend(seeds.into_iter().map(|(s, n)| (s.to_string(), n as f64)));
        let total: f64 = pieces.iter().map(|p| p.1).sum();
        for p in &mut pieces {
            p.1 = p.1.ln() - total.ln();
        }
        pieces
    }
}

/// The final vocabulary: every required character, then the highest-scoring
/// other pieces up to `budget` pieces in all, ordered by decreasing score
/// (ties by the piece's text).
fn finalise(pieces: &[(String, f64)], budget: usize, is_required: &impl Fn(&str) -> bool) -> Vec<(String, f64)> {
    let by_score = |&a: &usize, &b: &usize| pieces[b].1.total_cmp(&pieces[a].1).then(pieces[a].0.cmp(&pieces[b].0));
    let mut order: Vec<usize> = (0..pieces.len()).collect();
    order.sort_by(by_score);
    let mut keep: Vec<usize> = order.iter().copied().filter(|&i| is_required(&pieces[i].0)).collect();
    for &i in &order {
        if keep.len() >= budget {
            break;
        }
        if !is_required(&pieces[i].0) {
            keep.push(i);
        }
    }
    keep.sort_by(by_score);
    keep.into_iter().map(|i| pieces[i].clone()).collect()
}

/// Every word's lattice: for each start character, the pieces that start
/// there and where they end.
struct Lattices<'w> {
    words: &'w [(String, u64)],
    /// Per word: (start char, end char, piece index).
    edges: Vec<Vec<(u32, u32, u32)>>,
    lens: Vec<usize>,
}

type Index<'p> = FxHashMap<&'p str, u32>;

fn index_of(pieces: &[(String, f64)]) -> Index<'_> {
    pieces.iter().enumerate().map(|(i, p)| (p.0.as_str(), i as u32)).collect()
}

/// The lattice of `word`: every (start char, end char, piece) whose piece is
/// in `index`, sorted by start.
fn edges_of(word: &str, index: &Index<'_>, max_chars: usize) -> (Vec<(u32, u32, u32)>, usize) {
    let bounds: Vec<usize> = word.char_indices().map(|(i, _)| i).chain([word.len()]).collect();
    let n = bounds.len() - 1;
    let mut e = Vec::new();
    for i in 0..n {
        for j in i + 1..=n.min(i + max_chars) {
            if let Some(&p) = index.get(&word[bounds[i]..bounds[j]]) {
                e.push((i as u32, j as u32, p));
            }
        }
    }
    (e, n)
}

impl<'w> Lattices<'w> {
    fn new(pieces: &[(String, f64)], words: &'w [(String, u64)], max_chars: usize) -> Self {
        let index = index_of(pieces);
        let (edges, lens) = words.iter().map(|(w, _)| edges_of(w, &index, max_chars)).unzip();
        Lattices { words, edges, lens }
    }

    // ANCHOR: e_step
    /// The E-step: the expected number of uses of every piece, by
    /// forward-backward over every word's lattice (in log space), weighted
    /// by how often the word occurs.
    fn expected_counts(&self, pieces: &[(String, f64)]) -> Vec<f64> {
        let mut expected = vec![0.0; pieces.len()];
        for (w, edges) in self.edges.iter().enumerate() {
            let n = self.lens[w];
            let mut alpha = vec![f64::NEG_INFINITY; n + 1];
            let mut beta = vec![f64::NEG_INFINITY; n + 1];
            alpha[0] = 0.0;
            beta[n] = 0.0;
            // Edges are sorted by start, so forward runs in order...
            for &(i, j, p) in edges {
                alpha[j as usize] = log_add(alpha[j as usize], alpha[i as usize] + pieces[p as usize].1);
            }
            // ...and backward in reverse.
            for &(i, j, p) in edges.iter().rev() {
                beta[i as usize] = log_add(beta[i as usize], pieces[p as usize].1 + beta[j as usize]);
            }
            let z = alpha[n];
            if !z.is_finite() {
                continue;
            }
            let count = self.words[w].1 as f64;
            for &(i, j, p) in edges {
                let marginal = (alpha[i as usize] + pieces[p as usize].1 + beta[j as usize] - z).exp();
                expected[p as usize] += count * marginal;
            }
        }
        expected
    }
    // ANCHOR_END: e_step

    /// The Viterbi segmentation of word `w` as piece indices, optionally
    /// without one piece.
    fn viterbi(&self, w: usize, pieces: &[(String, f64)], without: Option<u32>) -> Vec<u32> {
        viterbi_edges(&self.edges[w], self.lens[w], pieces, without)
    }
}

fn viterbi_edges(edges: &[(u32, u32, u32)], n: usize, pieces: &[(String, f64)], without: Option<u32>) -> Vec<u32> {
    let mut best = vec![f64::NEG_INFINITY; n + 1];
    let mut from = vec![(0u32, 0u32); n + 1];
    best[0] = 0.0;
    for &(i, j, p) in edges {
        if Some(p) == without {
            continue;
        }
        let s = best[i as usize] + pieces[p as usize].1;
        if s > best[j as usize] {
            best[j as usize] = s;
            from[j as usize] = (i, p);
        }
    }
    if !best[n].is_finite() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut j = n;
    while j > 0 {
        let (i, p) = from[j];
        out.push(p);
        j = i as usize;
    }
    out.reverse();
    out
}

fn log_add(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

/// The digamma function ψ(x) = d/dx ln Γ(x), as SentencePiece computes it.
fn digamma(mut x: f64) -> f64 {
    let mut result = 0.0;
    while x < 7.0 {
        result -= 1.0 / x;
        x += 1.0;
    }
    x -= 0.5;
    let xx = 1.0 / x;
    let xx2 = xx * xx;
    let xx4 = xx2 * xx2;
    result + x.ln() + (1.0 / 24.0) * xx2 - (7.0 / 960.0) * xx4 + (31.0 / 8064.0) * xx4 * xx2
        - (127.0 / 30720.0) * xx4 * xx4
}

// ANCHOR: m_step
/// The M-step: drop pieces expected fewer than 0.5 times (required
/// characters stay) and score the rest `ψ(count) − ψ(total)`.
fn m_step(pieces: &[(String, f64)], expected: &[f64], is_required: &impl Fn(&str) -> bool) -> Vec<(String, f64)> {
    let kept: Vec<(String, f64)> = pieces
        .iter()
        .zip(expected)
        .filter(|((p, _), e)| **e >= 0.5 || is_required(p))
        .map(|((p, _), &e)| (p.clone(), e.max(0.5)))
        .collect();
    let total: f64 = kept.iter().map(|p| p.1).sum();
    let log_total = digamma(total);
    kept.into_iter().map(|(p, e)| (p, digamma(e) - log_total)).collect()
}
// ANCHOR_END: m_step

// ANCHOR: prune
/// Keeps the `target` pieces whose removal would cost the corpus the most
/// likelihood (SentencePiece's `PruneSentencePieces`).
fn prune(
    pieces: &[(String, f64)],
    words: &[(String, u64)],
    max_chars: usize,
    target: usize,
    is_required: &impl Fn(&str) -> bool,
) -> Vec<(String, f64)> {
    let lattices = Lattices::new(pieces, words, max_chars);
    // How often Viterbi uses each piece, and in how many words.
    let mut freq = vec![0.0f64; pieces.len()];
    let mut in_words = vec![0.0f64; pieces.len()];
    for (w, (_, count)) in words.iter().enumerate() {
        for p in lattices.viterbi(w, pieces, None) {
            freq[p as usize] += *count as f64;
            in_words[p as usize] += *count as f64;
        }
    }
    let sum: f64 = freq.iter().sum();
    let log_sum = sum.ln();
    let word_total: f64 = words.iter().map(|w| w.1 as f64).sum();
    let index = index_of(pieces);
    let mut kept = Vec::new();
    let mut candidates = Vec::new();
    for (i, (p, _)) in pieces.iter().enumerate() {
        if is_required(p) {
            kept.push(i);
            continue;
        }
        // The piece's own best segmentation, with and without it.
        let (edges, n) = edges_of(p, &index, max_chars);
        let with = viterbi_edges(&edges, n, pieces, None);
        if with.len() != 1 || freq[i] == 0.0 {
            continue; // Viterbi never uses it: remove
        }
        let alternatives = viterbi_edges(&edges, n, pieces, Some(i as u32));
        if alternatives.is_empty() {
            kept.push(i);
            continue;
        }
        let f = in_words[i] / word_total;
        let logprob = freq[i].ln() - log_sum;
        let log_sum_alt = (sum + freq[i] * (alternatives.len() as f64 - 1.0)).ln();
        let logprob_alt: f64 = alternatives.iter().map(|&a| (freq[a as usize] + freq[i]).ln() - log_sum_alt).sum();
        candidates.push((i, f * (logprob - logprob_alt)));
    }
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    for (i, _) in candidates {
        if kept.len() >= target {
            break;
        }
        kept.push(i);
    }
    kept.sort_unstable();
    kept.into_iter().map(|i| pieces[i].clone()).collect()
}
// ANCHOR_END: prune

const UNIGRAM_MAGIC: &str = "addmul-unigram v1";

impl Unigram {
    /// The model as UTF-8 text:
    ///
    /// ```text
    /// addmul-unigram v1
    /// dummy_prefix true
    /// pieces 3840
    /// -3.1415 4paBdGhl          (score, base64 of the piece "▁the"; id 256 + line)
    /// ...
    /// ```
    pub fn to_file_string(&self) -> String {
        write_model(
            UNIGRAM_MAGIC,
            self.vocab.dummy_prefix,
            self.vocab.pieces.iter().zip(&self.scores).map(|(p, s)| (format!("{s:e}"), p.clone())),
        )
    }

    /// Reads [`Unigram::to_file_string`]'s format.
    ///
    /// # Errors
    /// [`Error::Parse`] with the line for anything malformed or missing, and
    /// as [`Unigram::new`].
    pub fn from_file_string(text: &str) -> Result<Self> {
        const F: &str = "addmul-unigram file";
        let (dummy_prefix, lines) = read_model(F, UNIGRAM_MAGIC, text)?;
        let mut pieces = Vec::with_capacity(lines.len());
        for PieceLine { line, value, piece } in lines {
            let score: f64 = value.parse().map_err(|_| Error::parse(F, line, format!("bad score {value:?}")))?;
            pieces.push((piece, score));
        }
        Self::new(pieces, dummy_prefix)
    }

    /// Saves the model (see [`Unigram::to_file_string`]).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_file(path.as_ref(), self.to_file_string())
    }

    /// Loads a model saved by [`Unigram::save`].
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be read, and as [`Unigram::from_file_string`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_file_string(&read_text(path.as_ref())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digamma_matches_known_values() {
        // ψ(1) = -γ, ψ(0.5) = -γ - 2 ln 2, ψ(10) = H_9 - γ.
        let gamma = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + gamma).abs() < 1e-9);
        assert!((digamma(0.5) + gamma + 2.0 * 2f64.ln()).abs() < 1e-9);
        let h9: f64 = (1..10).map(|k| 1.0 / k as f64).sum();
        assert!((digamma(10.0) - (h9 - gamma)).abs() < 1e-9);
    }
}
