//! Element-wise non-linearities: ReLU and the two forms of GELU.

use addmul_core::{Float, Layer, Matrix, Param, Parameters, Result, expect_shape};

/// An element-wise activation function.
///
/// | variant | `f(x)` | `f'(x)` |
/// |---|---|---|
/// | `Identity` | `x` | `1` |
/// | `Relu` | `max(0, x)` | `1` if `x > 0`, else `0` |
/// | `GeluTanh` | `x/2 · (1 + tanh(√(2/π) (x + 0.044715 x³)))` | see [`Activation::derivative`] |
/// | `GeluErf` | `x Φ(x) = x/2 · (1 + erf(x/√2))` | `Φ(x) + x φ(x)` |
///
/// `GeluTanh` is the approximation GPT-2 was trained with (Hugging Face calls
/// it `gelu_new`); `GeluErf` is the exact GELU. They differ by less than
/// `5e-4` everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// No activation at all: the article's first network is purely linear.
    Identity,
    /// The rectified linear unit.
    Relu,
    /// GELU, tanh approximation (GPT-2).
    GeluTanh,
    /// GELU, exact form with the error function.
    GeluErf,
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_CUBIC: f64 = 0.044_715;
const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

impl Activation {
    // ANCHOR: apply
    /// `f(x)`.
    #[inline]
    pub fn apply<T: Float>(self, x: T) -> T {
        let half = T::of(0.5);
        match self {
            Activation::Identity => x,
            Activation::Relu => {
                if x > T::zero() {
                    x
                } else {
                    T::zero()
                }
            }
            Activation::GeluTanh => {
                let inner = T::of(SQRT_2_OVER_PI) * (x + T::of(GELU_CUBIC) * x * x * x);
                half * x * (T::one() + inner.tanh_fast())
            }
            Activation::GeluErf => half * x * (T::one() + (x * T::of(FRAC_1_SQRT_2)).erf()),
        }
    }
    // ANCHOR_END: apply

    /// `f'(x)`. For ReLU the derivative at 0 is taken as 0.
    #[inline]
    pub fn derivative<T: Float>(self, x: T) -> T {
        let half = T::of(0.5);
        match self {
            Activation::Identity => T::one(),
            Activation::Relu => {
                if x > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Activation::GeluTanh => {
                let c = T::of(SQRT_2_OVER_PI);
                let a = T::of(GELU_CUBIC);
                let t = (c * (x + a * x * x * x)).tanh_fast();
                let dinner = c * (T::one() + T::of(3.0) * a * x * x);
                half * (T::one() + t) + half * x * (T::one() - t * t) * dinner
            }
            Activation::GeluErf => {
                let cdf = half * (T::one() + (x * T::of(FRAC_1_SQRT_2)).erf());
                let pdf = T::of(FRAC_1_SQRT_2PI) * (-half * x * x).exp();
                cdf + x * pdf
            }
        }
    }

    /// Applies `f` to every entry.
    pub fn map<T: Float>(self, x: &Matrix<T>) -> Matrix<T> {
        // One pass that reads x and writes fresh memory (no copy first), one
        // loop per variant so that each one is inlined and vectorises.
        // (Cut among the cores while a prompt is read: see share_products.)
        fn each<T: Float>(x: &Matrix<T>, f: impl Fn(T) -> T + Sync + Send) -> Matrix<T> {
            Matrix::from_vec(x.nrows(), x.ncols(), addmul_core::parallel::map_entries(x.as_slice(), f))
        }
        match self {
            Activation::Identity => x.clone(),
            Activation::Relu => each(x, |v| Activation::Relu.apply(v)),
            Activation::GeluTanh => each(x, |v| Activation::GeluTanh.apply(v)),
            Activation::GeluErf => each(x, |v| Activation::GeluErf.apply(v)),
        }
    }

    /// `dx = f'(x) ⊙ dy`.
    ///
    /// # Errors
    /// [`addmul_core::Error::ShapeMismatch`] if `dy` and `x` differ in shape.
    pub fn backward_from_input<T: Float>(self, x: &Matrix<T>, dy: &Matrix<T>) -> Result<Matrix<T>> {
        self.backward_owned(x, dy.clone())
    }

    /// [`Activation::backward_from_input`] that turns `dy`, which the caller
    /// no longer needs, into `dx` in place (no new matrix, one pass less over
    /// memory).
    ///
    /// # Errors
    /// [`addmul_core::Error::ShapeMismatch`] if `dy` and `x` differ in shape.
    pub fn backward_owned<T: Float>(self, x: &Matrix<T>, mut dy: Matrix<T>) -> Result<Matrix<T>> {
        expect_shape("Activation::backward", &dy, Some(x.nrows()), Some(x.ncols()))?;
        fn each<T: Float>(dx: &mut Matrix<T>, x: &Matrix<T>, f: impl Fn(T) -> T) {
            for (g, &v) in dx.as_mut_slice().iter_mut().zip(x.as_slice()) {
                *g *= f(v);
            }
        }
        // One loop per variant, so that each one is inlined and vectorises.
        match self {
            Activation::Identity => {}
            Activation::Relu => each(&mut dy, x, |v| Activation::Relu.derivative(v)),
            Activation::GeluTanh => each(&mut dy, x, |v| Activation::GeluTanh.derivative(v)),
            Activation::GeluErf => each(&mut dy, x, |v| Activation::GeluErf.derivative(v)),
        }
        Ok(dy)
    }
}

impl<T: Float> Layer<T> for Activation {
    /// The input.
    type Cache = Matrix<T>;

    fn forward(&self, x: &Matrix<T>) -> Result<(Matrix<T>, Matrix<T>)> {
        Ok((self.map(x), x.clone()))
    }

    fn backward(&mut self, x: &Matrix<T>, dy: &Matrix<T>) -> Result<Matrix<T>> {
        self.backward_from_input(x, dy)
    }
}

/// Activations have no parameters.
impl<T: Float> Parameters<T> for Activation {
    fn visit<'a>(&'a self, _: &mut dyn FnMut(&str, &'a Param<T>)) {}
    fn visit_mut<'a>(&'a mut self, _: &mut dyn FnMut(&str, &'a mut Param<T>)) {}
}
