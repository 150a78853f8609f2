//! The epoch loop: train, measure on held-out data, stop when it stops
//! improving.

use addmul_core::{Error, Float, Parameters, ParametersExt, Result, rng};

use crate::{Optimizer, Schedule, clip_grad_norm, shuffled_batches};

/// Whether an objective call should also run the backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Compute the loss and add its gradient into the parameters.
    Train,
    /// Compute the loss only.
    Eval,
}

/// The loss function [`fit`] trains on: `objective(model, examples, mode)`.
pub type Objective<'a, M, E> = dyn FnMut(&mut M, &[E], Mode) -> Result<f64> + 'a;

/// Stop when the validation loss has not improved for `patience` epochs,
/// and put back the weights of the best epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// The smallest decrease that counts as an improvement.
    pub min_delta: f64,
}

/// Settings for [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct FitConfig {
    /// Maximum number of passes over the training set.
    pub epochs: usize,
    /// Examples per optimizer step; `None` uses the whole training set
    /// (full-batch gradient descent).
    pub batch_size: Option<usize>,
    /// Learning rate per optimizer step; `None` keeps the optimizer's.
    pub schedule: Option<Schedule>,
    /// Global gradient-norm clipping.
    pub clip_grad_norm: Option<f64>,
    /// Early stopping on the validation loss.
    pub early_stopping: Option<EarlyStopping>,
    /// Seed for shuffling the batches.
    pub seed: u64,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig { epochs: 100, batch_size: None, schedule: None, clip_grad_norm: None, early_stopping: None, seed: 0 }
    }
}

/// The losses after one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean loss over the whole training set, measured after the epoch.
    pub train_loss: f64,
    /// Mean loss over the validation set, if there is one.
    pub val_loss: Option<f64>,
    /// The learning rate of the epoch's last step.
    pub lr: f64,
}

/// Everything [`fit`] measured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    /// One record per completed epoch.
    pub epochs: Vec<EpochRecord>,
    /// The epoch with the lowest validation loss, if validated.
    pub best_epoch: Option<usize>,
    /// Whether early stopping ended training (and restored the best weights).
    pub stopped_early: bool,
}

impl History {
    /// The record of the best epoch.
    pub fn best(&self) -> Option<&EpochRecord> {
        self.best_epoch.and_then(|e| self.epochs.get(e - 1))
    }
}

fn finite(what: &'static str, loss: f64) -> Result<f64> {
    if loss.is_finite() { Ok(loss) } else { Err(Error::NonFinite { what, value: loss, row: 0, col: 0 }) }
}

// ANCHOR: fit
/// Trains `model` on `train` for up to `config.epochs` epochs.
///
/// `objective(model, examples, mode)` returns the **mean** loss over
/// `examples`; in [`Mode::Train`] it also adds the gradient of that mean into
/// the model's parameters. Each epoch shuffles the training set into batches,
/// and for each batch zeroes the gradients, runs the objective, optionally
/// clips, and steps the optimizer. After each epoch the loss on the whole
/// training set and on `val` is measured (and reported to `on_epoch`).
///
/// # Errors
/// [`Error::Empty`] for an empty training set (or an empty validation set
/// with early stopping); [`Error::NonFinite`] as soon as a loss is NaN or
/// infinite; any error of the objective or optimizer.
pub fn fit<T, M, E, O>(
    model: &mut M,
    optimizer: &mut O,
    train: &[E],
    val: &[E],
    config: &FitConfig,
    objective: &mut Objective<'_, M, E>,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<History>
where
    T: Float,
    M: Parameters<T>,
    E: Clone,
    O: Optimizer<T>,
{
    if train.is_empty() {
        return Err(Error::Empty { what: "training set" });
    }
    if config.early_stopping.is_some() && val.is_empty() {
        return Err(Error::Empty { what: "validation set (early stopping needs one)" });
    }
    if let Some(s) = &config.schedule {
        s.validate()?;
    }
    let mut shuffle = rng(config.seed);
    let mut history = History::default();
    let mut best: Option<(f64, Vec<addmul_core::Matrix<T>>)> = None;
    let mut epochs_without_improvement = 0;
    let mut step = 0u64;
    for epoch in 1..=config.epochs {
        let batches = shuffled_batches(train.len(), config.batch_size.unwrap_or(train.len()), &mut shuffle)?;
        for batch in batches {
            let examples: Vec<E> = batch.iter().map(|&i| train[i].clone()).collect();
            if let Some(s) = &config.schedule {
                optimizer.set_lr(s.lr(step))?;
            }
            model.zero_grads();
            finite("training loss", objective(model, &examples, Mode::Train)?)?;
            if let Some(max) = config.clip_grad_norm {
                clip_grad_norm(model, max)?;
            }
            optimizer.step(model)?;
            step += 1;
        }
        let train_loss = finite("training loss", objective(model, train, Mode::Eval)?)?;
        let val_loss =
            if val.is_empty() { None } else { Some(finite("validation loss", objective(model, val, Mode::Eval)?)?) };
        let record = EpochRecord { epoch, train_loss, val_loss, lr: optimizer.lr() };
        history.epochs.push(record);
        on_epoch(&record);

        let Some(v) = val_loss else { continue };
        let min_delta = config.early_stopping.map_or(0.0, |e| e.min_delta);
        if best.as_ref().is_none_or(|(b, _)| v < b - min_delta) {
            let snapshot = if config.early_stopping.is_some() { model.snapshot() } else { Vec::new() };
            best = Some((v, snapshot));
            history.best_epoch = Some(epoch);
            epochs_without_improvement = 0;
        } else {
            epochs_without_improvement += 1;
        }
        if let Some(stop) = config.early_stopping
            && epochs_without_improvement >= stop.patience
        {
            if let Some((_, weights)) = &best {
                model.restore(weights)?;
            }
            history.stopped_early = true;
            break;
        }
    }
    Ok(history)
}
// ANCHOR_END: fit
