//! The tokenizer crate's error type.

/// What went wrong while building, training, loading or using a tokenizer.
///
/// Every variant carries what is needed to find the problem: the character and
/// where it was, the id and the vocabulary size, the file and the line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A character that the tokenizer has no id for.
    #[error("character {ch:?} at byte {offset} is not in the vocabulary")]
    UnknownChar {
        /// The character.
        ch: char,
        /// Its byte offset in the text.
        offset: usize,
    },
    /// An id that is not in the vocabulary.
    #[error("token id {id} is not in the vocabulary (ids 0..{vocab_size})")]
    UnknownId {
        /// The id.
        id: u32,
        /// The size of the vocabulary.
        vocab_size: usize,
    },
    /// Decoded bytes are not UTF-8 (decode them with `decode_bytes` instead).
    #[error("the decoded bytes are not valid UTF-8: valid up to byte {valid_up_to} of {len}")]
    InvalidUtf8 {
        /// How many leading bytes are valid.
        valid_up_to: usize,
        /// The number of decoded bytes.
        len: usize,
    },
    /// A special token occurs in the text but the caller did not allow it.
    #[error("special token {token:?} at byte {offset} is not allowed; allow it or encode it as ordinary text")]
    DisallowedSpecial {
        /// The special token's text.
        token: String,
        /// Its byte offset in the text.
        offset: usize,
    },
    /// A vocabulary size that cannot hold what the tokenizer needs.
    #[error("vocabulary size {requested} is too small: {what} needs at least {minimum}")]
    VocabTooSmall {
        /// The size asked for.
        requested: usize,
        /// The smallest size that works.
        minimum: usize,
        /// What needs the room, e.g. `"byte-level BPE (256 bytes + 1 special token)"`.
        what: String,
    },
    /// A setting outside its allowed range.
    #[error("{what} must be {requirement}, got {value}")]
    InvalidConfig {
        /// The setting.
        what: &'static str,
        /// The value given.
        value: String,
        /// The rule it breaks.
        requirement: &'static str,
    },
    /// A pre-splitting regular expression that does not compile or fails
    /// while matching.
    #[error("pre-splitting pattern {pattern:?}: {message}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What the regex engine said.
        message: String,
    },
    /// A vocabulary or tokenizer file that cannot be read as its format says.
    #[error("{format}, line {line}: {message}")]
    Parse {
        /// The format, e.g. `"vocab.bpe"` or `"addmul-bpe file"`.
        format: &'static str,
        /// The 1-based line (0 when the problem is the file as a whole).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A vocabulary whose parts contradict each other (a duplicate token, a
    /// missing byte, ids with gaps, `encoder.json` disagreeing with
    /// `vocab.bpe`).
    #[error("inconsistent vocabulary: {message}")]
    InconsistentVocab {
        /// What is wrong.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn parse(format: &'static str, line: usize, message: impl Into<String>) -> Self {
        Error::Parse { format, line, message: message.into() }
    }

    pub(crate) fn inconsistent(message: impl Into<String>) -> Self {
        Error::InconsistentVocab { message: message.into() }
    }
}

/// Turns decoded bytes into a `String`, or [`Error::InvalidUtf8`].
pub(crate) fn utf8(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes)
        .map_err(|e| Error::InvalidUtf8 { valid_up_to: e.utf8_error().valid_up_to(), len: e.as_bytes().len() })
}

/// Reads a whole file as UTF-8, with the path in the error.
pub(crate) fn read_text(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io { context: format!("reading {}", path.display()), source })
}
