//! SentencePiece-style subwords: whitespace as `▁`, no pre-splitting, byte
//! fallback; a unigram language model and BPE in that convention.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustc_hash::FxHashMap;

use crate::error::{read_text, utf8};
use crate::merge::merge_by_rank;
use crate::train::PairMerger;
use crate::{Error, Result, Tokenizer};

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

/// Bytes of `ids`: byte pieces as themselves, other pieces with `▁` as a
/// space; one leading space dropped if the model adds a dummy prefix.
fn decode_pieces(ids: &[u32], pieces: &[String], dummy_prefix: bool) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(ids.len() * 4);
    for &id in ids {
        if id < FIRST_PIECE {
            out.push(id as u8);
            continue;
        }
        let piece = pieces
            .get((id - FIRST_PIECE) as usize)
            .ok_or(Error::UnknownId { id, vocab_size: FIRST_PIECE as usize + pieces.len() })?;
        for c in piece.chars() {
            let c = if c == META { ' ' } else { c };
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    if dummy_prefix && out.first() == Some(&b' ') {
        out.remove(0);
    }
    Ok(out)
}

fn piece_text(id: u32, pieces: &[String]) -> Result<String> {
    if id < FIRST_PIECE {
        return Ok(format!("<0x{id:02X}>"));
    }
    pieces
        .get((id - FIRST_PIECE) as usize)
        .cloned()
        .ok_or(Error::UnknownId { id, vocab_size: FIRST_PIECE as usize + pieces.len() })
}

/// The distinct words of `text` (runs of characters that `keep` accepts)
/// with their counts, sorted.
fn count_words(text: &str, dummy_prefix: bool, keep: impl Fn(char) -> bool) -> Vec<(String, u64)> {
    let mut counts: FxHashMap<String, u64> = FxHashMap::default();
    segments(text, dummy_prefix, |s| {
        if let Segment::Word(w) = s {
            runs(&w, &keep, |r| {
                if let Ok(r) = r {
                    *counts.entry(r.to_string()).or_insert(0) += 1;
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

fn check_coverage(coverage: f64) -> Result<()> {
    if coverage > 0.0 && coverage <= 1.0 {
        Ok(())
    } else {
        Err(Error::InvalidConfig { what: "character coverage", value: coverage.to_string(), requirement: "in (0, 1]" })
    }
}

// --- the unigram language model ----------------------------------------------

/// A unigram language-model tokenizer (Kudo 2018), as SentencePiece's
/// default model type.
///
/// Every piece has a score, the log of its probability; a word's
/// segmentation is the one whose pieces' scores add up to the most, found by
/// the Viterbi algorithm ([`Unigram::encode`]). Ids 0..256 are the byte
/// pieces `<0x00>`...`<0xFF>` used for characters without a piece (byte
/// fallback); the learned pieces follow, by decreasing score.
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
    pieces: Vec<String>,
    scores: Vec<f64>,
    ids: FxHashMap<String, u32>,
    max_chars: usize,
    dummy_prefix: bool,
}

impl fmt::Debug for Unigram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unigram")
            .field("pieces", &self.pieces.len())
            .field("dummy_prefix", &self.dummy_prefix)
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
        Ok(Unigram { pieces, scores, ids, max_chars, dummy_prefix })
    }

    /// The pieces (without the byte pieces) with their scores, in id order.
    pub fn pieces(&self) -> impl Iterator<Item = (&str, f64)> {
        self.pieces.iter().map(String::as_str).zip(self.scores.iter().copied())
    }

    /// The id of piece `piece`.
    pub fn piece_id(&self, piece: &str) -> Option<u32> {
        self.ids.get(piece).copied()
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
                if let Some(&id) = self.ids.get(&run[bounds[start]..bounds[end]]) {
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

    fn is_known(&self, c: char) -> bool {
        let mut buf = [0u8; 4];
        self.ids.contains_key(&*c.encode_utf8(&mut buf))
    }
}

impl Tokenizer for Unigram {
    fn vocab_size(&self) -> usize {
        FIRST_PIECE as usize + self.pieces.len()
    }

    /// Words are segmented by the Viterbi algorithm; characters without a
    /// piece become their UTF-8 bytes.
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 3);
        segments(text, self.dummy_prefix, |s| match s {
            Segment::Word(w) => runs(
                &w,
                |c| self.is_known(c),
                |r| match r {
                    Ok(r) => self.viterbi(r, &mut out),
                    Err(c) => byte_fallback(c, &mut out),
                },
            ),
            Segment::Bytes(b) => out.extend(b.iter().map(|&b| u32::from(b))),
        });
        Ok(out)
    }

    fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        decode_pieces(ids, &self.pieces, self.dummy_prefix)
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        utf8(self.decode_bytes(ids)?)
    }

    fn token_text(&self, id: u32) -> Result<String> {
        piece_text(id, &self.pieces)
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
        let chars = covered_chars(text, self.dummy_prefix, self.character_coverage);
        let budget = self.vocab_size.saturating_sub(FIRST_PIECE as usize);
        if budget < chars.len().max(1) {
            return Err(Error::VocabTooSmall {
                requested: self.vocab_size,
                minimum: FIRST_PIECE as usize + chars.len().max(1),
                what: format!("a unigram model (256 byte pieces + {} characters)", chars.len()),
            });
        }
        let required: FxHashMap<char, u64> = chars.iter().copied().collect();
        let words = count_words(text, self.dummy_prefix, |c| required.contains_key(&c));

        // Seeds: characters, then frequent substrings by frequency × length.
        let mut subs: FxHashMap<&str, u64> = FxHashMap::default();
        for (w, count) in &words {
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

        // Finalise: required characters, then the best pieces by score.
        let mut order: Vec<usize> = (0..pieces.len()).collect();
        order.sort_by(|&a, &b| pieces[b].1.total_cmp(&pieces[a].1).then(pieces[a].0.cmp(&pieces[b].0)));
        let mut keep: Vec<usize> = order.iter().copied().filter(|&i| is_required(&pieces[i].0)).collect();
        for &i in &order {
            if keep.len() >= budget {
                break;
            }
            if !is_required(&pieces[i].0) {
                keep.push(i);
            }
        }
        keep.sort_by(|&a, &b| pieces[b].1.total_cmp(&pieces[a].1).then(pieces[a].0.cmp(&pieces[b].0)));
        let final_pieces = keep.into_iter().map(|i| pieces[i].clone()).collect();
        Unigram::new(final_pieces, self.dummy_prefix)
    }
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

// --- BPE in the same convention ----------------------------------------------

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
    pieces: Vec<String>,
    ids: FxHashMap<String, u32>,
    /// Rank (merge order) of every merged piece.
    ranks: FxHashMap<String, u32>,
    dummy_prefix: bool,
}

impl fmt::Debug for SentencePieceBpe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentencePieceBpe")
            .field("pieces", &self.pieces.len())
            .field("merges", &self.ranks.len())
            .finish_non_exhaustive()
    }
}

impl SentencePieceBpe {
    /// The pieces (without the byte pieces), in id order.
    pub fn pieces(&self) -> &[String] {
        &self.pieces
    }

    /// The id of piece `piece`.
    pub fn piece_id(&self, piece: &str) -> Option<u32> {
        self.ids.get(piece).copied()
    }

    fn encode_run(&self, run: &str, out: &mut Vec<u32>) {
        if let Some(&id) = self.ids.get(run) {
            out.push(id);
            return;
        }
        let starts: Vec<usize> = run.char_indices().map(|(i, _)| i).collect();
        let bounds = merge_by_rank(run.as_bytes(), starts, |b| {
            std::str::from_utf8(b).ok().and_then(|s| self.ranks.get(s).copied())
        });
        out.extend(bounds.windows(2).map(|w| self.ids[&run[w[0]..w[1]]]));
    }
}

impl Tokenizer for SentencePieceBpe {
    fn vocab_size(&self) -> usize {
        FIRST_PIECE as usize + self.pieces.len()
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 3);
        segments(text, self.dummy_prefix, |s| match s {
            Segment::Word(w) => runs(
                &w,
                |c| {
                    let mut buf = [0u8; 4];
                    self.ids.contains_key(&*c.encode_utf8(&mut buf))
                },
                |r| match r {
                    Ok(r) => self.encode_run(r, &mut out),
                    Err(c) => byte_fallback(c, &mut out),
                },
            ),
            Segment::Bytes(b) => out.extend(b.iter().map(|&b| u32::from(b))),
        });
        Ok(out)
    }

    fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        decode_pieces(ids, &self.pieces, self.dummy_prefix)
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        utf8(self.decode_bytes(ids)?)
    }

    fn token_text(&self, id: u32) -> Result<String> {
        piece_text(id, &self.pieces)
    }
}

/// Trains a [`SentencePieceBpe`]: words and characters as for
/// [`UnigramTrainer`], then the most frequent neighbouring pair of pieces is
/// merged, over and over, with the same incremental counting and the same
/// tie-break as [`BpeTrainer`](crate::BpeTrainer).
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
    /// As [`UnigramTrainer::train`].
    pub fn train(&self, text: &str) -> Result<SentencePieceBpe> {
        check_coverage(self.character_coverage)?;
        let chars = covered_chars(text, self.dummy_prefix, self.character_coverage);
        let budget = self.vocab_size.saturating_sub(FIRST_PIECE as usize);
        if budget < chars.len().max(1) {
            return Err(Error::VocabTooSmall {
                requested: self.vocab_size,
                minimum: FIRST_PIECE as usize + chars.len().max(1),
                what: format!("a SentencePiece-style BPE (256 byte pieces + {} characters)", chars.len()),
            });
        }
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
        Ok(SentencePieceBpe { pieces, ids, ranks, dummy_prefix: self.dummy_prefix })
    }
}

// --- files -------------------------------------------------------------------

/// Writes a subword model: a header, the dummy-prefix flag, then one line per
/// piece: a value (score or rank) and the piece in base64.
fn write_model(magic: &str, dummy_prefix: bool, lines: impl Iterator<Item = (String, String)>) -> String {
    let lines: Vec<(String, String)> = lines.collect();
    let mut s = format!("{magic}\ndummy_prefix {dummy_prefix}\npieces {}\n", lines.len());
    for (value, piece) in lines {
        s.push_str(&format!("{value} {}\n", BASE64.encode(piece)));
    }
    s
}

/// Reads [`write_model`]'s format: the flag and every (value, piece).
fn read_model(format: &'static str, magic: &str, text: &str) -> Result<(bool, Vec<(String, String)>)> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let mut next = |what: &str| lines.next().ok_or_else(|| Error::parse(format, 0, format!("ends before {what}")));
    let (n, header) = next("the header")?;
    if header != magic {
        return Err(Error::parse(format, n, format!("expected {magic:?}, got {header:?}")));
    }
    let (n, flag) = next("the dummy prefix flag")?;
    let dummy_prefix = match flag {
        "dummy_prefix true" => true,
        "dummy_prefix false" => false,
        _ => return Err(Error::parse(format, n, format!("expected `dummy_prefix true|false`, got {flag:?}"))),
    };
    let (n, count) = next("the piece count")?;
    let count: usize = count
        .strip_prefix("pieces ")
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Error::parse(format, n, format!("expected `pieces <count>`, got {count:?}")))?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (n, line) = next("the last piece")?;
        let (value, b64) = line
            .split_once(' ')
            .ok_or_else(|| Error::parse(format, n, format!("expected `<value> <base64 piece>`, got {line:?}")))?;
        let bytes = BASE64.decode(b64).map_err(|e| Error::parse(format, n, format!("bad base64 {b64:?}: {e}")))?;
        let piece = String::from_utf8(bytes).map_err(|_| Error::parse(format, n, "piece is not UTF-8"))?;
        out.push((value.to_string(), piece));
    }
    if let Some((n, extra)) = lines.find(|(_, l)| !l.is_empty()) {
        return Err(Error::parse(format, n, format!("unexpected line after the pieces: {extra:?}")));
    }
    Ok((dummy_prefix, out))
}

fn write_file(path: &Path, text: String) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Io { context: format!("writing {}", path.display()), source })
}

const UNIGRAM_MAGIC: &str = "addmul-unigram v1";
const SPBPE_MAGIC: &str = "addmul-sentencepiece-bpe v1";

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
            self.dummy_prefix,
            self.pieces.iter().zip(&self.scores).map(|(p, s)| (format!("{s:e}"), p.clone())),
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
        for (i, (score, piece)) in lines.into_iter().enumerate() {
            let score: f64 = score.parse().map_err(|_| Error::parse(F, i + 4, format!("bad score {score:?}")))?;
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

impl SentencePieceBpe {
    /// The model as UTF-8 text: as [`Unigram::to_file_string`], with
    /// `addmul-sentencepiece-bpe v1` as the header and, instead of a score,
    /// each piece's merge rank (`-` for a character).
    pub fn to_file_string(&self) -> String {
        write_model(
            SPBPE_MAGIC,
            self.dummy_prefix,
            self.pieces.iter().map(|p| (self.ranks.get(p).map_or("-".to_string(), u32::to_string), p.clone())),
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
        for (i, (rank, piece)) in lines.into_iter().enumerate() {
            if piece.is_empty() || ids.insert(piece.clone(), FIRST_PIECE + i as u32).is_some() {
                return Err(Error::inconsistent(format!("piece {piece:?} is empty or repeated")));
            }
            if rank != "-" {
                let r: u32 = rank.parse().map_err(|_| Error::parse(F, i + 4, format!("bad rank {rank:?}")))?;
                if !used.insert(r) {
                    return Err(Error::inconsistent(format!("merge rank {r} is used twice")));
                }
                ranks.insert(piece.clone(), r);
            }
            pieces.push(piece);
        }
        Ok(SentencePieceBpe { pieces, ids, ranks, dummy_prefix })
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
