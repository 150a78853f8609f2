//! The encodings' defining properties.

use addmul_core::gradcheck::{TIGHT, within};
use addmul_core::{Error, GradCheck, Init, Matrix, Param, Parameters, rng};
use addmul_posenc::*;
use proptest::prelude::*;

#[test]
fn sinusoidal_values_for_d4() {
    let pe = sinusoidal::<f64>(4, 3);
    let want = [[0.0, 1.0, 0.0, 1.0], [0.8415, 0.5403, 0.0100, 1.0000], [0.9093, -0.4161, 0.0200, 0.9998]];
    for (p, row) in want.iter().enumerate() {
        for (i, &w) in row.iter().enumerate() {
            assert!((pe[(i, p)] - w).abs() < 5e-5, "PE({p}, {i}) = {} vs {w}", pe[(i, p)]);
        }
    }
}

#[test]
fn sinusoidal_values_lie_in_minus_one_to_one_not_zero_to_one() {
    let pe = sinusoidal::<f64>(64, 512);
    assert!(pe.iter().all(|v| (-1.0..=1.0).contains(v)));
    // The article says [0, 1]; half the sines and cosines are negative.
    assert!(pe.iter().filter(|v| **v < 0.0).count() > pe.len() / 4);
}

proptest! {
    /// For each offset k there is one rotation M_k with PE(p + k) = M_k PE(p)
    /// for every p: in each pair of rows, a rotation by k times that pair's
    /// frequency.
    #[test]
    fn moving_k_positions_is_one_rotation(half in 1..8usize, k in 0..50usize) {
        let d = 2 * half;
        let pe = sinusoidal::<f64>(d, 200);
        let mut m = Matrix::zeros(d, d);
        for i in 0..half {
            let w = k as f64 / 10000f64.powf(2.0 * i as f64 / d as f64);
            let (s, c) = w.sin_cos();
            // (sin(a + w), cos(a + w)) = [[c, s], [-s, c]] (sin a, cos a)
            m[(2 * i, 2 * i)] = c;
            m[(2 * i, 2 * i + 1)] = s;
            m[(2 * i + 1, 2 * i)] = -s;
            m[(2 * i + 1, 2 * i + 1)] = c;
        }
        for p in 0..150 {
            let moved = &m * pe.column(p);
            prop_assert!((moved - pe.column(p + k)).abs().max() < 1e-9);
        }
    }

    /// With RoPE, q·k depends only on how far apart the two tokens are.
    #[test]
    fn rope_dot_products_depend_only_on_distance(half in 1..6usize, pq in 0..40usize, pk in 0..40usize, shift in 0..40usize, seed: u64) {
        let rope = Rope::<f64>::new(2 * half, 100, 10000.0).unwrap();
        let q0: Matrix<f64> = Init::Normal { std: 1.0 }.matrix(2 * half, 1, &mut rng(seed));
        let k0: Matrix<f64> = Init::Normal { std: 1.0 }.matrix(2 * half, 1, &mut rng(seed ^ 1));
        let dot_at = |a: usize, b: usize| {
            let (mut q, mut k) = (q0.clone(), k0.clone());
            rope.rotate(&mut q, a).unwrap();
            rope.rotate(&mut k, b).unwrap();
            q.dot(&k)
        };
        prop_assert!((dot_at(pq, pk) - dot_at(pq + shift, pk + shift)).abs() < 1e-9);
    }

    #[test]
    fn rope_gradient_is_the_inverse_rotation(half in 1..5usize, t in 1..6usize, offset in 0..20usize, seed: u64) {
        struct NoParams;
        impl Parameters<f64> for NoParams {
            fn visit<'a>(&'a self, _: &mut dyn FnMut(&str, &'a Param<f64>)) {}
            fn visit_mut<'a>(&'a mut self, _: &mut dyn FnMut(&str, &'a mut Param<f64>)) {}
        }
        let rope = Rope::<f64>::new(2 * half, 40, 10000.0).unwrap();
        let x: Matrix<f64> = Init::Normal { std: 1.0 }.matrix(2 * half, t, &mut rng(seed));
        let probe: Matrix<f64> = Init::Normal { std: 1.0 }.matrix(2 * half, t, &mut rng(seed ^ 3));
        let report = GradCheck::default().run(&mut NoParams, &mut [x], |_, xs| {
            let mut y = xs[0].clone();
            rope.rotate(&mut y, offset)?;
            let mut dx = probe.clone();
            rope.rotate_back(&mut dx, offset)?;
            Ok::<_, Error>((addmul_core::dot(&y, &probe)?, vec![dx]))
        }).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
    }

    #[test]
    fn learned_positions_gradient_check(d in 1..4usize, t in 1..5usize, b in 1..3usize, offset in 0..3usize, seed: u64) {
        let mut table = LearnedPositions::<f64>::new(8, d, Init::Normal { std: 1.0 }, &mut rng(seed)).unwrap();
        let x: Matrix<f64> = Init::Normal { std: 1.0 }.matrix(d, b * t, &mut rng(seed ^ 1));
        let probe: Matrix<f64> = Init::Normal { std: 1.0 }.matrix(d, b * t, &mut rng(seed ^ 2));
        let report = GradCheck::default().run(&mut table, &mut [x], |table, xs| {
            let mut y = xs[0].clone();
            table.add_to(&mut y, t, offset)?;
            table.backward(&probe, t, offset)?;
            Ok::<_, Error>((addmul_core::dot(&y, &probe)?, vec![probe.clone()]))
        }).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
    }
}

#[test]
fn positions_beyond_the_table_are_typed_errors() {
    let table = LearnedPositions::<f32>::new(4, 2, Init::Zeros, &mut rng(0)).unwrap();
    let err = table.add_to(&mut Matrix::zeros(2, 5), 5, 0).unwrap_err();
    assert_eq!(err.to_string(), "position: index 4 is out of range 0..4");
    assert!(table.add_to(&mut Matrix::zeros(2, 2), 2, 3).is_err());
    let rope = Rope::<f32>::new(4, 3, 10000.0).unwrap();
    assert!(matches!(rope.rotate(&mut Matrix::zeros(4, 2), 2), Err(Error::OutOfRange { .. })));
    assert!(Rope::<f32>::new(3, 3, 10000.0).unwrap_err().to_string().contains("even"));
    let sin = Sinusoidal::<f32>::new(4, 2);
    assert!(sin.add_to(&mut Matrix::zeros(4, 3), 3, 0).is_err());
    assert!(sin.add_to(&mut Matrix::zeros(4, 3), 2, 0).unwrap_err().to_string().contains("multiple"));
}
