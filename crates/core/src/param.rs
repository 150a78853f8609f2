//! Parameters, and visiting all of a model's parameters by stable name.

use crate::{Error, Float, Matrix, Result, Shape};

/// Whether a parameter is a matrix (a weight, usually decayed) or a vector
/// (a bias or a gain, usually not decayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKind {
    /// A 2-D weight `[out, in]` (or an embedding table).
    Matrix,
    /// A 1-D vector stored as an `[n, 1]` matrix.
    Vector,
}

/// A trainable tensor: its value and the gradient of the loss with respect to
/// it.
///
/// Backward passes **add** into [`Param::grad`] rather than overwrite it, so a
/// weight used twice (GPT-2's tied embedding and output head) and gradient
/// accumulation over micro-batches both come out right. Call
/// [`ParametersExt::zero_grads`] before each step.
#[derive(Debug, Clone, PartialEq)]
pub struct Param<T: Float> {
    value: Matrix<T>,
    grad: Matrix<T>,
    kind: ParamKind,
    frozen: bool,
}

impl<T: Float> Param<T> {
    /// A matrix parameter with a zero gradient.
    pub fn matrix(value: Matrix<T>) -> Self {
        let grad = crate::zeros(value.nrows(), value.ncols());
        Param { value, grad, kind: ParamKind::Matrix, frozen: false }
    }

    /// A vector parameter, stored as an `[n, 1]` matrix, with a zero gradient.
    pub fn vector(values: impl Into<Vec<T>>) -> Self {
        let values = values.into();
        let n = values.len();
        Param {
            value: Matrix::from_vec(n, 1, values),
            grad: crate::zeros(n, 1),
            kind: ParamKind::Vector,
            frozen: false,
        }
    }

    /// The current value.
    pub fn value(&self) -> &Matrix<T> {
        &self.value
    }

    /// The accumulated gradient, the same shape as the value (empty, `[0, 0]`,
    /// while the parameter is frozen).
    pub fn grad(&self) -> &Matrix<T> {
        &self.grad
    }

    /// Mutable access to the value (for optimizers and initialisers).
    pub fn value_mut(&mut self) -> &mut Matrix<T> {
        &mut self.value
    }

    /// Mutable access to the gradient (for backward passes and clipping).
    pub fn grad_mut(&mut self) -> &mut Matrix<T> {
        &mut self.grad
    }

    /// The value and the gradient at once, for an optimizer step.
    pub fn parts_mut(&mut self) -> (&mut Matrix<T>, &mut Matrix<T>) {
        (&mut self.value, &mut self.grad)
    }

    /// The gradient to add into, or `None` while the parameter is frozen:
    /// what a backward pass asks before it computes a parameter's gradient,
    /// so that a frozen parameter costs neither the work nor the memory.
    pub fn trainable_grad(&mut self) -> Option<&mut Matrix<T>> {
        (!self.frozen).then_some(&mut self.grad)
    }

    /// Freezes the parameter: backward passes no longer compute its gradient,
    /// optimizers leave it alone, and its gradient's memory is given back
    /// (fine-tuning with adapters freezes every pretrained weight).
    pub fn freeze(&mut self) {
        self.frozen = true;
        self.grad = Matrix::zeros(0, 0);
    }

    /// Makes a frozen parameter trainable again, with a zero gradient.
    pub fn unfreeze(&mut self) {
        if self.frozen {
            self.frozen = false;
            self.grad = crate::zeros(self.value.nrows(), self.value.ncols());
        }
    }

    /// Whether the parameter is frozen ([`Param::freeze`]).
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Matrix or vector.
    pub fn kind(&self) -> ParamKind {
        self.kind
    }

    /// The shape as stored: `[rows, cols]`.
    pub fn shape(&self) -> Shape {
        Shape::of(&self.value)
    }

    /// The row-major shape of the same bytes, as PyTorch and safetensors
    /// write it: `[n]` for a vector, `[cols, rows]` for a matrix (so a
    /// `[out, in]` weight is the `[in, out]` GPT-2 Conv1D weight).
    pub fn row_major_shape(&self) -> Vec<usize> {
        match self.kind {
            ParamKind::Vector => vec![self.value.nrows()],
            ParamKind::Matrix => vec![self.value.ncols(), self.value.nrows()],
        }
    }

    /// Number of scalars.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// `true` if the parameter holds no scalars.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// Sets the gradient to zero.
    pub fn zero_grad(&mut self) {
        self.grad.as_mut_slice().fill(T::zero()); // a memset (nalgebra's fill walks element by element)
    }

    /// Replaces the value with `value`, which must have the same shape.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the shapes differ.
    pub fn load(&mut self, value: &Matrix<T>) -> Result<()> {
        if value.shape() != self.value.shape() {
            return Err(Error::shape("Param::load", self.shape().to_string(), Shape::of(value)));
        }
        self.value.copy_from(value);
        Ok(())
    }
}

/// A model or layer whose parameters can be visited by stable name.
///
/// Names are dotted paths such as `h.0.attn.c_attn.weight`, chosen by each
/// layer so that a composed model can follow Hugging Face GPT-2's names
/// exactly. The visiting order is fixed (declaration order), and it is the
/// order optimizers and checkpoints use.
///
/// Composite layers implement this by visiting their children under a prefix
/// with [`visit_child`] and [`visit_child_mut`].
pub trait Parameters<T: Float> {
    /// Calls `f` with the name and value of every parameter, in order.
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>));
    /// Calls `f` with the name and a mutable reference to every parameter.
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>));
}

/// Joins a prefix and a name with a dot (`"h.0"` + `"ln_1.weight"`).
pub fn join_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}

/// Visits `child`'s parameters with their names prefixed by `prefix`.
pub fn visit_child<'a, T: Float>(prefix: &str, child: &'a dyn Parameters<T>, f: &mut dyn FnMut(&str, &'a Param<T>)) {
    child.visit(&mut |name, p| f(&join_name(prefix, name), p));
}

/// Visits `child`'s parameters mutably with their names prefixed by `prefix`.
pub fn visit_child_mut<'a, T: Float>(
    prefix: &str,
    child: &'a mut dyn Parameters<T>,
    f: &mut dyn FnMut(&str, &'a mut Param<T>),
) {
    child.visit_mut(&mut |name, p| f(&join_name(prefix, name), p));
}

impl<T: Float> Parameters<T> for Param<T> {
    /// A lone parameter is visited under the empty name.
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        f("", self);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        f("", self);
    }
}

/// Whole-model operations available on everything that has [`Parameters`].
pub trait ParametersExt<T: Float>: Parameters<T> {
    /// Every parameter, in visiting order.
    fn params(&self) -> Vec<&Param<T>> {
        let mut out = Vec::new();
        self.visit(&mut |_, p| out.push(p));
        out
    }

    /// Every parameter, mutably, in visiting order.
    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        let mut out = Vec::new();
        self.visit_mut(&mut |_, p| out.push(p));
        out
    }

    /// Sets every gradient to zero.
    fn zero_grads(&mut self) {
        self.visit_mut(&mut |_, p| p.zero_grad());
    }

    /// Total number of scalars.
    fn num_params(&self) -> usize {
        let mut n = 0;
        self.visit(&mut |_, p| n += p.len());
        n
    }

    /// Number of scalars that are trained (not frozen).
    fn num_trainable(&self) -> usize {
        let mut n = 0;
        self.visit(&mut |_, p| n += if p.is_frozen() { 0 } else { p.len() });
        n
    }

    /// Freezes every parameter ([`Param::freeze`]).
    fn freeze_all(&mut self) {
        self.visit_mut(&mut |_, p| p.freeze());
    }

    /// The parameters that are trained (not frozen), mutably, in visiting
    /// order.
    fn trainable_params_mut(&mut self) -> Vec<&mut Param<T>> {
        let mut out = Vec::new();
        self.visit_mut(&mut |_, p| {
            if !p.is_frozen() {
                out.push(p)
            }
        });
        out
    }

    /// The names of all parameters, in visiting order.
    fn param_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.visit(&mut |name, _| names.push(name.to_string()));
        names
    }

    /// The global L2 norm of all gradients, accumulated in `f64`.
    fn grad_norm(&self) -> f64 {
        let mut sum = 0.0;
        self.visit(&mut |_, p| sum += sum_of_squares(p.grad().as_slice()));
        sum.sqrt()
    }

    /// Multiplies every gradient by `factor`.
    fn scale_grads(&mut self, factor: T) {
        self.visit_mut(&mut |_, p| *p.grad_mut() *= factor);
    }

    /// A copy of every value, in visiting order (see [`ParametersExt::restore`]).
    fn snapshot(&self) -> Vec<Matrix<T>> {
        let mut out = Vec::new();
        self.visit(&mut |_, p| out.push(p.value().clone()));
        out
    }

    /// Puts back values taken by [`ParametersExt::snapshot`].
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if a value does not fit, or
    /// [`Error::OutOfRange`] if the snapshot has the wrong length (values
    /// before the failure have been restored).
    fn restore(&mut self, values: &[Matrix<T>]) -> Result<()> {
        let mut i = 0;
        let mut result = Ok(());
        self.visit_mut(&mut |_, p| {
            if result.is_err() {
                return;
            }
            result = match values.get(i) {
                Some(v) => p.load(v),
                None => Err(Error::OutOfRange { what: "snapshot", index: i, len: values.len() }),
            };
            i += 1;
        });
        result?;
        if i != values.len() {
            return Err(Error::OutOfRange { what: "model parameter", index: values.len() - 1, len: i });
        }
        Ok(())
    }
}

impl<T: Float, P: Parameters<T> + ?Sized> ParametersExt<T> for P {}

/// `Σ x²` accumulated in `f64`, eight lanes at a time (vectorisable).
pub fn sum_of_squares<T: Float>(xs: &[T]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = xs.chunks_exact(8);
    let rest: f64 = chunks.remainder().iter().map(|x| x.as_f64() * x.as_f64()).sum();
    for c in chunks {
        for l in 0..8 {
            let v = c[l].as_f64();
            acc[l] += v * v;
        }
    }
    acc.iter().sum::<f64>() + rest
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Two {
        a: Param<f64>,
        b: Param<f64>,
    }
    impl Parameters<f64> for Two {
        fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<f64>)) {
            f("a", &self.a);
            f("b", &self.b);
        }
        fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<f64>)) {
            f("a", &mut self.a);
            f("b", &mut self.b);
        }
    }
    struct Outer {
        inner: Two,
    }
    impl Parameters<f64> for Outer {
        fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<f64>)) {
            visit_child("h.0", &self.inner, f);
        }
        fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<f64>)) {
            visit_child_mut("h.0", &mut self.inner, f);
        }
    }

    fn outer() -> Outer {
        Outer { inner: Two { a: Param::matrix(Matrix::from_element(2, 3, 1.0)), b: Param::vector(vec![3.0, 4.0]) } }
    }

    #[test]
    fn names_are_prefixed_and_ordered() {
        let m = outer();
        assert_eq!(m.param_names(), ["h.0.a", "h.0.b"]);
        assert_eq!(m.num_params(), 8);
    }

    #[test]
    fn row_major_shape_reverses_matrices_only() {
        let m = outer();
        assert_eq!(m.inner.a.row_major_shape(), [3, 2]);
        assert_eq!(m.inner.b.row_major_shape(), [2]);
    }

    #[test]
    fn snapshot_restore_round_trips_and_checks_shapes() {
        let mut m = outer();
        let snap = m.snapshot();
        m.inner.a.value_mut().fill(9.0);
        m.restore(&snap).unwrap();
        assert_eq!(m.inner.a.value()[(0, 0)], 1.0);
        let err = m.restore(&snap[..1]).unwrap_err();
        assert!(matches!(err, Error::OutOfRange { .. }), "{err}");
        let wrong = vec![Matrix::zeros(3, 2), Matrix::zeros(2, 1)];
        assert!(matches!(m.restore(&wrong), Err(Error::ShapeMismatch { .. })));
    }

    #[test]
    fn a_frozen_parameter_has_no_gradient_and_counts_apart() {
        let mut m = outer();
        m.inner.a.freeze();
        assert!(m.inner.a.is_frozen());
        assert!(m.inner.a.trainable_grad().is_none());
        assert!(m.inner.a.grad().is_empty());
        assert_eq!((m.num_params(), m.num_trainable()), (8, 2));
        assert_eq!(m.trainable_params_mut().len(), 1);
        m.zero_grads();
        m.scale_grads(2.0);
        assert_eq!(m.grad_norm(), 0.0);
        m.inner.a.unfreeze();
        assert_eq!(m.inner.a.grad(), &Matrix::zeros(2, 3));
        m.freeze_all();
        assert_eq!(m.num_trainable(), 0);
    }

    #[test]
    fn grad_norm_and_zeroing() {
        let mut m = outer();
        m.inner.b.grad_mut().copy_from_slice(&[3.0, 4.0]);
        assert_eq!(m.grad_norm(), 5.0);
        m.zero_grads();
        assert_eq!(m.grad_norm(), 0.0);
    }
}
