//! The tiled kernel against the plain one (the same outputs and gradients,
//! masked, ragged and length-1 cases included) and against central finite
//! differences.

use addmul_attention::{Mask, QUERY_TILE, attend, attend_backward, attend_tiled, attend_tiled_backward};
use addmul_core::{Init, Matrix, rng};
use proptest::prelude::*;

fn normal(rows: usize, cols: usize, seed: u64) -> Matrix<f64> {
    Init::Normal { std: 1.0 }.matrix(rows, cols, &mut rng(seed))
}

/// Padding flags (about one key in three), or none.
fn padding(keys: usize, seed: u64, on: bool) -> Option<Vec<bool>> {
    let coin: Matrix<f64> = Init::Uniform { bound: 1.0 }.matrix(keys, 1, &mut rng(seed));
    on.then(|| coin.iter().map(|&c| c > 0.35).collect())
}

struct Case {
    q: Matrix<f64>,
    k: Matrix<f64>,
    v: Matrix<f64>,
    dout: Matrix<f64>,
    scale: f64,
    causal: bool,
    offset: usize,
    padding: Option<Vec<bool>>,
}

impl Case {
    /// `t` queries after `offset` earlier keys (a cache), or over `s` keys of
    /// another sequence when not causal.
    fn new(dk: usize, dv: usize, t: usize, s: usize, causal: bool, offset: usize, pad: bool, seed: u64) -> Case {
        let keys = if causal { offset + t } else { s };
        Case {
            q: normal(dk, t, seed),
            k: normal(dk, keys, seed + 1),
            v: normal(dv, keys, seed + 2),
            dout: normal(dv, t, seed + 3),
            scale: 0.9,
            causal,
            offset: if causal { offset } else { 0 },
            padding: padding(keys, seed + 4, pad),
        }
    }

    fn mask(&self) -> Mask<'_> {
        Mask { causal: self.causal, offset: self.offset, key_padding: self.padding.as_deref() }
    }

    fn plain(&self) -> (Matrix<f64>, [Matrix<f64>; 3]) {
        let (keys, t) = (self.k.ncols(), self.q.ncols());
        let mut w = vec![0.0; keys * t];
        let mut out = Matrix::zeros(self.v.nrows(), t);
        attend(&self.q, &self.k, &self.v, self.scale, &self.mask(), &mut w, &mut out).unwrap();
        let (mut dq, mut dk, mut dv) = (self.q.map(|_| f64::NAN), self.k.map(|_| f64::NAN), self.v.map(|_| f64::NAN));
        let mut scratch = vec![0.0; keys * t];
        attend_backward(&self.q, &self.k, &self.v, self.scale, &w, &self.dout, &mut dq, &mut dk, &mut dv, &mut scratch)
            .unwrap();
        (out, [dq, dk, dv])
    }

    fn tiled_out(&self, q: &Matrix<f64>, k: &Matrix<f64>, v: &Matrix<f64>) -> Matrix<f64> {
        let mut out = Matrix::from_element(self.v.nrows(), q.ncols(), f64::NAN);
        attend_tiled(q, k, v, self.scale, &self.mask(), &mut out, &mut Vec::new()).unwrap();
        out
    }

    fn tiled(&self) -> (Matrix<f64>, [Matrix<f64>; 3]) {
        let out = self.tiled_out(&self.q, &self.k, &self.v);
        let (mut dq, mut dk, mut dv) = (self.q.map(|_| f64::NAN), self.k.map(|_| f64::NAN), self.v.map(|_| f64::NAN));
        let mut scratch = vec![f64::NAN; 7];
        attend_tiled_backward(
            &self.q,
            &self.k,
            &self.v,
            self.scale,
            &self.mask(),
            &self.dout,
            &mut dq,
            &mut dk,
            &mut dv,
            &mut scratch,
        )
        .unwrap();
        (out, [dq, dk, dv])
    }

    /// `L = Σ dout ⊙ out` as a function of one of q, k, v (0, 1, 2).
    fn loss_with(&self, which: usize, m: &Matrix<f64>) -> f64 {
        let out = match which {
            0 => self.tiled_out(m, &self.k, &self.v),
            1 => self.tiled_out(&self.q, m, &self.v),
            _ => self.tiled_out(&self.q, &self.k, m),
        };
        out.component_mul(&self.dout).sum()
    }
}

fn max_diff(a: &Matrix<f64>, b: &Matrix<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b.iter()).fold(0.0, |e, (x, y)| e.max((x - y).abs() / (1.0 + y.abs())))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Up to three tiles and a ragged last one, with and without the causal
    /// mask, after a cache or over another sequence, with padding.
    #[test]
    fn tiled_equals_plain(dk in 1..5usize, dv in 1..4usize, t in 1..(3 * QUERY_TILE),
                          s in 1..90usize, causal: bool, offset in 0..40usize, pad: bool, seed in 0..1000u64) {
        let case = Case::new(dk, dv, t, s, causal, offset, pad, seed * 7);
        let (out, grads) = case.plain();
        let (tout, tgrads) = case.tiled();
        prop_assert!(max_diff(&tout, &out) < 1e-13, "out {}", max_diff(&tout, &out));
        for (g, (tg, pg)) in ["dq", "dk", "dv"].iter().zip(tgrads.iter().zip(grads.iter())) {
            prop_assert!(max_diff(tg, pg) < 1e-12, "{g} {}", max_diff(tg, pg));
        }
    }

    /// The tiled backward against central finite differences of the tiled
    /// forward (one and two tiles).
    #[test]
    fn tiled_gradients(dk in 1..3usize, dv in 1..3usize, t in prop_oneof![1..6usize, (QUERY_TILE - 1)..(QUERY_TILE + 5)],
                       causal: bool, pad: bool, seed in 0..1000u64) {
        let case = Case::new(dk, dv, t, t + 2, causal, 3, pad, seed * 11);
        let (_, grads) = case.tiled();
        let h = 1e-5;
        for (which, (m, g)) in [&case.q, &case.k, &case.v].into_iter().zip(grads.iter()).enumerate() {
            for idx in 0..m.len() {
                let (mut plus, mut minus) = (m.clone(), m.clone());
                plus[idx] += h;
                minus[idx] -= h;
                let numeric = (case.loss_with(which, &plus) - case.loss_with(which, &minus)) / (2.0 * h);
                let err = (numeric - g[idx]).abs() / (1.0 + numeric.abs());
                prop_assert!(err < 1e-7, "{} entry {idx}: numeric {numeric}, backward {}", ["q", "k", "v"][which], g[idx]);
            }
        }
    }
}

#[test]
fn a_query_that_sees_no_key_gets_zero_and_passes_no_gradient() {
    let mut case = Case::new(3, 2, QUERY_TILE + 3, 5, false, 0, false, 5);
    case.padding = Some(vec![true; 5]);
    let (out, [dq, dk, dv]) = case.tiled();
    assert!(out.iter().all(|&x| x == 0.0));
    assert!(dq.iter().chain(dk.iter()).chain(dv.iter()).all(|&x| x == 0.0));
}

#[test]
fn memory_is_one_tile_of_scores() {
    // 1,000 causal queries: the scratch holds one tile's scores (and, in the
    // backward, their gradients), never the 1,000 x 1,000 weights.
    let case = Case::new(2, 2, 1000, 0, true, 0, false, 9);
    let mut scratch = Vec::new();
    let mut out = Matrix::zeros(2, 1000);
    attend_tiled(&case.q, &case.k, &case.v, 1.0, &case.mask(), &mut out, &mut scratch).unwrap();
    assert!(scratch.capacity() <= 2 * 1000 * QUERY_TILE, "{}", scratch.capacity());
    let (mut dq, mut dk, mut dv) = (case.q.clone(), case.k.clone(), case.v.clone());
    attend_tiled_backward(
        &case.q,
        &case.k,
        &case.v,
        1.0,
        &case.mask(),
        &case.dout,
        &mut dq,
        &mut dk,
        &mut dv,
        &mut scratch,
    )
    .unwrap();
    assert!(scratch.capacity() <= 2 * 1000 * QUERY_TILE, "{}", scratch.capacity());
}

#[test]
fn bad_shapes_are_typed_errors() {
    let case = Case::new(2, 2, 4, 0, true, 0, false, 1);
    let mut out = Matrix::zeros(2, 3);
    assert!(attend_tiled(&case.q, &case.k, &case.v, 1.0, &case.mask(), &mut out, &mut Vec::new()).is_err());
    let short = case.v.columns(0, 3).into_owned();
    let mut out = Matrix::zeros(2, 4);
    assert!(attend_tiled(&case.q, &case.k, &short, 1.0, &case.mask(), &mut out, &mut Vec::new()).is_err());
}
