//! Properties and gradient checks of softmax and the losses.

use addmul_core::gradcheck::{TIGHT, within};
use addmul_core::{GradCheck, Init, Matrix, Param, Parameters, rng};
use addmul_softmax::*;
use proptest::prelude::*;

fn uniform(rows: usize, cols: usize, bound: f64, seed: u64) -> Matrix<f64> {
    Init::Uniform { bound }.matrix(rows, cols, &mut rng(seed))
}

/// No parameters: the losses are checked with respect to their inputs only.
struct Nothing;
impl Parameters<f64> for Nothing {
    fn visit<'a>(&'a self, _: &mut dyn FnMut(&str, &'a Param<f64>)) {}
    fn visit_mut<'a>(&'a mut self, _: &mut dyn FnMut(&str, &'a mut Param<f64>)) {}
}

fn finite_column() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(prop::num::f64::NORMAL | prop::num::f64::ZERO | prop::num::f64::SUBNORMAL, 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sums_to_one_for_any_finite_input(col in finite_column()) {
        let x = Matrix::from_column_slice(col.len(), 1, &col);
        let y = softmax(&x);
        prop_assert!(y.iter().all(|&p| (0.0..=1.0).contains(&p)), "{:?}", y);
        prop_assert!((y.sum() - 1.0).abs() <= 1e-12, "sum {}", y.sum());
    }

    #[test]
    fn strictly_between_zero_and_one_for_moderate_inputs(col in prop::collection::vec(-15.0..15.0f64, 2..12)) {
        let y = softmax(&Matrix::from_column_slice(col.len(), 1, &col));
        prop_assert!(y.iter().all(|&p| p > 0.0 && p < 1.0), "{:?}", y);
    }

    #[test]
    fn shifting_every_score_changes_nothing(col in prop::collection::vec(-15.0..15.0f64, 1..12), c in -1000.0..1000.0f64) {
        let x = Matrix::from_column_slice(col.len(), 1, &col);
        let shifted = x.map(|v| v + c);
        let (a, b) = (softmax(&x), softmax(&shifted));
        prop_assert!((a - b).abs().max() <= 1e-12);
    }

    #[test]
    fn cross_entropy_gradient_is_softmax_minus_one_hot(classes in 1..9usize, n in 1..6usize, seed: u64) {
        let logits = uniform(classes, n, 5.0, seed);
        let targets: Vec<usize> = (0..n).map(|j| (seed as usize).wrapping_add(7 * j) % classes).collect();
        let (_, cache) = cross_entropy(&logits, &targets).unwrap();
        let mut want = softmax(&logits);
        for (j, &t) in targets.iter().enumerate() {
            want[(t, j)] -= 1.0;
        }
        want /= n as f64;
        prop_assert!((cache.backward() - want).abs().max() <= 1e-15);
    }

    #[test]
    fn gradient_checks(classes in 1..7usize, n in 1..5usize, seed: u64, smoothing in 0.0..0.5f64) {
        let logits = uniform(classes, n, 3.0, seed);
        let probe = uniform(classes, n, 1.0, seed ^ 1);
        let targets: Vec<usize> = (0..n).map(|j| (seed as usize).wrapping_add(3 * j) % classes).collect();
        let check = GradCheck::default();

        let report = check.layer(&mut Softmax, &logits, &probe).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "softmax: {}", report);

        let report = check.run(&mut Nothing, &mut [logits.clone()], |_, xs| {
            let y = log_softmax(&xs[0]);
            let loss = addmul_core::dot(&y, &probe)?;
            Ok::<_, addmul_core::Error>((loss, vec![log_softmax_backward(&y, &probe)?]))
        }).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "log_softmax: {}", report);

        let options = CrossEntropy { label_smoothing: smoothing, ignore: None };
        let report = check.run(&mut Nothing, &mut [logits.clone()], |_, xs| {
            let (loss, cache) = options.forward(&xs[0], &targets)?;
            Ok::<_, addmul_core::Error>((loss, vec![cache.backward()]))
        }).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "cross-entropy: {}", report);

        // L1 away from its kink: predictions at least 0.01 from the targets.
        let target = uniform(classes, n, 1.0, seed ^ 2);
        let pred = target.zip_map(&probe, |t, r| t + r.signum() * (0.01 + r.abs()));
        let report = check.run(&mut Nothing, &mut [pred], |_, xs| {
            Ok::<_, addmul_core::Error>((l1_loss(&xs[0], &target)?, vec![l1_loss_backward(&xs[0], &target)?]))
        }).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "l1: {}", report);
    }
}

#[test]
fn extreme_inputs_do_not_overflow() {
    let y = softmax(&Matrix::from_column_slice(2, 1, &[1234.0f64, 0.0]));
    assert_eq!(y.as_slice(), &[1.0, 0.0]);
    let y = softmax(&Matrix::from_column_slice(3, 1, &[f64::MAX, f64::MAX, -f64::MAX]));
    assert_eq!(y.as_slice(), &[0.5, 0.5, 0.0]);
    let y = softmax(&Matrix::from_column_slice(2, 1, &[-1e4f32, -1e4]));
    assert_eq!(y.as_slice(), &[0.5, 0.5]);
    let (loss, _) = cross_entropy(&Matrix::from_column_slice(2, 1, &[1e4f32, -1e4]), &[1]).unwrap();
    assert_eq!(loss, 2e4);
}

#[test]
fn masked_entries_get_exactly_zero() {
    let y = softmax(&Matrix::from_column_slice(3, 1, &[0.5f64, f64::NEG_INFINITY, 0.5]));
    assert_eq!(y.as_slice(), &[0.5, 0.0, 0.5]);
    let y = softmax(&Matrix::from_column_slice(2, 1, &[f64::NEG_INFINITY; 2]));
    assert_eq!(y.as_slice(), &[0.0, 0.0]);
}

#[test]
fn cross_entropy_of_a_uniform_guess_is_log_classes() {
    let (loss, _) = cross_entropy(&Matrix::<f64>::zeros(65, 4), &[0, 1, 2, 64]).unwrap();
    assert!((loss - 65f64.ln()).abs() < 1e-12);
}

#[test]
fn ignored_targets_contribute_nothing() {
    let logits = uniform(4, 3, 2.0, 5);
    let options = CrossEntropy { label_smoothing: 0.0, ignore: Some(0) };
    let (loss, cache) = options.forward(&logits, &[0, 2, 3]).unwrap();
    let (want, _) = cross_entropy(&logits.columns(1, 2).into_owned(), &[2, 3]).unwrap();
    assert!((loss - want).abs() < 1e-15);
    assert_eq!(cache.backward().column(0).iter().copied().collect::<Vec<_>>(), vec![0.0; 4]);
    assert!(matches!(options.forward(&logits, &[0, 0, 0]), Err(addmul_core::Error::Empty { .. })));
}

#[test]
fn bad_targets_are_typed_errors() {
    let logits = Matrix::<f64>::zeros(3, 2);
    let err = cross_entropy(&logits, &[0, 3]).unwrap_err();
    assert_eq!(err.to_string(), "target class: index 3 is out of range 0..3");
    let err = cross_entropy(&logits, &[0]).unwrap_err();
    assert!(err.to_string().contains("got [3, 2]"), "{err}");
    let err = CrossEntropy { label_smoothing: 1.0, ignore: None }.forward(&logits, &[0, 1]).unwrap_err();
    assert!(err.to_string().contains("label smoothing"), "{err}");
}

#[test]
fn the_articles_l1_loss() {
    // Wanted (leaf, flower) = (1, 0); got (0.8, 0.3): |0.8-1| + |0.3-0| = 0.5.
    let pred = Matrix::from_column_slice(2, 1, &[0.8f64, 0.3]);
    let target = Matrix::from_column_slice(2, 1, &[1.0, 0.0]);
    assert!((l1_loss(&pred, &target).unwrap() - 0.5).abs() < 1e-15);
    assert_eq!(l1_loss_backward(&pred, &target).unwrap().as_slice(), &[-1.0, 1.0]);
}
