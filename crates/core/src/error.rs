//! The error type shared by the numeric layer crates.

use crate::Shape;

/// What went wrong in a numeric operation.
///
/// Every variant names the operation and the values involved, so that the
/// message alone tells the caller what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two operands do not fit together.
    #[error("{op}: shape mismatch: expected {expected}, got {got}")]
    ShapeMismatch {
        /// The operation that was attempted, e.g. `"Linear::forward"`.
        op: &'static str,
        /// The shape the operation needed, e.g. `"[4, n]"`.
        expected: String,
        /// The shape it was given.
        got: Shape,
    },
    /// A value that must be finite was NaN or infinite.
    #[error("{what}: non-finite value {value} at [{row}, {col}]")]
    NonFinite {
        /// What held the value, e.g. `"loss"` or `"input"`.
        what: &'static str,
        /// The offending value.
        value: f64,
        /// Its row.
        row: usize,
        /// Its column.
        col: usize,
    },
    /// A scalar argument is outside its allowed range.
    #[error("{what} must be {requirement}, got {value}")]
    InvalidValue {
        /// The argument, e.g. `"learning rate"`.
        what: &'static str,
        /// The value given.
        value: f64,
        /// The rule it breaks, e.g. `"> 0"`.
        requirement: &'static str,
    },
    /// A collection that must not be empty is empty.
    #[error("{what} is empty")]
    Empty {
        /// What was empty, e.g. `"training set"`.
        what: &'static str,
    },
    /// The operation does not apply to this object, e.g. cached decoding on
    /// an attention layer that is not causal.
    #[error("{op}: {reason}")]
    Unsupported {
        /// The operation that was attempted.
        op: &'static str,
        /// Why it does not apply.
        reason: &'static str,
    },
    /// An index is outside its range.
    #[error("{what}: index {index} is out of range 0..{len}")]
    OutOfRange {
        /// What was indexed, e.g. `"target class"`.
        what: &'static str,
        /// The index given.
        index: usize,
        /// The length of the range.
        len: usize,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::ShapeMismatch`] for `op`.
    pub fn shape(op: &'static str, expected: impl Into<String>, got: Shape) -> Self {
        Error::ShapeMismatch { op, expected: expected.into(), got }
    }
}
