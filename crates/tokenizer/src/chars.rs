//! One number per character.

use std::collections::BTreeMap;

use crate::{Error, Result, Tokenizer};

// ANCHOR: article_alphabet
/// The characters of the article's code after the 26 letters, in id order:
/// space is 27, newline 28, then punctuation.
pub const ARTICLE_EXTRA: [char; 10] = [' ', '\n', '.', ',', '\'', '!', '?', ';', ':', '-'];
// ANCHOR_END: article_alphabet

/// The article's character code: `a = 1, b = 2, ..., z = 26`.
///
/// The article numbers the letters and leaves the rest open; this code
/// continues with [`ARTICLE_EXTRA`]: space = 27, newline = 28, `.` = 29,
/// `,` = 30, `'` = 31, `!` = 32, `?` = 33, `;` = 34, `:` = 35, `-` = 36.
/// Capital letters are read as small ones ("Humpty" encodes like "humpty",
/// so decoding gives lower case back). Any other character is an
/// [`Error::UnknownChar`]; [`ArticleChars::normalize`] maps a text into the
/// alphabet first.
///
/// Id 0 is no character: it is what a model's fixed-size window holds before
/// the text starts ([`ArticleChars::PAD`]). As an input number it adds
/// nothing (0 times any weight is 0), and it decodes to nothing.
///
/// ```
/// use addmul_tokenizer::{ArticleChars, Tokenizer};
/// let code = ArticleChars;
/// assert_eq!(code.encode("Humpty dumpt")?, [8, 21, 13, 16, 20, 25, 27, 4, 21, 13, 16, 20]);
/// assert_eq!(code.decode(&[0, 25])?, "y");
/// # Ok::<(), addmul_tokenizer::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArticleChars;

impl ArticleChars {
    /// "No character": the padding before a text starts.
    pub const PAD: u32 = 0;
    /// The number of ids, padding included (0..=36).
    pub const VOCAB_SIZE: usize = 27 + ARTICLE_EXTRA.len();

    // ANCHOR: article_id
    /// The id of `c`, if it has one (capitals count as small letters).
    pub fn id(c: char) -> Option<u32> {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() {
            return Some(c as u32 - 'a' as u32 + 1);
        }
        ARTICLE_EXTRA.iter().position(|&x| x == c).map(|i| 27 + i as u32)
    }

    /// The character of `id` (`None` for the padding and unknown ids).
    pub fn char(id: u32) -> Option<char> {
        match id {
            1..=26 => char::from_u32('a' as u32 + id - 1),
            27.. => ARTICLE_EXTRA.get(id as usize - 27).copied(),
            0 => None,
        }
    }
    // ANCHOR_END: article_id

    /// `text` brought into the alphabet: lower case, tabs and carriage
    /// returns as spaces, curly quotes and dashes as their plain forms, and
    /// every other unknown character dropped. Returns the text and how many
    /// characters were dropped.
    pub fn normalize(text: &str) -> (String, usize) {
        let mut out = String::with_capacity(text.len());
        let mut dropped = 0;
        for c in text.chars() {
            let c = match c {
                '\t' | '\r' => ' ',
                '\u{2018}' | '\u{2019}' => '\'',
                '\u{2013}' | '\u{2014}' => '-',
                c => c.to_ascii_lowercase(),
            };
            if Self::id(c).is_some() {
                out.push(c);
            } else {
                dropped += 1;
            }
        }
        (out, dropped)
    }
}

impl Tokenizer for ArticleChars {
    fn vocab_size(&self) -> usize {
        Self::VOCAB_SIZE
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.char_indices().map(|(offset, ch)| Self::id(ch).ok_or(Error::UnknownChar { ch, offset })).collect()
    }

    fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        Ok(self.decode(ids)?.into_bytes())
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        ids.iter()
            .filter(|&&id| id != Self::PAD)
            .map(|&id| Self::char(id).ok_or(Error::UnknownId { id, vocab_size: Self::VOCAB_SIZE }))
            .collect()
    }

    fn token_text(&self, id: u32) -> Result<String> {
        self.decode(&[id])
    }
}

/// What a [`CharTokenizer`] does with a character it has no id for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnknownChars {
    /// [`Error::UnknownChar`] (the default).
    #[default]
    Error,
    /// One extra id, the last, stands for every unknown character and
    /// decodes to `U+FFFD` (`�`). Such text no longer round-trips.
    Replace,
}

/// One id per character of a corpus: ids `0..n` are its distinct characters
/// in code-point order (as nanoGPT's `shakespeare_char` does).
///
/// ```
/// use addmul_tokenizer::{CharTokenizer, Error, Tokenizer, UnknownChars};
/// let chars = CharTokenizer::from_text("hello world");
/// assert_eq!(chars.alphabet(), [' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
/// assert_eq!(chars.encode("hold")?, [3, 5, 4, 1]);
/// assert!(matches!(chars.encode("help"), Err(Error::UnknownChar { ch: 'p', offset: 3 })));
/// let lenient = chars.unknown_chars(UnknownChars::Replace);
/// assert_eq!(lenient.decode(&lenient.encode("help")?)?, "hel\u{FFFD}");
/// # Ok::<(), addmul_tokenizer::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharTokenizer {
    chars: Vec<char>,
    ids: BTreeMap<char, u32>,
    unknown: UnknownChars,
}

impl CharTokenizer {
    /// The distinct characters of `text`, sorted.
    pub fn from_text(text: &str) -> Self {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Self::from_sorted(chars)
    }

    /// The given characters (sorted and deduplicated here).
    pub fn new(chars: impl IntoIterator<Item = char>) -> Self {
        let mut chars: Vec<char> = chars.into_iter().collect();
        chars.sort_unstable();
        chars.dedup();
        Self::from_sorted(chars)
    }

    fn from_sorted(chars: Vec<char>) -> Self {
        let ids = chars.iter().enumerate().map(|(i, &c)| (c, i as u32)).collect();
        CharTokenizer { chars, ids, unknown: UnknownChars::Error }
    }

    /// The same tokenizer with another policy for unknown characters.
    pub fn unknown_chars(mut self, policy: UnknownChars) -> Self {
        self.unknown = policy;
        self
    }

    /// The characters, in id order.
    pub fn alphabet(&self) -> &[char] {
        &self.chars
    }

    /// The id standing for unknown characters, with [`UnknownChars::Replace`].
    pub fn unknown_id(&self) -> Option<u32> {
        (self.unknown == UnknownChars::Replace).then_some(self.chars.len() as u32)
    }
}

impl Tokenizer for CharTokenizer {
    fn vocab_size(&self) -> usize {
        self.chars.len() + usize::from(self.unknown == UnknownChars::Replace)
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.char_indices()
            .map(|(offset, ch)| match (self.ids.get(&ch), self.unknown_id()) {
                (Some(&id), _) => Ok(id),
                (None, Some(unk)) => Ok(unk),
                (None, None) => Err(Error::UnknownChar { ch, offset }),
            })
            .collect()
    }

    fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        Ok(self.decode(ids)?.into_bytes())
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        ids.iter()
            .map(|&id| match self.chars.get(id as usize) {
                Some(&c) => Ok(c),
                None if Some(id) == self.unknown_id() => Ok('\u{FFFD}'),
                None => Err(Error::UnknownId { id, vocab_size: self.vocab_size() }),
            })
            .collect()
    }

    fn token_text(&self, id: u32) -> Result<String> {
        self.decode(&[id])
    }
}
