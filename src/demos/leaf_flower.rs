//! Chapters 1 and 2: the article's network, then learning the weights.

use std::io::Write;
use std::path::PathBuf;

use addmul_leafflower::{
    ARTICLE_LEAF, ArticleNetwork, Class, ClassifierConfig, SUNFLOWER, TrainingRun, train_classifier,
};
use addmul_plot::{LineChart, RegionMap, Series};
use addmul_train::{EarlyStopping, EpochRecord};

use crate::{Error, Result};

/// Options of the leaf/flower demo.
#[derive(Debug, Clone, Default)]
pub struct LeafFlowerOptions {
    /// Seed of the well-behaved run (data, weights, shuffling).
    pub seed: Option<u64>,
    /// Where to write the figures (none if `None`).
    pub figures: Option<PathBuf>,
    /// Print every `progress_every`-th epoch (0: every 10th).
    pub progress_every: usize,
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { context: context.to_string(), source }
}

/// The three training runs of the demo.
#[derive(Debug, Clone)]
pub struct LeafFlowerRuns {
    /// The well-behaved run ([`ClassifierConfig::standard`]).
    pub standard: TrainingRun,
    /// The run built to overfit, recorded to the end.
    pub overfit: TrainingRun,
    /// The same run with early stopping.
    pub early_stopped: TrainingRun,
    /// The patience of the early-stopped run.
    pub patience: usize,
}

/// Runs the article's fixed network on its leaf and on a sunflower, trains a
/// classifier on generated data, then trains one built to overfit (and the
/// same one with early stopping), printing progress and results to `out`.
///
/// # Errors
/// A numeric error from training, a plotting error, or a failed write.
pub fn leaf_flower(options: &LeafFlowerOptions, out: &mut dyn Write) -> Result<LeafFlowerRuns> {
    let w = |e| Error::Io { context: "writing progress".into(), source: e };
    writeln!(out, "== The article's network (fixed weights) ==").map_err(w)?;
    for (name, object) in [("leaf", ARTICLE_LEAF), ("sunflower", SUNFLOWER)] {
        let eval = ArticleNetwork::new([0.0; 3]).evaluate(object)?;
        writeln!(
            out,
            "{name:>9} {object:?}: hidden [{:.3}, {:.3}, {:.3}] -> scores leaf {:.3}, flower {:.3} => {}",
            eval.hidden[0],
            eval.hidden[1],
            eval.hidden[2],
            eval.scores[0],
            eval.scores[1],
            eval.class.name()
        )
        .map_err(w)?;
    }
    let every = if options.progress_every == 0 { 10 } else { options.progress_every };

    writeln!(out, "\n== Learning the weights: 4-16-2 network, 800 training objects ==").map_err(w)?;
    let mut config = ClassifierConfig::standard();
    if let Some(seed) = options.seed {
        config.seed = seed;
    }
    let run = train_classifier(&config, &mut progress(out, every))?;
    summarise(out, &run).map_err(w)?;

    writeln!(out, "\n== Overfitting: 4-64-64-2 network, 40 objects (6 mislabelled) ==").map_err(w)?;
    let overfit = train_classifier(&ClassifierConfig::overfitting(), &mut progress(out, every * 10))?;
    summarise(out, &overfit).map_err(w)?;

    let patience = 50;
    writeln!(out, "\n== The same run with early stopping (patience {patience} epochs) ==").map_err(w)?;
    let config = ClassifierConfig {
        early_stopping: Some(EarlyStopping { patience, min_delta: 0.0 }),
        ..ClassifierConfig::overfitting()
    };
    let early_stopped = train_classifier(&config, &mut |_| {})?;
    summarise(out, &early_stopped).map_err(w)?;

    if let Some(dir) = &options.figures {
        std::fs::create_dir_all(dir).map_err(io("creating the figures folder"))?;
        decision_regions(&run).save(dir.join("leaf_flower_regions.svg"))?;
        loss_curves(&overfit).save(dir.join("leaf_flower_overfitting.svg"))?;
        writeln!(out, "\nfigures written to {}", dir.display()).map_err(w)?;
    }
    Ok(LeafFlowerRuns { standard: run, overfit, early_stopped, patience })
}

fn progress(out: &mut dyn Write, every: usize) -> impl FnMut(&EpochRecord) + '_ {
    move |r: &EpochRecord| {
        if r.epoch == 1 || r.epoch.is_multiple_of(every) {
            let val = r.val_loss.map_or(String::new(), |v| format!(", validation loss {v:.4}"));
            // Progress output is best effort: a closed pipe must not stop training.
            let _ = writeln!(out, "epoch {:>5}: training loss {:.4}{val}", r.epoch, r.train_loss);
        }
    }
}

fn summarise(out: &mut dyn Write, run: &TrainingRun) -> std::io::Result<()> {
    let h = &run.history;
    if let Some(best) = h.best() {
        writeln!(
            out,
            "best epoch {} (validation loss {:.4}); {} epochs run{}",
            best.epoch,
            best.val_loss.unwrap_or(f64::NAN),
            h.epochs.len(),
            if h.stopped_early { ", stopped early and restored the best weights" } else { "" }
        )?;
    }
    writeln!(out, "accuracy: training {:.1}%, validation {:.1}%", 100.0 * run.train_accuracy, 100.0 * run.val_accuracy)
}

/// The trained network's answer over green and volume, with red and blue
/// fixed at the training set's medians.
pub fn decision_regions(run: &TrainingRun) -> RegionMap<'_> {
    let median = |i: usize| {
        let mut v: Vec<f64> = run.train.iter().map(|e| e.features[i]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (r, b) = (median(0), median(2));
    let classify = move |g: f64, log_volume: f64| {
        let object = [r, g, b, 10f64.powf(log_volume)];
        run.classifier.predict(object).map_or(0, Class::index)
    };
    let points = run.val.iter().map(|e| (e.features[1], e.features[3].log10(), e.class.index())).collect();
    RegionMap::new(
        format!("What the trained network answers (red {r}, blue {b})"),
        ("green (0-255)", (0.0, 255.0)),
        ("log10 volume (ml)", (0.0, 2.3)),
        classify,
    )
    .classes(&["leaf", "flower"])
    .points(points)
}

/// Training and validation loss of the overfitting run, with the best epoch
/// marked.
pub fn loss_curves(run: &TrainingRun) -> LineChart {
    let e = &run.history.epochs;
    let train = e.iter().map(|r| (r.epoch as f64, r.train_loss)).collect();
    let val = e.iter().map(|r| (r.epoch as f64, r.val_loss.unwrap_or(f64::NAN))).collect();
    let mut chart = LineChart::new("Overfitting: training loss falls, validation loss rises", "epoch", "cross-entropy")
        .series(Series::new("training", train))
        .series(Series::new("validation", val))
        .log_x();
    if let Some(best) = run.history.best() {
        chart = chart.marker(best.epoch as f64, format!("best: epoch {}", best.epoch));
    }
    chart
}
