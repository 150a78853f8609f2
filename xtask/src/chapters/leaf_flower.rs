//! Chapters 1 and 2: the leaf/flower network and how it is trained.

use addmul::core::{Layer, Matrix, ParametersExt};
use addmul::demos::{LeafFlowerOptions, leaf_flower};
use addmul::leafflower::{self, ARTICLE_LEAF, ArticleNetwork, Class, SUNFLOWER, TrainingRun};
use addmul::nn::Activation;
use addmul::plot::{LineChart, NetworkDiagram, RegionMap, Series};
use addmul::softmax::{cross_entropy, l1_loss, softmax};
use addmul::train::NudgeTrainer;
use anyhow::{Result, ensure};

use super::Gen;

pub fn generate(g: &mut Gen) -> Result<()> {
    // Chapter 1: the fixed network on the article's leaf and on a sunflower.
    let net = ArticleNetwork::new([0.0; 3]);
    let inputs = SUNFLOWER.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    g.values.set("ch01.sunflower.inputs", inputs);
    for (name, object) in [("leaf", ARTICLE_LEAF), ("sunflower", SUNFLOWER)] {
        let e = net.evaluate(object)?;
        for (i, h) in e.hidden.iter().enumerate() {
            g.num(&format!("ch01.{name}.hidden{i}"), *h, 3);
        }
        g.num(&format!("ch01.{name}.score_leaf"), e.scores[0], 3);
        g.num(&format!("ch01.{name}.score_flower"), e.scores[1], 3);
        g.values.set(&format!("ch01.{name}.class"), e.class.name());
    }
    let with_bias = ArticleNetwork::new([0.25, 0.0, 0.0]).evaluate(ARTICLE_LEAF)?;
    g.num("ch01.leaf.hidden0_bias", with_bias.hidden[0], 3);
    // The bias moves the negative sum towards zero; the sign is what ReLU reads.
    let (plain, biased) = (net.evaluate(ARTICLE_LEAF)?.hidden[0], with_bias.hidden[0]);
    ensure!(biased < 0.0 && biased.abs() < plain.abs(), "chapter 1 says the bias moves the sum towards zero");
    g.num("ch01.leaf.hidden0_bias_relu", Activation::Relu.apply(biased), 0);

    // The network itself, its weights on the arrows (read back from the
    // crate's layers), the leaf's numbers in the neurons.
    let leaf = net.evaluate(ARTICLE_LEAF)?;
    let weights_of = |i: usize| -> Vec<Vec<f64>> {
        let w = net.as_mlp().layers()[i].weight().value();
        (0..w.nrows()).map(|r| w.row(r).iter().copied().collect()).collect()
    };
    let named = |names: &[&str], values: &[f64]| -> Vec<(String, String)> {
        names.iter().zip(values).map(|(n, v)| (n.to_string(), format!("{}", (v * 1000.0).round() / 1000.0))).collect()
    };
    NetworkDiagram::new("The article's network on its leaf: every weight, every sum")
        .layer(named(&["red", "green", "blue", "volume"], &ARTICLE_LEAF))
        .layer(named(&["hidden 1", "hidden 2", "hidden 3"], &leaf.hidden))
        .weights(weights_of(0))
        .layer(named(&["leaf", "flower"], &leaf.scores))
        .weights(weights_of(1))
        .save(g.figure("ch01_network.svg"))?;

    // The fixed network's answer over green and volume, red and blue as the
    // article's leaf, with generated objects on top.
    let objects = leafflower::generate(300, &mut addmul::core::rng(1));
    let (r, b) = (ARTICLE_LEAF[0], ARTICLE_LEAF[2]);
    let classify = |green: f64, log_volume: f64| {
        net.evaluate([r, green, b, 10f64.powf(log_volume)]).map_or(0, |e| e.class.index())
    };
    RegionMap::new(
        format!("The article's network with our weights (red {r}, blue {b})"),
        ("green (0-255)", (0.0, 255.0)),
        ("log10 volume (ml)", (0.0, 2.3)),
        classify,
    )
    .classes(&["leaf", "flower"])
    .points(objects.iter().map(|e| (e.features[1], e.features[3].log10(), e.class.index())).collect())
    .save(g.figure("ch01_article_regions.svg"))?;
    let fixed_right = objects.iter().filter(|o| net.evaluate(o.features).map(|e| e.class == o.class).unwrap_or(false));
    g.percent("ch01.fixed_accuracy", fixed_right.count() as f64 / objects.len() as f64);
    g.num("ch01.fixed_objects", objects.len() as f64, 0);

    // Chapter 2: the article's L1 loss and cross-entropy for the leaf.
    let leaf = net.evaluate(ARTICLE_LEAF)?;
    let scores = Matrix::from_column_slice(2, 1, &leaf.scores);
    let l1 = l1_loss(&scores, &Matrix::from_column_slice(2, 1, &[1.0, 0.0]))?;
    g.num("ch02.l1", l1, 3);
    let p = softmax(&scores);
    g.num("ch02.p_leaf", p[0], 4);
    g.num("ch02.p_flower", p[1], 4);
    let (ce, _) = cross_entropy(&scores, &[Class::Leaf.index()])?;
    g.num("ch02.ce_leaf", ce, 4);

    // The gradient of the leaf's cross-entropy with respect to the article's
    // first weight (0.10), by nudging and by backpropagation.
    let loss = |net: &ArticleNetwork| -> addmul::core::Result<f64> {
        let (s, _) = net.as_mlp().forward(&Matrix::from_column_slice(4, 1, &ARTICLE_LEAF))?;
        Ok(cross_entropy(&s, &[0])?.0)
    };
    let nudge = 1e-4;
    g.values.set("ch02.nudge", nudge);
    let mut nudged = net.clone();
    NudgeTrainer { nudge, central: false }.estimate_gradients(&mut nudged, &mut |n| loss(n))?;
    let one_sided = nudged.as_mlp().layers()[0].weight().grad()[(0, 0)];
    NudgeTrainer { nudge, central: true }.estimate_gradients(&mut nudged, &mut |n| loss(n))?;
    let central = nudged.as_mlp().layers()[0].weight().grad()[(0, 0)];
    let mut mlp = net.as_mlp().clone();
    let (s, cache) = mlp.forward(&Matrix::from_column_slice(4, 1, &ARTICLE_LEAF))?;
    let (_, ce_cache) = cross_entropy(&s, &[0])?;
    mlp.backward(&cache, &ce_cache.backward())?;
    let backprop = mlp.layers()[0].weight().grad()[(0, 0)];
    g.num("ch02.grad_one_sided", one_sided, 6);
    g.num("ch02.grad_central", central, 6);
    g.num("ch02.grad_backprop", backprop, 6);
    g.num("ch02.article_params", net.num_params() as f64, 0);

    // Training, overfitting, early stopping: the demo itself, with its output.
    let options = LeafFlowerOptions { figures: Some(g.dir.join("figures")), progress_every: 10, seed: None };
    let mut transcript = Vec::new();
    let runs = leaf_flower(&options, &mut transcript)?;
    let transcript = String::from_utf8(transcript)?;
    let dir = g.dir.display().to_string();
    g.text("leaf_flower_output.txt", &transcript.replace(&dir, "book/src/generated"))?;

    let s = &runs.standard;
    g.num("ch02.standard.params", s.classifier.network().num_params() as f64, 0);
    g.num("ch02.standard.nudge_passes", 2.0 * s.classifier.network().num_params() as f64, 0);
    g.num("ch02.standard.n_train", s.train.len() as f64, 0);
    g.num("ch02.standard.n_val", s.val.len() as f64, 0);
    g.num("ch02.standard.epochs_run", s.history.epochs.len() as f64, 0);
    let best = s.history.best().expect("validated");
    g.num("ch02.standard.best_epoch", best.epoch as f64, 0);
    g.percent("ch02.standard.val_accuracy", s.val_accuracy);
    g.percent("ch02.standard.train_accuracy", s.train_accuracy);

    loss_along_a_weight(g, s)?;

    let o = &runs.overfit;
    let best = o.history.best().expect("validated");
    let last = o.history.epochs.last().expect("trained");
    g.num("ch02.overfit.params", o.classifier.network().num_params() as f64, 0);
    g.num("ch02.overfit.epochs", o.history.epochs.len() as f64, 0);
    g.num("ch02.overfit.best_epoch", best.epoch as f64, 0);
    g.num("ch02.overfit.best_val_loss", best.val_loss.unwrap_or(f64::NAN), 3);
    g.num("ch02.overfit.last_val_loss", last.val_loss.unwrap_or(f64::NAN), 3);
    g.values.set("ch02.overfit.last_train_loss", format!("{:.1e}", last.train_loss));
    g.percent("ch02.overfit.train_accuracy", o.train_accuracy);
    g.percent("ch02.overfit.val_accuracy", o.val_accuracy);
    let e = &runs.early_stopped;
    g.num("ch02.early.patience", runs.patience as f64, 0);
    g.num("ch02.early.epochs_run", e.history.epochs.len() as f64, 0);
    g.percent("ch02.early.val_accuracy", e.val_accuracy);
    Ok(())
}

/// Chapter 2's slice through the loss surface: the standard network's mean
/// training loss as one weight (the fourth hidden neuron's volume weight)
/// moves and every other stays as trained, and gradient descent on that
/// weight alone from a poor start, with a small and a large learning rate.
fn loss_along_a_weight(g: &mut Gen, run: &TrainingRun) -> Result<()> {
    const WEIGHT: (usize, usize) = (3, 3);
    let (c, data) = (&run.classifier, &run.train);
    let trained = c.network().layers()[0].weight().value()[WEIGHT];
    let curve: Vec<(f64, f64)> = (0..=130)
        .map(|k| {
            let w = trained - 3.0 + 0.05 * f64::from(k);
            c.loss_with_weight(data, WEIGHT, w).map(|l| (w, l))
        })
        .collect::<addmul::core::Result<_>>()?;
    let lowest = curve.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1)).expect("points");
    let start = trained - 2.5;
    let (small, large) = (1.0, 8.0);
    let slow = c.descend_one_weight(data, WEIGHT, start, small, 10)?;
    let fast = c.descend_one_weight(data, WEIGHT, start, large, 10)?;
    // The chapter's claims: small steps go downhill every time and stay on
    // their side of the minimum; the large first step jumps over it.
    ensure!(slow.windows(2).all(|w| w[1].1 < w[0].1 && w[1].0 < lowest.0), "the small steps no longer creep downhill");
    ensure!(fast[1].0 > lowest.0 + 1.0, "the large first step no longer overshoots the minimum");
    LineChart::new(
        "Training loss along one weight, and gradient descent on it",
        "the fourth hidden neuron's volume weight",
        "mean cross-entropy (training set)",
    )
    .series(Series::new("loss, every other weight as trained", curve))
    .series(Series::new(format!("steps, learning rate {small}"), slow.clone()).with_dots())
    .series(Series::new(format!("steps, learning rate {large}"), fast.clone()).with_dots())
    .save(g.figure("ch02_loss_along_a_weight.svg"))?;
    g.num("ch02.slice.trained", trained, 2);
    g.num("ch02.slice.lowest_w", lowest.0, 2);
    g.num("ch02.slice.lowest_loss", lowest.1, 3);
    g.num("ch02.slice.start", start, 2);
    g.num("ch02.slice.start_loss", slow[0].1, 3);
    g.num("ch02.slice.small_lr", small, 0);
    g.num("ch02.slice.large_lr", large, 0);
    g.num("ch02.slice.steps", (slow.len() - 1) as f64, 0);
    g.num("ch02.slice.small_end", slow.last().expect("steps").0, 2);
    g.num("ch02.slice.small_end_loss", slow.last().expect("steps").1, 3);
    g.num("ch02.slice.large_first", fast[1].0, 2);
    g.num("ch02.slice.large_end", fast.last().expect("steps").0, 2);
    Ok(())
}
