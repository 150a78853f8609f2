//! addmul's shared vocabulary: the pieces every layer crate is built from.
//!
//! A neural network is numbers in, numbers out, made of additions and
//! multiplications. This crate fixes how those numbers are laid out and how
//! a layer talks to the rest of the system:
//!
//! - [`Matrix`]: a column-major `nalgebra` matrix. **Activations are
//!   `[features, n]`, one column per token or example**, and a weight
//!   `W: [out, in]` gives `y = W x + b`. [`gemm`] multiplies with any operand
//!   transposed at no cost.
//! - [`Float`]: layers are generic over `f32` (for speed) and `f64` (for
//!   gradient checks).
//! - [`Param`]: a value and its gradient; [`Parameters`] visits all of a
//!   model's parameters by stable, dotted name (`h.0.attn.c_attn.weight`), the
//!   order and names that optimizers and checkpoints rely on.
//! - [`Layer`]: `forward` returns the output and a cache; `backward` turns the
//!   output's gradient into the input's and **adds** into the parameters'.
//! - [`Init`] and [`rng`]: seeded, reproducible initialisation.
//! - [`GradCheck`]: compares a backward pass with central finite differences
//!   for every input and parameter entry, and reports the worst one.
//! - [`Error`]: shape, value and range errors that name what was involved.
//!
//! # Example
//! ```
//! use addmul_core::{gemm, Matrix, Op};
//!
//! // Three examples with two features each: a [2, 3] matrix.
//! let x = Matrix::from_columns(&[
//!     nalgebra::dvector![1.0, 2.0],
//!     nalgebra::dvector![3.0, 4.0],
//!     nalgebra::dvector![5.0, 6.0],
//! ]);
//! // One output neuron: W is [1, 2].
//! let w = Matrix::from_row_slice(1, 2, &[0.5, -1.0]);
//! let mut y = Matrix::zeros(1, 3);
//! gemm(1.0, &w, Op::N, &x, Op::N, 0.0, &mut y)?;
//! assert_eq!(y, Matrix::from_row_slice(1, 3, &[-1.5, -2.5, -3.5]));
//! # Ok::<(), addmul_core::Error>(())
//! ```
#![deny(missing_docs)]

mod error;
mod float;
pub mod gradcheck;
pub mod init;
mod layer;
mod matrix;
pub mod parallel;
mod param;
pub mod reduce;

pub use error::{Error, Result};
pub use float::{Float, bf16_to_f32, cast, exp_f32, f16_to_f32, tanh_f32};
pub use gradcheck::{GradCheck, GradReport};
pub use init::{Init, Rng, RngState, rng};
pub use layer::Layer;
pub use matrix::{
    AnyMatrix, Matrix, MatrixView, Op, Shape, accumulate_column_sum, add_to_columns, convert, dot, expect_finite,
    expect_shape, gemm, matmul, zeros,
};
pub use param::{Param, ParamKind, Parameters, ParametersExt, join_name, sum_of_squares, visit_child, visit_child_mut};

/// Re-exported so that users need not name nalgebra's version.
pub use nalgebra;
