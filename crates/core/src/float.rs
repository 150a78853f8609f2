//! The scalar type layers are generic over: `f32` for speed, `f64` for
//! gradient checks.

use std::fmt;

/// A floating-point scalar that addmul's layers can run in.
///
/// It is implemented for `f32` (training and sampling) and `f64` (gradient
/// checks against finite differences). Beyond nalgebra's [`RealField`]
/// (`exp`, `ln`, `sqrt`, `tanh`, ...) it adds lossless-enough conversions, the
/// error function for exact GELU, and a raw matrix product that goes straight
/// to `matrixmultiply`.
///
/// [`RealField`]: nalgebra::RealField
pub trait Float:
    nalgebra::RealField
    + Copy
    + Default
    + PartialOrd
    + Send
    + Sync
    + fmt::Debug
    + fmt::Display
    + fmt::LowerExp
    + 'static
    + sealed::Sealed
{
    /// `"f32"` or `"f64"`, as safetensors and messages spell it.
    const NAME: &'static str;
    /// Machine epsilon.
    const EPS: Self;
    /// Negative infinity (a masked attention score).
    const NEG_INFINITY: Self;

    /// Converts from `f64`, rounding to nearest.
    fn of(x: f64) -> Self;
    /// Converts to `f64` (exact for both types).
    fn as_f64(self) -> f64;
    /// The error function, `erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt`.
    fn erf(self) -> Self;
    /// `true` unless NaN or infinite.
    fn finite(self) -> bool;

    /// `C = alpha * A * B + beta * C` on raw strided memory: `A` is `m x k`,
    /// `B` is `k x n`, `C` is `m x n`; `rs*`/`cs*` are row and column strides
    /// in elements. When `beta` is zero, `C` is not read.
    ///
    /// # Safety
    /// The pointers must be valid for the given shapes and strides, and `c`
    /// must not alias `a` or `b`.
    #[allow(clippy::missing_safety_doc)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: (*const Self, isize, isize),
        b: (*const Self, isize, isize),
        beta: Self,
        c: (*mut Self, isize, isize),
    );
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

impl Float for f32 {
    const NAME: &'static str = "f32";
    const EPS: Self = f32::EPSILON;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;

    #[inline]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn erf(self) -> Self {
        libm::erff(self)
    }
    #[inline]
    fn finite(self) -> bool {
        self.is_finite()
    }
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: (*const Self, isize, isize),
        b: (*const Self, isize, isize),
        beta: Self,
        c: (*mut Self, isize, isize),
    ) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { matrixmultiply::sgemm(m, k, n, alpha, a.0, a.1, a.2, b.0, b.1, b.2, beta, c.0, c.1, c.2) }
    }
}

impl Float for f64 {
    const NAME: &'static str = "f64";
    const EPS: Self = f64::EPSILON;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;

    #[inline]
    fn of(x: f64) -> Self {
        x
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self
    }
    #[inline]
    fn erf(self) -> Self {
        libm::erf(self)
    }
    #[inline]
    fn finite(self) -> bool {
        self.is_finite()
    }
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: (*const Self, isize, isize),
        b: (*const Self, isize, isize),
        beta: Self,
        c: (*mut Self, isize, isize),
    ) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { matrixmultiply::dgemm(m, k, n, alpha, a.0, a.1, a.2, b.0, b.1, b.2, beta, c.0, c.1, c.2) }
    }
}

/// Shorthand for `T::of(x)`.
#[inline]
pub fn cast<T: Float>(x: f64) -> T {
    T::of(x)
}
