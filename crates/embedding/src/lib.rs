//! Embeddings: a token id becomes a vector of learned numbers.
//!
//! A token id is just a name; the number 17 is not "between" 16 and 18 in
//! meaning. An **embedding** gives every id its own column of numbers in a
//! table, and lets training move those numbers so that tokens used alike end
//! up alike. Looking up is the forward pass; the backward pass adds each
//! output column's gradient into the column of the id it came from (an id
//! used twice gets both gradients).
//!
//! # Shapes
//! - table: `[dim, vocab]`, **one column per token id** (the bytes of a
//!   row-major `[vocab, dim]` table, as GPT-2's `wte` is stored)
//! - forward: `n` ids → `[dim, n]`
//!
//! # Example
//! ```
//! use addmul_core::{rng, Init};
//! use addmul_embedding::Embedding;
//!
//! let table = Embedding::<f64>::new(26, 10, Init::Normal { std: 1.0 }, &mut rng(0))?;
//! let x = table.forward(&[7, 4, 11, 11, 14])?; // "hello" as letter ids
//! assert_eq!(x.shape(), (10, 5));
//! assert_eq!(x.column(2), x.column(3)); // the same id, the same vector
//! # Ok::<(), addmul_core::Error>(())
//! ```
#![deny(missing_docs)]

use addmul_core::{Error, Float, Init, Matrix, Param, Parameters, Result, Rng, expect_shape};

/// A learned table with one column per token id.
///
/// Parameter name: `weight`.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding<T: Float> {
    weight: Param<T>,
}

impl<T: Float> Embedding<T> {
    /// A table for `vocab` ids with `dim` numbers each, drawn from `init`.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] if `vocab` or `dim` is 0.
    pub fn new(vocab: usize, dim: usize, init: Init, rng: &mut Rng) -> Result<Self> {
        for (what, v) in [("vocabulary size", vocab), ("embedding size", dim)] {
            if v == 0 {
                return Err(Error::InvalidValue { what, value: 0.0, requirement: ">= 1" });
            }
        }
        Ok(Embedding { weight: Param::matrix(init.matrix(dim, vocab, rng)) })
    }

    /// A table from given vectors, `[dim, vocab]`.
    ///
    /// # Errors
    /// [`Error::Empty`] for an empty table.
    pub fn from_table(table: Matrix<T>) -> Result<Self> {
        if table.is_empty() {
            return Err(Error::Empty { what: "embedding table" });
        }
        Ok(Embedding { weight: Param::matrix(table) })
    }

    /// Numbers per token.
    pub fn dim(&self) -> usize {
        self.weight.value().nrows()
    }

    /// Number of token ids.
    pub fn vocab_size(&self) -> usize {
        self.weight.value().ncols()
    }

    /// The table parameter, `[dim, vocab]`.
    pub fn weight(&self) -> &Param<T> {
        &self.weight
    }

    /// Mutable access to the table parameter (a tied output head adds its
    /// gradient here).
    pub fn weight_mut(&mut self) -> &mut Param<T> {
        &mut self.weight
    }

    fn check(&self, ids: &[usize]) -> Result<()> {
        match ids.iter().find(|&&id| id >= self.vocab_size()) {
            Some(&id) => Err(Error::OutOfRange { what: "token id", index: id, len: self.vocab_size() }),
            None => Ok(()),
        }
    }

    // ANCHOR: lookup
    /// Looks up each id: column `j` of the output is the table's column
    /// `ids[j]`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for an id outside the vocabulary.
    pub fn forward(&self, ids: &[usize]) -> Result<Matrix<T>> {
        self.check(ids)?;
        let table = self.weight.value();
        let mut out = Matrix::zeros(self.dim(), ids.len());
        for (j, &id) in ids.iter().enumerate() {
            out.column_mut(j).copy_from(&table.column(id));
        }
        Ok(out)
    }

    /// The backward of [`Embedding::forward`]: adds column `j` of `dy` into
    /// the gradient of column `ids[j]` (so repeated ids accumulate).
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for an id outside the vocabulary;
    /// [`Error::ShapeMismatch`] if `dy` is not `[dim, ids.len()]`.
    pub fn backward(&mut self, ids: &[usize], dy: &Matrix<T>) -> Result<()> {
        self.check(ids)?;
        expect_shape("Embedding::backward", dy, Some(self.dim()), Some(ids.len()))?;
        let Some(grad) = self.weight.trainable_grad() else { return Ok(()) };
        for (j, &id) in ids.iter().enumerate() {
            let mut g = grad.column_mut(id);
            g += dy.column(j);
        }
        Ok(())
    }
    // ANCHOR_END: lookup

    /// The vector of one id.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for an id outside the vocabulary.
    pub fn vector(&self, id: usize) -> Result<Vec<T>> {
        self.check(&[id])?;
        Ok(self.weight.value().column(id).iter().copied().collect())
    }

    /// The `k` ids whose vectors point most nearly the same way as `id`'s, by
    /// [`cosine_similarity`], most similar first (ties by smaller id); `id`
    /// itself is left out.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for an id outside the vocabulary.
    pub fn nearest(&self, id: usize, k: usize) -> Result<Vec<(usize, f64)>> {
        self.check(&[id])?;
        let table = self.weight.value();
        let target = table.column(id);
        let mut scored: Vec<(usize, f64)> = (0..self.vocab_size())
            .filter(|&other| other != id)
            .map(|other| (other, cosine_similarity(target.as_slice(), table.column(other).as_slice())))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        Ok(scored)
    }
}

// ANCHOR: cosine
/// `a·b / (|a| |b|)`: 1 for vectors pointing the same way, 0 for
/// perpendicular ones, -1 for opposite ones; 0 if either vector is zero.
///
/// # Panics
/// If the lengths differ (a bug in the caller, not bad input).
pub fn cosine_similarity<T: Float>(a: &[T], b: &[T]) -> f64 {
    assert_eq!(a.len(), b.len(), "cosine similarity of vectors of different lengths");
    let (mut dot, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x.as_f64(), y.as_f64());
        dot += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 { 0.0 } else { dot / (aa.sqrt() * bb.sqrt()) }
}
// ANCHOR_END: cosine

impl<T: Float> Parameters<T> for Embedding<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        f("weight", &self.weight);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        f("weight", &mut self.weight);
    }
}
