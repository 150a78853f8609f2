//! The linear layer: `y = W x + b`.

use addmul_core::{
    Error, Float, Init, Layer, Matrix, Op, Param, Parameters, Result, Rng, accumulate_column_sum, expect_shape, gemm,
    matmul,
};

/// A fully connected layer, `y = W x + b`.
///
/// # Shapes
/// - weight `W`: `[out, in]` (byte-identical to a GPT-2 Conv1D `[in, out]`)
/// - bias `b`: `[out]`, optional
/// - input `x`: `[in, n]`, output `y`: `[out, n]`: one column per example
///
/// Parameter names: `weight`, `bias`.
///
/// # Example
/// ```
/// use addmul_core::{Layer, Matrix};
/// use addmul_nn::Linear;
/// // The article's top hidden neuron: inputs (R, G, B, volume).
/// let w = Matrix::<f64>::from_row_slice(1, 4, &[0.10, -0.29, -0.07, 0.46]);
/// let layer = Linear::from_weights(w, None)?;
/// let leaf = Matrix::from_column_slice(4, 1, &[32.0, 107.0, 56.0, 11.2]);
/// let (y, _cache) = layer.forward(&leaf)?;
/// assert!((y[0] - -26.598).abs() < 1e-12);
/// # Ok::<(), addmul_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Linear<T: Float> {
    weight: Param<T>,
    bias: Option<Param<T>>,
}

impl<T: Float> Linear<T> {
    /// A new layer with the weight drawn from `init` and a zero bias (if
    /// `bias` is set).
    pub fn new(in_features: usize, out_features: usize, bias: bool, init: Init, rng: &mut Rng) -> Self {
        let weight = Param::matrix(init.matrix(out_features, in_features, rng));
        let bias = bias.then(|| Param::vector(vec![T::zero(); out_features]));
        Linear { weight, bias }
    }

    /// A layer with the given weight `[out, in]` and optional bias of length
    /// `out`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the bias length is not `out`.
    pub fn from_weights(weight: Matrix<T>, bias: Option<Vec<T>>) -> Result<Self> {
        if let Some(b) = &bias
            && b.len() != weight.nrows()
        {
            return Err(Error::shape(
                "Linear::from_weights",
                format!("bias of length {}", weight.nrows()),
                addmul_core::Shape { rows: b.len(), cols: 1 },
            ));
        }
        Ok(Linear { weight: Param::matrix(weight), bias: bias.map(Param::vector) })
    }

    /// Number of input features.
    pub fn in_features(&self) -> usize {
        self.weight.value().ncols()
    }

    /// Number of output features.
    pub fn out_features(&self) -> usize {
        self.weight.value().nrows()
    }

    /// The weight `[out, in]`.
    pub fn weight(&self) -> &Param<T> {
        &self.weight
    }

    /// The bias `[out]`, if the layer has one.
    pub fn bias(&self) -> Option<&Param<T>> {
        self.bias.as_ref()
    }

    /// `W x + b` without keeping anything for a backward pass.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` is not `[in, n]`.
    pub fn apply(&self, x: &Matrix<T>) -> Result<Matrix<T>> {
        expect_shape("Linear::forward", x, Some(self.in_features()), None)?;
        match &self.bias {
            // The product into fresh memory, then the bias added to every
            // column while that column is still in cache.
            Some(b) => {
                let b = b.value().as_slice();
                let mut y = matmul(self.weight.value(), Op::N, x, Op::N)?;
                for col in y.as_mut_slice().chunks_exact_mut(b.len()) {
                    for (v, &bi) in col.iter_mut().zip(b) {
                        *v += bi;
                    }
                }
                Ok(y)
            }
            None => matmul(self.weight.value(), Op::N, x, Op::N),
        }
    }
}

// ANCHOR: linear_layer
impl<T: Float> Layer<T> for Linear<T> {
    /// The input, needed for the weight's gradient.
    type Cache = Matrix<T>;

    fn forward(&self, x: &Matrix<T>) -> Result<(Matrix<T>, Matrix<T>)> {
        Ok((self.apply(x)?, x.clone()))
    }

    fn backward(&mut self, x: &Matrix<T>, dy: &Matrix<T>) -> Result<Matrix<T>> {
        expect_shape("Linear::backward", dy, Some(self.out_features()), Some(x.ncols()))?;
        // dL/dW = dy xᵀ  (every example adds its outer product)
        gemm(T::one(), dy, Op::N, x, Op::T, T::one(), self.weight.grad_mut())?;
        // dL/db = the sum of dy over the examples
        if let Some(b) = &mut self.bias {
            accumulate_column_sum(b.grad_mut(), dy)?;
        }
        // dL/dx = Wᵀ dy
        matmul(self.weight.value(), Op::T, dy, Op::N)
    }
}
// ANCHOR_END: linear_layer

impl<T: Float> Parameters<T> for Linear<T> {
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
