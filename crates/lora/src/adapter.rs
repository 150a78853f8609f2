//! One adapter: the two thin matrices `A` and `B` and their scale.

use addmul_core::{Error, Float, Init, Matrix, Op, Param, Parameters, Rng, expect_shape, gemm, matmul};
use addmul_dropout::{DropoutMask, Dropper};
use addmul_nn::{Linear, SidePath};

use crate::config::check_rank;
use crate::{LoraConfig, LoraError, Result};

/// A low-rank update `ΔW = s · B A` for one linear layer, kept apart from
/// the layer's weight.
///
/// # Shapes
/// - `A`: `[r, in]` (PEFT's `lora_A.weight`), `B`: `[out, r]` (`lora_B.weight`)
/// - `s = alpha / r`
/// - input `x`: `[in, n]`, its contribution to the output: `[out, n]`
///
/// Parameter names: `lora_A.weight`, `lora_B.weight`.
///
/// The adapter does not hold the base layer, so a model can keep its
/// [`Linear`] layers as they are and run an adapter beside any of them
/// ([`LoraAdapter::forward_add`], [`LoraAdapter::backward_add`]);
/// [`LoraLinear`](crate::LoraLinear) puts the two together as one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraAdapter<T: Float> {
    a: Param<T>,
    b: Param<T>,
    scale: f64,
    dropout: f64,
}

/// What [`LoraAdapter::forward_add`] keeps for the backward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterCache<T: Float> {
    /// The adapter's input after dropout, `[in, n]`.
    input: Matrix<T>,
    /// The dropout mask, if anything was dropped.
    mask: Option<DropoutMask<T>>,
    /// `A · input`, `[r, n]`.
    down: Matrix<T>,
}

impl<T: Float> LoraAdapter<T> {
    /// A fresh adapter for a layer with `in_features` inputs and
    /// `out_features` outputs, initialised as PEFT does by default
    /// (`init_lora_weights=True`): `A` uniform on `[-1/√in, 1/√in)` (PyTorch's
    /// `kaiming_uniform_` with `a = √5`, the default of `nn.Linear`) and
    /// `B = 0`, so that the adapted layer starts out exactly as the base.
    ///
    /// # Errors
    /// [`LoraError::Config`] if the configuration is invalid,
    /// [`LoraError::RankTooLarge`] if `rank > min(in, out)`.
    pub fn new(in_features: usize, out_features: usize, config: &LoraConfig, rng: &mut Rng) -> Result<Self> {
        config.validate()?;
        check_rank("", config.rank, in_features, out_features)?;
        let bound = 1.0 / (in_features as f64).sqrt();
        let a = Init::Uniform { bound }.matrix(config.rank, in_features, rng);
        let b = Matrix::zeros(out_features, config.rank);
        Ok(LoraAdapter { a: Param::matrix(a), b: Param::matrix(b), scale: config.scale(), dropout: config.dropout })
    }

    /// An adapter with the given `A` (`[r, in]`) and `B` (`[out, r]`), scale
    /// `s` (`alpha / r`) and dropout probability.
    ///
    /// # Errors
    /// [`LoraError::Numeric`] if the shapes do not fit together,
    /// [`LoraError::Config`] for a rank of 0, a non-finite scale or a dropout
    /// outside `[0, 1)`, [`LoraError::RankTooLarge`] if `r > min(in, out)`.
    pub fn from_weights(a: Matrix<T>, b: Matrix<T>, scale: f64, dropout: f64) -> Result<Self> {
        let rank = a.nrows();
        expect_shape("LoraAdapter::from_weights (B is [out, r])", &b, None, Some(rank))?;
        if rank == 0 {
            return Err(LoraError::config("rank", rank, "must be at least 1"));
        }
        if !scale.is_finite() {
            return Err(LoraError::config("scale", scale, "must be a finite number"));
        }
        if !(0.0..1.0).contains(&dropout) {
            return Err(LoraError::config("dropout", dropout, "must be in [0, 1)"));
        }
        check_rank("", rank, a.ncols(), b.nrows())?;
        Ok(LoraAdapter { a: Param::matrix(a), b: Param::matrix(b), scale, dropout })
    }

    /// The rank `r`.
    pub fn rank(&self) -> usize {
        self.a.value().nrows()
    }

    /// Number of inputs of the adapted layer.
    pub fn in_features(&self) -> usize {
        self.a.value().ncols()
    }

    /// Number of outputs of the adapted layer.
    pub fn out_features(&self) -> usize {
        self.b.value().nrows()
    }

    /// The scale `s = alpha / r`.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The dropout probability on the adapter's input.
    pub fn dropout(&self) -> f64 {
        self.dropout
    }

    /// `A`, `[r, in]`.
    pub fn a(&self) -> &Param<T> {
        &self.a
    }

    /// `B`, `[out, r]`.
    pub fn b(&self) -> &Param<T> {
        &self.b
    }

    /// The full update `s · B A`, `[out, in]`: what merging adds to the
    /// base weight.
    ///
    /// # Errors
    /// Never for an adapter built by this crate; a shape error otherwise.
    pub fn delta_weight(&self) -> Result<Matrix<T>, Error> {
        let mut delta = Matrix::zeros(self.out_features(), self.in_features());
        gemm(T::of(self.scale), self.b.value(), Op::N, self.a.value(), Op::N, T::zero(), &mut delta)?;
        Ok(delta)
    }

    // ANCHOR: lora_forward
    /// Adds the adapter's share `s · B A drop(x)` into `y`, which holds the
    /// base layer's output `W x + b` (`[out, n]`). Dropout (PEFT's
    /// `lora_dropout`, on the adapter's input only) is drawn from `rng` when
    /// there is one; without it nothing is dropped.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` is not `[in, n]` or `y` not `[out, n]`.
    pub fn forward_add(
        &self,
        x: &Matrix<T>,
        rng: Option<&mut Rng>,
        y: &mut Matrix<T>,
    ) -> Result<AdapterCache<T>, Error> {
        expect_shape("LoraAdapter::forward", x, Some(self.in_features()), None)?;
        expect_shape("LoraAdapter::forward (output)", y, Some(self.out_features()), Some(x.ncols()))?;
        let (input, mask) = Dropper::new(self.dropout, rng)?.apply(x.clone());
        // down = A drop(x): every token squeezed through r numbers
        let down = matmul(self.a.value(), Op::N, &input, Op::N)?;
        // y += s · B down: and widened back to `out`
        gemm(T::of(self.scale), self.b.value(), Op::N, &down, Op::N, T::one(), y)?;
        Ok(AdapterCache { input, mask, down })
    }
    // ANCHOR_END: lora_forward

    // ANCHOR: lora_backward
    /// The backward of [`LoraAdapter::forward_add`]: with `dy` the gradient
    /// of the loss with respect to the layer's output, **adds** `dA` and `dB`
    /// into the parameters' gradients and the adapter's share of the input's
    /// gradient into `dx` (`[in, n]`).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `dy` or `dx` does not match the forward
    /// pass.
    pub fn backward_add(&mut self, cache: &AdapterCache<T>, dy: &Matrix<T>, dx: &mut Matrix<T>) -> Result<(), Error> {
        self.backward_parts(&cache.input, cache.mask.as_ref(), &cache.down, dy, dx)
    }

    /// The backward pass from its parts: the adapter's input after dropout,
    /// the mask, and `down = A · input`.
    fn backward_parts(
        &mut self,
        input: &Matrix<T>,
        mask: Option<&DropoutMask<T>>,
        down: &Matrix<T>,
        dy: &Matrix<T>,
        dx: &mut Matrix<T>,
    ) -> Result<(), Error> {
        let n = input.ncols();
        expect_shape("LoraAdapter::backward", dy, Some(self.out_features()), Some(n))?;
        expect_shape("LoraAdapter::backward (dx)", dx, Some(self.in_features()), Some(n))?;
        let s = T::of(self.scale);
        // dB += s · dy downᵀ
        gemm(s, dy, Op::N, down, Op::T, T::one(), self.b.grad_mut())?;
        // d_down = s · Bᵀ dy   ([r, n]: the gradient on the narrow path)
        let mut d_down = Matrix::zeros(self.rank(), n);
        gemm(s, self.b.value(), Op::T, dy, Op::N, T::zero(), &mut d_down)?;
        // dA += d_down drop(x)ᵀ
        gemm(T::one(), &d_down, Op::N, input, Op::T, T::one(), self.a.grad_mut())?;
        // dx += drop'(Aᵀ d_down): through the same dropout mask
        match mask {
            None => gemm(T::one(), self.a.value(), Op::T, &d_down, Op::N, T::one(), dx)?,
            Some(mask) => *dx += mask.backward(&matmul(self.a.value(), Op::T, &d_down, Op::N)?)?,
        }
        Ok(())
    }
    // ANCHOR_END: lora_backward

    // ANCHOR: lora_merge
    /// Adds `s · B A` into `base`'s weight: the merged layer computes what
    /// the base and the adapter computed together, at the cost of the base
    /// alone.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `base` is not `[out, in]`.
    pub fn merge_into(&self, base: &mut Linear<T>) -> Result<(), Error> {
        gemm(T::of(self.scale), self.b.value(), Op::N, self.a.value(), Op::N, T::one(), base_weight_mut(base))
    }

    /// Subtracts `s · B A` from `base`'s weight: the inverse of
    /// [`LoraAdapter::merge_into`], up to rounding.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `base` is not `[out, in]`.
    pub fn unmerge_from(&self, base: &mut Linear<T>) -> Result<(), Error> {
        gemm(-T::of(self.scale), self.b.value(), Op::N, self.a.value(), Op::N, T::one(), base_weight_mut(base))
    }
    // ANCHOR_END: lora_merge
}

/// The weight of a linear layer, mutably (a [`Linear`] exposes it by name
/// through [`Parameters::visit_mut`]).
fn base_weight_mut<T: Float>(base: &mut Linear<T>) -> &mut Matrix<T> {
    base.weight_mut().value_mut()
}

/// The gradient of the input of a frozen linear layer, `Wᵀ dy`: its weight's
/// and bias's gradients are never computed.
///
/// # Errors
/// [`Error::ShapeMismatch`] if `dy` is not `[out, n]`.
pub fn frozen_backward<T: Float>(base: &Linear<T>, dy: &Matrix<T>) -> Result<Matrix<T>, Error> {
    expect_shape("frozen Linear::backward", dy, Some(base.out_features()), None)?;
    matmul(base.weight().value(), Op::T, dy, Op::N)
}

// ANCHOR: side_path
/// The adapter as a side path of a model's own [`Linear`] layer
/// ([`Linear::attach`]): `y = W x + b + s · B A x`. The backward pass
/// recomputes `A x` (`r` numbers per token) instead of keeping it.
///
/// A side path is not handed the training step's random numbers, so it runs
/// without dropout (PEFT's default `lora_dropout = 0`); [`LoraLinear`]
/// (crate::LoraLinear) is the layer to use for adapter dropout.
impl<T: Float> SidePath<T> for LoraAdapter<T> {
    fn shape(&self) -> (usize, usize) {
        (self.in_features(), self.out_features())
    }

    fn forward_add(&self, x: &Matrix<T>, y: &mut Matrix<T>) -> Result<(), Error> {
        LoraAdapter::forward_add(self, x, None, y).map(drop)
    }

    fn backward_add(&mut self, x: &Matrix<T>, dy: &Matrix<T>, dx: &mut Matrix<T>) -> Result<(), Error> {
        expect_shape("LoraAdapter::backward (x)", x, Some(self.in_features()), None)?;
        let down = matmul(self.a.value(), Op::N, x, Op::N)?;
        self.backward_parts(x, None, &down, dy, dx)
    }

    fn boxed_clone(&self) -> Box<dyn SidePath<T>> {
        Box::new(self.clone())
    }
}
// ANCHOR_END: side_path

impl<T: Float> Parameters<T> for LoraAdapter<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        f("lora_A.weight", &self.a);
        f("lora_B.weight", &self.b);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        f("lora_A.weight", &mut self.a);
        f("lora_B.weight", &mut self.b);
    }
}

impl<T: Float> LoraAdapter<T> {
    /// Checks that the adapter is for a layer with `in_features` inputs and
    /// `out_features` outputs, and that its rank fits it.
    pub(crate) fn check_fits(&self, layer: &str, in_features: usize, out_features: usize) -> Result<()> {
        if self.in_features() != in_features || self.out_features() != out_features {
            return Err(Error::shape(
                "LoraAdapter (for a layer)",
                format!("an adapter for {in_features} inputs and {out_features} outputs"),
                addmul_core::Shape { rows: self.out_features(), cols: self.in_features() },
            )
            .into());
        }
        check_rank(layer, self.rank(), in_features, out_features)
    }
}
