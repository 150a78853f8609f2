//! Gradient checks and the defining properties of multi-head attention.

use addmul_attention::AttentionConfig;
use addmul_core::gradcheck::{TIGHT, within};
use addmul_core::{Error, GradCheck, Init, Matrix, Op, matmul, rng};
use addmul_multihead::{KvCache, MultiHeadAttention, MultiHeadConfig};
use addmul_nn::Linear;
use proptest::prelude::*;

fn normal(rows: usize, cols: usize, seed: u64) -> Matrix<f64> {
    Init::Normal { std: 1.0 }.matrix(rows, cols, &mut rng(seed))
}

fn padding(batches: usize, len: usize, seed: u64) -> Vec<bool> {
    let coin: Matrix<f64> = Init::Uniform { bound: 1.0 }.matrix(1, batches * len, &mut rng(seed));
    (0..batches * len).map(|i| i % len != 0 && coin[i] > 0.3).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn self_attention_gradients(hs in 1..4usize, heads in 1..4usize, t in 1..5usize, b in 1..3usize,
                                causal: bool, bias: bool, padded: bool, seed: u64) {
        let d = hs * heads;
        let mut mha = MultiHeadConfig { causal, bias, ..MultiHeadConfig::self_attention(d, heads) }
            .init::<f64>(Init::Normal { std: 0.5 }, &mut rng(seed)).unwrap();
        let pad = padded.then(|| padding(b, t, seed ^ 9));
        let probe = normal(d, b * t, seed ^ 2);
        let report = GradCheck::default().run(&mut mha, &mut [normal(d, b * t, seed ^ 1)], |m, xs| {
            let (y, cache) = m.forward_self(&xs[0], t, pad.as_deref())?;
            let g = m.backward(&cache, &probe)?;
            Ok::<_, Error>((addmul_core::dot(&y, &probe)?, vec![g.dx]))
        }).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
    }

    #[test]
    fn cross_attention_gradients(hs in 1..3usize, heads in 1..3usize, dc in 1..4usize, t in 1..4usize, s in 1..4usize,
                                 b in 1..3usize, padded: bool, seed: u64) {
        let d = hs * heads;
        let mut mha = MultiHeadConfig::cross_attention(d, dc, heads).init::<f64>(Init::Normal { std: 0.5 }, &mut rng(seed)).unwrap();
        let pad = padded.then(|| padding(b, s, seed ^ 9));
        let probe = normal(d, b * t, seed ^ 2);
        let mut inputs = [normal(d, b * t, seed ^ 1), normal(dc, b * s, seed ^ 3)];
        let report = GradCheck::default().run(&mut mha, &mut inputs, |m, xs| {
            let (y, cache) = m.forward_cross(&xs[0], t, &xs[1], s, pad.as_deref())?;
            let g = m.backward(&cache, &probe)?;
            Ok::<_, Error>((addmul_core::dot(&y, &probe)?, vec![g.dx, g.dcontext.unwrap()]))
        }).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
    }

    /// One head with W_O = I is exactly the single-head attention crate.
    #[test]
    fn one_head_with_identity_output_is_single_head_attention(d in 1..6usize, t in 1..6usize, causal: bool, seed: u64) {
        let single = AttentionConfig { bias: true, causal, ..AttentionConfig::new(d, d) }
            .init::<f64>(Init::Normal { std: 0.5 }, &mut rng(seed)).unwrap();
        let mut w = Matrix::zeros(3 * d, d);
        let mut bias = vec![0.0; 3 * d];
        for (i, lin) in [single.w_q(), single.w_k(), single.w_v()].into_iter().enumerate() {
            w.rows_mut(i * d, d).copy_from(lin.weight().value());
            bias[i * d..(i + 1) * d].copy_from_slice(lin.bias().unwrap().value().as_slice());
        }
        let c_attn = Linear::from_weights(w, Some(bias)).unwrap();
        let c_proj = Linear::from_weights(Matrix::identity(d, d), None).unwrap();
        let mha = MultiHeadAttention::from_parts(c_attn, c_proj, 1, causal).unwrap();
        let x = normal(d, t, seed ^ 1);
        let (a, _) = single.forward_self(&x, t, None).unwrap();
        let (b, _) = mha.forward_self(&x, t, None).unwrap();
        prop_assert!((a - b).abs().max() < 1e-12);
    }

    /// The article asks whether to project once for all heads and then again
    /// per head. Two projections in a row are one projection (their product),
    /// so the shared one adds nothing a per-head projection cannot learn.
    #[test]
    fn a_shared_projection_then_per_head_ones_is_one_projection(hs in 1..4usize, heads in 1..4usize, t in 1..5usize, seed: u64) {
        let d = hs * heads;
        let shared = normal(d, d, seed);              // W: x -> z
        let per_head = normal(3 * d, d, seed ^ 1);    // [A_q; A_k; A_v] per head, stacked
        let c_proj = Linear::from_weights(normal(d, d, seed ^ 2), None).unwrap();
        let x = normal(d, t, seed ^ 3);
        // Two steps: z = W x, then every head's projections of z.
        let two_steps = MultiHeadAttention::from_parts(Linear::from_weights(per_head.clone(), None).unwrap(), c_proj.clone(), heads, true).unwrap();
        let z = matmul(&shared, Op::N, &x, Op::N).unwrap();
        let (y_two, _) = two_steps.forward_self(&z, t, None).unwrap();
        // One step: the product A·W applied to x.
        let product = matmul(&per_head, Op::N, &shared, Op::N).unwrap();
        let one_step = MultiHeadAttention::from_parts(Linear::from_weights(product, None).unwrap(), c_proj, heads, true).unwrap();
        let (y_one, _) = one_step.forward_self(&x, t, None).unwrap();
        prop_assert!((&y_two - &y_one).abs().max() < 1e-9 * (1.0 + y_one.abs().max()));
    }

    /// Perturbing head i's query, key and value rows changes only rows
    /// i·d/h..(i+1)·d/h of the concatenated heads.
    #[test]
    fn one_heads_weights_change_only_its_slice(hs in 1..4usize, heads in 2..5usize, t in 1..5usize, head in 0..4usize, seed: u64) {
        let head = head % heads;
        let d = hs * heads;
        let mha = MultiHeadConfig::self_attention(d, heads).causal().init::<f64>(Init::Normal { std: 0.5 }, &mut rng(seed)).unwrap();
        let c_attn = mha.c_attn().unwrap();
        let mut w = c_attn.weight().value().clone();
        for block in 0..3 {
            let mut rows = w.rows_mut(block * d + head * hs, hs);
            rows += normal(hs, d, seed ^ 5);
        }
        let bias = c_attn.bias().map(|b| b.value().as_slice().to_vec());
        let changed = MultiHeadAttention::from_parts(Linear::from_weights(w, bias).unwrap(), mha.c_proj().clone(), heads, true).unwrap();
        let x = normal(d, t, seed ^ 1);
        let (_, before) = mha.forward_self(&x, t, None).unwrap();
        let (_, after) = changed.forward_self(&x, t, None).unwrap();
        for r in 0..d {
            let same = before.heads().row(r) == after.heads().row(r);
            prop_assert_eq!(same, r / hs != head, "row {}", r);
        }
    }

    /// Decoding token by token with the cache gives the full masked pass, to
    /// 1e-6 relative in f32: the largest difference over all outputs divided
    /// by the largest output (as the Hugging Face comparisons measure it). The
    /// two paths sum in different orders (a matrix-vector product against a
    /// blocked matrix product), so they agree to rounding, not bit for bit.
    #[test]
    fn cached_decoding_equals_the_full_pass(hs in 1..9usize, heads in 1..5usize, t in 1..20usize, chunk in 1..4usize, seed: u64) {
        let d = hs * heads;
        let mha = MultiHeadConfig::self_attention(d, heads).causal().init::<f32>(Init::Normal { std: 0.3 }, &mut rng(seed)).unwrap();
        let x: Matrix<f32> = Init::Normal { std: 1.0 }.matrix(d, t, &mut rng(seed ^ 1));
        let (full, _) = mha.forward_self(&x, t, None).unwrap();
        let mut cache = KvCache::new(d, t);
        let mut cached = Matrix::zeros(d, t);
        let mut start = 0;
        while start < t {
            let n = chunk.min(t - start);
            let y = mha.forward_cached(&x.columns(start, n).into_owned(), &mut cache).unwrap();
            cached.columns_mut(start, n).copy_from(&y);
            start += n;
        }
        let err = (&cached - &full).abs().max() / full.abs().max().max(f32::MIN_POSITIVE);
        prop_assert!(err <= 1e-6, "relative error {:e}", err);
        prop_assert_eq!(cache.len(), t);
    }
}

#[test]
fn cross_attention_with_a_projected_context_matches_the_full_pass() {
    let mha = MultiHeadConfig::cross_attention(6, 4, 3).init::<f64>(Init::Normal { std: 0.5 }, &mut rng(1)).unwrap();
    let x = normal(6, 3, 2);
    let context = normal(4, 5, 3);
    let pad = [false, false, true, false, true];
    let (full, _) = mha.forward_cross(&x, 3, &context, 5, Some(&pad)).unwrap();
    let kv = mha.project_context(&context).unwrap();
    for j in 0..3 {
        let y = mha.forward_cross_cached(&x.columns(j, 1).into_owned(), &kv, Some(&pad)).unwrap();
        assert!((y - full.column(j)).abs().max() < 1e-12);
    }
}

#[test]
fn attention_weights_per_head_are_inspectable() {
    let mha =
        MultiHeadConfig::self_attention(4, 2).causal().init::<f64>(Init::Normal { std: 0.5 }, &mut rng(1)).unwrap();
    let (_, cache) = mha.forward_self(&normal(4, 6, 2), 3, None).unwrap();
    for (b, h) in [(0, 0), (1, 1)] {
        let w = cache.weights(b, h);
        assert_eq!(w.shape(), (3, 3));
        assert_eq!(w[(1, 0)], 0.0);
        assert!(w.column_iter().all(|c| (c.sum() - 1.0).abs() < 1e-12));
    }
}

#[test]
fn bad_configurations_and_inputs_are_typed_errors() {
    let err = MultiHeadConfig::self_attention(10, 4).init::<f32>(Init::Zeros, &mut rng(0)).unwrap_err();
    assert!(err.to_string().contains("divisible by n_head"), "{err}");
    assert!(MultiHeadConfig::self_attention(8, 0).validate().is_err());
    let mha = MultiHeadConfig::self_attention(8, 2).init::<f32>(Init::Zeros, &mut rng(0)).unwrap();
    assert!(matches!(
        mha.forward_cached(&Matrix::zeros(8, 1), &mut KvCache::new(8, 4)),
        Err(Error::Unsupported { .. })
    ));
    let causal = MultiHeadConfig::self_attention(8, 2).causal().init::<f32>(Init::Zeros, &mut rng(0)).unwrap();
    let mut cache = KvCache::new(8, 2);
    let err = causal.forward_cached(&Matrix::zeros(8, 3), &mut cache).unwrap_err();
    assert_eq!(err.to_string(), "key/value cache position: index 2 is out of range 0..2");
    assert!(causal.forward_cross(&Matrix::zeros(8, 2), 2, &Matrix::zeros(8, 2), 2, None).is_err());
    assert!(causal.forward_self(&Matrix::zeros(7, 2), 2, None).unwrap_err().to_string().contains("Linear::forward"));
}

/// Long enough for the tiled kernel (`S · T >= TILED_FROM_SCORES`): the
/// weights are not kept, the backward computes them again.
const LONG: usize = 130;

#[test]
fn long_sequences_run_tiled_with_exact_gradients() {
    const { assert!(LONG * LONG >= addmul_multihead::TILED_FROM_SCORES) };
    for (causal, padded, seed) in [(true, false, 1u64), (false, true, 2), (true, true, 3)] {
        let mut mha = MultiHeadConfig { causal, ..MultiHeadConfig::self_attention(2, 2) }
            .init::<f64>(Init::Normal { std: 0.5 }, &mut rng(seed))
            .unwrap();
        let pad = padded.then(|| padding(1, LONG, seed ^ 9));
        let probe = normal(2, LONG, seed ^ 2);
        let report = GradCheck::default()
            .run(&mut mha, &mut [normal(2, LONG, seed ^ 1)], |m, xs| {
                let (y, cache) = m.forward_self(&xs[0], LONG, pad.as_deref())?;
                let g = m.backward(&cache, &probe)?;
                Ok::<_, Error>((addmul_core::dot(&y, &probe)?, vec![g.dx]))
            })
            .unwrap();
        assert!(within(&report, TIGHT).is_ok(), "causal {causal}, padded {padded}: {report}");
    }
    let mut cross =
        MultiHeadConfig::cross_attention(2, 3, 2).init::<f64>(Init::Normal { std: 0.5 }, &mut rng(4)).unwrap();
    let pad = padding(1, LONG, 5);
    let probe = normal(2, LONG, 6);
    let report = GradCheck::default()
        .run(&mut cross, &mut [normal(2, LONG, 7), normal(3, LONG, 8)], |m, xs| {
            let (y, cache) = m.forward_cross(&xs[0], LONG, &xs[1], LONG, Some(&pad))?;
            let g = m.backward(&cache, &probe)?;
            Ok::<_, Error>((addmul_core::dot(&y, &probe)?, vec![g.dx, g.dcontext.unwrap()]))
        })
        .unwrap();
    assert!(within(&report, TIGHT).is_ok(), "cross-attention: {report}");
}

#[test]
fn tiled_and_kept_weights_agree() {
    // The first 64 tokens alone keep their weights; inside a long causal
    // sequence they run tiled: the same outputs and the same weights.
    let mha = MultiHeadConfig { causal: true, ..MultiHeadConfig::self_attention(8, 2) }
        .init::<f64>(Init::Normal { std: 0.5 }, &mut rng(11))
        .unwrap();
    let x = normal(8, 2 * LONG, 12);
    let (long, long_cache) = mha.forward_self(&x, LONG, None).unwrap();
    let short_x = x.columns(LONG, 64).into_owned();
    let (short, short_cache) = mha.forward_self(&short_x, 64, None).unwrap();
    assert!((long.columns(LONG, 64) - &short).abs().max() < 1e-12);
    for h in 0..2 {
        let (lw, sw) = (long_cache.weights(1, h), short_cache.weights(0, h));
        assert_eq!(lw.shape(), (LONG, LONG));
        assert!((lw.view((0, 0), (64, 64)) - &sw).abs().max() < 1e-12);
        for j in 0..LONG {
            let col = lw.column(j);
            assert!((col.sum() - 1.0).abs() < 1e-12 && col.rows(j + 1, LONG - j - 1).iter().all(|&w| w == 0.0));
        }
    }
}
