//! What can go wrong when configuring, building, saving or loading adapters.

use std::path::PathBuf;

/// Errors of `addmul-lora`.
///
/// Every variant about a file names the file; the ones about a tensor or a
/// field of `adapter_config.json` name it too.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoraError {
    /// A [`LoraConfig`](crate::LoraConfig) value is invalid.
    #[error("invalid LoRA configuration: {field} = {value}: {reason}")]
    Config {
        /// The field, e.g. `"rank"`.
        field: &'static str,
        /// Its value, as written.
        value: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The rank is larger than the smaller side of the layer: the update
    /// `B A` would need more numbers than the full weight, for nothing.
    #[error(
        "rank {rank} is too large for {}: with {in_features} inputs and {out_features} outputs it can be at most {}",
        layer_label(layer), in_features.min(out_features)
    )]
    RankTooLarge {
        /// The layer's name (empty for a layer built on its own).
        layer: String,
        /// The rank asked for.
        rank: usize,
        /// The layer's inputs.
        in_features: usize,
        /// The layer's outputs.
        out_features: usize,
    },
    /// A numeric error in a layer (shapes, values).
    #[error(transparent)]
    Numeric(#[from] addmul_core::Error),
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. `"reading"`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An adapter is for a layer the model does not have.
    #[error("the model has no linear layer `{layer}` for its adapter")]
    NoSuchLayer {
        /// The adapter's layer name.
        layer: String,
    },
    /// A file is not what its name says: not JSON, not safetensors.
    #[error("{path}: {problem}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A field of `adapter_config.json` is missing, of the wrong type, out
    /// of range, or asks for something addmul does not do (DoRA, rsLoRA,
    /// per-layer ranks, ...).
    #[error("{path}: field `{field}`: {problem}")]
    ConfigField {
        /// The file.
        path: PathBuf,
        /// The field, e.g. `"lora_dropout"`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A layer that the configuration adapts has no tensor in the file.
    #[error("{path}: tensor `{tensor}` is missing (the base model's layer `{layer}` matches target_modules)")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor that should be there.
        tensor: String,
        /// The base model's layer it belongs to.
        layer: String,
    },
    /// A tensor's rank differs from the configuration's `r`.
    #[error("{path}: tensor `{tensor}` has rank {got} (shape {shape:?}) but adapter_config.json says r = {config}")]
    RankMismatch {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Its shape as stored (row-major).
        shape: Vec<usize>,
        /// The rank it has.
        got: usize,
        /// The rank the configuration says.
        config: usize,
    },
    /// A tensor does not fit its base layer: an adapter for another base
    /// model, or for other layer sizes.
    #[error("{path}: tensor `{tensor}` has shape {got:?}; the base model's layer `{layer}` needs {expected:?}")]
    TensorShape {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The base layer it belongs to.
        layer: String,
        /// The shape the base layer needs (row-major, as PEFT stores it).
        expected: Vec<usize>,
        /// The shape in the file.
        got: Vec<usize>,
    },
    /// A tensor that has no place in these adapters: not a LoRA tensor in
    /// PEFT's naming, a layer the base model does not have (an adapter made
    /// for another model), or a layer the configuration does not target.
    #[error("{path}: tensor `{tensor}`: {reason}")]
    UnexpectedTensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Why it does not belong.
        reason: String,
    },
    /// A tensor's element type is not a floating-point type addmul reads
    /// (`F32`, `F64`, and `F16`/`BF16`, which are widened exactly).
    #[error("{path}: tensor `{tensor}` has dtype {dtype}; addmul reads F32, F64, F16 and BF16")]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The dtype found.
        dtype: String,
    },
    /// A tensor holds NaN or an infinity.
    #[error("{path}: tensor `{tensor}` holds {value} at element {index}: the adapter is damaged")]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The row-major index of the first such element.
        index: usize,
        /// The value.
        value: f64,
    },
}

/// `Result` with [`LoraError`].
pub type Result<T, E = LoraError> = std::result::Result<T, E>;

impl LoraError {
    pub(crate) fn config(field: &'static str, value: impl ToString, reason: &'static str) -> Self {
        LoraError::Config { field, value: value.to_string(), reason }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| LoraError::Io { action, path, source }
    }

    pub(crate) fn field(path: impl Into<PathBuf>, field: impl Into<String>, problem: impl Into<String>) -> Self {
        LoraError::ConfigField { path: path.into(), field: field.into(), problem: problem.into() }
    }

    pub(crate) fn unexpected(path: impl Into<PathBuf>, tensor: impl Into<String>, reason: impl Into<String>) -> Self {
        LoraError::UnexpectedTensor { path: path.into(), tensor: tensor.into(), reason: reason.into() }
    }
}

fn layer_label(layer: &str) -> String {
    if layer.is_empty() { "the layer".to_string() } else { format!("layer `{layer}`") }
}
