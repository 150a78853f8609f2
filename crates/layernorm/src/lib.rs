//! Layer normalization: rescale each token's features to mean 0 and
//! variance 1, then let the model choose its own scale and shift.
//!
//! Deep networks train badly when the numbers flowing through them drift to
//! very large or very small values. Layer normalization fixes each token's
//! features (one column) to a standard spread before they go on:
//!
//! ```text
//! μ = mean(x),   σ² = mean((x - μ)²)          (biased: divide by d, not d - 1)
//! x̂ = (x - μ) / sqrt(σ² + ε)
//! y = γ ⊙ x̂ + β                               (γ, β learned, one per feature)
//! ```
//!
//! `ε` (1e-5 by default, as in PyTorch) keeps the division finite for a
//! constant column; the article leaves it out. [`RmsNorm`] is the cheaper
//! variant modern models use: no centring, no `β`, `y = γ ⊙ x / sqrt(mean(x²) + ε)`.
//!
//! # Example
//! ```
//! use addmul_core::{Layer, Matrix};
//! use addmul_layernorm::LayerNorm;
//! let ln = LayerNorm::<f64>::new(4);
//! let (y, _) = ln.forward(&Matrix::from_column_slice(4, 1, &[1.0, 2.0, 3.0, 4.0]))?;
//! assert!(y.sum().abs() < 1e-12);                       // mean 0
//! assert!((y.map(|v| v * v).sum() / 4.0 - 1.0).abs() < 1e-4); // variance 1 (up to ε)
//! # Ok::<(), addmul_core::Error>(())
//! ```
#![deny(missing_docs)]

use addmul_core::{Error, Float, Layer, Matrix, Param, Parameters, Result, expect_shape, reduce};

/// The default `ε`, as in PyTorch and GPT-2.
pub const DEFAULT_EPS: f64 = 1e-5;

/// Layer normalization over each column.
///
/// Parameter names: `weight` (`γ`, starts at 1) and `bias` (`β`, starts at 0),
/// as GPT-2's `ln_1.weight` and `ln_1.bias`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNorm<T: Float> {
    weight: Param<T>,
    bias: Option<Param<T>>,
    eps: f64,
}

/// What [`LayerNorm`]'s forward keeps: the normalized input and each column's
/// `1 / sqrt(σ² + ε)`.
#[derive(Debug, Clone)]
pub struct LayerNormCache<T: Float> {
    x_hat: Matrix<T>,
    rstd: Vec<T>,
}

impl<T: Float> LayerNormCache<T> {
    /// `x̂`, the input normalized to mean 0 and variance 1 per column (before
    /// `γ` and `β`).
    pub fn normalized(&self) -> &Matrix<T> {
        &self.x_hat
    }
}

impl<T: Float> LayerNorm<T> {
    /// Layer normalization of `d` features with `γ = 1`, `β = 0`, `ε = 1e-5`.
    pub fn new(d: usize) -> Self {
        LayerNorm {
            weight: Param::vector(vec![T::one(); d]),
            bias: Some(Param::vector(vec![T::zero(); d])),
            eps: DEFAULT_EPS,
        }
    }

    /// The same with another `ε`.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] if `eps` is negative or not finite.
    pub fn with_eps(mut self, eps: f64) -> Result<Self> {
        if !(eps >= 0.0 && eps.is_finite()) {
            return Err(Error::InvalidValue { what: "layer norm eps", value: eps, requirement: ">= 0 and finite" });
        }
        self.eps = eps;
        Ok(self)
    }

    /// Without `β` (GPT-style models may drop biases).
    pub fn without_bias(mut self) -> Self {
        self.bias = None;
        self
    }

    /// `γ`.
    pub fn weight(&self) -> &Param<T> {
        &self.weight
    }

    /// `β`, if present.
    pub fn bias(&self) -> Option<&Param<T>> {
        self.bias.as_ref()
    }

    /// `ε`.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// Number of features.
    pub fn dim(&self) -> usize {
        self.weight.len()
    }
}

// ANCHOR: layernorm
impl<T: Float> Layer<T> for LayerNorm<T> {
    type Cache = LayerNormCache<T>;

    fn forward(&self, x: &Matrix<T>) -> Result<(Matrix<T>, LayerNormCache<T>)> {
        expect_shape("LayerNorm::forward", x, Some(self.dim()), None)?;
        let (d, n) = (self.dim(), x.ncols());
        let inv_d = T::one() / T::of(d as f64);
        let eps = T::of(self.eps);
        let gamma = self.weight.value().as_slice();
        let beta = self.bias.as_ref().map(|b| b.value().as_slice());
        // Both outputs are written once, column by column, into fresh memory.
        let (mut x_hat, mut y) = (Vec::with_capacity(d * n), Vec::with_capacity(d * n));
        let mut rstd = Vec::with_capacity(n);
        for xc in x.as_slice().chunks_exact(d) {
            let mean = reduce::sum(xc) * inv_d;
            let var = reduce::sum_by(d, |i| (xc[i] - mean) * (xc[i] - mean)) * inv_d;
            let r = T::one() / (var + eps).sqrt();
            let start = x_hat.len();
            x_hat.extend(xc.iter().map(|&v| (v - mean) * r));
            let xh = &x_hat[start..];
            match beta {
                Some(beta) => y.extend(xh.iter().zip(gamma).zip(beta).map(|((&h, &g), &b)| g * h + b)),
                None => y.extend(xh.iter().zip(gamma).map(|(&h, &g)| g * h)),
            }
            rstd.push(r);
        }
        let (x_hat, y) = (Matrix::from_vec(d, n, x_hat), Matrix::from_vec(d, n, y));
        Ok((y, LayerNormCache { x_hat, rstd }))
    }

    /// With `g = γ ⊙ dy`, per column:
    /// `dx = (g - mean(g) - x̂ · mean(g ⊙ x̂)) / sqrt(σ² + ε)`;
    /// `dγ += Σ dy ⊙ x̂`, `dβ += Σ dy` over the columns.
    fn backward(&mut self, cache: &LayerNormCache<T>, dy: &Matrix<T>) -> Result<Matrix<T>> {
        expect_shape("LayerNorm::backward", dy, Some(self.dim()), Some(cache.x_hat.ncols()))?;
        let d = self.dim();
        let inv_d = T::one() / T::of(d as f64);
        let mut dx = Matrix::zeros(d, dy.ncols());
        {
            // A frozen γ has no gradient to add into (an empty one).
            let trained = !self.weight.is_frozen();
            let (gamma, dgamma) = self.weight.parts_mut();
            let (gamma, dgamma) = (&gamma.as_slice()[..d], dgamma.as_mut_slice());
            let columns = cache.x_hat.as_slice().chunks_exact(d).zip(dy.as_slice().chunks_exact(d));
            for ((xh, g_out), (dxc, &r)) in columns.zip(dx.as_mut_slice().chunks_exact_mut(d).zip(&cache.rstd)) {
                let mean_g = reduce::dot(gamma, g_out) * inv_d;
                let mean_gx = reduce::sum_by(d, |i| gamma[i] * g_out[i] * xh[i]) * inv_d;
                if trained {
                    let dgamma = &mut dgamma[..d];
                    for i in 0..d {
                        dgamma[i] += g_out[i] * xh[i];
                    }
                }
                for i in 0..d {
                    dxc[i] = (gamma[i] * g_out[i] - mean_g - xh[i] * mean_gx) * r;
                }
            }
        }
        if let Some(grad) = self.bias.as_mut().and_then(|b| b.trainable_grad()) {
            addmul_core::accumulate_column_sum(grad, dy)?;
        }
        Ok(dx)
    }
}
// ANCHOR_END: layernorm

impl<T: Float> Parameters<T> for LayerNorm<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        f("weight", &self.weight);
        if let Some(b) = &self.bias {
            f("bias", b);
        }
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        f("weight", &mut self.weight);
        if let Some(b) = &mut self.bias {
            f("bias", b);
        }
    }
}

/// Root-mean-square normalization: `y = γ ⊙ x / sqrt(mean(x²) + ε)`, no
/// centring and no `β`.
///
/// Parameter name: `weight`.
#[derive(Debug, Clone, PartialEq)]
pub struct RmsNorm<T: Float> {
    weight: Param<T>,
    eps: f64,
}

/// What [`RmsNorm`]'s forward keeps.
#[derive(Debug, Clone)]
pub struct RmsNormCache<T: Float> {
    x_hat: Matrix<T>,
    rrms: Vec<T>,
}

impl<T: Float> RmsNorm<T> {
    /// RMS normalization of `d` features, `γ = 1`, `ε = 1e-5`.
    pub fn new(d: usize) -> Self {
        RmsNorm { weight: Param::vector(vec![T::one(); d]), eps: DEFAULT_EPS }
    }

    /// Number of features.
    pub fn dim(&self) -> usize {
        self.weight.len()
    }
}

impl<T: Float> Layer<T> for RmsNorm<T> {
    type Cache = RmsNormCache<T>;

    fn forward(&self, x: &Matrix<T>) -> Result<(Matrix<T>, RmsNormCache<T>)> {
        expect_shape("RmsNorm::forward", x, Some(self.dim()), None)?;
        let d = T::of(self.dim() as f64);
        let gamma = self.weight.value().as_slice();
        let mut x_hat = x.clone();
        let mut y = x.clone();
        let mut rrms = Vec::with_capacity(x.ncols());
        for (mut xh, mut yc) in x_hat.column_iter_mut().zip(y.column_iter_mut()) {
            let ms = reduce::dot(xh.as_slice(), xh.as_slice()) / d;
            let r = T::one() / (ms + T::of(self.eps)).sqrt();
            for (i, (h, out)) in xh.iter_mut().zip(yc.iter_mut()).enumerate() {
                *h *= r;
                *out = gamma[i] * *h;
            }
            rrms.push(r);
        }
        Ok((y, RmsNormCache { x_hat, rrms }))
    }

    /// With `g = γ ⊙ dy`: `dx = (g - x̂ · mean(g ⊙ x̂)) / rms`; `dγ += Σ dy ⊙ x̂`.
    fn backward(&mut self, cache: &RmsNormCache<T>, dy: &Matrix<T>) -> Result<Matrix<T>> {
        expect_shape("RmsNorm::backward", dy, Some(self.dim()), Some(cache.x_hat.ncols()))?;
        let d = T::of(self.dim() as f64);
        let mut dx = Matrix::zeros(dy.nrows(), dy.ncols());
        let trained = !self.weight.is_frozen();
        let (gamma, dgamma) = self.weight.parts_mut();
        for j in 0..dy.ncols() {
            let (xh, g_out) = (cache.x_hat.column(j), dy.column(j));
            let mut mean_gx = T::zero();
            for i in 0..xh.len() {
                mean_gx += gamma[i] * g_out[i] * xh[i];
                if trained {
                    dgamma[i] += g_out[i] * xh[i];
                }
            }
            mean_gx /= d;
            for (i, out) in dx.column_mut(j).iter_mut().enumerate() {
                *out = (gamma[i] * g_out[i] - xh[i] * mean_gx) * cache.rrms[j];
            }
        }
        Ok(dx)
    }
}

impl<T: Float> Parameters<T> for RmsNorm<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        f("weight", &self.weight);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        f("weight", &mut self.weight);
    }
}
