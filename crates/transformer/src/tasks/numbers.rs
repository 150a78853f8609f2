//! English to German number words, 0 to 999,999: a small translation task
//! that needs reordering, with a test set of numbers never seen in training.
//!
//! # Conventions
//!
//! English, as in American usage, with no "and": `21` is "twenty-one", `101`
//! "one hundred one", `100,001` "one hundred thousand one". A hyphenated
//! word is three tokens, `twenty - one`, so that the hyphen has a token to
//! be aligned with.
//!
//! German, as the Duden gives it, written as one word (every number below a
//! million is): units before tens joined by "und" (`21` einundzwanzig),
//! irregular sechzehn, siebzehn, sechzig, siebzig, dreißig. The choices that
//! have two correct answers are made once:
//!
//! - `1` alone, or at the end of a number, is "eins" (`101`
//!   einhunderteins, `1001` eintausendeins); before "und", "hundert" and
//!   "tausend" it is "ein" (einundzwanzig, einhundert, eintausend).
//! - Hundreds and thousands always say how many: `100` is "einhundert" and
//!   `1000` "eintausend" (as on a cheque), never the equally correct
//!   "hundert" and "tausend".
//! - `1,000,000` ("eine Million", two words) is out of range.
//!
//! German is tokenized into its pieces (`ein und zwanzig tausend`), written
//! back by concatenation; `tests/numbers.rs` checks a table of known cases.
//!
//! # Example
//! ```
//! use addmul_transformer::tasks::numbers::{english, german, german_tokens};
//! assert_eq!(english(21_354)?, "twenty-one thousand three hundred fifty-four");
//! assert_eq!(german(21_354)?, "einundzwanzigtausenddreihundertvierundfünfzig");
//! assert_eq!(german_tokens(21)?, ["ein", "und", "zwanzig"]);
//! # Ok::<(), addmul_transformer::TransformerError>(())
//! ```

use addmul_core::Rng;
use rand::RngExt;

use crate::{Pair, Result, Side, TransformerError, Vocab};

/// Numbers are `0..LIMIT`.
pub const LIMIT: u32 = 1_000_000;

const EN_ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const EN_TENS: [&str; 10] = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];

const DE_UNITS: [&str; 10] = ["", "ein", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"];
const DE_TEENS: [&str; 10] =
    ["zehn", "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn", "siebzehn", "achtzehn", "neunzehn"];
const DE_TENS: [&str; 10] =
    ["", "", "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig", "neunzig"];

fn check(n: u32) -> Result<()> {
    if n >= LIMIT {
        return Err(addmul_core::Error::OutOfRange { what: "number", index: n as usize, len: LIMIT as usize }.into());
    }
    Ok(())
}

fn english_below_1000(n: u32, out: &mut Vec<&'static str>) {
    let (h, r) = ((n / 100) as usize, (n % 100) as usize);
    if h > 0 {
        out.extend([EN_ONES[h], "hundred"]);
    }
    match r {
        0 => {}
        1..=19 => out.push(EN_ONES[r]),
        _ if r % 10 == 0 => out.push(EN_TENS[r / 10]),
        _ => out.extend([EN_TENS[r / 10], "-", EN_ONES[r % 10]]),
    }
}

/// The number English `tokens` spell (as [`english_tokens`] writes them:
/// words, and `-` inside "twenty-one"), or `None` if they spell none: the
/// inverse of [`english_tokens`], so only the task's own spelling is read
/// ("two zero" and "twenty one" are not numbers).
pub fn parse_english_tokens<S: AsRef<str>>(tokens: &[S]) -> Option<u32> {
    let (mut total, mut current) = (0u32, 0u32);
    for token in tokens {
        match token.as_ref() {
            "-" => {}
            "hundred" => current = current.checked_mul(100)?,
            "thousand" => {
                total = total.checked_add(current.checked_mul(1000)?)?;
                current = 0;
            }
            word => {
                let value = EN_ONES
                    .iter()
                    .position(|&w| w == word)
                    .or_else(|| EN_TENS.iter().position(|&w| w == word && !w.is_empty()).map(|t| 10 * t))?;
                current = current.checked_add(value as u32)?;
            }
        }
    }
    let n = total.checked_add(current)?;
    let spelt = english_tokens(n).ok()?;
    (spelt.len() == tokens.len() && spelt.iter().zip(tokens).all(|(a, b)| *a == b.as_ref())).then_some(n)
}

/// The English tokens of `n`: words, and `-` inside "twenty-one".
///
/// # Errors
/// [`addmul_core::Error::OutOfRange`] for `n >= 1,000,000`.
pub fn english_tokens(n: u32) -> Result<Vec<&'static str>> {
    check(n)?;
    if n == 0 {
        return Ok(vec!["zero"]);
    }
    let mut out = Vec::new();
    if n >= 1000 {
        english_below_1000(n / 1000, &mut out);
        out.push("thousand");
    }
    english_below_1000(n % 1000, &mut out);
    Ok(out)
}

// ANCHOR: german
/// `1..=999` in German pieces; `last` says whether the number ends here
/// (then a final 1 is "eins"; before "tausend" it is "ein").
fn german_below_1000(n: u32, last: bool, out: &mut Vec<&'static str>) {
    let (h, r) = ((n / 100) as usize, (n % 100) as usize);
    if h > 0 {
        out.extend([DE_UNITS[h], "hundert"]); // einhundert, zweihundert, ...
    }
    match r {
        0 => {}
        1 => out.push(if last { "eins" } else { "ein" }),
        2..=9 => out.push(DE_UNITS[r]),
        10..=19 => out.push(DE_TEENS[r - 10]),
        _ if r % 10 == 0 => out.push(DE_TENS[r / 10]),
        _ => out.extend([DE_UNITS[r % 10], "und", DE_TENS[r / 10]]), // units before tens
    }
}

/// The German pieces of `n` (`ein und zwanzig` for 21).
///
/// # Errors
/// [`addmul_core::Error::OutOfRange`] for `n >= 1,000,000`.
pub fn german_tokens(n: u32) -> Result<Vec<&'static str>> {
    check(n)?;
    if n == 0 {
        return Ok(vec!["null"]);
    }
    let mut out = Vec::new();
    if n >= 1000 {
        german_below_1000(n / 1000, false, &mut out);
        out.push("tausend");
    }
    if !n.is_multiple_of(1000) {
        german_below_1000(n % 1000, true, &mut out);
    }
    Ok(out)
}
// ANCHOR_END: german

/// English tokens written out: separated by spaces, with the hyphen joined
/// to its neighbours.
pub fn english_text<S: AsRef<str>>(tokens: &[S]) -> String {
    let mut out = String::new();
    for (i, t) in tokens.iter().enumerate() {
        let t = t.as_ref();
        let glued = t == "-" || (i > 0 && tokens[i - 1].as_ref() == "-");
        if i > 0 && !glued {
            out.push(' ');
        }
        out.push_str(t);
    }
    out
}

/// German pieces written out: one word.
pub fn german_text<S: AsRef<str>>(pieces: &[S]) -> String {
    pieces.iter().map(AsRef::as_ref).collect()
}

/// `n` in English words.
///
/// # Errors
/// [`addmul_core::Error::OutOfRange`] for `n >= 1,000,000`.
pub fn english(n: u32) -> Result<String> {
    Ok(english_text(&english_tokens(n)?))
}

/// `n` in German words.
///
/// # Errors
/// [`addmul_core::Error::OutOfRange`] for `n >= 1,000,000`.
pub fn german(n: u32) -> Result<String> {
    Ok(german_text(&german_tokens(n)?))
}

/// Every English token, in vocabulary order.
pub fn english_words() -> Vec<&'static str> {
    let mut words = EN_ONES.to_vec();
    words.extend(&EN_TENS[2..]);
    words.extend(["hundred", "thousand", "-"]);
    words
}

/// Every German piece, in vocabulary order.
pub fn german_pieces() -> Vec<&'static str> {
    let mut pieces = vec!["null", "eins"];
    pieces.extend(&DE_UNITS[1..]);
    pieces.extend(DE_TEENS);
    pieces.extend(&DE_TENS[2..]);
    pieces.extend(["und", "hundert", "tausend"]);
    pieces
}

/// The source vocabulary: the specials and [`english_words`].
///
/// # Errors
/// None in practice (the words are distinct).
pub fn english_vocabulary() -> Result<Vocab> {
    Vocab::new(Side::Source, english_words())
}

/// The target vocabulary: the specials and [`german_pieces`].
///
/// # Errors
/// None in practice (the pieces are distinct).
pub fn german_vocabulary() -> Result<Vocab> {
    Vocab::new(Side::Target, german_pieces())
}

/// The pair for `n`, encoded with the two vocabularies.
///
/// # Errors
/// [`addmul_core::Error::OutOfRange`] for `n >= 1,000,000`;
/// [`TransformerError::UnknownWord`] if a vocabulary lacks a word.
pub fn pair(n: u32, english: &Vocab, german: &Vocab) -> Result<Pair> {
    Ok(Pair { source: english.encode(&english_tokens(n)?)?, target: german.encode(&german_tokens(n)?)? })
}

// ANCHOR: split
/// Which numbers are for testing, and how training numbers are drawn.
///
/// The test set is `test_size` distinct numbers drawn uniformly from the
/// whole range (so most have six digits, as most numbers below a million
/// do). Training never sees them: training numbers are drawn from the rest,
/// with the number of digits (1 to 6) uniform and the number uniform among
/// those with that many digits, so that short numbers are learned too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    test: Vec<u32>,
    held_out: Vec<bool>,
    /// For each digit count 1..=6, whether any training number has it.
    available: [bool; 6],
}
// ANCHOR_END: split

fn digit_range(digits: usize) -> std::ops::RangeInclusive<u32> {
    let high = 10u32.pow(digits as u32) - 1;
    let low = if digits == 1 { 0 } else { 10u32.pow(digits as u32 - 1) };
    low..=high
}

impl Split {
    /// Draws a test set of `test_size` distinct numbers.
    ///
    /// # Errors
    /// [`TransformerError::Config`] if `test_size` is more than half the
    /// range.
    pub fn new(test_size: usize, rng: &mut Rng) -> Result<Self> {
        if test_size > LIMIT as usize / 2 {
            return Err(TransformerError::config("test_size", test_size, "must be at most 500,000"));
        }
        let mut held_out = vec![false; LIMIT as usize];
        let mut test = Vec::with_capacity(test_size);
        while test.len() < test_size {
            let n = rng.random_range(0..LIMIT);
            if !held_out[n as usize] {
                held_out[n as usize] = true;
                test.push(n);
            }
        }
        let mut available = [false; 6];
        for (d, a) in available.iter_mut().enumerate() {
            *a = digit_range(d + 1).any(|n| !held_out[n as usize]);
        }
        Ok(Split { test, held_out, available })
    }

    /// The test numbers, in the order drawn.
    pub fn test(&self) -> &[u32] {
        &self.test
    }

    /// `true` for a test number.
    pub fn is_held_out(&self, n: u32) -> bool {
        self.held_out.get(n as usize).copied().unwrap_or(false)
    }

    /// A training number: never a test number.
    pub fn sample_train(&self, rng: &mut Rng) -> u32 {
        loop {
            let digits = rng.random_range(1..=6usize);
            if !self.available[digits - 1] {
                continue;
            }
            let n = rng.random_range(digit_range(digits));
            if !self.held_out[n as usize] {
                return n;
            }
        }
    }
}
