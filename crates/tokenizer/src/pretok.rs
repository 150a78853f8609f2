//! Pre-splitting: cutting text into pieces that byte-level BPE encodes one by
//! one, so that no token spans a word and its neighbour's punctuation.

use crate::{Error, Result};

// ANCHOR: gpt2_pattern
/// GPT-2's pre-splitting pattern, exactly as OpenAI released it.
///
/// Contractions (`'s`, `'ll`, ...), then a letter run, a digit run or a run of
/// other symbols, each with at most one leading space; then whitespace.
/// `\s+(?!\S)` keeps the last space of a run for the next word, so that
/// `"  two"` splits into `" "` and `" two"`.
pub const GPT2_PATTERN: &str = r"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
// ANCHOR_END: gpt2_pattern

/// The same pattern without the look-ahead, for the `regex` crate; the
/// look-ahead is applied by hand in [`Splitter::for_each_piece`].
const GPT2_FAST: &str = r"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+";

/// How a byte-level BPE tokenizer cuts text before merging bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// [`GPT2_PATTERN`], matched by a fast engine that gives the same pieces
    /// as tiktoken (tested against `fancy-regex` running the pattern itself).
    Gpt2,
    /// Any regular expression `fancy-regex` accepts (look-around included).
    /// Text between two matches becomes a piece of its own, so nothing is
    /// ever dropped.
    Custom(String),
}

impl Pattern {
    /// The regular expression.
    pub fn as_str(&self) -> &str {
        match self {
            Pattern::Gpt2 => GPT2_PATTERN,
            Pattern::Custom(p) => p,
        }
    }
}

/// A compiled [`Pattern`].
#[derive(Debug, Clone)]
pub(crate) enum Splitter {
    Gpt2(regex::Regex),
    Custom(fancy_regex::Regex),
}

impl Splitter {
    pub(crate) fn new(pattern: &Pattern) -> Result<Self> {
        let err =
            |e: &dyn std::fmt::Display| Error::Pattern { pattern: pattern.as_str().into(), message: e.to_string() };
        Ok(match pattern {
            Pattern::Gpt2 => Splitter::Gpt2(regex::Regex::new(GPT2_FAST).map_err(|e| err(&e))?),
            Pattern::Custom(p) => Splitter::Custom(fancy_regex::Regex::new(p).map_err(|e| err(&e))?),
        })
    }

    /// Calls `f` with every piece of `text`, in order; the pieces concatenate
    /// to `text`.
    ///
    /// # Errors
    /// [`Error::Pattern`] if a custom pattern fails while matching (for
    /// example by exceeding `fancy-regex`'s backtracking limit). The GPT-2
    /// pattern never fails.
    pub(crate) fn for_each_piece<'t>(&self, text: &'t str, mut f: impl FnMut(&'t str)) -> Result<()> {
        match self {
            Splitter::Gpt2(re) => gpt2_pieces(re, text, f),
            Splitter::Custom(re) => {
                let mut pos = 0;
                for m in re.find_iter(text) {
                    let m = m.map_err(|e| Error::Pattern { pattern: re.as_str().into(), message: e.to_string() })?;
                    if m.start() > pos {
                        f(&text[pos..m.start()]);
                    }
                    if m.end() > m.start() {
                        f(m.as_str());
                    }
                    pos = m.end();
                }
                if pos < text.len() {
                    f(&text[pos..]);
                }
            }
        }
        Ok(())
    }
}

// ANCHOR: gpt2_split
/// GPT-2's pre-split with the `regex` crate, which has no look-ahead: match
/// `\s+` greedily, then give the run's last character back when a
/// non-space follows, which is what `\s+(?!\S)` does by backtracking.
fn gpt2_pieces<'t>(re: &regex::Regex, text: &'t str, mut f: impl FnMut(&'t str)) {
    let mut pos = 0;
    while let Some(m) = re.find_at(text, pos) {
        let mut end = m.end();
        let piece = &text[pos..end];
        if end < text.len()
            && let Some(last) = piece.chars().next_back()
            && last.is_whitespace()
            && piece.len() > last.len_utf8()
        {
            end -= last.len_utf8();
        }
        f(&text[pos..end]);
        pos = end;
    }
    debug_assert_eq!(pos, text.len(), "every character starts a GPT-2 piece");
}
// ANCHOR_END: gpt2_split

/// Cuts `text` into its pieces with `pattern`.
///
/// ```
/// use addmul_tokenizer::{split, Pattern};
/// let pieces = split(&Pattern::Gpt2, "I'm  here!!")?;
/// assert_eq!(pieces, ["I", "'m", " ", " here", "!!"]);
/// # Ok::<(), addmul_tokenizer::Error>(())
/// ```
///
/// # Errors
/// [`Error::Pattern`] if the pattern does not compile or fails while
/// matching.
pub fn split<'t>(pattern: &Pattern, text: &'t str) -> Result<Vec<&'t str>> {
    let mut out = Vec::new();
    Splitter::new(pattern)?.for_each_piece(text, |p| out.push(p))?;
    Ok(out)
}

/// Positions where `text` can be cut into chunks that GPT-2's pattern splits
/// exactly as it splits the whole: just before a whitespace character that
/// follows a non-whitespace one. No piece crosses such a position (pieces
/// only start with a space, never end with one unless they are all
/// whitespace), and the pattern only looks ahead, never back.
pub(crate) fn gpt2_chunk_bounds(text: &str, target: usize) -> Vec<usize> {
    let mut bounds = vec![0];
    let bytes = text.as_bytes();
    let mut next = target;
    while next < text.len() {
        // Find the next safe cut at or after `next`.
        let mut i = next;
        let mut found = None;
        while i < text.len() {
            if text.is_char_boundary(i) && i > 0 {
                let prev = text[..i].chars().next_back().expect("i > 0");
                let here = text[i..].chars().next().expect("i < len");
                if !prev.is_whitespace() && here.is_whitespace() {
                    found = Some(i);
                    break;
                }
            }
            i += 1;
            // Skip continuation bytes quickly.
            while i < text.len() && (bytes[i] & 0xC0) == 0x80 {
                i += 1;
            }
        }
        match found {
            Some(cut) => {
                bounds.push(cut);
                next = cut + target;
            }
            None => break,
        }
    }
    bounds.push(text.len());
    bounds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(text: &str) -> Vec<&str> {
        let re = fancy_regex::Regex::new(GPT2_PATTERN).unwrap();
        re.find_iter(text).map(|m| m.unwrap().as_str()).collect()
    }

    #[test]
    fn fast_split_matches_the_original_pattern() {
        for text in [
            "Hello world",
            "  two leading spaces",
            "trailing space ",
            "tabs\tand\nnewlines\n\n\n",
            "   \n   ",
            "a \t b\t\tc  \n d",
            "I'm, you're, DON'T 's",
            "x  'll  ",
            "\u{a0}nbsp and \u{200b}zero-width",
            " \u{3000}x",
        ] {
            assert_eq!(split(&Pattern::Gpt2, text).unwrap(), reference(text), "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_split_matches_on_generated_text(
            atoms in proptest::collection::vec(
                proptest::sample::select(vec![" ", "  ", "\t", "\n", "\r\n", "\u{a0}", "\u{3000}", "a", "Zé", "12", "'s",
                    "'", "!?", "日本", "🤖", "_", "x'll"]),
                0..30,
            )
        ) {
            let text = atoms.concat();
            proptest::prop_assert_eq!(split(&Pattern::Gpt2, &text).unwrap(), reference(&text));
            let bounds = gpt2_chunk_bounds(&text, 4);
            let mut pieces = Vec::new();
            for w in bounds.windows(2) {
                pieces.extend(split(&Pattern::Gpt2, &text[w[0]..w[1]]).unwrap());
            }
            proptest::prop_assert_eq!(pieces, reference(&text));
        }
    }

    #[test]
    fn chunk_bounds_are_safe_cuts() {
        let text = "ab  cd\n\nef gh   \t ij";
        let bounds = gpt2_chunk_bounds(text, 3);
        let whole = split(&Pattern::Gpt2, text).unwrap();
        let mut pieces = Vec::new();
        for w in bounds.windows(2) {
            pieces.extend(split(&Pattern::Gpt2, &text[w[0]..w[1]]).unwrap());
        }
        assert_eq!(pieces, whole);
        assert!(bounds.len() > 2);
    }

    #[test]
    fn custom_patterns_keep_the_gaps() {
        let pieces = split(&Pattern::Custom(r"\w+".into()), "ab, cd").unwrap();
        assert_eq!(pieces, ["ab", ", ", "cd"]);
        assert!(matches!(Splitter::new(&Pattern::Custom("(".into())), Err(Error::Pattern { .. })));
    }
}
