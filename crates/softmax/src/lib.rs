//! Softmax, and the losses that turn a network's scores into one number to
//! minimise.
//!
//! A network outputs *scores* (logits), any real numbers. **Softmax** turns a
//! column of scores into probabilities, positive and summing to 1:
//!
//! ```text
//! softmax(x)_i = exp(x_i - m) / Σ_j exp(x_j - m),   m = max_j x_j
//! ```
//!
//! Subtracting the maximum changes nothing mathematically (it cancels) but
//! keeps every `exp` at most 1, so softmax is finite for every finite input:
//! `[1234, 0]` gives `[1, 0]`, not `NaN`.
//!
//! **Cross-entropy** is the loss classification and language models train
//! with: the mean over examples of `-log p(target)`, computed from the logits
//! through [`log_softmax`] so that it never takes the log of zero. Its
//! gradient with respect to the logits is simply `(softmax - one_hot) / n`.
//! The **L1 loss** (the sum of absolute differences) is the one the article
//! uses in its first training example.
//!
//! Every function works column by column on `[classes, n]` matrices, one
//! column per example, and has its backward beside it.
//!
//! # Example
//! ```
//! use addmul_core::Matrix;
//! use addmul_softmax::{cross_entropy, softmax};
//!
//! let scores = Matrix::from_column_slice(2, 1, &[1234.0_f64, 0.0]);
//! assert_eq!(softmax(&scores).as_slice(), &[1.0, 0.0]);
//!
//! // Two examples, three classes; targets 0 and 2.
//! let logits = Matrix::from_column_slice(3, 2, &[2.0_f64, 1.0, 0.1, 0.5, 0.5, 3.0]);
//! let (loss, cache) = cross_entropy(&logits, &[0, 2])?;
//! let grad = cache.backward(); // (softmax - one_hot) / 2
//! assert!(loss > 0.0 && grad.shape() == (3, 2));
//! # Ok::<(), addmul_core::Error>(())
//! ```
#![deny(missing_docs)]

use addmul_core::{Error, Float, Layer, Matrix, Param, Parameters, Result, expect_shape, reduce};

// ANCHOR: softmax_slice
/// Softmax of one column, in place. A column whose entries are all `-inf`
/// (fully masked) becomes all zeros.
pub fn softmax_in_place<T: Float>(x: &mut [T]) {
    let max = reduce::max(x);
    if max == T::NEG_INFINITY {
        x.fill(T::zero());
        return;
    }
    for v in x.iter_mut() {
        *v = (*v - max).exp_fast(); // every exponent is <= 0, so nothing overflows
    }
    let inv = T::one() / reduce::sum(x); // the sum is >= 1: the maximum contributes exp(0)
    for v in x.iter_mut() {
        *v *= inv;
    }
}
// ANCHOR_END: softmax_slice

/// Softmax of every column of `x`.
pub fn softmax<T: Float>(x: &Matrix<T>) -> Matrix<T> {
    let mut y = x.clone();
    for mut col in y.column_iter_mut() {
        softmax_in_place(col.as_mut_slice());
    }
    y
}

/// The backward of softmax for one column: `dx = y ⊙ (dy - Σ y ⊙ dy)`.
pub fn softmax_backward_slice<T: Float>(y: &[T], dy: &[T], dx: &mut [T]) {
    let dot = reduce::dot(y, dy);
    for ((d, &a), &g) in dx.iter_mut().zip(y).zip(dy) {
        *d = a * (g - dot);
    }
}

/// The backward of softmax for one column, in place: `g` holds `dy` on entry
/// and `dx = y ⊙ (dy - Σ y ⊙ dy)` on exit.
pub fn softmax_backward_in_place<T: Float>(y: &[T], g: &mut [T]) {
    let dot = reduce::dot(y, g);
    for (d, &a) in g.iter_mut().zip(y) {
        *d = a * (*d - dot);
    }
}

/// The backward of [`softmax`], from its output `y` and the output's gradient.
///
/// # Errors
/// [`Error::ShapeMismatch`] if `dy` and `y` differ in shape.
pub fn softmax_backward<T: Float>(y: &Matrix<T>, dy: &Matrix<T>) -> Result<Matrix<T>> {
    expect_shape("softmax_backward", dy, Some(y.nrows()), Some(y.ncols()))?;
    let mut dx = Matrix::zeros(y.nrows(), y.ncols());
    for j in 0..y.ncols() {
        softmax_backward_slice(y.column(j).as_slice(), dy.column(j).as_slice(), dx.column_mut(j).as_mut_slice());
    }
    Ok(dx)
}

/// `log(softmax(x))` of every column, computed as `x - m - log Σ exp(x - m)`
/// so that it is finite wherever `x` is.
pub fn log_softmax<T: Float>(x: &Matrix<T>) -> Matrix<T> {
    let mut y = x.clone();
    for mut col in y.column_iter_mut() {
        let col = col.as_mut_slice();
        let lse = log_sum_exp(col);
        for v in col.iter_mut() {
            *v -= lse;
        }
    }
    y
}

/// `log Σ exp(x_i)`, stable for any finite input.
pub fn log_sum_exp<T: Float>(x: &[T]) -> T {
    let max = reduce::max(x);
    if max == T::NEG_INFINITY {
        return max;
    }
    let sum = x.iter().fold(T::zero(), |acc, &v| acc + (v - max).exp_fast());
    max + sum.ln()
}

/// The backward of [`log_softmax`] from its output: `dx = dy - softmax(x) Σ dy`.
///
/// # Errors
/// [`Error::ShapeMismatch`] if `dy` and `log_y` differ in shape.
pub fn log_softmax_backward<T: Float>(log_y: &Matrix<T>, dy: &Matrix<T>) -> Result<Matrix<T>> {
    expect_shape("log_softmax_backward", dy, Some(log_y.nrows()), Some(log_y.ncols()))?;
    let mut dx = dy.clone();
    for j in 0..dy.ncols() {
        let total = dy.column(j).sum();
        for i in 0..dy.nrows() {
            dx[(i, j)] -= log_y[(i, j)].exp_fast() * total;
        }
    }
    Ok(dx)
}

/// Softmax as a parameter-free [`Layer`] over columns (its cache is the
/// output).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Softmax;

impl<T: Float> Layer<T> for Softmax {
    type Cache = Matrix<T>;
    fn forward(&self, x: &Matrix<T>) -> Result<(Matrix<T>, Matrix<T>)> {
        let y = softmax(x);
        Ok((y.clone(), y))
    }
    fn backward(&mut self, y: &Matrix<T>, dy: &Matrix<T>) -> Result<Matrix<T>> {
        softmax_backward(y, dy)
    }
}

impl<T: Float> Parameters<T> for Softmax {
    fn visit<'a>(&'a self, _: &mut dyn FnMut(&str, &'a Param<T>)) {}
    fn visit_mut<'a>(&'a mut self, _: &mut dyn FnMut(&str, &'a mut Param<T>)) {}
}

/// Cross-entropy options: label smoothing and an ignored target id.
///
/// With smoothing `ε` over `C` classes the target distribution is
/// `(1 - ε) one_hot + ε / C`, as in PyTorch and the Transformer paper.
/// Columns whose target equals `ignore` (padding) contribute neither loss nor
/// gradient, and the mean is over the remaining columns.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CrossEntropy {
    /// `ε` in `[0, 1)`; 0 is plain cross-entropy.
    pub label_smoothing: f64,
    /// A target id whose columns are skipped.
    pub ignore: Option<usize>,
}

/// What [`CrossEntropy::forward`] keeps for the backward pass.
#[derive(Debug, Clone)]
pub struct CrossEntropyCache<T: Float> {
    log_probs: Matrix<T>,
    targets: Vec<usize>,
    counted: usize,
    options: CrossEntropy,
}

impl CrossEntropy {
    /// The mean loss over the counted columns of `logits` (`[classes, n]`)
    /// against `targets` (`n` class ids).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if there are not `n` targets;
    /// [`Error::OutOfRange`] if a target is not a class;
    /// [`Error::InvalidValue`] if the smoothing is outside `[0, 1)`;
    /// [`Error::Empty`] if no column is counted.
    pub fn forward<T: Float>(&self, logits: &Matrix<T>, targets: &[usize]) -> Result<(f64, CrossEntropyCache<T>)> {
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(Error::InvalidValue {
                what: "label smoothing",
                value: self.label_smoothing,
                requirement: "in [0, 1)",
            });
        }
        if targets.len() != logits.ncols() {
            return Err(Error::shape(
                "cross_entropy",
                format!("logits [_, {}] for {} targets", targets.len(), targets.len()),
                addmul_core::Shape::of(logits),
            ));
        }
        let classes = logits.nrows();
        let log_probs = log_softmax(logits);
        let eps = self.label_smoothing;
        let mut total = 0.0;
        let mut counted = 0;
        for (j, &t) in targets.iter().enumerate() {
            if Some(t) == self.ignore {
                continue;
            }
            if t >= classes {
                return Err(Error::OutOfRange { what: "target class", index: t, len: classes });
            }
            let col = log_probs.column(j);
            let mut loss = -(1.0 - eps) * col[t].as_f64();
            if eps > 0.0 {
                loss -= eps / classes as f64 * col.iter().map(|v| v.as_f64()).sum::<f64>();
            }
            total += loss;
            counted += 1;
        }
        if counted == 0 {
            return Err(Error::Empty { what: "cross_entropy targets (all ignored or none given)" });
        }
        let cache = CrossEntropyCache { log_probs, targets: targets.to_vec(), counted, options: *self };
        Ok((total / counted as f64, cache))
    }
}

impl<T: Float> CrossEntropyCache<T> {
    /// `dLoss/dLogits = (softmax - target distribution) / counted`, zero in
    /// ignored columns.
    pub fn backward(&self) -> Matrix<T> {
        let classes = self.log_probs.nrows();
        let scale = T::one() / T::of(self.counted as f64);
        let eps = self.options.label_smoothing;
        let off = T::of(eps / classes as f64);
        let on = T::of(1.0 - eps) + off;
        let mut grad = self.log_probs.map(|v| v.exp_fast());
        for (j, &t) in self.targets.iter().enumerate() {
            let mut col = grad.column_mut(j);
            if Some(t) == self.options.ignore {
                col.fill(T::zero());
                continue;
            }
            for (i, g) in col.iter_mut().enumerate() {
                let target = if i == t { on } else { off };
                *g = (*g - target) * scale;
            }
        }
        grad
    }

    /// The softmax probabilities, `[classes, n]`.
    pub fn probabilities(&self) -> Matrix<T> {
        self.log_probs.map(|v| v.exp_fast())
    }

    /// The log-probabilities, `[classes, n]`.
    pub fn log_probabilities(&self) -> &Matrix<T> {
        &self.log_probs
    }

    /// How many columns were counted in the mean.
    pub fn counted(&self) -> usize {
        self.counted
    }
}

/// Plain cross-entropy from logits: the mean of `-log softmax(logits)[target]`
/// over the columns.
///
/// # Errors
/// See [`CrossEntropy::forward`].
pub fn cross_entropy<T: Float>(logits: &Matrix<T>, targets: &[usize]) -> Result<(f64, CrossEntropyCache<T>)> {
    CrossEntropy::default().forward(logits, targets)
}

/// The article's loss: the sum of absolute differences `Σ |pred - target|`.
///
/// # Errors
/// [`Error::ShapeMismatch`] if the shapes differ.
pub fn l1_loss<T: Float>(pred: &Matrix<T>, target: &Matrix<T>) -> Result<f64> {
    expect_shape("l1_loss", target, Some(pred.nrows()), Some(pred.ncols()))?;
    Ok(pred.iter().zip(target.iter()).map(|(&p, &t)| (p - t).abs().as_f64()).sum())
}

/// The gradient of [`l1_loss`] with respect to `pred`: the sign of
/// `pred - target` (0 where they are equal).
///
/// # Errors
/// [`Error::ShapeMismatch`] if the shapes differ.
pub fn l1_loss_backward<T: Float>(pred: &Matrix<T>, target: &Matrix<T>) -> Result<Matrix<T>> {
    expect_shape("l1_loss_backward", target, Some(pred.nrows()), Some(pred.ncols()))?;
    Ok(pred.zip_map(target, |p, t| {
        if p > t {
            T::one()
        } else if p < t {
            -T::one()
        } else {
            T::zero()
        }
    }))
}
