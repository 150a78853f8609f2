//! The article's worked numbers, and what training on generated data achieves.

use addmul_core::rng;
use addmul_leafflower::*;

#[test]
fn the_articles_worked_number() {
    // 32·0.10 + 107·(−0.29) + 56·(−0.07) + 11.2·0.46
    //   = 3.2 − 31.03 − 3.92 + 5.152 = −26.598 (the article prints −26.6).
    let eval = ArticleNetwork::new([0.0; 3]).evaluate(ARTICLE_LEAF).unwrap();
    assert!((eval.hidden[0] - -26.598).abs() < 1e-12, "{}", eval.hidden[0]);
    assert_eq!(format!("{:.3}", eval.hidden[0]), "-26.598");
    let eval = ArticleNetwork::new([0.25, 0.0, 0.0]).evaluate(ARTICLE_LEAF).unwrap();
    assert_eq!(format!("{:.3}", eval.hidden[0]), "-26.348");
}

#[test]
fn the_bias_moves_the_negative_sum_towards_zero_and_keeps_its_sign() {
    // −26.598 + 0.25 = −26.348, the article's −26.35: still negative, so a
    // ReLU after the neuron gives 0 (with the sign dropped it would pass
    // 26.35 on unchanged).
    let plain = ArticleNetwork::new([0.0; 3]).evaluate(ARTICLE_LEAF).unwrap().hidden[0];
    let biased = ArticleNetwork::new([0.25, 0.0, 0.0]).evaluate(ARTICLE_LEAF).unwrap().hidden[0];
    assert!((biased - (plain + 0.25)).abs() < 1e-12);
    assert!(biased < 0.0 && biased.abs() < plain.abs(), "{plain} -> {biased}");
    assert_eq!(format!("{biased:.2}"), "-26.35");
    assert_eq!(addmul_nn::Activation::Relu.apply(biased), 0.0);
    assert_eq!(addmul_nn::Activation::Relu.apply(-biased), -biased);
}

#[test]
fn the_article_network_tells_our_two_examples_apart() {
    let net = ArticleNetwork::new([0.0; 3]);
    assert_eq!(net.evaluate(ARTICLE_LEAF).unwrap().class, Class::Leaf);
    assert_eq!(net.evaluate(SUNFLOWER).unwrap().class, Class::Flower);
}

#[test]
fn generated_data_is_reproducible_and_plausible() {
    let a = generate(500, &mut rng(1));
    assert_eq!(a, generate(500, &mut rng(1)));
    assert_ne!(a, generate(500, &mut rng(2)));
    for e in &a {
        assert!(e.features[..3].iter().all(|c| (0.0..=255.0).contains(c)));
        assert!(e.features[3] > 0.0);
    }
    let leaves = a.iter().filter(|e| e.class == Class::Leaf).count();
    assert!((200..300).contains(&leaves), "{leaves} leaves of 500");
}

#[test]
fn bad_data_is_a_typed_error() {
    assert!(Standardizer::fit(&[]).unwrap_err().to_string().contains("empty"));
    let bad = Example { features: [1.0, f64::NAN, 3.0, 4.0], class: Class::Leaf };
    assert!(Standardizer::fit(&[bad]).unwrap_err().to_string().contains("non-finite"));
    let bad = Example { features: [1.0, 2.0, 3.0, 0.0], class: Class::Leaf };
    assert!(Standardizer::fit(&[bad]).unwrap_err().to_string().contains("volume must be > 0"));
    let config = ClassifierConfig { lr: 0.0, ..ClassifierConfig::standard() };
    assert!(train_classifier(&config, &mut |_| {}).unwrap_err().to_string().contains("learning rate"));
    let config = ClassifierConfig { n_train: 0, ..ClassifierConfig::standard() };
    assert!(train_classifier(&config, &mut |_| {}).is_err());
}

#[test]
fn a_trained_network_classifies_held_out_objects() {
    let run = train_classifier(&ClassifierConfig::standard(), &mut |_| {}).unwrap();
    assert!(run.val_accuracy >= 0.9, "validation accuracy {}", run.val_accuracy);
}

#[test]
fn one_weights_slope_is_the_loss_curves_slope_and_descent_goes_downhill() {
    let run = train_classifier(&ClassifierConfig::standard(), &mut |_| {}).unwrap();
    let (c, data) = (&run.classifier, &run.train[..200]);
    let weight = (3, 3);
    let trained = c.network().layers()[0].weight().value()[weight];
    // The trained value is where the training left it: the same loss as the
    // network itself gives.
    let untouched = c.loss_with_weight(data, weight, trained).unwrap();
    assert!(untouched.is_finite() && untouched > 0.0);
    // descend_one_weight's first step uses backpropagation's slope: compare
    // it with the loss curve's central difference.
    let (w, lr, h) = (trained - 1.0, 1e-3, 1e-5);
    let path = c.descend_one_weight(data, weight, w, lr, 1).unwrap();
    let slope_backprop = (path[0].0 - path[1].0) / lr;
    let slope_curve = (c.loss_with_weight(data, weight, w + h).unwrap()
        - c.loss_with_weight(data, weight, w - h).unwrap())
        / (2.0 * h);
    assert!(
        (slope_backprop - slope_curve).abs() <= 1e-6 * slope_curve.abs().max(1.0),
        "{slope_backprop} vs {slope_curve}"
    );
    // Small steps only go downhill.
    let path = c.descend_one_weight(data, weight, trained - 2.0, 0.5, 8).unwrap();
    assert_eq!(path.len(), 9);
    assert!(path.windows(2).all(|p| p[1].1 < p[0].1), "{path:?}");
    // Weights the first layer does not have, and no data, are errors.
    assert!(c.loss_with_weight(data, (99, 0), 0.0).unwrap_err().to_string().contains("neuron"));
    assert!(c.loss_with_weight(data, (0, 4), 0.0).unwrap_err().to_string().contains("input"));
    assert!(c.loss_with_weight(&[], weight, 0.0).is_err());
}

#[test]
fn a_big_network_on_little_data_overfits() {
    let run = train_classifier(&ClassifierConfig::overfitting(), &mut |_| {}).unwrap();
    let epochs = &run.history.epochs;
    let best = run.history.best().unwrap();
    let last = epochs.last().unwrap();
    // Training loss keeps falling...
    assert!(last.train_loss < best.train_loss / 10.0);
    // ...while validation loss has risen well above its minimum.
    assert!(last.val_loss.unwrap() > 1.5 * best.val_loss.unwrap());
    assert!(best.epoch < epochs.len() / 2);
    assert_eq!(run.train_accuracy, 1.0, "it memorised even the mislabelled examples");

    // The same run with early stopping ends soon after the best epoch, keeps
    // its weights, and classifies new objects better.
    let patience = 50;
    let config = ClassifierConfig {
        early_stopping: Some(addmul_train::EarlyStopping { patience, min_delta: 0.0 }),
        ..ClassifierConfig::overfitting()
    };
    let stopped = train_classifier(&config, &mut |_| {}).unwrap();
    assert_eq!(stopped.history.best(), Some(best));
    assert_eq!(stopped.history.epochs.len(), best.epoch + patience);
    assert!(stopped.val_accuracy > run.val_accuracy, "{} vs {}", stopped.val_accuracy, run.val_accuracy);
}
