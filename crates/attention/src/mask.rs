//! Which keys a query may look at.

/// The visibility rules of one attention call.
///
/// Query `j` (0-based among the queries) sits at position `offset + j` among
/// the keys. With `causal`, it sees keys `0..=offset + j` only: nothing from
/// its future. Keys flagged in `key_padding` are invisible to every query.
/// A key that is hidden gets an attention weight of **exactly zero**, not a
/// tiny number. A query that sees no key at all (every key padding) gets zero
/// weights and a zero output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mask<'a> {
    /// Hide the keys after each query's position.
    pub causal: bool,
    /// The position of the first query among the keys: the number of keys
    /// that come from earlier calls (a key/value cache).
    pub offset: usize,
    /// One flag per key of the sequence: `true` marks padding to ignore.
    pub key_padding: Option<&'a [bool]>,
}

impl Mask<'_> {
    /// No mask: every query sees every key.
    pub const NONE: Mask<'static> = Mask { causal: false, offset: 0, key_padding: None };

    /// The causal mask for a sequence attending to itself.
    pub const CAUSAL: Mask<'static> = Mask { causal: true, offset: 0, key_padding: None };

    /// How many leading keys query `j` may see, out of `keys` (before
    /// padding is applied).
    #[inline]
    pub fn visible_prefix(&self, j: usize, keys: usize) -> usize {
        if self.causal { (self.offset + j + 1).min(keys) } else { keys }
    }

    /// `true` if query `j` may look at key `i`.
    pub fn allows(&self, i: usize, j: usize) -> bool {
        let causal_ok = !self.causal || i <= self.offset + j;
        let padding_ok = self.key_padding.is_none_or(|p| !p[i]);
        causal_ok && padding_ok
    }
}
