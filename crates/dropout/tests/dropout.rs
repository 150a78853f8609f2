//! Dropout's expected value, its edge cases, and its backward.

use addmul_core::gradcheck::{TIGHT, within};
use addmul_core::{Error, GradCheck, Init, Matrix, Param, Parameters, rng};
use addmul_dropout::{Dropout, DropoutMask};
use proptest::prelude::*;

/// Mean of the training output over `n` ones, and its standard error.
fn mean_of_ones(dropout: &Dropout, n: usize, seed: u64) -> f64 {
    let (y, _) = dropout.train(&Matrix::<f64>::from_element(1, n, 1.0), &mut rng(seed));
    y.sum() / n as f64
}

#[test]
fn inverted_dropout_preserves_the_expected_value() {
    // Each output is 0 or 1/(1-p): mean 1, variance p/(1-p). With 200,000
    // samples the mean is within 5 standard errors of 1 (about 0.0076 for
    // p = 0.3); a wrong scale such as 1/p would give 0.7/0.3 = 2.33.
    let n = 200_000;
    for (i, p) in [0.1, 0.3, 0.5, 0.9].into_iter().enumerate() {
        let bound = 5.0 * (p / (1.0 - p) / n as f64).sqrt();
        let mean = mean_of_ones(&Dropout::new(p).unwrap(), n, i as u64);
        assert!((mean - 1.0).abs() < bound, "p = {p}: mean {mean}, bound {bound}");
        let wrong_scale = (1.0 - p) / p;
        assert!((wrong_scale - 1.0).abs() > bound || p == 0.5, "the test can tell 1/p from 1/(1-p)");
    }
}

#[test]
fn classic_dropout_matches_training_and_evaluation_in_expectation() {
    let n = 200_000;
    let p = 0.3;
    let d = Dropout::classic(p).unwrap();
    let train_mean = mean_of_ones(&d, n, 4);
    let eval_mean = d.eval(&Matrix::<f64>::from_element(1, 1, 1.0))[0];
    assert_eq!(eval_mean, 0.7);
    let bound = 5.0 * (p * (1.0 - p) / n as f64).sqrt();
    assert!((train_mean - eval_mean).abs() < bound, "{train_mean} vs {eval_mean}");
}

#[test]
fn p_zero_is_the_identity_and_draws_nothing() {
    let x: Matrix<f32> = Init::Normal { std: 1.0 }.matrix(3, 4, &mut rng(0));
    let mut r = rng(9);
    let (y, mask) = Dropout::new(0.0).unwrap().train(&x, &mut r);
    assert_eq!(y, x);
    assert_eq!(mask.backward(&x).unwrap(), x);
    assert_eq!(addmul_core::RngState::of(&r), addmul_core::RngState::of(&rng(9)));
}

#[test]
fn probabilities_outside_zero_to_one_are_typed_errors() {
    for p in [-0.1, 1.0, 1.5, f64::NAN] {
        let err = Dropout::new(p).unwrap_err();
        assert!(matches!(err, Error::InvalidValue { what: "dropout probability", .. }), "{err}");
    }
}

#[test]
fn same_seed_same_mask_and_evaluation_is_deterministic() {
    let d = Dropout::new(0.4).unwrap();
    let x = Matrix::<f64>::from_element(5, 5, 1.0);
    assert_eq!(d.train(&x, &mut rng(3)).0, d.train(&x, &mut rng(3)).0);
    assert_ne!(d.train(&x, &mut rng(3)).0, d.train(&x, &mut rng(4)).0);
    assert_eq!(d.eval(&x), d.eval(&x));
}

proptest! {
    /// The backward uses the forward's mask: a gradient check with the mask
    /// held fixed.
    #[test]
    fn gradient_with_a_fixed_mask(rows in 1..5usize, cols in 1..5usize, p in 0.0..0.9f64, seed: u64) {
        struct NoParams;
        impl Parameters<f64> for NoParams {
            fn visit<'a>(&'a self, _: &mut dyn FnMut(&str, &'a Param<f64>)) {}
            fn visit_mut<'a>(&'a mut self, _: &mut dyn FnMut(&str, &'a mut Param<f64>)) {}
        }
        let mask: DropoutMask<f64> = Dropout::new(p).unwrap().sample_mask(rows, cols, &mut rng(seed));
        let x: Matrix<f64> = Init::Normal { std: 1.0 }.matrix(rows, cols, &mut rng(seed ^ 1));
        let probe: Matrix<f64> = Init::Normal { std: 1.0 }.matrix(rows, cols, &mut rng(seed ^ 2));
        let report = GradCheck::default().run(&mut NoParams, &mut [x], |_, xs| {
            let y = mask.apply(&xs[0])?;
            Ok::<_, Error>((addmul_core::dot(&y, &probe)?, vec![mask.backward(&probe)?]))
        }).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
    }
}
