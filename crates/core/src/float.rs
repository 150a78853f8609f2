//! The scalar type layers are generic over: `f32` for speed, `f64` for
//! gradient checks.

use std::fmt;

/// A floating-point scalar that addmul's layers can run in.
///
/// It is implemented for `f32` (training and sampling) and `f64` (gradient
/// checks against finite differences). Beyond nalgebra's [`RealField`]
/// (`exp`, `ln`, `sqrt`, `tanh`, ...) it adds lossless-enough conversions, the
/// error function for exact GELU.
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
    /// `e^x`, computed the fast way for `f32` (range reduction and a
    /// polynomial, within 2 units in the last place, exactly 0 below
    /// `-87.3`, vectorisable) and with the standard library for `f64`.
    fn exp_fast(self) -> Self;
    /// The hyperbolic tangent, computed the fast way for `f32` (a rational
    /// approximation accurate to a few units in the last place, which the
    /// compiler can vectorise) and with the standard library for `f64`.
    fn tanh_fast(self) -> Self;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_relative_error_is_at_most_two_epsilon_and_exact_at_the_edges() {
        let mut worst = 0.0f64;
        let mut x = -87.3f32;
        while x < 88.7 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            // The error relative to the true value, in units of f32::EPSILON.
            let tolerance_unit = f64::from(f32::EPSILON) * want;
            worst = worst.max((got - want).abs() / tolerance_unit);
            x += 7.3e-3;
        }
        assert!(worst <= 2.0, "worst relative error {worst} × f32::EPSILON");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn fast_tanh_relative_error_is_below_four_epsilon_everywhere() {
        let mut worst = 0.0f64;
        let mut x = -12.0f32;
        while x < 12.0 {
            let want = (x as f64).tanh();
            let got = tanh_f32(x) as f64;
            let tolerance_unit = f64::from(f32::EPSILON) * want.abs().max(f64::from(f32::MIN_POSITIVE));
            worst = worst.max((got - want).abs() / tolerance_unit);
            x += 1.0e-3;
        }
        assert!(worst < 4.0, "worst relative error {worst} × f32::EPSILON");
        assert_eq!(tanh_f32(0.0), 0.0);
        assert_eq!(tanh_f32(20.0), 1.0);
        assert_eq!(tanh_f32(-20.0), -1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
        assert!((tanh_f32(1e-6) - 1e-6).abs() < 1e-12);
    }
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
    #[inline]
    fn tanh_fast(self) -> Self {
        tanh_f32(self)
    }
    #[inline]
    fn exp_fast(self) -> Self {
        exp_f32(self)
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
    #[inline]
    fn tanh_fast(self) -> Self {
        self.tanh()
    }
    #[inline]
    fn exp_fast(self) -> Self {
        self.exp()
    }
}

/// `tanh` for `f32` as a rational function of degree 13/6 on
/// `[-7.905, 7.905]` and ±1 outside (where `tanh` rounds to ±1 in `f32`):
/// the minimax approximation Eigen uses (`ptanh_float`), branch-free apart
/// from the clamp so that loops over it vectorise. NaN stays NaN.
#[inline]
#[allow(clippy::excessive_precision)] // the coefficients as published
pub fn tanh_f32(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A: [f32; 7] = [
        4.893_524_6e-3,
        6.372_619_3e-4,
        1.485_722_4e-5,
        5.122_297e-8,
        -8.604_671_5e-11,
        2.000_187_9e-13,
        -2.760_768_5e-16,
    ];
    const B: [f32; 4] = [4.893_525_2e-3, 2.268_434_6e-3, 1.185_347_1e-4, 1.198_258_4e-6];
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = ((((((A[6] * x2 + A[5]) * x2 + A[4]) * x2 + A[3]) * x2 + A[2]) * x2 + A[1]) * x2 + A[0]) * x;
    let q = ((B[3] * x2 + B[2]) * x2 + B[1]) * x2 + B[0];
    p / q
}

/// `e^x` for `f32`: `x = n ln 2 + r` with `|r| <= ln 2 / 2`, `e^r` from
/// Cephes' degree-7 polynomial, `2^n` from the exponent bits. Relative error
/// at most `2 · f32::EPSILON` against the exact result for finite inputs; exactly 0 below `-87.3`
/// (so a masked score gives a weight of exactly 0), `+inf` above `88.72`,
/// NaN for NaN. Branch-free, so loops over it vectorise.
#[inline]
#[allow(clippy::excessive_precision)] // the coefficients as published
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_375;
    const C2: f32 = -2.121_944_4e-4;
    const P: [f32; 6] = [
        1.987_569_15e-4,
        1.398_199_950_7e-3,
        8.333_451_907_3e-3,
        4.166_579_589_4e-2,
        1.666_666_545_9e-1,
        5.000_000_120_1e-1,
    ];
    // Adding 1.5 · 2^23 rounds to an integer (ties to even) that then sits in
    // the low mantissa bits: both the rounded float and the integer come out
    // without a float-to-int cast, which (saturating in Rust) would stop the
    // loop from vectorising.
    const SHIFTER: f32 = 12_582_912.0;
    let xc = x.clamp(-87.336_55, 88.722_83);
    let t = xc * LOG2E + SHIFTER;
    let n = t - SHIFTER;
    let ni = (t.to_bits() as i32).wrapping_sub(SHIFTER.to_bits() as i32);
    let r = xc - n * C1 - n * C2;
    let z = r * r;
    let p = (((((P[0] * r + P[1]) * r + P[2]) * r + P[3]) * r + P[4]) * r + P[5]) * z + r + 1.0;
    // 2^n for n in [-126, 128]: build the exponent bits (n = 128 gives inf).
    let scale = f32::from_bits(((ni + 127).clamp(0, 255) as u32) << 23);
    let y = if ni >= 128 { p * 2.0 * f32::from_bits(254 << 23) } else { p * scale };
    if x < -87.336_55 {
        0.0
    } else if x > 88.722_83 {
        f32::INFINITY
    } else {
        y
    }
}

/// Shorthand for `T::of(x)`.
#[inline]
pub fn cast<T: Float>(x: f64) -> T {
    T::of(x)
}

/// An IEEE half-precision number (`float16`, as safetensors stores `F16`),
/// exactly, as `f32`.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((h >> 10) & 0x1f);
    let fraction = f32::from(h & 0x3ff);
    sign * match exponent {
        0 => fraction * 2f32.powi(-24),               // subnormal
        31 if fraction == 0.0 => f32::INFINITY,       // infinity
        31 => f32::NAN,                               // not a number
        e => (1024.0 + fraction) * 2f32.powi(e - 25), // normal: 1.fraction × 2^(e-15)
    }
}

/// A `bfloat16` (the top half of a float32's bits), exactly, as `f32`.
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

#[cfg(test)]
mod half_tests {
    use super::*;

    #[test]
    fn half_precision_is_widened_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8000), 0.0);
        assert!(f16_to_f32(0x8000).is_sign_negative());
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc040), -3.0);
    }
}
