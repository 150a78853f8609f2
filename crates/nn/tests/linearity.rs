//! Why a feed-forward network needs its activation: without one, any stack of
//! linear layers is a single linear layer ([`Mlp::collapse`]); with ReLU or
//! GELU between them it is not.

use addmul_core::{Init, Matrix, rng};
use addmul_nn::{Activation, Linear, Mlp};
use proptest::prelude::*;

fn uniform(rows: usize, cols: usize, seed: u64) -> Matrix<f64> {
    Init::Uniform { bound: 2.0 }.matrix(rows, cols, &mut rng(seed))
}

fn max_abs_diff(a: &Matrix<f64>, b: &Matrix<f64>) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn layers_without_an_activation_are_one_linear_layer(
        sizes in prop::collection::vec(1..7usize, 2..6),
        n in 1..5usize,
        seed: u64,
    ) {
        let net = Mlp::<f64>::new(&sizes, Activation::Identity, Init::Uniform { bound: 1.0 }, &mut rng(seed)).unwrap();
        // Biases that are not zero, so that the bias of the product is tested.
        let layers: Vec<Linear<f64>> = net
            .layers()
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let b = uniform(l.out_features(), 1, seed ^ (i as u64 + 7));
                Linear::from_weights(l.weight().value().clone(), Some(b.as_slice().to_vec())).unwrap()
            })
            .collect();
        let net = Mlp::from_layers(layers, Activation::Identity).unwrap();
        let one = net.collapse().unwrap();
        prop_assert_eq!((one.out_features(), one.in_features()), (sizes[sizes.len() - 1], sizes[0]));
        let x = uniform(sizes[0], n, seed ^ 1);
        let (deep, single) = (net.predict(&x).unwrap(), one.apply(&x).unwrap());
        let scale = deep.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        prop_assert!(max_abs_diff(&deep, &single) <= 1e-12 * scale, "{} vs {}", deep, single);
    }

    #[test]
    fn an_activation_between_the_layers_makes_the_network_non_linear(seed: u64) {
        // A linear map without bias satisfies f(2x) = 2 f(x); with ReLU or GELU
        // between the layers (and no biases, so only the activation can break
        // it) a network of this size does not, for these weights.
        for activation in [Activation::Relu, Activation::GeluTanh, Activation::GeluErf] {
            let layers = vec![
                Linear::<f64>::new(4, 16, false, Init::Uniform { bound: 1.0 }, &mut rng(seed)),
                Linear::<f64>::new(16, 4, false, Init::Uniform { bound: 1.0 }, &mut rng(seed ^ 3)),
            ];
            let net = Mlp::from_layers(layers, activation).unwrap();
            prop_assert!(net.collapse().is_err());
            // Inputs of both signs, so that ReLU cuts some of them.
            let x = Matrix::from_column_slice(4, 1, &[1.0, -1.0, 0.5, -0.5]);
            let (once, twice) = (net.predict(&x).unwrap(), net.predict(&(&x * 2.0)).unwrap());
            let (id_once, id_twice) = {
                let linear = Mlp::from_layers(net.layers().to_vec(), Activation::Identity).unwrap();
                (linear.predict(&x).unwrap(), linear.predict(&(&x * 2.0)).unwrap())
            };
            prop_assert!(max_abs_diff(&id_twice, &(&id_once * 2.0)) < 1e-12);
            if activation != Activation::Relu {
                // ReLU is itself homogeneous, max(0, 2z) = 2 max(0, z): it fails
                // additivity instead (below). GELU fails both.
                prop_assert!(max_abs_diff(&twice, &(&once * 2.0)) > 1e-3, "{activation:?}");
            }
            let y = Matrix::from_column_slice(4, 1, &[-1.0, 1.0, -0.5, 0.5]);
            let sum = net.predict(&(&x + &y)).unwrap();
            let parts = net.predict(&x).unwrap() + net.predict(&y).unwrap();
            prop_assert!(max_abs_diff(&sum, &parts) > 1e-3, "{activation:?}: f(x + y) = f(x) + f(y)");
        }
    }
}

#[test]
fn collapsing_needs_a_network_without_an_activation() {
    let net = Mlp::<f64>::new(&[3, 4, 2], Activation::GeluTanh, Init::HeNormal, &mut rng(0)).unwrap();
    let err = net.collapse().unwrap_err().to_string();
    assert!(err.contains("without an activation"), "{err}");
}
