//! The shared data-parallel step against the plain recipe on one thread:
//! each share's gradient computed on its own copy, the copies' gradients
//! added one after the other, clipped, and one AdamW step.

use std::ops::Range;

use addmul_core::{Init, Layer, Matrix, ParametersExt, rng};
use addmul_nn::{Activation, Mlp};
use addmul_softmax::cross_entropy;
use addmul_train::{AdamW, AdamWConfig, DataParallel, Optimizer};
use proptest::prelude::*;

const IN: usize = 5;
const CLASSES: usize = 3;

fn model() -> Mlp<f32> {
    Mlp::new(&[IN, 7, CLASSES], Activation::GeluTanh, Init::Normal { std: 0.5 }, &mut rng(3)).unwrap()
}

/// `n` random examples: inputs `[IN, n]` and classes.
fn data(n: usize, seed: u64) -> (Matrix<f32>, Vec<usize>) {
    let x = Init::Normal { std: 1.0 }.matrix(IN, n, &mut rng(seed));
    let y = (0..n).map(|i| (i * 7 + seed as usize) % CLASSES).collect();
    (x, y)
}

/// Adds `scale ×` the gradient of the mean cross-entropy over `items` into
/// `model`; returns that loss times `scale`.
fn backward(model: &mut Mlp<f32>, x: &Matrix<f32>, y: &[usize], items: Range<usize>, scale: f64) -> f64 {
    let xs = x.columns(items.start, items.len()).into_owned();
    let (logits, cache) = model.forward(&xs).unwrap();
    let (loss, ce) = cross_entropy(&logits, &y[items.clone()]).unwrap();
    let d = ce.backward() * (scale as f32);
    model.backward(&cache, &d).unwrap();
    loss * scale
}

fn adam() -> AdamW<f32> {
    AdamW::new(AdamWConfig { lr: 0.05, weight_decay: 0.1, ..AdamWConfig::default() }).unwrap()
}

fn bits(m: &Mlp<f32>) -> Vec<u32> {
    m.params().iter().flat_map(|p| p.value().iter().map(|v| v.to_bits()).collect::<Vec<_>>()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Bit for bit the same weights (and the same losses) as the plain
    /// recipe, for any thread count, batch size, accumulation and clipping.
    #[test]
    fn matches_the_sequential_recipe_bit_for_bit(
        threads in 1usize..5,
        n in 1usize..12,
        accum in 1usize..3,
        clip in prop_oneof![Just(0.0), 0.05f64..2.0],
        seed in 0u64..1000,
    ) {
        let mut dp = DataParallel::new(model(), threads);
        let mut dp_adam = adam();
        let mut reference = model();
        let mut ref_adam = adam();
        for step in 0..3u64 {
            let batches: Vec<_> = (0..accum).map(|m| data(n, seed + 10 * step + m as u64)).collect();
            let scale = 1.0 / accum as f64;

            // The shared step.
            let mut s = dp.step();
            let shares = s.shares(n);
            let mut dp_loss = 0.0;
            for (x, y) in &batches {
                let losses = s.accumulate(&shares, |_, m, items| {
                    let share = items.len() as f64 / n as f64;
                    Ok::<_, addmul_core::Error>(backward(m, x, y, items, share * scale))
                }).unwrap();
                dp_loss += losses.into_iter().sum::<f64>();
            }
            let dp_norm = s.update(&mut dp_adam, clip).unwrap();

            // The plain recipe: one copy per share, summed in order.
            let mut copies = vec![reference.clone(); shares.len()];
            let mut ref_loss = 0.0;
            for (x, y) in &batches {
                let mut losses = Vec::new();
                for (copy, items) in copies.iter_mut().zip(&shares) {
                    let share = items.len() as f64 / n as f64;
                    losses.push(backward(copy, x, y, items.clone(), share * scale));
                }
                ref_loss += losses.into_iter().sum::<f64>();
            }
            let (summed, rest) = copies.split_first_mut().unwrap();
            for copy in rest.iter() {
                for (total, p) in summed.params_mut().into_iter().zip(copy.params()) {
                    *total.grad_mut() += p.grad();
                }
            }
            let ref_norm = summed.grad_norm();
            // The norm's partial sums are added per thread: the same to
            // rounding; the clip factor is then taken from the shared step's.
            prop_assert!((dp_norm - ref_norm).abs() <= 1e-12 * ref_norm.max(1e-30), "{dp_norm} vs {ref_norm}");
            if clip > 0.0 && let Some(f) = addmul_train::clip_factor(dp_norm, clip).unwrap() {
                summed.scale_grads(f as f32);
            }
            ref_adam.step(summed).unwrap();
            reference = summed.clone();
            reference.zero_grads();

            prop_assert_eq!(dp_loss.to_bits(), ref_loss.to_bits());
            prop_assert_eq!(bits(dp.model()), bits(&reference), "step {}", step);
        }
        // Every replica holds the same weights and no gradient.
        let model = dp.into_model();
        prop_assert_eq!(model.grad_norm(), 0.0);
    }
}

#[test]
fn a_step_abandoned_half_way_leaves_no_trace() {
    let (x, y) = data(6, 1);
    let run = |abandon: bool| {
        let mut dp = DataParallel::new(model(), 3);
        let mut adam = adam();
        if abandon {
            let mut s = dp.step();
            let shares = s.shares(6);
            s.accumulate(&shares, |_, m, items| Ok::<_, addmul_core::Error>(backward(m, &x, &y, items, 1.0))).unwrap();
            // Dropped without an update (say, the loss was not finite).
        }
        let weights = bits(dp.model());
        // The next step, on only two of the three replicas.
        let mut s = dp.step();
        let shares = s.shares(2);
        s.accumulate(&shares, |_, m, items| Ok::<_, addmul_core::Error>(backward(m, &x, &y, items, 0.5))).unwrap();
        s.update(&mut adam, 1.0).unwrap();
        (weights, bits(dp.model()))
    };
    let (before_clean, after_clean) = run(false);
    let (before_abandoned, after_abandoned) = run(true);
    assert_eq!(before_clean, before_abandoned, "an abandoned step changes no weight");
    assert_eq!(after_clean, after_abandoned, "and leaves no gradient behind");
}

#[test]
fn shares_are_consecutive_and_even() {
    let dp = DataParallel::new(model(), 3);
    assert_eq!(dp.shares(7), vec![0..3, 3..5, 5..7]);
    assert_eq!(dp.shares(2), vec![0..1, 1..2]);
    assert!(dp.shares(0).is_empty());
    assert_eq!(DataParallel::new(model(), 0).threads(), 1);
}

#[test]
fn errors_come_back_in_replica_order() {
    let mut dp = DataParallel::new(model(), 3);
    let mut s = dp.step();
    let shares = s.shares(3);
    let err = s.accumulate(&shares, |w, _, _| if w == 0 { Ok(()) } else { Err(w) }).unwrap_err();
    assert_eq!(err, 1);
    let results = dp.map(&dp.shares(3), |w, _, items| Ok::<_, ()>((w, items.len()))).unwrap();
    assert_eq!(results, vec![(0, 1), (1, 1), (2, 1)]);
}
