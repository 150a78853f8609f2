//! Sums and maxima that vectorise.
//!
//! A loop `s += x[i]` must add one number after another: floating-point
//! addition is not associative, so the compiler may not reorder it into
//! vector lanes. These helpers keep [`LANES`] running results side by side
//! (one vector register) and add them up at the end. The result can differ
//! from the one-after-another sum in the last bits; it is the same every
//! time for the same input.

use crate::Float;

/// Running results kept side by side.
pub const LANES: usize = 8;

/// `Σ f(i)` for `i` in `0..n`, in [`LANES`] interleaved partial sums.
/// `f` should index slices of length `n` (so the compiler can drop the
/// bounds checks) and will be inlined.
#[inline(always)]
pub fn sum_by<T: Float>(n: usize, f: impl Fn(usize) -> T) -> T {
    let mut lanes = [T::zero(); LANES];
    let full = n - n % LANES;
    let mut i = 0;
    while i < full {
        for (l, lane) in lanes.iter_mut().enumerate() {
            *lane += f(i + l);
        }
        i += LANES;
    }
    let tail = (full..n).fold(T::zero(), |acc, j| acc + f(j));
    lanes.into_iter().fold(T::zero(), |a, b| a + b) + tail
}

/// `Σ x_i`.
#[inline]
pub fn sum<T: Float>(x: &[T]) -> T {
    // The same order as `sum_by(x.len(), |i| x[i])`, written over whole
    // chunks so that the lanes become one vector register.
    let mut lanes = [T::zero(); LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder().iter().fold(T::zero(), |acc, &v| acc + v);
    for chunk in chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l += v;
        }
    }
    lanes.into_iter().fold(T::zero(), |a, b| a + b) + tail
}

/// `Σ x_i y_i` over the shorter of the two.
#[inline]
pub fn dot<T: Float>(x: &[T], y: &[T]) -> T {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    // As `sum_by(n, |i| x[i] * y[i])`, over whole chunks (see `sum`).
    let mut lanes = [T::zero(); LANES];
    let (xs, ys) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let tail = xs.remainder().iter().zip(ys.remainder()).fold(T::zero(), |acc, (&a, &b)| acc + a * b);
    for (cx, cy) in xs.zip(ys) {
        for ((l, &a), &b) in lanes.iter_mut().zip(cx).zip(cy) {
            *l += a * b;
        }
    }
    lanes.into_iter().fold(T::zero(), |a, b| a + b) + tail
}

/// The largest entry; `-inf` for an empty slice; NaN entries are skipped.
#[inline]
pub fn max<T: Float>(x: &[T]) -> T {
    let bigger = |a: T, b: T| if b > a { b } else { a };
    let mut lanes = [T::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l = bigger(*l, v);
        }
    }
    tail.iter().copied().fold(lanes.into_iter().fold(T::NEG_INFINITY, bigger), bigger)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agree_with_the_plain_loops() {
        for n in [0usize, 1, 7, 8, 9, 64, 65, 130] {
            let x: Vec<f64> = (0..n).map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.25).collect();
            let y: Vec<f64> = (0..n).map(|i| (i as f64).sin()).collect();
            // Quarter steps sum exactly in any order.
            assert_eq!(sum(&x), x.iter().sum::<f64>());
            let plain: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
            assert!((dot(&x, &y) - plain).abs() <= 1e-12 * (1.0 + plain.abs()));
            assert_eq!(max(&x), x.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        }
        assert_eq!(max(&[f64::NAN, 1.0, f64::NAN]), 1.0);
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[1.0]), 1.0);
    }

    #[test]
    fn sum_and_dot_add_in_the_order_of_sum_by() {
        // Numbers whose sum depends on the order, in f32 and f64.
        for n in [0usize, 3, 8, 13, 100, 1001] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1013) as f32 * 1.37e-3 - 0.3).collect();
            let y: Vec<f32> = (0..n + 2).map(|i| (i as f32 * 0.77).sin() * 1e3).collect();
            assert_eq!(sum(&x).to_bits(), sum_by(n, |i| x[i]).to_bits(), "sum of {n}");
            assert_eq!(dot(&x, &y).to_bits(), sum_by(n, |i| x[i] * y[i]).to_bits(), "dot of {n}");
            let x64: Vec<f64> = x.iter().map(|&v| f64::from(v) * 1e-7).collect();
            assert_eq!(sum(&x64).to_bits(), sum_by(n, |i| x64[i]).to_bits());
        }
    }
}
