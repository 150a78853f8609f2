//! The linear layer: `y = W x + b`, and the side paths (low-rank adapters)
//! that can be attached to it.

use std::fmt;

use addmul_core::{
    Error, Float, Init, Layer, Matrix, Op, Param, Parameters, ParametersExt, Result, Rng, accumulate_column_sum,
    expect_shape, gemm, matmul,
};

/// A trainable path beside a linear layer whose output is added to the
/// layer's, `y = W x + b + side(x)`: how a low-rank adapter (the crate
/// `addmul-lora`) joins any [`Linear`] in a model without the model knowing
/// about adapters. Usually the layer's own weight is frozen
/// ([`Param::freeze`]) and only the side path learns.
///
/// Its parameters are visited as the layer's, after `weight` and `bias`,
/// under the names the side path gives them (`lora_A.weight`, ...).
pub trait SidePath<T: Float>: Parameters<T> + fmt::Debug + Send + Sync {
    /// The `(inputs, outputs)` the path is for.
    fn shape(&self) -> (usize, usize);

    /// Adds the path's output for `x` (`[in, n]`) into `y` (`[out, n]`).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a mis-shaped `x` or `y`.
    fn forward_add(&self, x: &Matrix<T>, y: &mut Matrix<T>) -> Result<()>;

    /// Given the forward pass's `x` and the output's gradient `dy`, adds the
    /// path's parameters' gradients into them and its share of the input's
    /// gradient into `dx`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for mis-shaped matrices.
    fn backward_add(&mut self, x: &Matrix<T>, dy: &Matrix<T>, dx: &mut Matrix<T>) -> Result<()>;

    /// A boxed copy (a model with side paths is cloned for every training
    /// thread).
    fn boxed_clone(&self) -> Box<dyn SidePath<T>>;
}

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
#[derive(Debug)]
pub struct Linear<T: Float> {
    weight: Param<T>,
    bias: Option<Param<T>>,
    side: Option<Box<dyn SidePath<T>>>,
}

impl<T: Float> Clone for Linear<T> {
    fn clone(&self) -> Self {
        Linear {
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            side: self.side.as_ref().map(|s| s.boxed_clone()),
        }
    }
}

/// Two layers are equal when their weights, biases and side paths'
/// parameters are.
impl<T: Float> PartialEq for Linear<T> {
    fn eq(&self, other: &Self) -> bool {
        let side_params = |l: &Self| l.side.as_ref().map(|s| s.params().into_iter().cloned().collect::<Vec<_>>());
        self.weight == other.weight && self.bias == other.bias && side_params(self) == side_params(other)
    }
}

impl<T: Float> Linear<T> {
    /// A new layer with the weight drawn from `init` and a zero bias (if
    /// `bias` is set).
    pub fn new(in_features: usize, out_features: usize, bias: bool, init: Init, rng: &mut Rng) -> Self {
        let weight = Param::matrix(init.matrix(out_features, in_features, rng));
        let bias = bias.then(|| Param::vector(vec![T::zero(); out_features]));
        Linear { weight, bias, side: None }
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
        Ok(Linear { weight: Param::matrix(weight), bias: bias.map(Param::vector), side: None })
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

    /// The weight, mutably (to freeze it, or to merge an adapter into it).
    pub fn weight_mut(&mut self) -> &mut Param<T> {
        &mut self.weight
    }

    /// The bias, mutably, if the layer has one.
    pub fn bias_mut(&mut self) -> Option<&mut Param<T>> {
        self.bias.as_mut()
    }

    /// Attaches a side path, whose output is added to the layer's from now
    /// on (in training and in inference); it replaces any attached before.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the path is not for this layer's
    /// `(inputs, outputs)`.
    pub fn attach(&mut self, side: Box<dyn SidePath<T>>) -> Result<()> {
        let (inputs, outputs) = side.shape();
        if (inputs, outputs) != (self.in_features(), self.out_features()) {
            return Err(Error::shape(
                "Linear::attach",
                format!("a side path for {} inputs and {} outputs", self.in_features(), self.out_features()),
                addmul_core::Shape { rows: outputs, cols: inputs },
            ));
        }
        self.side = Some(side);
        Ok(())
    }

    /// Removes the side path and returns it.
    pub fn detach(&mut self) -> Option<Box<dyn SidePath<T>>> {
        self.side.take()
    }

    /// The attached side path, if any.
    pub fn side_path(&self) -> Option<&dyn SidePath<T>> {
        self.side.as_deref()
    }

    /// `W x + b` (plus the side path's output, if one is attached) without
    /// keeping anything for a backward pass.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` is not `[in, n]`.
    pub fn apply(&self, x: &Matrix<T>) -> Result<Matrix<T>> {
        let mut y = self.apply_base(x)?;
        if let Some(side) = &self.side {
            side.forward_add(x, &mut y)?;
        }
        Ok(y)
    }

    /// `W x + b` alone.
    fn apply_base(&self, x: &Matrix<T>) -> Result<Matrix<T>> {
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
        if let Some(dw) = self.weight.trainable_grad() {
            gemm(T::one(), dy, Op::N, x, Op::T, T::one(), dw)?;
        }
        // dL/db = the sum of dy over the examples
        if let Some(db) = self.bias.as_mut().and_then(|b| b.trainable_grad()) {
            accumulate_column_sum(db, dy)?;
        }
        // dL/dx = Wᵀ dy
        let mut dx = matmul(self.weight.value(), Op::T, dy, Op::N)?;
        if let Some(side) = &mut self.side {
            side.backward_add(x, dy, &mut dx)?;
        }
        Ok(dx)
    }
}
// ANCHOR_END: linear_layer

impl<T: Float> Parameters<T> for Linear<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        f("weight", &self.weight);
        if let Some(b) = &self.bias {
            f("bias", b);
        }
        if let Some(side) = &self.side {
            side.visit(f);
        }
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        f("weight", &mut self.weight);
        if let Some(b) = &mut self.bias {
            f("bias", b);
        }
        if let Some(side) = &mut self.side {
            side.visit_mut(f);
        }
    }
}
