//! Seeded random initialisation.
//!
//! All randomness in addmul flows from an explicit [`Rng`] built by [`rng`]
//! from a `u64` seed: the same seed gives the same weights on every machine,
//! and the generator's state can be saved in a checkpoint
//! ([`RngState`]). Values are drawn in `f64` and rounded, so an `f32` and an
//! `f64` model built from the same seed hold the same numbers up to rounding.

use rand::SeedableRng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::{Float, Matrix};

/// The random number generator used throughout addmul: ChaCha8, portable and
/// reproducible, with a state small enough to checkpoint.
pub type Rng = rand_chacha::ChaCha8Rng;

/// A generator seeded from `seed`.
pub fn rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// Everything needed to rebuild an [`Rng`] exactly where it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RngState {
    /// The 32-byte ChaCha key.
    pub seed: [u8; 32],
    /// The stream number.
    pub stream: u64,
    /// The position in the stream, in 32-bit words.
    pub word_pos: u128,
}

impl RngState {
    /// Captures `rng`'s state.
    pub fn of(rng: &Rng) -> Self {
        RngState { seed: rng.get_seed(), stream: rng.get_stream(), word_pos: rng.get_word_pos() }
    }

    /// A generator that continues exactly where the captured one was.
    pub fn restore(&self) -> Rng {
        let mut r = Rng::from_seed(self.seed);
        r.set_stream(self.stream);
        r.set_word_pos(self.word_pos);
        r
    }
}

/// How to fill a new parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// All zeros (biases).
    Zeros,
    /// Every entry equal to the value (layer-norm gains are `Constant(1.0)`).
    Constant(f64),
    /// Normal with mean 0 and the given standard deviation (GPT-2 uses 0.02).
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// Uniform on `[-bound, bound)`.
    Uniform {
        /// Half-width of the interval.
        bound: f64,
    },
    /// Glorot/Xavier uniform: bound `sqrt(6 / (fan_in + fan_out))`.
    XavierUniform,
    /// He/Kaiming normal for ReLU layers: std `sqrt(2 / fan_in)`.
    HeNormal,
}

impl Init {
    /// A `[rows, cols]` matrix; for a weight `[out, in]`, `fan_in = cols` and
    /// `fan_out = rows`.
    pub fn matrix<T: Float>(&self, rows: usize, cols: usize, rng: &mut Rng) -> Matrix<T> {
        let (fan_in, fan_out) = (cols.max(1) as f64, rows.max(1) as f64);
        let normal = |std: f64, rng: &mut Rng| {
            let d = Normal::new(0.0, std).expect("a standard deviation >= 0 is valid");
            Matrix::from_fn(rows, cols, |_, _| T::of(d.sample(rng)))
        };
        let uniform = |bound: f64, rng: &mut Rng| {
            if bound == 0.0 {
                return Matrix::zeros(rows, cols);
            }
            let d = Uniform::new(-bound, bound).expect("a non-empty interval is valid");
            Matrix::from_fn(rows, cols, |_, _| T::of(d.sample(rng)))
        };
        match *self {
            Init::Zeros => crate::zeros(rows, cols),
            Init::Constant(c) => Matrix::from_element(rows, cols, T::of(c)),
            Init::Normal { std } => normal(std.abs(), rng),
            Init::Uniform { bound } => uniform(bound.abs(), rng),
            Init::XavierUniform => uniform((6.0 / (fan_in + fan_out)).sqrt(), rng),
            Init::HeNormal => normal((2.0 / fan_in).sqrt(), rng),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn same_seed_same_matrix_in_both_precisions() {
        let a: Matrix<f64> = Init::Normal { std: 0.02 }.matrix(4, 5, &mut rng(7));
        let b: Matrix<f32> = Init::Normal { std: 0.02 }.matrix(4, 5, &mut rng(7));
        assert!(a.iter().zip(b.iter()).all(|(x, y)| (*x as f32) == *y));
        let c: Matrix<f64> = Init::Normal { std: 0.02 }.matrix(4, 5, &mut rng(8));
        assert_ne!(a, c);
    }

    #[test]
    fn normal_has_the_requested_spread() {
        let m: Matrix<f64> = Init::Normal { std: 0.5 }.matrix(200, 200, &mut rng(1));
        let n = m.len() as f64;
        let mean = m.sum() / n;
        let std = (m.map(|x| (x - mean).powi(2)).sum() / n).sqrt();
        assert!(mean.abs() < 0.01 && (std - 0.5).abs() < 0.01, "mean {mean}, std {std}");
    }

    #[test]
    fn xavier_respects_its_bound() {
        let m: Matrix<f64> = Init::XavierUniform.matrix(10, 20, &mut rng(3));
        let bound = (6.0f64 / 30.0).sqrt();
        assert!(m.iter().all(|x| x.abs() <= bound));
    }

    #[test]
    fn rng_state_round_trips_mid_stream() {
        let mut a = rng(42);
        let _: [u64; 3] = [a.random(), a.random(), a.random()];
        let state = RngState::of(&a);
        let mut b = state.restore();
        let xs: Vec<u64> = (0..5).map(|_| a.random()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.random()).collect();
        assert_eq!(xs, ys);
    }
}
