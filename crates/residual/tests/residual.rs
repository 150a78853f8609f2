//! The residual combinator's gradient reaches the input both ways.

use addmul_core::gradcheck::{TIGHT, within};
use addmul_core::{GradCheck, Init, Layer, Matrix, rng};
use addmul_nn::{Activation, Linear, Mlp};
use addmul_residual::Residual;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn gradient_check_around_a_small_network(d in 1..6usize, hidden in 1..6usize, n in 1..4usize, seed: u64) {
        let net = Mlp::<f64>::new(&[d, hidden, d], Activation::GeluTanh, Init::Normal { std: 0.7 }, &mut rng(seed)).unwrap();
        let mut block = Residual::new(net);
        let x: Matrix<f64> = Init::Normal { std: 1.0 }.matrix(d, n, &mut rng(seed ^ 1));
        let probe: Matrix<f64> = Init::Normal { std: 1.0 }.matrix(d, n, &mut rng(seed ^ 2));
        let report = GradCheck::default().layer(&mut block, &x, &probe).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
    }
}

#[test]
fn the_gradient_reaches_the_input_directly_even_when_f_blocks_it() {
    // f multiplies by zero: without the residual no gradient would pass.
    let mut block = Residual::new(Linear::<f64>::new(2, 2, false, Init::Zeros, &mut rng(0)));
    let x = Matrix::from_element(2, 1, 3.0);
    let (_, cache) = block.forward(&x).unwrap();
    let dy = Matrix::from_column_slice(2, 1, &[0.5, -2.0]);
    assert_eq!(block.backward(&cache, &dy).unwrap(), dy);
}

#[test]
fn a_shape_changing_layer_is_a_typed_error() {
    let block = Residual::new(Linear::<f64>::new(3, 2, false, Init::Zeros, &mut rng(0)));
    let err = block.forward(&Matrix::zeros(3, 1)).unwrap_err();
    assert!(err.to_string().contains("Residual::forward"), "{err}");
}
