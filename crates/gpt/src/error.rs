//! What can go wrong when building, loading, training or sampling a GPT.

use std::path::PathBuf;

/// Errors of `addmul-gpt`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GptError {
    /// A configuration value is invalid.
    #[error("invalid configuration: {field} = {value}: {reason}")]
    Config {
        /// The field, e.g. `"n_embd"`.
        field: &'static str,
        /// Its value, as written.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A named preset does not exist.
    #[error("unknown preset `{name}` (known: {known})")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// The presets that exist.
        known: String,
    },
    /// A numeric error in a layer (shapes, values).
    #[error(transparent)]
    Numeric(#[from] addmul_core::Error),
    /// A token id is not in the model's vocabulary.
    #[error("token id {id} at position {position} is outside the vocabulary of {vocab_size}")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// Where it occurred in the input.
        position: usize,
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// The training text is too short for one window.
    #[error("the {split} split has {tokens} tokens; a training window needs block_size + 1 = {needed}")]
    CorpusTooShort {
        /// `"training"` or `"validation"`.
        split: &'static str,
        /// Its length in tokens.
        tokens: usize,
        /// How many are needed.
        needed: usize,
    },
    /// A run is resumed on another text than the one it was trained on.
    #[error("{path}: the run was trained on another text ({trained} tokens); this one has {given}")]
    CorpusMismatch {
        /// The run's `trainer.json`.
        path: std::path::PathBuf,
        /// Tokens of the text the run was trained on.
        trained: usize,
        /// Tokens of the text given now.
        given: usize,
    },
    /// Training would need more memory than the machine has available.
    #[error(
        "this configuration needs about {:.1} GB to train ({:.1} GB of weights and gradients over {threads} threads, {:.1} GB of optimizer state, {:.1} GB of activations) but {:.1} GB are available; make n_layer, n_embd, batch_size or block_size smaller, or use fewer threads",
        gb(estimate.total()), gb(estimate.weights), gb(estimate.optimizer), gb(estimate.activations), gb(*available)
    )]
    TooLarge {
        /// What training would need.
        estimate: crate::MemoryEstimate,
        /// Worker threads (each holds a copy of the weights and gradients).
        threads: usize,
        /// Bytes of memory available.
        available: f64,
    },
    /// Training stopped before `max_iters` because the observer asked it to
    /// (say, on Ctrl-C), after saving a checkpoint when there was a plan.
    #[error("training stopped at step {step} as asked{}", checkpoint.as_ref().map(|c| format!("; the checkpoint {} holds it", c.display())).unwrap_or_default())]
    Stopped {
        /// Steps taken.
        step: u64,
        /// The checkpoint written at that step, if any.
        checkpoint: Option<std::path::PathBuf>,
    },
    /// The loss stopped being a finite number.
    #[error("the training loss became {loss} at step {step}; stopped (the last good checkpoint is kept)")]
    NonFiniteLoss {
        /// The optimizer step.
        step: u64,
        /// The loss.
        loss: f64,
    },
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. `"writing"`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A checkpoint file is malformed, truncated, or does not match the
    /// model.
    #[error("checkpoint {path}: {problem}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// An error of code outside this crate that the trainer runs (what a
    /// [`CheckpointPlan`](crate::CheckpointPlan) writes beside the model,
    /// or how [`GptTrainer::resume_with`](crate::GptTrainer::resume_with)
    /// prepares it): low-rank adapters' files, say.
    #[error(transparent)]
    Extension(Box<dyn std::error::Error + Send + Sync>),
}

/// `Result` with [`GptError`].
pub type Result<T, E = GptError> = std::result::Result<T, E>;

impl GptError {
    pub(crate) fn config(field: &'static str, value: impl ToString, reason: impl Into<String>) -> Self {
        GptError::Config { field, value: value.to_string(), reason: reason.into() }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        GptError::Checkpoint { path: path.into(), problem: problem.into() }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| GptError::Io { action, path, source }
    }
}

/// Bytes in gigabytes.
fn gb(bytes: f64) -> f64 {
    bytes / 1e9
}
