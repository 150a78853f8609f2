//! The copy task: random sequences of the symbols 1 to 10; the target is
//! the source itself.

use addmul_core::Rng;
use rand::RngExt;

use crate::{Pair, Result, Side, TokenId, Vocab};

/// The number of symbols: `1..=10`.
pub const SYMBOLS: u32 = 10;

/// The vocabulary of one side: the specials, then `"1"` to `"10"`.
///
/// # Errors
/// None in practice (the tokens are distinct).
pub fn vocabulary(side: Side) -> Result<Vocab> {
    Vocab::new(side, (1..=SYMBOLS).map(|s| s.to_string()))
}

/// The token id of symbol `s` (`1..=10`): the symbols follow the three
/// specials.
pub fn symbol_id(s: u32) -> TokenId {
    s + 2
}

/// A random sequence of `min_len..=max_len` symbols, as token ids.
pub fn random_sequence(min_len: usize, max_len: usize, rng: &mut Rng) -> Vec<TokenId> {
    let len = rng.random_range(min_len..=max_len.max(min_len));
    (0..len).map(|_| symbol_id(rng.random_range(1..=SYMBOLS))).collect()
}

/// `n` random copy pairs of `min_len..=max_len` symbols.
pub fn pairs(n: usize, min_len: usize, max_len: usize, rng: &mut Rng) -> Vec<Pair> {
    (0..n)
        .map(|_| {
            let source = random_sequence(min_len, max_len, rng);
            Pair { target: source.clone(), source }
        })
        .collect()
}
