//! Byte-level BPE: encode, decode, special tokens, files.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustc_hash::FxHashMap;

use crate::error::{read_text, utf8};
use crate::merge::merge_by_rank;
use crate::pretok::{Pattern, Splitter, gpt2_chunk_bounds};
use crate::{Error, Result, Tokenizer, bytes};

/// GPT-2's one special token.
pub const ENDOFTEXT: &str = "<|endoftext|>";

/// A set of special tokens, by their text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SpecialSet {
    /// No special token.
    #[default]
    None,
    /// Every special token of the tokenizer.
    All,
    /// These special tokens.
    Only(BTreeSet<String>),
}

impl SpecialSet {
    /// The set of the given tokens.
    pub fn of<S: Into<String>>(tokens: impl IntoIterator<Item = S>) -> Self {
        SpecialSet::Only(tokens.into_iter().map(Into::into).collect())
    }

    fn contains(&self, token: &str) -> bool {
        match self {
            SpecialSet::None => false,
            SpecialSet::All => true,
            SpecialSet::Only(set) => set.contains(token),
        }
    }
}

/// What to do with special tokens' text in the input, as tiktoken's
/// `encode(text, allowed_special, disallowed_special)`:
///
/// - an **allowed** special token becomes its id;
/// - a **disallowed** one is an error ([`Error::DisallowedSpecial`]), because
///   text from a user that contains `<|endoftext|>` is usually a mistake or
///   an attack;
/// - any other is encoded as ordinary text.
///
/// [`SpecialSet::All`] as the disallowed set means "every special token that
/// is not allowed". The default is tiktoken's: nothing allowed, everything
/// disallowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialPolicy {
    /// Special tokens that become their ids.
    pub allowed: SpecialSet,
    /// Special tokens whose text in the input is an error.
    pub disallowed: SpecialSet,
}

impl Default for SpecialPolicy {
    fn default() -> Self {
        SpecialPolicy { allowed: SpecialSet::None, disallowed: SpecialSet::All }
    }
}

impl SpecialPolicy {
    /// Every special token becomes its id (tiktoken's `allowed_special="all"`).
    pub fn allow_all() -> Self {
        SpecialPolicy { allowed: SpecialSet::All, disallowed: SpecialSet::None }
    }

    /// Special tokens' text is ordinary text (tiktoken's `encode_ordinary`).
    pub fn ordinary() -> Self {
        SpecialPolicy { allowed: SpecialSet::None, disallowed: SpecialSet::None }
    }
}

/// A byte-level BPE tokenizer: GPT-2's kind.
///
/// Text is cut into pieces by a [`Pattern`] (or not at all), each piece's
/// UTF-8 bytes start as one-byte tokens, and neighbouring tokens are merged
/// while their joined bytes form a token, lowest rank first (see
/// [`Bpe::encode_ordinary`]). The **rank of a token is its id**: ids
/// `0..n` are the mergeable tokens (all 256 single bytes among them, so any
/// text and any bytes can be encoded), special tokens come after.
///
/// Build one by training ([`BpeTrainer`](crate::BpeTrainer)), from OpenAI's
/// GPT-2 files ([`Bpe::from_encoder_json`]), from a tiktoken rank file
/// ([`Bpe::from_tiktoken`]), or from this crate's own file format
/// ([`Bpe::load`]).
///
/// # Example
/// ```
/// use addmul_tokenizer::{BpeTrainer, Tokenizer};
/// let bpe = BpeTrainer::new(256 + 3).pattern(None).train("aaabdaaabac")?;
/// assert_eq!(bpe.encode("aaabdaaabac")?, [258, 100, 258, 97, 99]);
/// assert_eq!(bpe.decode(&[258])?, "aaab");
/// # Ok::<(), addmul_tokenizer::Error>(())
/// ```
#[derive(Clone)]
pub struct Bpe {
    tokens: Vec<Vec<u8>>,
    ranks: FxHashMap<Vec<u8>, u32>,
    specials: Vec<(String, u32)>,
    special_finder: Option<regex::Regex>,
    pattern: Option<Pattern>,
    splitter: Option<Splitter>,
}

impl fmt::Debug for Bpe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bpe")
            .field("tokens", &self.tokens.len())
            .field("specials", &self.specials)
            .field("pattern", &self.pattern)
            .finish_non_exhaustive()
    }
}

/// One merge: `left` and `right` next to each other become `token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Merge {
    /// The left token's id.
    pub left: u32,
    /// The right token's id.
    pub right: u32,
    /// The merged token's id.
    pub token: u32,
}

impl Bpe {
    /// A tokenizer from its mergeable tokens in rank order (`tokens[id]` is
    /// the bytes of token `id`), its special tokens and its pattern.
    ///
    /// # Errors
    /// [`Error::InconsistentVocab`] if a token is empty or repeated, a single
    /// byte is missing, or a special token is empty, repeated, or has an id
    /// below `tokens.len()` or used twice; [`Error::Pattern`] if the pattern
    /// does not compile.
    pub fn new(tokens: Vec<Vec<u8>>, specials: Vec<(String, u32)>, pattern: Option<Pattern>) -> Result<Self> {
        let mut ranks = FxHashMap::default();
        ranks.reserve(tokens.len());
        for (id, t) in tokens.iter().enumerate() {
            if t.is_empty() {
                return Err(Error::inconsistent(format!("token {id} is empty")));
            }
            if let Some(first) = ranks.insert(t.clone(), id as u32) {
                return Err(Error::inconsistent(format!(
                    "tokens {first} and {id} are both {:?}",
                    bytes::to_gpt2_text(t)
                )));
            }
        }
        if let Some(b) = (0..=255u8).find(|b| !ranks.contains_key(&[*b][..])) {
            return Err(Error::inconsistent(format!("the single byte {b:#04x} is not a token")));
        }
        let mut specials = specials;
        specials.sort();
        let mut ids = BTreeSet::new();
        for (i, (text, id)) in specials.iter().enumerate() {
            if text.is_empty() || (i > 0 && specials[i - 1].0 == *text) {
                return Err(Error::inconsistent(format!("special token {text:?} is empty or repeated")));
            }
            if (*id as usize) < tokens.len() || !ids.insert(*id) {
                return Err(Error::inconsistent(format!(
                    "special token {text:?} has id {id}, which is taken (mergeable tokens are 0..{})",
                    tokens.len()
                )));
            }
        }
        let special_finder = if specials.is_empty() {
            None
        } else {
            let mut texts: Vec<&str> = specials.iter().map(|(t, _)| t.as_str()).collect();
            texts.sort_by_key(|t| std::cmp::Reverse(t.len()));
            let alternation = texts.iter().map(|t| regex::escape(t)).collect::<Vec<_>>().join("|");
            Some(regex::Regex::new(&alternation).map_err(|e| Error::inconsistent(format!("special tokens: {e}")))?)
        };
        let splitter = pattern.as_ref().map(Splitter::new).transpose()?;
        Ok(Bpe { tokens, ranks, specials, special_finder, pattern, splitter })
    }

    /// The number of ids: every id this tokenizer produces is below it.
    pub fn vocab_size(&self) -> usize {
        let top_special = self.specials.iter().map(|(_, id)| *id as usize + 1).max().unwrap_or(0);
        self.tokens.len().max(top_special)
    }

    /// The number of mergeable tokens (ids `0..n`).
    pub fn num_mergeable(&self) -> usize {
        self.tokens.len()
    }

    /// The pre-splitting pattern, if any.
    pub fn pattern(&self) -> Option<&Pattern> {
        self.pattern.as_ref()
    }

    /// The special tokens and their ids, sorted by text.
    pub fn specials(&self) -> &[(String, u32)] {
        &self.specials
    }

    /// The id of special token `text`.
    pub fn special_id(&self, text: &str) -> Option<u32> {
        self.specials.binary_search_by(|(t, _)| t.as_str().cmp(text)).ok().map(|i| self.specials[i].1)
    }

    /// The bytes of token `id` (a special token's text for a special id).
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        match self.tokens.get(id as usize) {
            Some(t) => Some(t),
            None => self.specials.iter().find(|(_, i)| *i == id).map(|(t, _)| t.as_bytes()),
        }
    }

    /// The id of the mergeable token with these bytes.
    pub fn token_id(&self, bytes: &[u8]) -> Option<u32> {
        self.ranks.get(bytes).copied()
    }

    /// For every mergeable token above the single bytes, the two tokens the
    /// encoder joins to make it (found by encoding the token's bytes with
    /// the lower-ranked tokens only), in rank order. A token that those
    /// merges cannot reach as two parts is left out.
    pub fn merges(&self) -> Vec<Merge> {
        let mut out = Vec::new();
        for (id, t) in self.tokens.iter().enumerate().filter(|(_, t)| t.len() > 1) {
            let id = id as u32;
            let bounds = merge_by_rank(t, (0..t.len()).collect(), |b| self.ranks.get(b).copied().filter(|&r| r < id));
            if bounds.len() == 3 {
                let left = self.ranks[&t[..bounds[1]]];
                let right = self.ranks[&t[bounds[1]..]];
                out.push(Merge { left, right, token: id });
            }
        }
        out
    }

    // ANCHOR: encode_piece
    /// Appends the tokens of one piece: the whole piece if it is a token,
    /// otherwise its bytes merged by rank.
    fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) {
        if let Some(&id) = self.ranks.get(piece) {
            out.push(id);
            return;
        }
        let bounds = merge_by_rank(piece, (0..piece.len()).collect(), |b| self.ranks.get(b).copied());
        out.extend(bounds.windows(2).map(|w| self.ranks[&piece[w[0]..w[1]]]));
    }
    // ANCHOR_END: encode_piece

    fn encode_ordinary_into(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        self.encode_ordinary_split(self.splitter.as_ref(), text, out)
    }

    fn encode_ordinary_split(&self, splitter: Option<&Splitter>, text: &str, out: &mut Vec<u32>) -> Result<()> {
        match splitter {
            Some(s) => s.for_each_piece(text, |p| self.encode_piece(p.as_bytes(), out)),
            None => {
                if !text.is_empty() {
                    self.encode_piece(text.as_bytes(), out);
                }
                Ok(())
            }
        }
    }

    /// Encodes `text` with special tokens' text treated as ordinary text
    /// (tiktoken's `encode_ordinary`).
    ///
    /// # Errors
    /// Only [`Error::Pattern`], when a custom pattern fails while matching.
    pub fn encode_ordinary(&self, text: &str) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 3);
        self.encode_ordinary_into(text, &mut out)?;
        Ok(out)
    }

    /// Encodes `text` following `policy` for special tokens (see
    /// [`SpecialPolicy`]).
    ///
    /// ```
    /// use addmul_tokenizer::{BpeTrainer, Error, SpecialPolicy};
    /// let bpe = BpeTrainer::new(300).special_tokens(["<|endoftext|>"]).train("a b c")?;
    /// let eot = bpe.special_id("<|endoftext|>").unwrap();
    /// assert_eq!(bpe.encode_with("a<|endoftext|>", &SpecialPolicy::allow_all())?, [97, eot]);
    /// let refused = bpe.encode_with("a<|endoftext|>", &SpecialPolicy::default());
    /// assert!(matches!(refused, Err(Error::DisallowedSpecial { offset: 1, .. })));
    /// # Ok::<(), addmul_tokenizer::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::DisallowedSpecial`] for the first disallowed special token in
    /// the text; [`Error::Pattern`] as in [`Bpe::encode_ordinary`].
    pub fn encode_with(&self, text: &str, policy: &SpecialPolicy) -> Result<Vec<u32>> {
        let allowed = |t: &str| policy.allowed.contains(t);
        let disallowed = |t: &str| match &policy.disallowed {
            SpecialSet::All => !allowed(t),
            other => other.contains(t),
        };
        let first_disallowed = self
            .specials
            .iter()
            .filter(|(t, _)| disallowed(t))
            .filter_map(|(t, _)| text.find(t.as_str()).map(|offset| (offset, t)))
            .min();
        if let Some((offset, token)) = first_disallowed {
            return Err(Error::DisallowedSpecial { token: token.clone(), offset });
        }
        let mut out = Vec::with_capacity(text.len() / 3);
        let Some(finder) = self.special_finder.as_ref().filter(|_| policy.allowed != SpecialSet::None) else {
            self.encode_ordinary_into(text, &mut out)?;
            return Ok(out);
        };
        let mut start = 0;
        let mut search = 0;
        while let Some(m) = finder.find_at(text, search) {
            if !allowed(m.as_str()) {
                search = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
                continue;
            }
            self.encode_ordinary_into(&text[start..m.start()], &mut out)?;
            out.push(self.special_id(m.as_str()).expect("found specials are specials"));
            start = m.end();
            search = start;
        }
        self.encode_ordinary_into(&text[start..], &mut out)?;
        Ok(out)
    }

    /// Encodes arbitrary bytes, so that every byte sequence round-trips
    /// through [`Bpe::decode_bytes`]. Valid UTF-8 stretches are encoded as
    /// [`Bpe::encode_ordinary`] does; each run of invalid bytes is a piece of
    /// its own.
    ///
    /// # Errors
    /// As [`Bpe::encode_ordinary`].
    pub fn encode_bytes(&self, data: &[u8]) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(data.len() / 3);
        for chunk in data.utf8_chunks() {
            self.encode_ordinary_into(chunk.valid(), &mut out)?;
            if !chunk.invalid().is_empty() {
                self.encode_piece(chunk.invalid(), &mut out);
            }
        }
        Ok(out)
    }

    // ANCHOR: parallel
    /// [`Bpe::encode_ordinary`] on `threads` threads. With the GPT-2 pattern,
    /// the text is cut where no piece can cross (just before a whitespace
    /// character that follows a non-whitespace one), so the result is
    /// exactly the sequential one. Other patterns encode sequentially.
    ///
    /// # Errors
    /// As [`Bpe::encode_ordinary`].
    pub fn encode_ordinary_parallel(&self, text: &str, threads: usize) -> Result<Vec<u32>> {
        let threads = threads.max(1);
        if threads == 1 || self.pattern != Some(Pattern::Gpt2) || text.len() < 1 << 16 {
            return self.encode_ordinary(text);
        }
        let bounds = gpt2_chunk_bounds(text, (text.len() / (threads * 8)).max(1 << 14));
        let chunks: Vec<&str> = bounds.windows(2).map(|w| &text[w[0]..w[1]]).collect();
        let next = AtomicUsize::new(0);
        let mut results: Vec<(usize, Vec<u32>)> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        // A clone of the regex has its own scratch space: no
                        // contention between the threads.
                        let splitter = self.splitter.clone();
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(chunk) = chunks.get(i) else { break };
                            let mut out = Vec::with_capacity(chunk.len() / 3);
                            self.encode_ordinary_split(splitter.as_ref(), chunk, &mut out)
                                .expect("the GPT-2 pattern never fails");
                            done.push((i, out));
                        }
                        done
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().expect("an encoding thread panicked")).collect()
        });
        results.sort_unstable_by_key(|(i, _)| *i);
        Ok(results.into_iter().flat_map(|(_, ids)| ids).collect())
    }
    // ANCHOR_END: parallel

    /// The text of `ids`.
    ///
    /// # Errors
    /// [`Error::UnknownId`], or [`Error::InvalidUtf8`] if the ids end or
    /// split in the middle of a character (use [`Bpe::decode_bytes`]).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        utf8(self.decode_bytes(ids)?)
    }

    /// The bytes of `ids`, concatenated.
    ///
    /// # Errors
    /// [`Error::UnknownId`] for an id that is not in the vocabulary.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let t = self.token_bytes(id).ok_or(Error::UnknownId { id, vocab_size: self.vocab_size() })?;
            out.extend_from_slice(t);
        }
        Ok(out)
    }
}

impl Tokenizer for Bpe {
    fn vocab_size(&self) -> usize {
        Bpe::vocab_size(self)
    }

    /// [`Bpe::encode_with`] and the default [`SpecialPolicy`] (tiktoken's
    /// `encode`): special tokens' text is an error.
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, &SpecialPolicy::default())
    }

    fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        Bpe::decode_bytes(self, ids)
    }

    fn token_text(&self, id: u32) -> Result<String> {
        let b = self.token_bytes(id).ok_or(Error::UnknownId { id, vocab_size: self.vocab_size() })?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }
}

// --- files -------------------------------------------------------------------

const MAGIC: &str = "addmul-bpe v1";

impl Bpe {
    /// GPT-2 from OpenAI's `encoder.json` and `vocab.bpe` (their contents),
    /// with `<|endoftext|>` as its special token.
    ///
    /// # Errors
    /// As [`Bpe::from_encoder_json`].
    pub fn gpt2_from_encoder_json(encoder_json: &str, vocab_bpe: &str) -> Result<Self> {
        Self::from_encoder_json(encoder_json, vocab_bpe, &[ENDOFTEXT], Some(Pattern::Gpt2))
    }

    /// A tokenizer from OpenAI's file pair: `vocab.bpe` lists the merges in
    /// rank order (after an optional `#version` line), each as two tokens
    /// written in GPT-2's byte alphabet ([`crate::bytes`]); `encoder.json`
    /// maps every token, and the special tokens, to its id. The 256 single
    /// bytes get ranks 0..256 in the alphabet's order and merge `i` gets rank
    /// `256 + i`, and `encoder.json` must agree (as tiktoken checks).
    ///
    /// # Errors
    /// [`Error::Parse`] for a malformed line or JSON (with its line),
    /// [`Error::InconsistentVocab`] if the two files disagree (a truncated
    /// `vocab.bpe` leaves tokens of `encoder.json` unexplained) or a special
    /// token is missing.
    pub fn from_encoder_json(
        encoder_json: &str,
        vocab_bpe: &str,
        specials: &[&str],
        pattern: Option<Pattern>,
    ) -> Result<Self> {
        let mut tokens: Vec<Vec<u8>> = bytes::gpt2_byte_order().iter().map(|&b| vec![b]).collect();
        let mut seen: FxHashMap<Vec<u8>, u32> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let decode = |field: &str, line: usize| {
            bytes::from_gpt2_text(field)
                .map_err(|c| Error::parse("vocab.bpe", line, format!("{c:?} is not in GPT-2's byte alphabet")))
        };
        for (i, line) in vocab_bpe.lines().enumerate() {
            let n = i + 1;
            if (n == 1 && line.starts_with("#version")) || line.is_empty() {
                continue;
            }
            let mut fields = line.split(' ');
            let (Some(left), Some(right), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(Error::parse("vocab.bpe", n, format!("expected two tokens, got {line:?}")));
            };
            let (left, right) = (decode(left, n)?, decode(right, n)?);
            if !seen.contains_key(&left) || !seen.contains_key(&right) {
                return Err(Error::parse("vocab.bpe", n, format!("{line:?} merges a token that does not exist yet")));
            }
            let merged = [left, right].concat();
            if seen.insert(merged.clone(), tokens.len() as u32).is_some() {
                return Err(Error::parse("vocab.bpe", n, format!("{line:?} makes a token that already exists")));
            }
            tokens.push(merged);
        }
        let encoder: FxHashMap<String, u32> = serde_json::from_str(encoder_json)
            .map_err(|e| Error::parse("encoder.json", e.line(), format!("not a JSON object of token ids: {e}")))?;
        let mut special_ids = Vec::new();
        for &s in specials {
            let id = *encoder
                .get(s)
                .ok_or_else(|| Error::inconsistent(format!("special token {s:?} is not in encoder.json")))?;
            special_ids.push((s.to_string(), id));
        }
        for (key, &id) in &encoder {
            if specials.contains(&key.as_str()) {
                continue;
            }
            let rank = bytes::from_gpt2_text(key).ok().and_then(|b| seen.get(&b).copied());
            match rank {
                Some(r) if r == id => {}
                Some(r) => {
                    return Err(Error::inconsistent(format!("encoder.json gives {key:?} id {id}, vocab.bpe rank {r}")));
                }
                None => {
                    return Err(Error::inconsistent(format!(
                        "encoder.json has {key:?} (id {id}), which vocab.bpe does not make (is vocab.bpe truncated?)"
                    )));
                }
            }
        }
        if encoder.len() != tokens.len() + specials.len() {
            return Err(Error::inconsistent(format!(
                "encoder.json has {} entries, vocab.bpe makes {} tokens and there are {} special tokens",
                encoder.len(),
                tokens.len(),
                specials.len()
            )));
        }
        Self::new(tokens, special_ids, pattern)
    }

    /// GPT-2 from the paths of OpenAI's `encoder.json` and `vocab.bpe`.
    ///
    /// ```no_run
    /// use addmul_tokenizer::{Bpe, Tokenizer};
    /// let gpt2 = Bpe::gpt2_from_openai_files("gpt2/encoder.json", "gpt2/vocab.bpe")?;
    /// assert_eq!(gpt2.encode("Hello world")?, [15496, 995]);
    /// # Ok::<(), addmul_tokenizer::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`] if a file cannot be read, and as
    /// [`Bpe::from_encoder_json`].
    pub fn gpt2_from_openai_files(encoder_json: impl AsRef<Path>, vocab_bpe: impl AsRef<Path>) -> Result<Self> {
        Self::gpt2_from_encoder_json(&read_text(encoder_json.as_ref())?, &read_text(vocab_bpe.as_ref())?)
    }

    /// GPT-2 from the path of its tiktoken rank file (`gpt2.tiktoken` or
    /// `r50k_base.tiktoken`).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read, and as
    /// [`Bpe::from_tiktoken`].
    pub fn gpt2_from_tiktoken_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::gpt2_from_tiktoken(&read_text(path.as_ref())?)
    }

    /// GPT-2 (tiktoken's `gpt2`, also called `r50k_base`) from its tiktoken
    /// rank file, with the GPT-2 pattern and `<|endoftext|>` = 50256.
    ///
    /// # Errors
    /// As [`Bpe::from_tiktoken`].
    pub fn gpt2_from_tiktoken(ranks_file: &str) -> Result<Self> {
        Self::from_tiktoken(ranks_file, Some(Pattern::Gpt2), vec![(ENDOFTEXT.to_string(), 50256)])
    }

    /// A tokenizer from a tiktoken rank file: one `base64(token bytes) rank`
    /// per line, ranks `0..n` each exactly once.
    ///
    /// # Errors
    /// [`Error::Parse`] for a malformed line, [`Error::InconsistentVocab`] for
    /// ranks with a gap or a repeat, and as [`Bpe::new`].
    pub fn from_tiktoken(ranks_file: &str, pattern: Option<Pattern>, specials: Vec<(String, u32)>) -> Result<Self> {
        let tokens = parse_rank_lines(ranks_file.lines().enumerate().map(|(i, l)| (i + 1, l)), "tiktoken rank file")?;
        Self::new(tokens, specials, pattern)
    }

    /// The tokenizer in this crate's text format (see [`Bpe::save`]).
    pub fn to_file_string(&self) -> String {
        let mut s = String::with_capacity(self.tokens.len() * 16);
        s.push_str(MAGIC);
        s.push('\n');
        match &self.pattern {
            None => s.push_str("pattern none\n"),
            Some(Pattern::Gpt2) => s.push_str("pattern gpt2\n"),
            Some(Pattern::Custom(p)) => s.push_str(&format!("pattern custom {}\n", BASE64.encode(p))),
        }
        s.push_str(&format!("specials {}\n", self.specials.len()));
        for (t, id) in &self.specials {
            s.push_str(&format!("{} {id}\n", BASE64.encode(t)));
        }
        s.push_str(&format!("tokens {}\n", self.tokens.len()));
        for (id, t) in self.tokens.iter().enumerate() {
            s.push_str(&format!("{} {id}\n", BASE64.encode(t)));
        }
        s
    }

    /// Reads [`Bpe::to_file_string`]'s format.
    ///
    /// # Errors
    /// [`Error::Parse`] with the line for anything malformed or missing (a
    /// truncated file is caught by the counts), and as [`Bpe::new`].
    pub fn from_file_string(text: &str) -> Result<Self> {
        const F: &str = "addmul-bpe file";
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        let mut next = |what: &str| lines.next().ok_or_else(|| Error::parse(F, 0, format!("ends before {what}")));
        let (n, magic) = next("the header")?;
        if magic != MAGIC {
            return Err(Error::parse(F, n, format!("expected {MAGIC:?}, got {magic:?}")));
        }
        let (n, pattern) = next("the pattern")?;
        let pattern = match pattern.split_once(' ') {
            Some(("pattern", "none")) => None,
            Some(("pattern", "gpt2")) => Some(Pattern::Gpt2),
            Some(("pattern", rest)) if rest.starts_with("custom ") => {
                let raw = BASE64.decode(&rest[7..]).map_err(|e| Error::parse(F, n, format!("pattern: {e}")))?;
                Some(Pattern::Custom(String::from_utf8(raw).map_err(|_| Error::parse(F, n, "pattern is not UTF-8"))?))
            }
            _ => {
                return Err(Error::parse(
                    F,
                    n,
                    format!("expected `pattern none|gpt2|custom <base64>`, got {pattern:?}"),
                ));
            }
        };
        let count = |line: (usize, &str), key: &str| -> Result<usize> {
            line.1
                .strip_prefix(key)
                .and_then(|r| r.strip_prefix(' '))
                .and_then(|r| r.parse().ok())
                .ok_or_else(|| Error::parse(F, line.0, format!("expected `{key} <count>`, got {:?}", line.1)))
        };
        let n_specials = count(next("the special tokens")?, "specials")?;
        // Counts come from the file: each entry takes a line of it, so the
        // text's length bounds what can really follow.
        let mut specials = Vec::with_capacity(n_specials.min(text.len()));
        for _ in 0..n_specials {
            let (n, line) = next("the last special token")?;
            let (t, id) = parse_rank_line(line, n, F)?;
            let t = String::from_utf8(t).map_err(|_| Error::parse(F, n, "special token is not UTF-8"))?;
            specials.push((t, id));
        }
        let n_tokens = count(next("the tokens")?, "tokens")?;
        let mut token_lines = Vec::with_capacity(n_tokens.min(text.len()));
        for _ in 0..n_tokens {
            token_lines.push(next("the last token")?);
        }
        if let Some((n, extra)) = lines.find(|(_, l)| !l.is_empty()) {
            return Err(Error::parse(F, n, format!("unexpected line after the tokens: {extra:?}")));
        }
        let tokens = parse_rank_lines(token_lines.into_iter(), F)?;
        Self::new(tokens, specials, pattern)
    }

    /// Saves the tokenizer as UTF-8 text:
    ///
    /// ```text
    /// addmul-bpe v1
    /// pattern gpt2                      (or `none`, or `custom <base64 regex>`)
    /// specials 1
    /// PHxlbmRvZnRleHR8Pg== 50256        (base64 of the text, id)
    /// tokens 50256
    /// IQ== 0                            (base64 of the bytes, id = rank)
    /// ...
    /// ```
    ///
    /// The token lines are exactly a tiktoken rank file.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_file_string())
            .map_err(|source| Error::Io { context: format!("writing {}", path.display()), source })
    }

    /// Loads a file written by [`Bpe::save`].
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be read, and as [`Bpe::from_file_string`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_file_string(&read_text(path.as_ref())?)
    }
}

fn parse_rank_line(line: &str, n: usize, format: &'static str) -> Result<(Vec<u8>, u32)> {
    let (b64, rank) = line
        .split_once(' ')
        .ok_or_else(|| Error::parse(format, n, format!("expected `<base64> <id>`, got {line:?}")))?;
    let bytes = BASE64.decode(b64).map_err(|e| Error::parse(format, n, format!("bad base64 {b64:?}: {e}")))?;
    let rank = rank.parse().map_err(|_| Error::parse(format, n, format!("bad id {rank:?}")))?;
    Ok((bytes, rank))
}

fn parse_rank_lines<'a>(lines: impl Iterator<Item = (usize, &'a str)>, format: &'static str) -> Result<Vec<Vec<u8>>> {
    let mut pairs = Vec::new();
    for (n, line) in lines {
        if line.is_empty() {
            continue;
        }
        pairs.push(parse_rank_line(line, n, format)?);
    }
    pairs.sort_by_key(|(_, r)| *r);
    for (i, (_, r)) in pairs.iter().enumerate() {
        if *r as usize != i {
            return Err(Error::inconsistent(format!(
                "{format}: ranks must be 0..{} once each; rank {i} is {r}",
                pairs.len()
            )));
        }
    }
    Ok(pairs.into_iter().map(|(b, _)| b).collect())
}
