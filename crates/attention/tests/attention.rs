//! Gradient checks and the defining properties of attention.

use addmul_attention::{Attention, AttentionConfig, Mask, attend};
use addmul_core::gradcheck::{TIGHT, within};
use addmul_core::{Error, GradCheck, Init, Matrix, rng};
use addmul_nn::Linear;
use addmul_posenc::sinusoidal;
use proptest::prelude::*;

fn normal(rows: usize, cols: usize, seed: u64) -> Matrix<f64> {
    Init::Normal { std: 1.0 }.matrix(rows, cols, &mut rng(seed))
}

fn layer(
    d_model: usize,
    d_context: usize,
    d_k: usize,
    d_v: usize,
    causal: bool,
    bias: bool,
    seed: u64,
) -> Attention<f64> {
    AttentionConfig { d_model, d_context, d_k, d_v, bias, scaled: true, causal }
        .init(Init::Normal { std: 0.6 }, &mut rng(seed))
        .unwrap()
}

/// Random padding flags that leave at least one real key per sequence.
fn padding(batches: usize, len: usize, seed: u64) -> Vec<bool> {
    let coin: Matrix<f64> = Init::Uniform { bound: 1.0 }.matrix(batches, len, &mut rng(seed));
    let mut p: Vec<bool> = (0..batches * len).map(|i| coin[(i / len, i % len)] > 0.3).collect();
    for b in 0..batches {
        p[b * len] = false;
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn self_attention_gradients(d in 1..5usize, dk in 1..4usize, dv in 1..4usize, t in 1..5usize, b in 1..3usize,
                                causal: bool, bias: bool, padded: bool, seed: u64) {
        let mut att = layer(d, d, dk, dv, causal, bias, seed);
        let pad = padded.then(|| padding(b, t, seed ^ 7));
        let probe = normal(dv, b * t, seed ^ 2);
        let report = GradCheck::default().run(&mut att, &mut [normal(d, b * t, seed ^ 1)], |att, xs| {
            let (y, cache) = att.forward_self(&xs[0], t, pad.as_deref())?;
            let grads = att.backward(&cache, &probe)?;
            Ok::<_, Error>((addmul_core::dot(&y, &probe)?, vec![grads.dx]))
        }).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
    }

    #[test]
    fn cross_attention_gradients(d in 1..4usize, dc in 1..4usize, dk in 1..4usize, t in 1..4usize, s in 1..5usize,
                                 b in 1..3usize, padded: bool, seed: u64) {
        let mut att = layer(d, dc, dk, 2, false, true, seed);
        let pad = padded.then(|| padding(b, s, seed ^ 7));
        let probe = normal(2, b * t, seed ^ 2);
        let mut inputs = [normal(d, b * t, seed ^ 1), normal(dc, b * s, seed ^ 3)];
        let report = GradCheck::default().run(&mut att, &mut inputs, |att, xs| {
            let (y, cache) = att.forward_cross(&xs[0], t, &xs[1], s, pad.as_deref())?;
            let grads = att.backward(&cache, &probe)?;
            Ok::<_, Error>((addmul_core::dot(&y, &probe)?, vec![grads.dx, grads.dcontext.unwrap()]))
        }).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
    }

    /// Changing the tokens after position t never changes outputs 0..=t.
    #[test]
    fn the_causal_mask_hides_the_future(d in 1..6usize, len in 2..9usize, t in 0..8usize, seed: u64) {
        let t = t % (len - 1);
        let att = layer(d, d, 3, 3, true, true, seed);
        let x = normal(d, len, seed ^ 1);
        let mut changed = x.clone();
        let noise = normal(d, len - t - 1, seed ^ 2) * 10.0;
        changed.columns_mut(t + 1, len - t - 1).copy_from(&noise);
        let (y, _) = att.forward_self(&x, len, None).unwrap();
        let (y2, _) = att.forward_self(&changed, len, None).unwrap();
        prop_assert_eq!(y.columns(0, t + 1), y2.columns(0, t + 1));
    }

    /// The article's bridge: one masked pass over all positions equals running
    /// unmasked attention on each prefix and keeping its last output.
    #[test]
    fn one_masked_pass_equals_every_prefix(d in 1..6usize, len in 1..9usize, seed: u64) {
        let masked = layer(d, d, 3, 2, true, true, seed);
        let (w_q, w_k, w_v) = (masked.w_q().clone(), masked.w_k().clone(), masked.w_v().clone());
        let unmasked = Attention::from_projections(w_q, w_k, w_v, true, false).unwrap();
        let x = normal(d, len, seed ^ 1);
        let (all, _) = masked.forward_self(&x, len, None).unwrap();
        for t in 0..len {
            let prefix = x.columns(0, t + 1).into_owned();
            let (y, _) = unmasked.forward_self(&prefix, t + 1, None).unwrap();
            prop_assert!((y.column(t) - all.column(t)).abs().max() < 1e-12);
        }
    }

    /// Without positions, shuffling the tokens shuffles the outputs the same
    /// way; with sinusoidal positions added first, it does not.
    #[test]
    fn permutation_equivariance_without_positions(len in 3..8usize, seed: u64) {
        let d = 6;
        let att = layer(d, d, 4, 4, false, true, seed);
        let x = normal(d, len, seed ^ 1);
        // Reverse the order of the tokens.
        let perm: Vec<usize> = (0..len).rev().collect();
        let shuffle = |m: &Matrix<f64>| Matrix::from_fn(m.nrows(), len, |i, j| m[(i, perm[j])]);
        let (y, _) = att.forward_self(&x, len, None).unwrap();
        let (y_perm, _) = att.forward_self(&shuffle(&x), len, None).unwrap();
        prop_assert!((shuffle(&y) - &y_perm).abs().max() < 1e-12);

        let pe = sinusoidal::<f64>(d, len);
        let (yp, _) = att.forward_self(&(&x + &pe), len, None).unwrap();
        let (yp_perm, _) = att.forward_self(&(shuffle(&x) + &pe), len, None).unwrap();
        prop_assert!((shuffle(&yp) - &yp_perm).abs().max() > 1e-6);
    }

    /// Every column of weights sums to 1 over what it sees, and a hidden key's
    /// weight is exactly 0, even when its score would be enormous.
    #[test]
    fn weights_sum_to_one_and_hidden_keys_get_exactly_zero(t in 1..7usize, b in 1..3usize, causal: bool, seed: u64) {
        let att = layer(4, 4, 3, 3, causal, true, seed);
        let pad = padding(b, t, seed ^ 5);
        let (_, cache) = att.forward_self(&(normal(4, b * t, seed) * 50.0), t, Some(&pad)).unwrap();
        let w = cache.weights();
        for col in 0..b * t {
            let (batch, j) = (col / t, col % t);
            let sum: f64 = w.column(col).sum();
            prop_assert!((sum - 1.0).abs() < 1e-12, "column {} sums to {}", col, sum);
            for i in 0..t {
                let hidden = pad[batch * t + i] || (causal && i > j);
                if hidden {
                    prop_assert_eq!(w[(i, col)], 0.0);
                }
            }
        }
    }
}

#[test]
fn a_hidden_key_leaks_nothing_even_with_huge_values() {
    // Key 1 is padding; its score and value are enormous.
    let q = Matrix::from_column_slice(1, 1, &[1.0f64]);
    let k = Matrix::from_column_slice(1, 2, &[0.0, 1e300]);
    let v = Matrix::from_column_slice(1, 2, &[2.0, 1e300]);
    let mut w = vec![0.0; 2];
    let mut out = Matrix::zeros(1, 1);
    let mask = Mask { key_padding: Some(&[false, true]), ..Mask::NONE };
    attend(&q, &k, &v, 1.0, &mask, &mut w, &mut out).unwrap();
    assert_eq!(w, [1.0, 0.0]);
    assert_eq!(out[0], 2.0);
}

#[test]
fn your_journey_starts_with_one_step() {
    // Six tokens with 3 features; identity projections, no scaling, no mask.
    let x = Matrix::from_column_slice(
        3,
        6,
        &[0.43, 0.15, 0.89, 0.55, 0.87, 0.66, 0.57, 0.85, 0.64, 0.22, 0.58, 0.33, 0.77, 0.25, 0.10, 0.05, 0.80, 0.55],
    );
    let identity = || Linear::from_weights(Matrix::<f64>::identity(3, 3), None).unwrap();
    let att = Attention::from_projections(identity(), identity(), identity(), false, false).unwrap();
    let (y, cache) = att.forward_self(&x, 6, None).unwrap();
    // Query 2 ("journey") is column 1.
    let weights: Vec<String> = cache.weights().column(1).iter().map(|w| format!("{w:.4}")).collect();
    assert_eq!(weights, ["0.1385", "0.2379", "0.2333", "0.1240", "0.1082", "0.1581"]);
    let out: Vec<String> = y.column(1).iter().map(|v| format!("{v:.4}")).collect();
    assert_eq!(out, ["0.4419", "0.6515", "0.5683"]);
}

#[test]
fn bad_shapes_and_lengths_are_typed_errors() {
    let att = layer(4, 3, 2, 2, false, false, 0);
    let x = normal(4, 6, 1);
    assert!(att.forward_self(&x, 4, None).unwrap_err().to_string().contains("multiple of 4"));
    assert!(att.forward_self(&x, 0, None).is_err());
    let ctx = normal(3, 5, 2);
    let err = att.forward_cross(&x, 3, &ctx, 5, None).unwrap_err();
    assert!(err.to_string().contains("2 sequences of 5"), "{err}");
    let err = att.forward_cross(&x, 6, &ctx, 5, Some(&[false; 4])).unwrap_err();
    assert!(err.to_string().contains("key padding of length 5"), "{err}");
    let wrong = normal(4, 5, 3);
    assert!(att.forward_cross(&x, 6, &wrong, 5, None).unwrap_err().to_string().contains("Linear::forward"));
    let empty = Matrix::<f64>::zeros(3, 0);
    assert!(att.forward_cross(&x, 6, &empty, 0, None).is_err());
    assert!(AttentionConfig::new(0, 2).init::<f32>(Init::Zeros, &mut rng(0)).is_err());
}
