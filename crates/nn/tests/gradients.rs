//! Gradient checks (f64, central differences) for every piece of `addmul-nn`.

use addmul_core::gradcheck::{TIGHT, within};
use addmul_core::{GradCheck, Init, Layer, Matrix, rng};
use addmul_nn::{Activation, Linear, Mlp};
use proptest::prelude::*;

fn uniform(rows: usize, cols: usize, seed: u64) -> Matrix<f64> {
    Init::Uniform { bound: 2.0 }.matrix(rows, cols, &mut rng(seed))
}

/// Moves entries out of `(-margin, margin)`, away from ReLU's kink.
fn off_kink(m: Matrix<f64>, margin: f64) -> Matrix<f64> {
    m.map(|x| if x.abs() < margin { x + 2.0 * margin.copysign(x) } else { x })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn linear(inp in 1..6usize, out in 1..6usize, n in 1..5usize, bias: bool, seed: u64) {
        let mut layer = Linear::<f64>::new(inp, out, bias, Init::Uniform { bound: 1.5 }, &mut rng(seed));
        let x = uniform(inp, n, seed ^ 1);
        let probe = uniform(out, n, seed ^ 2);
        let report = GradCheck::default().layer(&mut layer, &x, &probe).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
    }

    #[test]
    fn relu_away_from_its_kink(rows in 1..6usize, n in 1..5usize, seed: u64) {
        let x = off_kink(uniform(rows, n, seed), 1e-2);
        let probe = uniform(rows, n, seed ^ 2);
        let report = GradCheck::default().layer(&mut Activation::Relu, &x, &probe).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
    }

    #[test]
    fn gelu_both_forms(rows in 1..6usize, n in 1..5usize, seed: u64, scale in 0.1..4.0f64) {
        let x = uniform(rows, n, seed) * scale;
        let probe = uniform(rows, n, seed ^ 2);
        for mut act in [Activation::GeluTanh, Activation::GeluErf] {
            let report = GradCheck::default().layer(&mut act, &x, &probe).unwrap();
            prop_assert!(within(&report, TIGHT).is_ok(), "{:?}: {}", act, report);
        }
    }

    #[test]
    fn whole_network_with_gelu(sizes in prop::collection::vec(1..6usize, 2..5), n in 1..5usize, seed: u64) {
        let mut net = Mlp::<f64>::new(&sizes, Activation::GeluTanh, Init::Uniform { bound: 1.0 }, &mut rng(seed)).unwrap();
        let x = uniform(sizes[0], n, seed ^ 1);
        let probe = uniform(*sizes.last().unwrap(), n, seed ^ 2);
        let report = GradCheck::default().layer(&mut net, &x, &probe).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
    }

    #[test]
    fn whole_network_with_relu_away_from_kinks(sizes in prop::collection::vec(1..6usize, 2..5), n in 1..5usize, seed: u64) {
        let mut net = Mlp::<f64>::new(&sizes, Activation::Relu, Init::Uniform { bound: 1.0 }, &mut rng(seed)).unwrap();
        let x = uniform(sizes[0], n, seed ^ 1);
        let (_, cache) = net.forward(&x).unwrap();
        // A nudge of h = 1e-5 moves a pre-activation by far less than 1e-3.
        let near_kink = cache.pre_activations().iter().any(|z| z.iter().any(|v| v.abs() < 1e-3));
        prop_assume!(!near_kink);
        let probe = uniform(*sizes.last().unwrap(), n, seed ^ 2);
        let report = GradCheck::default().layer(&mut net, &x, &probe).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
    }
}

#[test]
fn gelu_values_match_their_definitions() {
    // x Φ(x) at 1 is Φ(1) = 0.841344746068543; the tanh form is 0.841191990608276.
    assert!((Activation::GeluErf.apply(1.0f64) - 0.841_344_746_068_543).abs() < 1e-15);
    assert!((Activation::GeluTanh.apply(1.0f64) - 0.841_191_990_608_276_8).abs() < 1e-15);
    // The two forms never differ by more than 5e-4.
    let worst = (-600..=600)
        .map(|i| f64::from(i) / 100.0)
        .map(|x| (Activation::GeluErf.apply(x) - Activation::GeluTanh.apply(x)).abs())
        .fold(0.0, f64::max);
    assert!(worst < 5e-4, "{worst}");
}

#[test]
fn relu_is_zero_at_and_below_zero() {
    assert_eq!(Activation::Relu.apply(-3.0f32), 0.0);
    assert_eq!(Activation::Relu.apply(0.0f32), 0.0);
    assert_eq!(Activation::Relu.derivative(0.0f32), 0.0);
    assert_eq!(Activation::Relu.apply(2.5f32), 2.5);
}

#[test]
fn f32_and_f64_agree() {
    let net64 = Mlp::<f64>::new(&[3, 5, 2], Activation::GeluErf, Init::Normal { std: 0.5 }, &mut rng(9)).unwrap();
    let net32 = Mlp::<f32>::new(&[3, 5, 2], Activation::GeluErf, Init::Normal { std: 0.5 }, &mut rng(9)).unwrap();
    let x64 = uniform(3, 4, 10);
    let x32 = addmul_core::convert::<f64, f32>(&x64);
    let y64 = net64.predict(&x64).unwrap();
    let y32 = net32.predict(&x32).unwrap();
    for (a, b) in y64.iter().zip(y32.iter()) {
        assert!((a - f64::from(*b)).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn bad_shapes_are_named_errors() {
    let layer = Linear::<f64>::new(4, 3, true, Init::Zeros, &mut rng(0));
    let err = layer.forward(&Matrix::zeros(5, 2)).unwrap_err();
    assert_eq!(err.to_string(), "Linear::forward: shape mismatch: expected [4, _], got [5, 2]");
    let err = Linear::from_weights(Matrix::<f64>::zeros(3, 4), Some(vec![0.0; 2])).unwrap_err();
    assert!(err.to_string().contains("bias of length 3"), "{err}");
    let err = Mlp::<f64>::new(&[4], Activation::Relu, Init::Zeros, &mut rng(0)).unwrap_err();
    assert!(err.to_string().contains("at least 2"), "{err}");
    let err = Mlp::from_layers(
        vec![
            Linear::<f64>::new(4, 3, true, Init::Zeros, &mut rng(0)),
            Linear::new(2, 1, true, Init::Zeros, &mut rng(0)),
        ],
        Activation::Relu,
    )
    .unwrap_err();
    assert!(err.to_string().contains("Mlp::from_layers"), "{err}");
}
