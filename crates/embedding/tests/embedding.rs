//! Lookup, scatter-add and the gradient check of an embedding table.

use addmul_core::gradcheck::{TIGHT, within};
use addmul_core::{Error, GradCheck, Init, Matrix, ParametersExt, rng};
use addmul_embedding::{Embedding, cosine_similarity};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Through a probe loss, including repeated ids.
    #[test]
    fn gradient_check(vocab in 1..8usize, dim in 1..5usize, ids in prop::collection::vec(0..8usize, 1..10), seed: u64) {
        let ids: Vec<usize> = ids.into_iter().map(|i| i % vocab).collect();
        let mut table = Embedding::<f64>::new(vocab, dim, Init::Normal { std: 1.0 }, &mut rng(seed)).unwrap();
        let probe: Matrix<f64> = Init::Uniform { bound: 1.0 }.matrix(dim, ids.len(), &mut rng(seed ^ 1));
        let report = GradCheck::default().run(&mut table, &mut [], |t, _| {
            let y = t.forward(&ids)?;
            t.backward(&ids, &probe)?;
            Ok::<_, Error>((addmul_core::dot(&y, &probe)?, vec![]))
        }).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
    }
}

#[test]
fn repeated_ids_accumulate() {
    let mut table = Embedding::<f64>::new(3, 2, Init::Zeros, &mut rng(0)).unwrap();
    let dy = Matrix::from_column_slice(2, 3, &[1.0, 2.0, 10.0, 20.0, 100.0, 200.0]);
    table.backward(&[2, 0, 2], &dy).unwrap();
    let g = table.weight().grad();
    assert_eq!(g.column(2).as_slice(), &[101.0, 202.0]);
    assert_eq!(g.column(0).as_slice(), &[10.0, 20.0]);
    assert_eq!(g.column(1).as_slice(), &[0.0, 0.0]);
    table.zero_grads();
    assert_eq!(table.weight().grad().sum(), 0.0);
}

#[test]
fn ids_out_of_range_are_typed_errors() {
    let mut table = Embedding::<f32>::new(5, 3, Init::Zeros, &mut rng(0)).unwrap();
    let err = table.forward(&[1, 5]).unwrap_err();
    assert_eq!(err.to_string(), "token id: index 5 is out of range 0..5");
    assert!(table.backward(&[9], &Matrix::zeros(3, 1)).is_err());
    assert!(table.backward(&[1], &Matrix::zeros(2, 1)).unwrap_err().to_string().contains("Embedding::backward"));
    assert!(Embedding::<f32>::new(0, 3, Init::Zeros, &mut rng(0)).is_err());
}

#[test]
fn nearest_neighbours_by_cosine() {
    // Column 0 points along x, 1 nearly along x, 2 along y, 3 against x.
    let table = Matrix::from_column_slice(2, 4, &[1.0, 0.0, 0.9, 0.1, 0.0, 1.0, -1.0, 0.0]);
    let e = Embedding::<f64>::from_table(table).unwrap();
    let near = e.nearest(0, 3).unwrap();
    assert_eq!(near.iter().map(|n| n.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert!((near[2].1 + 1.0).abs() < 1e-15);
    assert_eq!(cosine_similarity(&[0.0f64, 0.0], &[1.0, 2.0]), 0.0);
    assert!((cosine_similarity(&[1.0f64, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-15);
}
