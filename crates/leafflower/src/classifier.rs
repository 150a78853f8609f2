//! Learning the weights instead of choosing them.

use addmul_core::{Init, Layer, Matrix, ParametersExt, Result, rng};
use addmul_nn::{Activation, Mlp};
use addmul_softmax::{cross_entropy, softmax};
use addmul_train::{AdamW, AdamWConfig, EarlyStopping, EpochRecord, FitConfig, History, Mode, fit};

use crate::{Class, Example, Standardizer, generate};

/// Everything that decides a training run.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierConfig {
    /// Widths of the hidden layers (ReLU between layers).
    pub hidden: Vec<usize>,
    /// Generated training examples.
    pub n_train: usize,
    /// Generated validation examples.
    pub n_val: usize,
    /// Fraction of training labels flipped, as mistakes in a hand-labelled
    /// data set would be (validation labels stay correct).
    pub label_noise: f64,
    /// Maximum epochs.
    pub epochs: usize,
    /// Examples per step (`None`: the whole training set).
    pub batch_size: Option<usize>,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW weight decay (matrices only).
    pub weight_decay: f64,
    /// Early stopping on validation loss.
    pub early_stopping: Option<EarlyStopping>,
    /// Seed for data, initialisation and shuffling.
    pub seed: u64,
}

impl ClassifierConfig {
    // ANCHOR: standard_config
    /// A well-behaved run: plenty of data, a small network, early stopping.
    pub fn standard() -> Self {
        ClassifierConfig {
            hidden: vec![16],
            n_train: 800,
            n_val: 200,
            label_noise: 0.0,
            epochs: 300,
            batch_size: Some(32),
            lr: 0.01,
            weight_decay: 0.0,
            early_stopping: Some(EarlyStopping { patience: 30, min_delta: 0.0 }),
            seed: 2024,
        }
    }
    // ANCHOR_END: standard_config

    // ANCHOR: overfitting_config
    /// A run built to overfit: 40 training examples of which 6 are mislabelled,
    /// a network with thousands of weights, and no early stopping, so the
    /// whole story is recorded.
    pub fn overfitting() -> Self {
        ClassifierConfig {
            hidden: vec![64, 64],
            n_train: 40,
            n_val: 400,
            label_noise: 0.15,
            epochs: 1000,
            batch_size: None,
            lr: 0.001,
            weight_decay: 0.0,
            early_stopping: None,
            seed: 7,
        }
    }
    // ANCHOR_END: overfitting_config
}

/// A trained network together with the input scaling it was trained with.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    net: Mlp<f64>,
    standardizer: Standardizer,
}

impl Classifier {
    /// The network.
    pub fn network(&self) -> &Mlp<f64> {
        &self.net
    }

    /// `[p(leaf), p(flower)]` for one object.
    ///
    /// # Errors
    /// Never for a 4-feature input; the `Result` comes from the layers.
    pub fn probabilities(&self, features: [f64; 4]) -> Result<[f64; 2]> {
        let x = Matrix::from_column_slice(4, 1, &self.standardizer.apply(features));
        let p = softmax(&self.net.predict(&x)?);
        Ok([p[0], p[1]])
    }

    /// The class with the larger score.
    ///
    /// # Errors
    /// As [`Classifier::probabilities`].
    pub fn predict(&self, features: [f64; 4]) -> Result<Class> {
        let [leaf, flower] = self.probabilities(features)?;
        Ok(if leaf > flower { Class::Leaf } else { Class::Flower })
    }

    /// The fraction of `examples` classified correctly.
    ///
    /// # Errors
    /// As [`Classifier::probabilities`].
    pub fn accuracy(&self, examples: &[Example]) -> Result<f64> {
        let scores = self.net.predict(&self.standardizer.matrix(examples))?;
        let correct = examples
            .iter()
            .enumerate()
            .filter(|(j, e)| (scores[(1, *j)] > scores[(0, *j)]) == (e.class == Class::Flower))
            .count();
        Ok(correct as f64 / examples.len().max(1) as f64)
    }
}

// ANCHOR: one_weight
impl Classifier {
    /// Mean cross-entropy on `examples` when the first layer's weight
    /// `(neuron, input)` is set to `w`, every other weight as trained: one
    /// slice through the loss surface.
    ///
    /// # Errors
    /// [`addmul_core::Error::OutOfRange`] for a weight the first layer does
    /// not have, [`addmul_core::Error::Empty`] for no examples.
    pub fn loss_with_weight(&self, examples: &[Example], weight: (usize, usize), w: f64) -> Result<f64> {
        self.run_with_weight(examples, weight, w, Mode::Eval).map(|(loss, _)| loss)
    }

    /// Gradient descent on that one weight alone: from `start`, `steps` times
    /// `w ← w − lr · ∂L/∂w`, the slope by backpropagation. Returns `(w, loss)`
    /// before every step and after the last.
    ///
    /// # Errors
    /// As [`Classifier::loss_with_weight`].
    pub fn descend_one_weight(
        &self,
        examples: &[Example],
        weight: (usize, usize),
        start: f64,
        lr: f64,
        steps: usize,
    ) -> Result<Vec<(f64, f64)>> {
        let mut w = start;
        let mut path = Vec::with_capacity(steps + 1);
        for _ in 0..steps {
            let (loss, net) = self.run_with_weight(examples, weight, w, Mode::Train)?;
            path.push((w, loss));
            w -= lr * net.layers()[0].weight().grad()[weight];
        }
        path.push((w, self.loss_with_weight(examples, weight, w)?));
        Ok(path)
    }

    /// The network with the weight set to `w`, run on `examples`: the loss,
    /// and in training mode the gradients, which the returned network holds.
    fn run_with_weight(
        &self,
        examples: &[Example],
        (neuron, input): (usize, usize),
        w: f64,
        mode: Mode,
    ) -> Result<(f64, Mlp<f64>)> {
        if examples.is_empty() {
            return Err(addmul_core::Error::Empty { what: "examples" });
        }
        let mut net = self.net.clone();
        net.zero_grads();
        let first = net.linear_layers_mut().into_iter().next().expect("an Mlp has a layer").1;
        let shape = first.weight().shape();
        if neuron >= shape.rows {
            return Err(addmul_core::Error::OutOfRange { what: "first-layer neuron", index: neuron, len: shape.rows });
        }
        if input >= shape.cols {
            return Err(addmul_core::Error::OutOfRange { what: "first-layer input", index: input, len: shape.cols });
        }
        first.weight_mut().value_mut()[(neuron, input)] = w;
        let x = self.standardizer.matrix(examples);
        let targets: Vec<usize> = examples.iter().map(|e| e.class.index()).collect();
        let loss = objective(&mut net, &x, &targets, mode)?;
        Ok((loss, net))
    }
}
// ANCHOR_END: one_weight

/// The result of [`train_classifier`].
#[derive(Debug, Clone)]
pub struct TrainingRun {
    /// The trained classifier (the best epoch's weights with early stopping).
    pub classifier: Classifier,
    /// Losses per epoch.
    pub history: History,
    /// The generated training set.
    pub train: Vec<Example>,
    /// The generated validation set.
    pub val: Vec<Example>,
    /// Accuracy on the training set.
    pub train_accuracy: f64,
    /// Accuracy on the validation set.
    pub val_accuracy: f64,
}

// ANCHOR: objective
/// Mean cross-entropy of the network's two scores against the labels; in
/// training mode, also the backward pass.
fn objective(net: &mut Mlp<f64>, x: &Matrix<f64>, targets: &[usize], mode: Mode) -> Result<f64> {
    let (scores, cache) = net.forward(x)?;
    let (loss, ce) = cross_entropy(&scores, targets)?;
    if mode == Mode::Train {
        net.backward(&cache, &ce.backward())?;
    }
    Ok(loss)
}
// ANCHOR_END: objective

/// Flips the class of `round(fraction · n)` randomly chosen examples.
fn flip_labels(examples: &mut [Example], fraction: f64, rng: &mut addmul_core::Rng) -> Result<()> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(addmul_core::Error::InvalidValue {
            what: "label noise",
            value: fraction,
            requirement: "in [0, 1]",
        });
    }
    let n = (fraction * examples.len() as f64).round() as usize;
    for &i in rand::seq::index::sample(rng, examples.len(), n).iter().collect::<Vec<_>>().iter() {
        let e = &mut examples[i];
        e.class = if e.class == Class::Leaf { Class::Flower } else { Class::Leaf };
    }
    Ok(())
}

/// Generates data, then trains a network with AdamW on cross-entropy.
///
/// `on_epoch` sees every epoch's losses (for progress output).
///
/// # Errors
/// [`addmul_core::Error`] for an invalid configuration (no data, a zero
/// layer width, a learning rate `<= 0`) or a loss that stops being finite.
pub fn train_classifier(config: &ClassifierConfig, on_epoch: &mut dyn FnMut(&EpochRecord)) -> Result<TrainingRun> {
    let mut data_rng = rng(config.seed);
    let mut train = generate(config.n_train, &mut data_rng);
    flip_labels(&mut train, config.label_noise, &mut data_rng)?;
    let val = generate(config.n_val, &mut data_rng);
    let standardizer = Standardizer::fit(&train)?;

    let mut sizes = vec![4];
    sizes.extend(&config.hidden);
    sizes.push(2);
    let mut net = Mlp::new(&sizes, Activation::Relu, Init::HeNormal, &mut rng(config.seed ^ 0x5eed))?;
    let mut optimizer =
        AdamW::new(AdamWConfig { lr: config.lr, weight_decay: config.weight_decay, ..AdamWConfig::default() })?;
    let fit_config = FitConfig {
        epochs: config.epochs,
        batch_size: config.batch_size,
        early_stopping: config.early_stopping,
        seed: config.seed ^ 0xba7c,
        ..FitConfig::default()
    };
    let history = fit(
        &mut net,
        &mut optimizer,
        &train,
        &val,
        &fit_config,
        &mut |net, examples, mode| {
            let targets: Vec<usize> = examples.iter().map(|e| e.class.index()).collect();
            objective(net, &standardizer.matrix(examples), &targets, mode)
        },
        on_epoch,
    )?;
    let classifier = Classifier { net, standardizer };
    let train_accuracy = classifier.accuracy(&train)?;
    let val_accuracy = classifier.accuracy(&val)?;
    Ok(TrainingRun { classifier, history, train, val, train_accuracy, val_accuracy })
}
