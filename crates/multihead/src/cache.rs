//! Keys and values kept between decoding steps.

use addmul_core::{Float, Matrix};

/// The keys and values of the tokens a causal self-attention has already
/// seen, for one sequence, with room for `capacity` tokens.
///
/// # Shapes
/// keys and values: `[d_model, capacity]`, all heads stacked as in the
/// attention's own projections; the first [`KvCache::len`] columns are filled.
#[derive(Debug, Clone, PartialEq)]
pub struct KvCache<T: Float> {
    pub(crate) k: Matrix<T>,
    pub(crate) v: Matrix<T>,
    pub(crate) len: usize,
    pub(crate) scratch: Vec<T>,
}

impl<T: Float> KvCache<T> {
    /// An empty cache for a model of width `d_model`, up to `capacity` tokens.
    pub fn new(d_model: usize, capacity: usize) -> Self {
        KvCache {
            k: Matrix::zeros(d_model, capacity),
            v: Matrix::zeros(d_model, capacity),
            len: 0,
            scratch: Vec::new(),
        }
    }

    /// Tokens seen so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` before the first token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most tokens the cache can hold.
    pub fn capacity(&self) -> usize {
        self.k.ncols()
    }

    /// Forgets every token (keeps the memory).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Keeps only the first `len` tokens (to back up a decoding step).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The filled keys, `[d_model, len]`.
    pub fn keys(&self) -> Matrix<T> {
        self.k.columns(0, self.len).into_owned()
    }

    /// The filled values, `[d_model, len]`.
    pub fn values(&self) -> Matrix<T> {
        self.v.columns(0, self.len).into_owned()
    }
}

/// One [`KvCache`] per layer of a decoder stack: what incremental decoding
/// of one sequence keeps (the GPT's and the Transformer decoder's state).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerCaches<T: Float> {
    caches: Vec<KvCache<T>>,
}

impl<T: Float> LayerCaches<T> {
    /// `layers` empty caches for a model of width `d_model`, up to
    /// `capacity` tokens.
    pub fn new(layers: usize, d_model: usize, capacity: usize) -> Self {
        LayerCaches { caches: (0..layers).map(|_| KvCache::new(d_model, capacity)).collect() }
    }

    /// Tokens fed so far (the next one goes to this position).
    pub fn len(&self) -> usize {
        self.caches.first().map_or(0, KvCache::len)
    }

    /// `true` before the first token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every token (keeps the memory).
    pub fn clear(&mut self) {
        self.caches.iter_mut().for_each(KvCache::clear);
    }

    /// The layers' caches, first layer first.
    pub fn layers_mut(&mut self) -> &mut [KvCache<T>] {
        &mut self.caches
    }
}

/// Keys and values of an encoder output, projected once for every decoding
/// step of a cross-attention (see `MultiHeadAttention::project_context`).
#[derive(Debug, Clone, PartialEq)]
pub struct CrossKv<T: Float> {
    pub(crate) k: Matrix<T>,
    pub(crate) v: Matrix<T>,
}

impl<T: Float> CrossKv<T> {
    /// Number of context tokens.
    pub fn len(&self) -> usize {
        self.k.ncols()
    }

    /// `true` for an empty context.
    pub fn is_empty(&self) -> bool {
        self.k.ncols() == 0
    }
}
