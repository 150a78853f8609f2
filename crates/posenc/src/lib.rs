//! Positional information: attention on its own does not know the order of
//! the tokens.
//!
//! Self-attention treats its input as a *set*: shuffle the tokens and each
//! one's output is shuffled the same way, unchanged. Word order matters, so
//! models add a position signal to each token:
//!
//! - [`LearnedPositions`]: one learned column per position, added to the token
//!   embedding (GPT-2's `wpe`).
//! - [`sinusoidal`]: the fixed encoding of "Attention Is All You Need",
//!   `PE(p, 2i) = sin(p / 10000^(2i/d))`, `PE(p, 2i+1) = cos(p / 10000^(2i/d))`.
//!   Each pair of rows is a point turning on a circle at its own speed, so
//!   moving `k` positions on is the same rotation for every `p`.
//! - [`Rope`]: rotary position embedding, as modern models use it: rotate
//!   queries and keys by their position instead of adding anything, so that
//!   `q · k` depends only on how far apart the two tokens are.
//!
//! Tables are `[d, positions]`: one column per position, like the tokens.
//!
//! # Example
//! ```
//! use addmul_posenc::sinusoidal;
//! let pe = sinusoidal::<f64>(4, 3);
//! assert_eq!(pe.column(0).as_slice(), &[0.0, 1.0, 0.0, 1.0]);
//! assert!((pe[(0, 1)] - 1f64.sin()).abs() < 1e-15);
//! ```
#![deny(missing_docs)]

use addmul_core::{AnyMatrix, Error, Float, Init, Matrix, Param, Parameters, Result, Rng, expect_shape};
use nalgebra::{Dyn, RawStorageMut};

fn check_positions(offset: usize, len: usize, max: usize) -> Result<()> {
    if offset + len > max {
        return Err(Error::OutOfRange { what: "position", index: offset + len - 1, len: max });
    }
    Ok(())
}

fn sequences(cols: usize, seq_len: usize) -> Result<usize> {
    if seq_len == 0 || !cols.is_multiple_of(seq_len) {
        return Err(Error::shape(
            "positions",
            format!("[_, a multiple of the sequence length {seq_len}]"),
            addmul_core::Shape { rows: 0, cols },
        ));
    }
    Ok(cols / seq_len)
}

/// Learned positional embeddings: column `p` of the table is added to the
/// token at position `p`.
///
/// Parameter name: `weight` (`[d, max_positions]`).
#[derive(Debug, Clone, PartialEq)]
pub struct LearnedPositions<T: Float> {
    weight: Param<T>,
}

impl<T: Float> LearnedPositions<T> {
    /// A table for `max_positions` positions of `dim` numbers.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] if either size is 0.
    pub fn new(max_positions: usize, dim: usize, init: Init, rng: &mut Rng) -> Result<Self> {
        if max_positions == 0 || dim == 0 {
            return Err(Error::InvalidValue { what: "position table size", value: 0.0, requirement: ">= 1" });
        }
        Ok(LearnedPositions { weight: Param::matrix(init.matrix(dim, max_positions, rng)) })
    }

    /// The table parameter.
    pub fn weight(&self) -> &Param<T> {
        &self.weight
    }

    /// How many positions the table holds.
    pub fn max_positions(&self) -> usize {
        self.weight.value().ncols()
    }

    // ANCHOR: learned_add
    /// Adds positions `offset..offset + seq_len` to each sequence of `x`
    /// (`[d, B·seq_len]`), in place.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] if a position is beyond the table;
    /// [`Error::ShapeMismatch`] if `x` does not fit.
    pub fn add_to(&self, x: &mut Matrix<T>, seq_len: usize, offset: usize) -> Result<()> {
        add_table(self.weight.value(), x, seq_len, offset)
    }

    /// The backward of [`LearnedPositions::add_to`]: the gradient of the
    /// input is `dy` itself; position `p`'s column gradient is the sum of
    /// `dy` over the tokens at position `p`.
    ///
    /// # Errors
    /// As [`LearnedPositions::add_to`].
    pub fn backward(&mut self, dy: &Matrix<T>, seq_len: usize, offset: usize) -> Result<()> {
        expect_shape("LearnedPositions::backward", dy, Some(self.weight.value().nrows()), None)?;
        let batches = sequences(dy.ncols(), seq_len)?;
        check_positions(offset, seq_len, self.max_positions())?;
        let Some(grad) = self.weight.trainable_grad() else { return Ok(()) };
        for b in 0..batches {
            let mut g = grad.columns_mut(offset, seq_len);
            g += dy.columns(b * seq_len, seq_len);
        }
        Ok(())
    }
    // ANCHOR_END: learned_add
}

impl<T: Float> Parameters<T> for LearnedPositions<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        f("weight", &self.weight);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        f("weight", &mut self.weight);
    }
}

/// Adds columns `offset..offset + seq_len` of `table` to each sequence of `x`.
///
/// # Errors
/// [`Error::OutOfRange`] if a position is beyond the table;
/// [`Error::ShapeMismatch`] if `x` does not fit.
pub fn add_table<T: Float>(table: &Matrix<T>, x: &mut Matrix<T>, seq_len: usize, offset: usize) -> Result<()> {
    expect_shape("positions", x, Some(table.nrows()), None)?;
    let batches = sequences(x.ncols(), seq_len)?;
    check_positions(offset, seq_len, table.ncols())?;
    for b in 0..batches {
        let mut block = x.columns_mut(b * seq_len, seq_len);
        block += table.columns(offset, seq_len);
    }
    Ok(())
}

// ANCHOR: sinusoidal
/// The sinusoidal encoding table `[d, max_len]` of "Attention Is All You
/// Need": for position `p` and `i = 0, 1, …`,
///
/// ```text
/// PE(p, 2i)     = sin(p / 10000^(2i/d))
/// PE(p, 2i + 1) = cos(p / 10000^(2i/d))
/// ```
///
/// The divisor uses the model width `d`, as the paper does (the article
/// writes the context length there). Every entry lies in `[-1, 1]`.
pub fn sinusoidal<T: Float>(d: usize, max_len: usize) -> Matrix<T> {
    Matrix::from_fn(d, max_len, |row, p| {
        let i = row / 2;
        let angle = p as f64 / 10000f64.powf(2.0 * i as f64 / d as f64);
        T::of(if row % 2 == 0 { angle.sin() } else { angle.cos() })
    })
}
// ANCHOR_END: sinusoidal

/// The fixed sinusoidal encoding as a layer without parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Sinusoidal<T: Float> {
    table: Matrix<T>,
}

impl<T: Float> Sinusoidal<T> {
    /// The encoding for width `d` and up to `max_len` positions.
    pub fn new(d: usize, max_len: usize) -> Self {
        Sinusoidal { table: sinusoidal(d, max_len) }
    }

    /// The table `[d, max_len]`.
    pub fn table(&self) -> &Matrix<T> {
        &self.table
    }

    /// Adds positions `offset..offset + seq_len` to each sequence of `x`.
    /// (The backward is the identity: nothing here is learned.)
    ///
    /// # Errors
    /// As [`add_table`].
    pub fn add_to(&self, x: &mut Matrix<T>, seq_len: usize, offset: usize) -> Result<()> {
        add_table(&self.table, x, seq_len, offset)
    }
}

/// Rotary position embedding (Su et al., RoFormer), in the half-split layout
/// of GPT-NeoX and Llama: feature `i` and feature `i + d/2` form a pair that is
/// rotated by the angle `p · θ_i`, `θ_i = base^(-2i/d)`, at position `p`.
///
/// Applied to queries and keys (not values), it makes `q · k` a function of the
/// distance between the two positions only.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope<T: Float> {
    half: usize,
    cos: Matrix<T>,
    sin: Matrix<T>,
}

impl<T: Float> Rope<T> {
    /// RoPE for heads of width `d_head` (even), up to `max_len` positions,
    /// with frequency base `base` (10000 in the paper).
    ///
    /// # Errors
    /// [`Error::InvalidValue`] if `d_head` is odd or 0, or `base <= 1`.
    pub fn new(d_head: usize, max_len: usize, base: f64) -> Result<Self> {
        if d_head == 0 || !d_head.is_multiple_of(2) {
            return Err(Error::InvalidValue {
                what: "RoPE head width",
                value: d_head as f64,
                requirement: "even and >= 2",
            });
        }
        if !(base > 1.0) {
            return Err(Error::InvalidValue { what: "RoPE base", value: base, requirement: "> 1" });
        }
        let half = d_head / 2;
        let angle = |i: usize, p: usize| p as f64 * base.powf(-2.0 * i as f64 / d_head as f64);
        Ok(Rope {
            half,
            cos: Matrix::from_fn(half, max_len, |i, p| T::of(angle(i, p).cos())),
            sin: Matrix::from_fn(half, max_len, |i, p| T::of(angle(i, p).sin())),
        })
    }

    /// How many positions the tables hold.
    pub fn max_positions(&self) -> usize {
        self.cos.ncols()
    }

    fn rotate_impl<S: RawStorageMut<T, Dyn, Dyn>>(
        &self,
        x: &mut AnyMatrix<T, S>,
        offset: usize,
        sign: T,
    ) -> Result<()> {
        expect_shape("Rope", x, Some(2 * self.half), None)?;
        check_positions(offset, x.ncols(), self.max_positions())?;
        for j in 0..x.ncols() {
            let p = offset + j;
            for i in 0..self.half {
                let (c, s) = (self.cos[(i, p)], sign * self.sin[(i, p)]);
                let (a, b) = (x[(i, j)], x[(i + self.half, j)]);
                x[(i, j)] = a * c - b * s;
                x[(i + self.half, j)] = a * s + b * c;
            }
        }
        Ok(())
    }

    // ANCHOR: rope
    /// Rotates each column of `x` (`[d_head, T]`, a query or key per column,
    /// possibly a view into a larger matrix) by its position
    /// `offset + column`, in place.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` is not `d_head` tall;
    /// [`Error::OutOfRange`] if a position is beyond the tables.
    pub fn rotate<S: RawStorageMut<T, Dyn, Dyn>>(&self, x: &mut AnyMatrix<T, S>, offset: usize) -> Result<()> {
        self.rotate_impl(x, offset, T::one())
    }

    /// The backward of [`Rope::rotate`]: a rotation's gradient is the inverse
    /// rotation of the output's gradient, in place.
    ///
    /// # Errors
    /// As [`Rope::rotate`].
    pub fn rotate_back<S: RawStorageMut<T, Dyn, Dyn>>(&self, dx: &mut AnyMatrix<T, S>, offset: usize) -> Result<()> {
        self.rotate_impl(dx, offset, -T::one())
    }
    // ANCHOR_END: rope
}
