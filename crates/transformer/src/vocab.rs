//! Token ids, the three special tokens, and vocabularies of words.

use std::collections::HashMap;

use crate::{Result, Side, TransformerError};

/// A token id.
pub type TokenId = u32;

// ANCHOR: specials
/// The ids of the three tokens every sequence-to-sequence model needs.
///
/// - `pad` fills the end of the shorter sequences of a batch; attention never
///   looks at it and the loss never counts it.
/// - `start` is the decoder's first input: "begin the translation".
/// - `end` is the decoder's last output: "the translation is complete".
///
/// This struct is the **only** place these ids are defined. Every
/// [`Vocab`] puts them at the same ids, the model keeps the set it was built
/// with in its configuration, and batching (training) and decoding both read
/// them from there. (A well-known tutorial trains with one start id and
/// decodes with another, which is also its padding id: the model then never
/// sees at decoding time the token it was trained to start from.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Specials {
    /// Padding.
    pub pad: TokenId,
    /// Start of the target sequence (the decoder's first input).
    pub start: TokenId,
    /// End of the target sequence (the decoder's last output).
    pub end: TokenId,
}

impl Specials {
    /// Padding 0, start 1, end 2: the ids every [`Vocab`] uses.
    pub const DEFAULT: Specials = Specials { pad: 0, start: 1, end: 2 };

    /// The three tokens' written forms, in id order.
    pub const NAMES: [&'static str; 3] = ["<pad>", "<s>", "</s>"];

    /// The name of `id` if it is one of the three, else `None`.
    pub fn name(&self, id: TokenId) -> Option<&'static str> {
        [(self.pad, "<pad>"), (self.start, "<s>"), (self.end, "</s>")]
            .into_iter()
            .find_map(|(s, name)| (s == id).then_some(name))
    }
}
// ANCHOR_END: specials

impl Default for Specials {
    fn default() -> Self {
        Specials::DEFAULT
    }
}

/// A vocabulary: the three specials (ids 0, 1, 2, see [`Specials::DEFAULT`])
/// followed by the given tokens, in order.
///
/// # Example
/// ```
/// use addmul_transformer::{Side, Vocab};
/// let vocab = Vocab::new(Side::Source, ["one", "two"])?;
/// assert_eq!(vocab.len(), 5);
/// assert_eq!(vocab.encode(&["two", "one"])?, [4, 3]);
/// assert_eq!(vocab.tokens(&[4, 3]), ["two", "one"]);
/// # Ok::<(), addmul_transformer::TransformerError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    side: Side,
    tokens: Vec<String>,
    index: HashMap<String, TokenId>,
}

impl Vocab {
    /// The specials followed by `tokens`.
    ///
    /// # Errors
    /// [`TransformerError::DuplicateToken`] if a token appears twice or is
    /// written like a special.
    pub fn new<S: Into<String>>(side: Side, tokens: impl IntoIterator<Item = S>) -> Result<Self> {
        let mut all: Vec<String> = Specials::NAMES.iter().map(|s| s.to_string()).collect();
        all.extend(tokens.into_iter().map(Into::into));
        let mut index = HashMap::with_capacity(all.len());
        for (id, token) in all.iter().enumerate() {
            if index.insert(token.clone(), id as TokenId).is_some() {
                return Err(TransformerError::DuplicateToken { token: token.clone() });
            }
        }
        Ok(Vocab { side, tokens: all, index })
    }

    /// Which side of a model this vocabulary is for (used in error messages).
    pub fn side(&self) -> Side {
        self.side
    }

    /// The special ids (always [`Specials::DEFAULT`]).
    pub fn specials(&self) -> Specials {
        Specials::DEFAULT
    }

    /// Number of ids, specials included.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// `false`: a vocabulary always holds the three specials.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The id of `token`, if it has one.
    pub fn id(&self, token: &str) -> Option<TokenId> {
        self.index.get(token).copied()
    }

    /// The token of `id`, if it is in range.
    pub fn token(&self, id: TokenId) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Every token, specials first, in id order.
    pub fn all_tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The ids of `words`.
    ///
    /// # Errors
    /// [`TransformerError::UnknownWord`] for a word outside the vocabulary.
    pub fn encode<S: AsRef<str>>(&self, words: &[S]) -> Result<Vec<TokenId>> {
        words
            .iter()
            .map(|w| {
                self.id(w.as_ref())
                    .ok_or_else(|| TransformerError::UnknownWord { side: self.side, word: w.as_ref().to_string() })
            })
            .collect()
    }

    /// The tokens of `ids` (an id outside the vocabulary is written `<?>`).
    pub fn tokens(&self, ids: &[TokenId]) -> Vec<&str> {
        ids.iter().map(|&id| self.token(id).unwrap_or("<?>")).collect()
    }
}
