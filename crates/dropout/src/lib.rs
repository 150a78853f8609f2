//! Dropout: during training, switch off a random fraction of the numbers, so
//! that no part of the network can rely on any other particular part.
//!
//! Each number is kept with probability `1 - p` and set to zero with
//! probability `p`, afresh for every training step. Two ways keep the
//! expected value right:
//!
//! | kind | training | evaluation |
//! |---|---|---|
//! | [`DropoutKind::Inverted`] (practice) | kept values × `1/(1-p)` | identity |
//! | [`DropoutKind::Classic`] (the article, the original paper) | kept values as they are | everything × `(1-p)` |
//!
//! Inverted dropout does the correction during training, so the trained
//! network runs unchanged at inference; it is what PyTorch and GPT-2 use.
//! The backward pass multiplies the gradient by the same mask.
//!
//! # Example
//! ```
//! use addmul_core::{rng, Matrix};
//! use addmul_dropout::Dropout;
//! let dropout = Dropout::new(0.5)?;
//! let x = Matrix::from_element(2, 3, 1.0_f64);
//! let (y, mask) = dropout.train(&x, &mut rng(0));
//! assert!(y.iter().all(|&v| v == 0.0 || v == 2.0)); // kept values doubled
//! assert_eq!(mask.backward(&x)?, y);                  // the same mask
//! assert_eq!(dropout.eval(&x), x);                    // identity at inference
//! # Ok::<(), addmul_core::Error>(())
//! ```
//!
//! A model applies dropout in several places per pass, in training only:
//! [`Dropper`] carries the probability and the generator through a forward
//! pass (and does nothing in evaluation or decoding), and
//! [`DropoutMask::backward_of`] is the backward of whatever it did.
#![deny(missing_docs)]

use std::borrow::Cow;

use addmul_core::{Error, Float, Matrix, Result, Rng, expect_shape};
use rand::RngExt;

/// Where the `1 - p` correction is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropoutKind {
    /// Scale kept values by `1/(1-p)` in training; do nothing in evaluation.
    Inverted,
    /// Keep values unscaled in training; multiply by `1 - p` in evaluation.
    Classic,
}

/// Dropout with probability `p` of dropping each value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    p: f64,
    kind: DropoutKind,
}

/// The mask of one training step: each entry is 0 (dropped) or the factor a
/// kept value is multiplied by.
#[derive(Debug, Clone, PartialEq)]
pub struct DropoutMask<T: Float> {
    factors: Matrix<T>,
}

impl Dropout {
    /// Inverted dropout (as trained today).
    ///
    /// # Errors
    /// [`Error::InvalidValue`] unless `0 <= p < 1`.
    pub fn new(p: f64) -> Result<Self> {
        Self::with_kind(p, DropoutKind::Inverted)
    }

    /// Classic dropout (as the article describes it).
    ///
    /// # Errors
    /// [`Error::InvalidValue`] unless `0 <= p < 1`.
    pub fn classic(p: f64) -> Result<Self> {
        Self::with_kind(p, DropoutKind::Classic)
    }

    /// Dropout of either kind.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] unless `0 <= p < 1`.
    pub fn with_kind(p: f64, kind: DropoutKind) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::InvalidValue { what: "dropout probability", value: p, requirement: "in [0, 1)" });
        }
        Ok(Dropout { p, kind })
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// The kind.
    pub fn kind(&self) -> DropoutKind {
        self.kind
    }

    // ANCHOR: mask
    /// Draws a training mask of the given shape. With `p = 0` nothing is
    /// drawn (the generator is left untouched) and the mask is all ones.
    pub fn sample_mask<T: Float>(&self, rows: usize, cols: usize, rng: &mut Rng) -> DropoutMask<T> {
        if self.p == 0.0 {
            return DropoutMask { factors: Matrix::from_element(rows, cols, T::one()) };
        }
        let keep = match self.kind {
            DropoutKind::Inverted => T::of(1.0 / (1.0 - self.p)),
            DropoutKind::Classic => T::one(),
        };
        let factors = Matrix::from_fn(rows, cols, |_, _| if rng.random::<f64>() < self.p { T::zero() } else { keep });
        DropoutMask { factors }
    }
    // ANCHOR_END: mask

    /// Training mode: draws a mask and applies it.
    pub fn train<T: Float>(&self, x: &Matrix<T>, rng: &mut Rng) -> (Matrix<T>, DropoutMask<T>) {
        let mask = self.sample_mask(x.nrows(), x.ncols(), rng);
        (x.component_mul(&mask.factors), mask)
    }

    /// Evaluation mode: deterministic; the identity for inverted dropout,
    /// `× (1 - p)` for classic dropout.
    pub fn eval<T: Float>(&self, x: &Matrix<T>) -> Matrix<T> {
        match self.kind {
            DropoutKind::Inverted => x.clone(),
            DropoutKind::Classic => x * T::of(1.0 - self.p),
        }
    }
}

impl<T: Float> DropoutMask<T> {
    /// A mask from explicit factors (0 for dropped entries); for tests that
    /// need a fixed mask.
    pub fn from_factors(factors: Matrix<T>) -> Self {
        DropoutMask { factors }
    }

    /// The factors, `[rows, cols]`.
    pub fn factors(&self) -> &Matrix<T> {
        &self.factors
    }

    /// Applies the mask to `x`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` is not the mask's shape.
    pub fn apply(&self, x: &Matrix<T>) -> Result<Matrix<T>> {
        expect_shape("DropoutMask::apply", x, Some(self.factors.nrows()), Some(self.factors.ncols()))?;
        Ok(x.component_mul(&self.factors))
    }

    /// The backward pass: the gradient flows only where values were kept,
    /// scaled by the same factor.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `dy` is not the mask's shape.
    pub fn backward(&self, dy: &Matrix<T>) -> Result<Matrix<T>> {
        self.apply(dy)
    }
}

// ANCHOR: dropper
/// Dropout in a model's forward pass: the probability and the generator its
/// masks come from. Without a generator (evaluation, decoding), or with
/// `p = 0`, nothing is dropped and nothing is drawn.
///
/// ```
/// use addmul_core::{rng, Matrix};
/// use addmul_dropout::{DropoutMask, Dropper};
/// let x = Matrix::from_element(2, 2, 1.0_f64);
/// let mut rng = rng(0);
/// let mut training = Dropper::new(0.5, Some(&mut rng))?;
/// let (y, mask) = training.apply(x.clone());
/// assert!(mask.is_some() && y.iter().all(|&v| v == 0.0 || v == 2.0));
/// assert_eq!(*DropoutMask::backward_of(mask.as_ref(), &x)?, y); // the same mask on the way back
/// let (y, mask) = Dropper::off().apply(x.clone());
/// assert!(mask.is_none() && y == x);
/// # Ok::<(), addmul_core::Error>(())
/// ```
#[derive(Debug)]
pub struct Dropper<'a> {
    dropout: Option<Dropout>,
    rng: Option<&'a mut Rng>,
}

impl<'a> Dropper<'a> {
    /// No dropout.
    pub fn off() -> Dropper<'static> {
        Dropper { dropout: None, rng: None }
    }

    /// Inverted dropout with probability `p`, masks drawn from `rng` when
    /// there is one.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] unless `0 <= p < 1`.
    pub fn new(p: f64, rng: Option<&'a mut Rng>) -> Result<Self> {
        let dropout = Dropout::new(p)?;
        Ok(Dropper { dropout: (p > 0.0 && rng.is_some()).then_some(dropout), rng })
    }

    /// Drops part of `x` when training: returns the result and the mask
    /// (`None` when nothing was dropped, and `x` is returned as it is).
    pub fn apply<T: Float>(&mut self, x: Matrix<T>) -> (Matrix<T>, Option<DropoutMask<T>>) {
        match (&self.dropout, &mut self.rng) {
            (Some(d), Some(rng)) => {
                let (y, mask) = d.train(&x, rng);
                (y, Some(mask))
            }
            _ => (x, None),
        }
    }
}

impl<T: Float> DropoutMask<T> {
    /// The backward of [`Dropper::apply`]: `dy` as it is without a mask (no
    /// copy), masked with one.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `dy` is not the mask's shape.
    pub fn backward_of<'a>(mask: Option<&Self>, dy: &'a Matrix<T>) -> Result<Cow<'a, Matrix<T>>> {
        Ok(match mask {
            Some(m) => Cow::Owned(m.backward(dy)?),
            None => Cow::Borrowed(dy),
        })
    }
}
// ANCHOR_END: dropper
