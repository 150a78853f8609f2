//! The article's character model learns the rhymes.

use addmul_charlm::{CharModelConfig, Error, NURSERY_RHYMES, Sampling, examples, train};
use addmul_core::rng;

// ANCHOR: humpty_test
/// A fifth of the book's training (40 epochs instead of 200) is enough for
/// the article's example.
#[test]
fn humpty_dumpt_is_followed_by_y() {
    let config = CharModelConfig { epochs: 40, ..CharModelConfig::article() };
    let run = train(&config, NURSERY_RHYMES, &mut |_| {}).unwrap();
    let (first, last) = (&run.history.epochs[0], run.history.epochs.last().unwrap());
    assert!(last.train_loss < 0.75 * first.train_loss, "{first:?} -> {last:?}");
    let p = run.model.probabilities("humpty dumpt").unwrap();
    assert_eq!(p[0].0, 'y', "{:?}", &p[..3]);
    assert!((p.iter().map(|x| x.1).sum::<f64>() - 1.0).abs() < 1e-5);
    assert_eq!(run.model.predict("Humpty Dumpt").unwrap(), 'y');
    let text = run.model.generate("humpty dumpt", 40, Sampling::Greedy, &mut rng(0)).unwrap();
    assert!(text.starts_with('y') && text.chars().count() == 40, "{text}");
}
// ANCHOR_END: humpty_test

#[test]
fn windows_are_padded_at_the_start() {
    let ex = examples(&[8, 21, 13], 4);
    assert_eq!(ex[0].window, [0, 0, 0, 0]);
    assert_eq!(ex[2].window, [0, 0, 8, 21]);
    assert_eq!(ex[2].next, 13);
}

#[test]
fn bad_input_is_a_typed_error() {
    let config = CharModelConfig { epochs: 1, ..CharModelConfig::article() };
    assert!(matches!(train(&config, "abc", &mut |_| {}), Err(Error::TextTooShort { chars: 3, .. })));
    let run = train(&config, NURSERY_RHYMES, &mut |_| {}).unwrap();
    assert!(matches!(run.model.predict("5"), Err(Error::Tokenizer(_))));
    assert!(run.model.generate("a", 3, Sampling::Temperature(0.0), &mut rng(0)).is_err());
    let all = CharModelConfig { val_fraction: 0.0, ..config.clone() };
    assert_eq!(train(&all, NURSERY_RHYMES, &mut |_| {}).unwrap().n_val, 0);
    let bad = CharModelConfig { val_fraction: 1.0, ..config };
    assert!(matches!(train(&bad, NURSERY_RHYMES, &mut |_| {}), Err(Error::Numeric(_))));
}

#[test]
fn an_embedding_stacks_each_windows_vectors_into_one_column() {
    let config = CharModelConfig { context: 3, ..CharModelConfig::article_embedding() };
    let model = addmul_charlm::CharModel::new(&config, &mut addmul_core::rng(1)).unwrap();
    let table = model.embedding().unwrap().weight().value().clone();
    assert_eq!(table.nrows(), 10);
    let windows: [&[u32]; 2] = [&[1, 2, 3], &[0, 27, 1]];
    let x = model.features(&windows).unwrap();
    assert_eq!(x.shape(), (30, 2));
    for (j, w) in windows.iter().enumerate() {
        for (p, &id) in w.iter().enumerate() {
            assert_eq!(x.view((10 * p, j), (10, 1)), table.column(id as usize));
        }
    }
    let err = model.features(&[&[1, 2, 99]]).unwrap_err();
    assert!(err.to_string().contains("token id: index 99"), "{err}");
}

#[test]
fn the_embedding_is_trained_with_the_network() {
    let config = CharModelConfig { epochs: 40, ..CharModelConfig::article_embedding() };
    let run = train(&config, NURSERY_RHYMES, &mut |_| {}).unwrap();
    let table = run.model.embedding().unwrap();
    // The padding row and every character moved from their random start.
    let untrained = addmul_charlm::CharModel::new(&config, &mut addmul_core::rng(config.seed)).unwrap();
    let before = untrained.embedding().unwrap().weight().value();
    assert!((table.weight().value() - before).abs().max() > 0.1);
    let first = run.history.epochs.first().unwrap().train_loss;
    let last = run.history.epochs.last().unwrap().train_loss;
    assert!(last < first / 2.0, "training loss {first} -> {last}");
    assert_eq!(table.nearest(1, 3).unwrap().len(), 3);
}
