//! The unigram language model (SentencePiece's default model type): every
//! piece has a score and a word is split into the pieces whose scores add up
//! to the most. This file holds the model, its Viterbi segmentation and file
//! format, and its EM trainer with SentencePiece's pruning.

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

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
/// Training runs on all cores, and three things make it fast. The lattices
/// are built once, from the seeds: EM and pruning only ever remove pieces,
/// so every later lattice is the first one without the removed pieces'
/// edges. The E-step multiplies probabilities instead of adding logs (logs
/// only for words too long for that). And the work on words and substrings
/// is shared out between threads; every word's result is computed on its
/// own and the results are added up in word order, so the model is the same
/// on any number of threads.
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

    /// Trains on `text`, on all cores (the model does not depend on how
    /// many there are).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a coverage outside (0, 1] or a maximum
    /// piece length of 0; [`Error::VocabTooSmall`] if the vocabulary cannot
    /// hold the byte pieces and the required characters.
    pub fn train(&self, text: &str) -> Result<Unigram> {
        self.train_on(text, std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// [`UnigramTrainer::train`] on `threads` threads.
    fn train_on(&self, text: &str, threads: usize) -> Result<Unigram> {
        check_coverage(self.character_coverage)?;
        if self.max_piece_chars == 0 {
            return Err(Error::InvalidConfig { what: "max piece length", value: "0".into(), requirement: ">= 1" });
        }
        let (chars, budget) =
            alphabet(text, self.dummy_prefix, self.character_coverage, self.vocab_size, "a unigram model")?;
        let required: FxHashMap<char, u64> = chars.iter().copied().collect();
        let words = count_words(text, self.dummy_prefix, |c| required.contains_key(&c));
        let char_texts: Vec<String> = chars.iter().map(|(c, _)| c.to_string()).collect();
        let mut pieces = self.seed_pieces(&chars, &char_texts, &words, threads);
        let mut lattices = Lattices::new(&pieces, &words, self.max_piece_chars, threads);

        let desired = (budget as f64 * 1.1) as usize;
        loop {
            for _ in 0..self.sub_iterations {
                let expected = lattices.expected_counts(&pieces, threads);
                pieces = m_step(&pieces, &expected);
                lattices.retain(&pieces);
            }
            if pieces.len() <= desired {
                break;
            }
            let target = desired.max((self.shrinking_factor * pieces.len() as f64) as usize);
            let pruned = prune(&pieces, &lattices, target, threads);
            if pruned.len() == pieces.len() {
                break;
            }
            pieces = pruned;
            lattices.retain(&pieces);
        }
        Unigram::new(finalise(&pieces, budget), self.dummy_prefix)
    }

    /// The pieces EM starts from: the required characters (`chars`, whose
    /// texts are `char_texts`), then the substrings of the words that occur
    /// at least twice, by frequency × length; each scored by the log of its
    /// relative frequency. A piece's id is its place in this list.
    ///
    /// The substrings are counted in [`BUCKETS`] hash tables, by their first
    /// two characters: each table is small enough to stay in the
    /// processor's cache, and the tables are filled on different threads.
    fn seed_pieces<'t>(
        &self,
        chars: &[(char, u64)],
        char_texts: &'t [String],
        words: &'t [(String, u64)],
        threads: usize,
    ) -> Vec<Piece<'t>> {
        // Where substrings start (word, byte offset), by bucket.
        let mut starts = vec![Vec::new(); BUCKETS];
        for (w, (word, _)) in words.iter().enumerate() {
            let mut cs = word.char_indices().peekable();
            while let (Some((i, a)), Some(&(_, b))) = (cs.next(), cs.peek()) {
                starts[bucket(a, b)].push((w as u32, i as u32));
            }
        }
        let buckets: Vec<Range<usize>> = (0..BUCKETS).map(|b| b..b + 1).collect();
        // Per bucket: (substring, count, count × length in characters).
        let counted: Vec<Vec<(&str, u64, u64)>> = parallel(&buckets, threads, |b| {
            let starts = &starts[b.start];
            // About as many distinct substrings as start positions times 3.
            let mut subs: FxHashMap<&str, u64> =
                FxHashMap::with_capacity_and_hasher(3 * starts.len(), Default::default());
            for &(w, start) in starts {
                let (word, count) = &words[w as usize];
                let rest = &word[start as usize..];
                // The ends of the substrings of 2, 3, ... characters.
                let ends = rest.char_indices().map(|(i, _)| i).chain([rest.len()]).skip(2);
                for end in ends.take(self.max_piece_chars.saturating_sub(1)) {
                    *subs.entry(&rest[..end]).or_insert(0) += count;
                }
            }
            subs.into_iter().filter(|(_, c)| *c >= 2).map(|(s, c)| (s, c, c * s.chars().count() as u64)).collect()
        });
        let mut seeds: Vec<(&str, u64, u64)> = counted.into_iter().flatten().collect();
        seeds.sort_unstable_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
        seeds.truncate(self.seed_size.saturating_sub(chars.len()));
        // Scores are counts for a moment.
        let mut pieces: Vec<Piece<'t>> = (chars.iter().zip(char_texts))
            .map(|((_, n), text)| Piece { id: 0, text, score: *n as f64, required: true })
            .chain(seeds.into_iter().map(|(text, n, _)| Piece { id: 0, text, score: n as f64, required: false }))
            .collect();
        let total: f64 = pieces.iter().map(|p| p.score).sum();
        for (id, p) in pieces.iter_mut().enumerate() {
            p.id = id as u32;
            p.score = p.score.ln() - total.ln();
        }
        pieces
    }
}

/// The number of hash tables substrings are sorted into.
const BUCKETS: usize = 64;

/// The hash table of substrings that start with characters `a`, `b`.
fn bucket(a: char, b: char) -> usize {
    let key = (u64::from(a) << 32) | u64::from(b);
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % BUCKETS
}

/// A piece during training.
#[derive(Debug, Clone, Copy)]
struct Piece<'t> {
    /// Its place among the seeds, which it keeps for all of training.
    id: u32,
    text: &'t str,
    /// The log of its probability.
    score: f64,
    /// Whether it is a required character, which is never removed.
    required: bool,
}

/// The final vocabulary: every required character, then the highest-scoring
/// other pieces up to `budget` pieces in all, ordered by decreasing score
/// (ties by the piece's text).
fn finalise(pieces: &[Piece<'_>], budget: usize) -> Vec<(String, f64)> {
    let by_score =
        |&a: &usize, &b: &usize| pieces[b].score.total_cmp(&pieces[a].score).then(pieces[a].text.cmp(pieces[b].text));
    let mut order: Vec<usize> = (0..pieces.len()).collect();
    order.sort_by(by_score);
    let mut keep: Vec<usize> = order.iter().copied().filter(|&i| pieces[i].required).collect();
    for &i in &order {
        if keep.len() >= budget {
            break;
        }
        if !pieces[i].required {
            keep.push(i);
        }
    }
    keep.sort_by(by_score);
    keep.into_iter().map(|i| (pieces[i].text.to_string(), pieces[i].score)).collect()
}

/// An edge of a word's lattice: piece `piece` (its id) covers characters
/// `start..end` of the word.
#[derive(Debug, Clone, Copy)]
struct Edge {
    start: u32,
    end: u32,
    piece: u32,
}

/// Every word's lattice: an edge for each stretch of its characters that is
/// a piece.
///
/// The lattices are built once, from the seeds, by looking up every
/// substring of every word. EM and pruning only ever remove pieces, so after
/// that the lattices only lose edges ([`Lattices::retain`]).
struct Lattices {
    /// All words' edges, word after word, each word's sorted by start, then
    /// end.
    edges: Vec<Edge>,
    /// Word `w`'s edges are `edges[offsets[w]..offsets[w + 1]]`.
    offsets: Vec<usize>,
    /// Each word's length in characters.
    lens: Vec<u32>,
    /// How often each word occurs.
    counts: Vec<f64>,
    /// Where each piece occurs: a word, and the characters it covers there.
    occurrence: Vec<(u32, Range<u32>)>,
    /// The number of seeds: every piece id is below it.
    seeds: usize,
    /// The number of pieces when the edges were last
    /// [retained](Lattices::retain).
    live: usize,
}

impl Lattices {
    /// The lattices of `words` with the pieces `seeds`, of up to `max_chars`
    /// characters.
    fn new(seeds: &[Piece<'_>], words: &[(String, u64)], max_chars: usize, threads: usize) -> Self {
        // The seeds by their text: the characters in one table, longer
        // seeds in the table of their first two characters.
        let mut chars: FxHashMap<char, u32> = FxHashMap::default();
        let mut index: Vec<FxHashMap<&str, u32>> = vec![FxHashMap::default(); BUCKETS];
        for p in seeds {
            let mut cs = p.text.chars();
            match (cs.next(), cs.next()) {
                (Some(a), None) => _ = chars.insert(a, p.id),
                (Some(a), Some(b)) => _ = index[bucket(a, b)].insert(p.text, p.id),
                _ => {}
            }
        }
        // Per range of words: their edges, where each word's edges end, and
        // the words' lengths.
        let parts = parallel(&split(words.len(), threads, |w| words[w].0.len()), threads, |range| {
            let (mut edges, mut ends, mut lens) = (Vec::new(), Vec::new(), Vec::new());
            let mut cs: Vec<(usize, char)> = Vec::new();
            for (word, _) in &words[range] {
                cs.clear();
                cs.extend(word.char_indices());
                let n = cs.len();
                let byte = |i: usize| cs.get(i).map_or(word.len(), |c| c.0);
                for i in 0..n {
                    if let Some(&piece) = chars.get(&cs[i].1) {
                        edges.push(Edge { start: i as u32, end: i as u32 + 1, piece });
                    }
                    let Some(&(_, next)) = cs.get(i + 1) else { continue };
                    let index = &index[bucket(cs[i].1, next)];
                    for j in i + 2..=n.min(i + max_chars) {
                        if let Some(&piece) = index.get(&word[cs[i].0..byte(j)]) {
                            edges.push(Edge { start: i as u32, end: j as u32, piece });
                        }
                    }
                }
                ends.push(edges.len());
                lens.push(n as u32);
            }
            (edges, ends, lens)
        });
        let mut lattices = Lattices {
            edges: Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum()),
            offsets: vec![0],
            lens: Vec::with_capacity(words.len()),
            counts: words.iter().map(|w| w.1 as f64).collect(),
            occurrence: vec![(0, 0..0); seeds.len()],
            seeds: seeds.len(),
            live: seeds.len(),
        };
        for (edges, ends, lens) in parts {
            let base = lattices.edges.len();
            lattices.offsets.extend(ends.into_iter().map(|e| base + e));
            lattices.edges.extend(edges);
            lattices.lens.extend(lens);
        }
        // Every seed was cut from a word, so each has an occurrence.
        for w in 0..words.len() {
            for e in &lattices.edges[lattices.offsets[w]..lattices.offsets[w + 1]] {
                lattices.occurrence[e.piece as usize] = (w as u32, e.start..e.end);
            }
        }
        lattices
    }

    /// Drops the edges of every piece that is not in `pieces`, once an
    /// eighth of the pieces are gone since the last time. Until then the
    /// edges of removed pieces only cost time: their probability is 0 and
    /// their score −∞ ([`Lattices::scores`]), so no segmentation takes them.
    fn retain(&mut self, pieces: &[Piece<'_>]) {
        if pieces.len() > self.live - self.live / 8 {
            return;
        }
        self.live = pieces.len();
        let mut alive = vec![false; self.seeds];
        for p in pieces {
            alive[p.id as usize] = true;
        }
        let mut kept = 0;
        for w in 0..self.lens.len() {
            let (from, to) = (self.offsets[w], self.offsets[w + 1]);
            self.offsets[w] = kept;
            for e in from..to {
                if alive[self.edges[e].piece as usize] {
                    self.edges[kept] = self.edges[e];
                    kept += 1;
                }
            }
        }
        self.offsets[self.lens.len()] = kept;
        self.edges.truncate(kept);
    }

    /// Word `w`'s edges.
    fn word(&self, w: usize) -> &[Edge] {
        &self.edges[self.offsets[w]..self.offsets[w + 1]]
    }

    /// Every seed's score, by id: the score of its piece in `pieces`, or −∞
    /// if it was removed.
    fn scores(&self, pieces: &[Piece<'_>]) -> Vec<f64> {
        let mut scores = vec![f64::NEG_INFINITY; self.seeds];
        for p in pieces {
            scores[p.id as usize] = p.score;
        }
        scores
    }

    /// The words cut into ranges for `threads` threads, of about equal
    /// numbers of edges.
    fn chunks(&self, threads: usize) -> Vec<Range<usize>> {
        split(self.lens.len(), threads, |w| self.offsets[w + 1] - self.offsets[w] + 1)
    }
}

// ANCHOR: e_step
/// Forward-backward over one word of `n` characters. A segmentation's
/// probability is the product of its pieces' probabilities `probs`;
/// `alpha[j]` is the summed probability of every segmentation of the first
/// `j` characters, and `beta[i]` that of the characters from `i` on. So the
/// share of the word's probability `alpha[n]` that comes from segmentations
/// using edge `i..j` (a piece of probability `p`) is
/// `alpha[i] · p · beta[j] / alpha[n]`: that, times `count` (how often the
/// word occurs), is written to `out` for every edge.
///
/// Returns false, leaving the work to [`forward_backward_log`], if
/// `alpha[n]` is too small for an `f64`, as a product of hundreds of
/// probabilities can be (for words of hundreds of characters).
fn forward_backward(
    edges: &[Edge],
    n: usize,
    probs: &[f64],
    count: f64,
    alpha: &mut Vec<f64>,
    beta: &mut Vec<f64>,
    out: &mut [f64],
) -> bool {
    alpha.clear();
    alpha.resize(n + 1, 0.0);
    alpha[0] = 1.0;
    // Edges are sorted by start, so forward runs in order...
    for e in edges {
        alpha[e.end as usize] += alpha[e.start as usize] * probs[e.piece as usize];
    }
    let z = alpha[n];
    if z < 1e-200 {
        return false;
    }
    beta.clear();
    beta.resize(n + 1, 0.0);
    beta[n] = 1.0;
    // ...and backward in reverse.
    for e in edges.iter().rev() {
        beta[e.start as usize] += probs[e.piece as usize] * beta[e.end as usize];
    }
    let scale = count / z;
    for (e, out) in edges.iter().zip(out) {
        *out = alpha[e.start as usize] * probs[e.piece as usize] * beta[e.end as usize] * scale;
    }
    true
}

impl Lattices {
    /// The E-step: the expected number of uses of every piece (by id), by
    /// forward-backward over every word's lattice, weighted by how often the
    /// word occurs.
    ///
    /// The words are shared out between threads. Each edge's expected uses
    /// get a slot of their own, and the slots are added up afterwards in
    /// edge order, so the sums do not depend on the number of threads.
    fn expected_counts(&self, pieces: &[Piece<'_>], threads: usize) -> Vec<f64> {
        let scores = self.scores(pieces);
        let mut probs = vec![0.0; self.seeds];
        for p in pieces {
            probs[p.id as usize] = p.score.exp();
        }
        let per_edge = parallel(&self.chunks(threads), threads, |words| {
            let mut out = vec![0.0; self.offsets[words.end] - self.offsets[words.start]];
            let (mut alpha, mut beta) = (Vec::new(), Vec::new());
            let mut done = 0;
            for w in words {
                let (edges, n, count) = (self.word(w), self.lens[w] as usize, self.counts[w]);
                let out = &mut out[done..done + edges.len()];
                if !forward_backward(edges, n, &probs, count, &mut alpha, &mut beta, out) {
                    forward_backward_log(edges, n, &scores, count, &mut alpha, &mut beta, out);
                }
                done += edges.len();
            }
            out
        });
        let mut expected = vec![0.0; self.seeds];
        for (e, uses) in self.edges.iter().zip(per_edge.iter().flatten()) {
            expected[e.piece as usize] += uses;
        }
        expected
    }
}
// ANCHOR_END: e_step

/// [`forward_backward`] in log space, for words whose probability is too
/// small for an `f64`: `alpha`, `beta` and `scores` are logs of
/// probabilities, so products become sums and sums become [`log_add`]s.
fn forward_backward_log(
    edges: &[Edge],
    n: usize,
    scores: &[f64],
    count: f64,
    alpha: &mut Vec<f64>,
    beta: &mut Vec<f64>,
    out: &mut [f64],
) {
    alpha.clear();
    alpha.resize(n + 1, f64::NEG_INFINITY);
    beta.clear();
    beta.resize(n + 1, f64::NEG_INFINITY);
    alpha[0] = 0.0;
    beta[n] = 0.0;
    for e in edges {
        let (i, j) = (e.start as usize, e.end as usize);
        alpha[j] = log_add(alpha[j], alpha[i] + scores[e.piece as usize]);
    }
    for e in edges.iter().rev() {
        let (i, j) = (e.start as usize, e.end as usize);
        beta[i] = log_add(beta[i], scores[e.piece as usize] + beta[j]);
    }
    let z = alpha[n];
    for (e, out) in edges.iter().zip(out) {
        let (i, j) = (e.start as usize, e.end as usize);
        *out = if z.is_finite() { count * (alpha[i] + scores[e.piece as usize] + beta[j] - z).exp() } else { 0.0 };
    }
}

/// `ln(eᵃ + eᵇ)`, without leaving log space.
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

/// Viterbi on the lattices, with its scratch space (reused from word to
/// word).
#[derive(Default)]
struct Viterbi {
    /// For each character position: the best score of a segmentation of
    /// the characters before it, where its last piece starts, and that
    /// piece.
    best: Vec<(f64, u32, u32)>,
    /// The last segmentation found.
    pieces: Vec<u32>,
}

impl Viterbi {
    /// The best segmentation of characters `span` of a word, from the
    /// word's edges (edges outside `span` are skipped), as piece ids,
    /// optionally without piece `without`; empty if there is none.
    fn run(&mut self, edges: &[Edge], span: Range<u32>, scores: &[f64], without: Option<u32>) -> &[u32] {
        let n = (span.end - span.start) as usize;
        let best = &mut self.best;
        best.clear();
        best.resize(n + 1, (f64::NEG_INFINITY, 0, 0));
        best[0].0 = 0.0;
        for e in edges {
            if e.start < span.start || e.end > span.end || Some(e.piece) == without {
                continue;
            }
            let (i, j) = ((e.start - span.start) as usize, (e.end - span.start) as usize);
            let s = best[i].0 + scores[e.piece as usize];
            if s > best[j].0 {
                best[j] = (s, i as u32, e.piece);
            }
        }
        self.pieces.clear();
        if best[n].0.is_finite() {
            let mut j = n;
            while j > 0 {
                let (_, i, p) = best[j];
                self.pieces.push(p);
                j = i as usize;
            }
            self.pieces.reverse();
        }
        &self.pieces
    }
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
fn m_step<'t>(pieces: &[Piece<'t>], expected: &[f64]) -> Vec<Piece<'t>> {
    let kept: Vec<(Piece<'t>, f64)> = pieces
        .iter()
        .map(|p| (*p, expected[p.id as usize]))
        .filter(|(p, e)| *e >= 0.5 || p.required)
        .map(|(p, e)| (p, e.max(0.5)))
        .collect();
    let total: f64 = kept.iter().map(|p| p.1).sum();
    let log_total = digamma(total);
    kept.into_iter().map(|(p, e)| Piece { score: digamma(e) - log_total, ..p }).collect()
}
// ANCHOR_END: m_step

// ANCHOR: prune
/// Keeps the `target` pieces whose removal would cost the corpus the most
/// likelihood (SentencePiece's `PruneSentencePieces`).
fn prune<'t>(pieces: &[Piece<'t>], lattices: &Lattices, target: usize, threads: usize) -> Vec<Piece<'t>> {
    let scores = lattices.scores(pieces);
    // How often Viterbi uses each piece, counting each word as often as it
    // occurs. (SentencePiece also counts the words that use a piece, with
    // the same result: a word that uses a piece twice counts twice.)
    let uses: Vec<Vec<(u32, u32)>> = parallel(&lattices.chunks(threads), threads, |words| {
        let (mut viterbi, mut uses) = (Viterbi::default(), Vec::new());
        for w in words {
            let pieces = viterbi.run(lattices.word(w), 0..lattices.lens[w], &scores, None);
            uses.extend(pieces.iter().map(|&p| (w as u32, p)));
        }
        uses
    });
    let mut freq = vec![0.0f64; lattices.seeds];
    for &(w, p) in uses.iter().flatten() {
        freq[p as usize] += lattices.counts[w as usize];
    }
    let sum: f64 = freq.iter().sum();
    let log_sum = sum.ln();
    let word_total: f64 = lattices.counts.iter().sum();
    let mut viterbi = Viterbi::default();
    let mut kept = Vec::new();
    let mut candidates = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        if p.required {
            kept.push(i);
            continue;
        }
        let id = p.id as usize;
        // The piece's own best segmentation, with and without it: the edges
        // within the piece, in a word where it occurs, are its own lattice.
        let (w, span) = lattices.occurrence[id].clone();
        let edges = lattices.word(w as usize);
        let edges =
            &edges[edges.partition_point(|e| e.start < span.start)..edges.partition_point(|e| e.start < span.end)];
        if viterbi.run(edges, span.clone(), &scores, None).len() != 1 || freq[id] == 0.0 {
            continue; // Viterbi never uses it: remove
        }
        let alternatives = viterbi.run(edges, span, &scores, Some(p.id));
        if alternatives.is_empty() {
            kept.push(i);
            continue;
        }
        let f = freq[id] / word_total;
        let logprob = freq[id].ln() - log_sum;
        let log_sum_alt = (sum + freq[id] * (alternatives.len() as f64 - 1.0)).ln();
        let logprob_alt: f64 = alternatives.iter().map(|&a| (freq[a as usize] + freq[id]).ln() - log_sum_alt).sum();
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
    kept.into_iter().map(|i| pieces[i]).collect()
}
// ANCHOR_END: prune

// --- sharing work out between threads ---------------------------------------

/// Cuts `0..n` into consecutive ranges of about equal total `weight`: one
/// range for one thread, else eight per thread, so that a thread that is
/// done early takes on another range.
fn split(n: usize, threads: usize, weight: impl Fn(usize) -> usize) -> Vec<Range<usize>> {
    let parts = if threads <= 1 { 1 } else { threads * 8 };
    let per_part = ((0..n).map(&weight).sum::<usize>() / parts).max(1);
    let mut ranges = Vec::with_capacity(parts + 1);
    let (mut start, mut sum) = (0, 0);
    for i in 0..n {
        sum += weight(i);
        if sum >= per_part {
            ranges.push(start..i + 1);
            (start, sum) = (i + 1, 0);
        }
    }
    if start < n {
        ranges.push(start..n);
    }
    ranges
}

/// Runs `job` on every range of `ranges` on up to `threads` threads (each
/// thread takes the next range when it is done with one) and returns the
/// results in the order of the ranges.
fn parallel<T: Send>(ranges: &[Range<usize>], threads: usize, job: impl Fn(Range<usize>) -> T + Sync) -> Vec<T> {
    let threads = threads.clamp(1, ranges.len().max(1));
    if threads == 1 {
        return ranges.iter().map(|r| job(r.clone())).collect();
    }
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, T)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(range) = ranges.get(i) else { break };
                        done.push((i, job(range.clone())));
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a training thread panicked")).collect()
    });
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

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
    use crate::Tokenizer;

    #[test]
    fn digamma_matches_known_values() {
        // ψ(1) = -γ, ψ(0.5) = -γ - 2 ln 2, ψ(10) = H_9 - γ.
        let gamma = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + gamma).abs() < 1e-9);
        assert!((digamma(0.5) + gamma + 2.0 * 2f64.ln()).abs() < 1e-9);
        let h9: f64 = (1..10).map(|k| 1.0 / k as f64).sum();
        assert!((digamma(10.0) - (h9 - gamma)).abs() < 1e-9);
    }

    /// Pseudo-words from a fixed list of syllables, with a few newlines and
    /// punctuation, by a linear congruential generator.
    fn text(words: usize, seed: u64) -> String {
        const SYLLABLES: [&str; 12] = ["the", "ca", "t", "sat", "on", "ma", "ing", "ed", "re", "st", "ou", "é"];
        let mut state = seed;
        let mut next = |n: usize| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize % n
        };
        let mut out = String::new();
        for _ in 0..words {
            for _ in 0..1 + next(3) {
                out.push_str(SYLLABLES[next(SYLLABLES.len())]);
            }
            out.push_str([" ", " ", " ", " ", ", ", ".\n"][next(6)]);
        }
        out
    }

    #[test]
    fn the_model_does_not_depend_on_the_number_of_threads() {
        let text = text(3000, 1);
        let trainer = UnigramTrainer::new(256 + 150);
        let one = trainer.train_on(&text, 1).unwrap().to_file_string();
        for threads in [2, 3, 8] {
            assert_eq!(trainer.train_on(&text, threads).unwrap().to_file_string(), one, "{threads} threads");
        }
    }

    /// Every segmentation of a word covers each of its characters once, so
    /// the expected uses of its edges, weighted by their lengths, add up to
    /// the word's length times its count.
    fn check_expected_uses(edges: &[Edge], n: usize, out: &[f64], count: f64) {
        let covered: f64 = edges.iter().zip(out).map(|(e, u)| u * f64::from(e.end - e.start)).sum();
        assert!((covered - count * n as f64).abs() < 1e-9 * count * n as f64, "{covered} for {n} characters");
    }

    #[test]
    fn forward_backward_agrees_with_log_space() {
        // "abc" with pieces a, b, c, ab, bc, abc (ids 0-5).
        let edges = [(0, 1, 0), (0, 2, 3), (0, 3, 5), (1, 2, 1), (1, 3, 4), (2, 3, 2)]
            .map(|(start, end, piece)| Edge { start, end, piece });
        let probs = [0.3, 0.2, 0.1, 0.15, 0.05, 0.2];
        let scores: Vec<f64> = probs.iter().map(|p: &f64| p.ln()).collect();
        let (mut alpha, mut beta, mut linear, mut log) = (Vec::new(), Vec::new(), [0.0; 6], [0.0; 6]);
        assert!(forward_backward(&edges, 3, &probs, 2.0, &mut alpha, &mut beta, &mut linear));
        forward_backward_log(&edges, 3, &scores, 2.0, &mut alpha, &mut beta, &mut log);
        for (a, b) in linear.iter().zip(&log) {
            assert!((a - b).abs() < 1e-12, "{linear:?} {log:?}");
        }
        // The segmentations: a|b|c 0.006, ab|c 0.015, a|bc 0.015, abc 0.2.
        let z = 0.006 + 0.015 + 0.015 + 0.2;
        assert!((linear[2] - 2.0 * 0.2 / z).abs() < 1e-12);
        check_expected_uses(&edges, 3, &linear, 2.0);
    }

    #[test]
    fn long_words_fall_back_to_log_space() {
        // 400 characters, each a piece of probability 0.01 (and pairs of
        // probability 0.001): every segmentation is far below 1e-200.
        let n = 400;
        let mut edges = Vec::new();
        for i in 0..n {
            edges.push(Edge { start: i, end: i + 1, piece: 0 });
            if i + 2 <= n {
                edges.push(Edge { start: i, end: i + 2, piece: 1 });
            }
        }
        let probs = [0.01, 0.001];
        let (mut alpha, mut beta, mut out) = (Vec::new(), Vec::new(), vec![0.0; edges.len()]);
        assert!(!forward_backward(&edges, n as usize, &probs, 3.0, &mut alpha, &mut beta, &mut out));
        let scores = probs.map(f64::ln);
        forward_backward_log(&edges, n as usize, &scores, 3.0, &mut alpha, &mut beta, &mut out);
        assert!(out.iter().all(|u| u.is_finite() && *u >= 0.0));
        check_expected_uses(&edges, n as usize, &out, 3.0);
        // And training on such a word works.
        let word: String = text(300, 2).chars().filter(|c| !c.is_whitespace()).collect();
        let text = format!("{} {word} {}", text(200, 3), text(200, 4));
        let model = UnigramTrainer::new(256 + 60).train(&text).unwrap();
        assert_eq!(model.decode(&model.encode(&text).unwrap()).unwrap(), text);
    }
}
