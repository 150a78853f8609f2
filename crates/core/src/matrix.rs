//! The matrix type, its layout, and the products every layer uses.
//!
//! # Layout
//! Activations are `[features, n]`: **one column per token or example**.
//! nalgebra stores matrices column-major, so each token's features are
//! contiguous in memory, and a weight `W: [out, in]` maps a batch with
//! `y = W x + b`. The memory of `W` is byte-identical to the `[in, out]`
//! row-major "Conv1D" weight that Hugging Face GPT-2 stores.
//!
//! # Products
//! [`gemm`] calls the `gemm` crate's kernels directly with the operands'
//! strides, so a transposed operand costs nothing. (nalgebra's own products
//! reach `matrixmultiply` only for a plain `a * b`; its `tr_mul` and
//! matrix-vector paths are several times slower.) `gemm` picks AVX-512, AVX2
//! or SSE kernels at run time; on the 2-core machine addmul is measured on,
//! it ran the products of a `cpu-small` training step 1.1-1.5x faster than
//! `matrixmultiply` (see `ARCHITECTURE.md`).

use std::fmt;

use nalgebra::{Dyn, RawStorage, RawStorageMut};

use crate::parallel::{PARALLEL_GEMM_WORK, PARALLEL_GEMV_ENTRIES};
use crate::{Error, Float, Result};

/// A dense, heap-allocated, column-major matrix.
pub type Matrix<T> = nalgebra::DMatrix<T>;

/// A borrowed, possibly strided, view of part of a [`Matrix`].
pub type MatrixView<'a, T> = nalgebra::DMatrixView<'a, T>;

/// Any nalgebra matrix with dynamic shape: an owned [`Matrix`] or a view.
pub type AnyMatrix<T, S> = nalgebra::Matrix<T, Dyn, Dyn, S>;

/// The shape of a matrix, printed as `[rows, cols]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Number of rows (features).
    pub rows: usize,
    /// Number of columns (tokens or examples).
    pub cols: usize,
}

impl Shape {
    /// The shape of `m`.
    pub fn of<T, S: RawStorage<T, Dyn, Dyn>>(m: &AnyMatrix<T, S>) -> Shape {
        Shape { rows: m.nrows(), cols: m.ncols() }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}]", self.rows, self.cols)
    }
}

/// A `[rows, cols]` matrix of zeros that costs no memory until written:
/// the allocator hands out zeroed pages (`calloc`) instead of writing zeros
/// into them, as nalgebra's `Matrix::zeros` does. Gradients are made this
/// way, so a model loaded only to run (sampling, evaluation) never pays for
/// them.
pub fn zeros<T: Float>(rows: usize, cols: usize) -> Matrix<T> {
    Matrix::from_vec(rows, cols, vec![T::zero(); rows * cols])
}

/// Whether a [`gemm`] operand is used as stored or transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Use the operand as stored.
    N,
    /// Use the operand's transpose.
    T,
}

fn op_dims<T, S: RawStorage<T, Dyn, Dyn>>(m: &AnyMatrix<T, S>, op: Op) -> (usize, usize, isize, isize) {
    let (rs, cs) = m.strides();
    let (rs, cs) = (rs as isize, cs as isize);
    match op {
        Op::N => (m.nrows(), m.ncols(), rs, cs),
        Op::T => (m.ncols(), m.nrows(), cs, rs),
    }
}

/// `C = alpha * op(A) * op(B) + beta * C`, in place.
///
/// Works on owned matrices and strided views alike (for example the columns
/// of one sequence, or the rows of one attention head). When `beta` is zero,
/// `C`'s previous contents are ignored, even if they are NaN.
///
/// # Errors
/// [`Error::ShapeMismatch`] if the shapes do not fit.
///
/// # Example
/// ```
/// use addmul_core::{gemm, Matrix, Op};
/// let a = Matrix::from_row_slice(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// let mut c = Matrix::zeros(2, 2);
/// gemm(1.0, &a, Op::N, &a, Op::T, 0.0, &mut c).unwrap(); // c = a aᵀ
/// assert_eq!(c, Matrix::from_row_slice(2, 2, &[14.0, 32.0, 32.0, 77.0]));
/// ```
pub fn gemm<T, SA, SB, SC>(
    alpha: T,
    a: &AnyMatrix<T, SA>,
    op_a: Op,
    b: &AnyMatrix<T, SB>,
    op_b: Op,
    beta: T,
    c: &mut AnyMatrix<T, SC>,
) -> Result<()>
where
    T: Float,
    SA: RawStorage<T, Dyn, Dyn>,
    SB: RawStorage<T, Dyn, Dyn>,
    SC: RawStorageMut<T, Dyn, Dyn>,
{
    let (m, k, rsa, csa) = op_dims(a, op_a);
    let (kb, n, rsb, csb) = op_dims(b, op_b);
    if k != kb {
        return Err(Error::shape(
            "gemm",
            format!("[{k}, _] for the right operand (left is [{m}, {k}])"),
            Shape { rows: kb, cols: n },
        ));
    }
    if c.nrows() != m || c.ncols() != n {
        return Err(Error::shape("gemm", format!("[{m}, {n}] for the output"), Shape::of(c)));
    }
    let (rsc, csc) = c.strides();
    if n == 1 && m > 0 && k > 0 {
        // SAFETY: as below; the pointers and strides describe live matrices
        // whose shapes were checked above.
        let done = unsafe {
            gemv(m, k, alpha, (a.as_ptr(), rsa, csa), (b.as_ptr(), rsb), beta, (c.as_mut_ptr(), rsc as isize))
        };
        if done {
            return Ok(());
        }
    }
    // SAFETY: shapes and strides come from live nalgebra matrices and were
    // checked above; `c` is borrowed mutably, so it cannot alias `a` or `b`.
    unsafe {
        gemm_kernel(
            m,
            k,
            n,
            alpha,
            (a.as_ptr(), rsa, csa),
            (b.as_ptr(), rsb, csb),
            beta,
            (c.as_mut_ptr(), rsc as isize, csc as isize),
        );
    }
    Ok(())
}

/// `C = alpha * A * B + beta * C` by the `gemm` crate, on this thread unless
/// [`parallelism`] says otherwise. When `beta` is zero, `C` is
/// not read, so it may be uninitialised.
///
/// # Safety
/// `A` is `m x k`, `B` is `k x n`, `C` is `m x n`, each given as a pointer
/// with its row and column strides in elements; the pointers must be valid
/// for those shapes and strides, and `c` must not alias `a` or `b`.
#[inline]
unsafe fn gemm_kernel<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    (a, rsa, csa): (*const T, isize, isize),
    (b, rsb, csb): (*const T, isize, isize),
    beta: T,
    (c, rsc, csc): (*mut T, isize, isize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let read_c = beta != T::zero();
    // SAFETY (whole body): the caller guarantees the extents; an empty sum
    // (k = 0) is handled here because it touches only C.
    unsafe {
        if k == 0 {
            for j in 0..n as isize {
                for i in 0..m as isize {
                    let cij = c.offset(i * rsc + j * csc);
                    cij.write(if read_c { beta * *cij } else { T::zero() });
                }
            }
            return;
        }
        // The `gemm` crate computes `dst = alpha · dst + beta · lhs · rhs`
        // (its names for the two scalars are the other way round from BLAS's)
        // and takes column strides before row strides.
        gemm::gemm(
            m,
            n,
            k,
            c,
            csc,
            rsc,
            read_c,
            a,
            csa,
            rsa,
            b,
            csb,
            rsb,
            beta,
            alpha,
            false,
            false,
            false,
            parallelism(m * n * k),
        );
    }
}

/// How the gemm crate runs a product of `work` multiply-adds: on the pool's
/// threads inside [`share_products`](crate::parallel::share_products) when
/// it is large, else on this thread alone (the callers split work across
/// threads themselves).
fn parallelism(work: usize) -> gemm::Parallelism {
    let threads = rayon::current_num_threads();
    if threads > 1 && work >= PARALLEL_GEMM_WORK && crate::parallel::products_shared() {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// The blocks of columns a large matrix-vector product with contiguous
/// columns is summed in (fixed, so that the result does not depend on the
/// number of threads).
const GEMV_BLOCKS: usize = 4;

/// A pointer that may cross to a worker thread: the rows each thread reads
/// and writes are disjoint, and the pointees outlive the scope.
#[derive(Clone, Copy)]
struct SendPtr<T>(*const T);
// SAFETY: only used inside `gemv`, whose threads read `A` and `x` (shared,
// unchanged) and write disjoint chunks of `y`.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so that a closure captures the whole wrapper).
    fn get(self) -> *const T {
        self.0
    }
}

/// Matrix-vector products (`n = 1`), which general kernels handle slowly
/// (they pack the whole matrix for one column). Returns `false` for layouts it
/// does not cover, leaving the work to [`gemm_kernel`].
///
/// Two layouts, both reading `A` contiguously:
/// - unit row stride (columns contiguous): `y += A[:, j] · x[j]` per column;
/// - unit column stride (rows contiguous): `y[i] = A[i, :] · x`, with eight
///   independent partial sums so that the compiler can vectorise.
///
/// A product is limited by how fast `A` streams from memory, and one core
/// cannot draw all of it: a large product is shared among the pool's
/// threads (cheaply when it is called on the pool:
/// [`parallel::on_pool`](crate::parallel::on_pool)). Every `y[i]` is summed in the
/// same order whatever the split, so the result is the same bit for bit on
/// any number of threads.
///
/// # Safety
/// `a` is `m x k` with the given strides, `b` has `k` entries with stride
/// `rsb`, `c` has `m` entries with stride `rsc`, all valid, `c` not aliasing.
unsafe fn gemv<T: Float>(
    m: usize,
    k: usize,
    alpha: T,
    (a, rsa, csa): (*const T, isize, isize),
    (b, rsb): (*const T, isize),
    beta: T,
    (c, rsc): (*mut T, isize),
) -> bool {
    if rsa != 1 && csa != 1 {
        return false;
    }
    // SAFETY (whole body): every offset stays inside the extents described by
    // the caller's shapes and strides.
    unsafe {
        let x: Vec<T> = (0..k).map(|j| *b.offset(j as isize * rsb)).collect();
        let mut y = vec![T::zero(); m];
        let a = SendPtr(a);
        // Rows `start..start + ys.len()` of `A x`, into `ys`.
        let rows = |start: usize, ys: &mut [T]| {
            if rsa == 1 {
                for (j, &xj) in x.iter().enumerate() {
                    let col = std::slice::from_raw_parts(a.get().offset(j as isize * csa + start as isize), ys.len());
                    for (yi, &aij) in ys.iter_mut().zip(col) {
                        *yi += aij * xj;
                    }
                }
            } else {
                for (i, yi) in ys.iter_mut().enumerate() {
                    let row = std::slice::from_raw_parts(a.get().offset((start + i) as isize * rsa), k);
                    *yi = dot_slices(row, &x);
                }
            }
        };
        use rayon::prelude::*;
        let threads = rayon::current_num_threads();
        let large = m * k >= PARALLEL_GEMV_ENTRIES;
        let share = threads > 1;
        if large && rsa == 1 && k >= GEMV_BLOCKS {
            // Columns contiguous: each block of columns is one contiguous
            // stretch of `A` (what memory streams fastest), summed into its
            // own partial `y`; the partial sums are added in a fixed order, so
            // the blocks, not the threads, decide the rounding.
            let block = k.div_ceil(GEMV_BLOCKS);
            let partial = |b: usize| {
                let cols = b * block..((b + 1) * block).min(k);
                let mut yb = vec![T::zero(); m];
                for j in cols {
                    let col = std::slice::from_raw_parts(a.get().offset(j as isize * csa), m);
                    let xj = x[j];
                    for (yi, &aij) in yb.iter_mut().zip(col) {
                        *yi += aij * xj;
                    }
                }
                yb
            };
            let parts: Vec<Vec<T>> = if share {
                (0..GEMV_BLOCKS).into_par_iter().with_max_len(1).map(partial).collect()
            } else {
                (0..GEMV_BLOCKS).map(partial).collect()
            };
            for i in 0..m {
                y[i] = (parts[0][i] + parts[1][i]) + (parts[2][i] + parts[3][i]);
            }
        } else if large && share && m >= 64 {
            // Rows contiguous: each thread takes whole rows (chunks of whole
            // cache lines of `y`, so that no two threads write one).
            let chunk = m.div_ceil(threads).next_multiple_of(16);
            y.par_chunks_mut(chunk).enumerate().for_each(|(i, ys)| rows(i * chunk, ys));
        } else {
            rows(0, &mut y);
        }
        for (i, yi) in y.into_iter().enumerate() {
            let ci = c.offset(i as isize * rsc);
            // With beta = 0, C may be uninitialised: write without reading.
            ci.write(if beta == T::zero() { alpha * yi } else { alpha * yi + beta * *ci });
        }
        true
    }
}

/// `Σ a_i b_i` with eight independent partial sums (vectorisable).
fn dot_slices<T: Float>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (&x, &y) in ar.iter().zip(br) {
        sum += x * y;
    }
    sum
}

/// `op(A) * op(B)` as a new matrix. See [`gemm`].
pub fn matmul<T, SA, SB>(a: &AnyMatrix<T, SA>, op_a: Op, b: &AnyMatrix<T, SB>, op_b: Op) -> Result<Matrix<T>>
where
    T: Float,
    SA: RawStorage<T, Dyn, Dyn>,
    SB: RawStorage<T, Dyn, Dyn>,
{
    let (m, k, rsa, csa) = op_dims(a, op_a);
    let (kb, n, rsb, csb) = op_dims(b, op_b);
    if k != kb {
        let got = Shape { rows: kb, cols: n };
        return Err(Error::shape("matmul", format!("[{k}, _] for the right operand (left is [{m}, {k}])"), got));
    }
    let len = m * n;
    if k == 0 || len == 0 {
        return Ok(Matrix::zeros(m, n));
    }
    // The product is written straight into fresh memory: no zeroing pass.
    let mut data: Vec<T> = Vec::with_capacity(len);
    // SAFETY: with beta = 0 both `gemv` and `gemm_kernel` write every entry
    // of C without reading it (`gemm` is told not to read it), so all `len`
    // entries are initialised before
    // `set_len`; the operands' pointers and strides come from live matrices
    // whose shapes were checked above.
    unsafe {
        let c = data.as_mut_ptr();
        let done = n == 1 && gemv(m, k, T::one(), (a.as_ptr(), rsa, csa), (b.as_ptr(), rsb), T::zero(), (c, 1));
        if !done {
            gemm_kernel(
                m,
                k,
                n,
                T::one(),
                (a.as_ptr(), rsa, csa),
                (b.as_ptr(), rsb, csb),
                T::zero(),
                (c, 1, m as isize),
            );
        }
        data.set_len(len);
    }
    Ok(Matrix::from_vec(m, n, data))
}

/// Checks that `m` is `[rows, cols]`; `None` accepts any size on that side.
///
/// # Errors
/// [`Error::ShapeMismatch`] naming `op` and both shapes.
pub fn expect_shape<T, S: RawStorage<T, Dyn, Dyn>>(
    op: &'static str,
    m: &AnyMatrix<T, S>,
    rows: Option<usize>,
    cols: Option<usize>,
) -> Result<()> {
    let ok = rows.is_none_or(|r| r == m.nrows()) && cols.is_none_or(|c| c == m.ncols());
    if ok {
        return Ok(());
    }
    let side = |d: Option<usize>, name: &str| d.map_or_else(|| name.to_string(), |d| d.to_string());
    Err(Error::shape(op, format!("[{}, {}]", side(rows, "_"), side(cols, "_")), Shape::of(m)))
}

/// Checks that every entry of `m` is finite.
///
/// # Errors
/// [`Error::NonFinite`] with the first offending entry.
pub fn expect_finite<T: Float, S: RawStorage<T, Dyn, Dyn>>(what: &'static str, m: &AnyMatrix<T, S>) -> Result<()> {
    for c in 0..m.ncols() {
        for r in 0..m.nrows() {
            let v = m[(r, c)];
            if !v.finite() {
                return Err(Error::NonFinite { what, value: v.as_f64(), row: r, col: c });
            }
        }
    }
    Ok(())
}

/// Converts a matrix between scalar types (e.g. an `f64` reference to `f32`).
pub fn convert<A: Float, B: Float>(m: &Matrix<A>) -> Matrix<B> {
    m.map(|x| B::of(x.as_f64()))
}

/// Adds the column vector `v` (`[rows, 1]`) to every column of `m`.
///
/// # Errors
/// [`Error::ShapeMismatch`] if `v` is not `[m.rows, 1]`.
pub fn add_to_columns<T: Float>(m: &mut Matrix<T>, v: &Matrix<T>) -> Result<()> {
    expect_shape("add_to_columns", v, Some(m.nrows()), Some(1))?;
    let (rows, v) = (m.nrows(), v.as_slice());
    if rows == 0 {
        return Ok(());
    }
    for col in m.as_mut_slice().chunks_exact_mut(rows) {
        for (x, &b) in col.iter_mut().zip(v) {
            *x += b;
        }
    }
    Ok(())
}

/// Adds the sum of `m`'s columns into `acc` (`[rows, 1]`): the gradient of a
/// bias that was broadcast over the columns.
///
/// # Errors
/// [`Error::ShapeMismatch`] if `acc` is not `[m.rows, 1]`.
pub fn accumulate_column_sum<T: Float>(acc: &mut Matrix<T>, m: &Matrix<T>) -> Result<()> {
    expect_shape("accumulate_column_sum", acc, Some(m.nrows()), Some(1))?;
    let (rows, acc) = (m.nrows(), acc.as_mut_slice());
    if rows == 0 {
        return Ok(());
    }
    for col in m.as_slice().chunks_exact(rows) {
        for (a, &x) in acc.iter_mut().zip(col) {
            *a += x;
        }
    }
    Ok(())
}

/// The sum of `x * y` over all entries, accumulated in `f64`.
///
/// # Errors
/// [`Error::ShapeMismatch`] if the shapes differ.
pub fn dot<T: Float>(x: &Matrix<T>, y: &Matrix<T>) -> Result<f64> {
    expect_shape("dot", y, Some(x.nrows()), Some(x.ncols()))?;
    Ok(x.iter().zip(y.iter()).map(|(&a, &b)| a.as_f64() * b.as_f64()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &Matrix<f64>, b: &Matrix<f64>) -> Matrix<f64> {
        let mut c = Matrix::zeros(a.nrows(), b.ncols());
        for i in 0..a.nrows() {
            for j in 0..b.ncols() {
                for k in 0..a.ncols() {
                    c[(i, j)] += a[(i, k)] * b[(k, j)];
                }
            }
        }
        c
    }

    #[test]
    fn gemm_matches_naive_product_for_every_transpose() {
        let a = Matrix::from_fn(7, 9, |i, j| (i * 9 + j) as f64 * 0.1 - 3.0);
        let b = Matrix::from_fn(9, 8, |i, j| ((i + 2 * j) % 5) as f64 - 2.0);
        let want = naive(&a, &b);
        let at = a.transpose();
        let bt = b.transpose();
        for (x, ox, y, oy) in
            [(&a, Op::N, &b, Op::N), (&at, Op::T, &b, Op::N), (&a, Op::N, &bt, Op::T), (&at, Op::T, &bt, Op::T)]
        {
            let got = matmul(x, ox, y, oy).unwrap();
            assert!((got - &want).abs().max() < 1e-12);
        }
    }

    #[test]
    fn matrix_vector_products_match_the_naive_product() {
        let a = Matrix::from_fn(13, 11, |i, j| ((i * 7 + j * 3) % 10) as f64 - 4.5);
        let at = a.transpose();
        let x = Matrix::from_fn(11, 1, |i, _| i as f64 * 0.25 - 1.0);
        let want = naive(&a, &x);
        assert_eq!(matmul(&a, Op::N, &x, Op::N).unwrap(), want);
        assert!((matmul(&at, Op::T, &x, Op::N).unwrap() - &want).abs().max() < 1e-12);
        // A strided vector (a row of a matrix) and accumulation with beta.
        let xs = x.transpose();
        let mut c = Matrix::from_element(13, 1, 1.0);
        gemm(2.0, &a, Op::N, &xs, Op::T, 0.5, &mut c).unwrap();
        assert!((c - (want * 2.0).add_scalar(0.5)).abs().max() < 1e-12);
        // A view whose rows and columns are both strided falls back.
        let big = Matrix::from_fn(26, 22, |i, j| (i + j) as f64);
        let v = big.view_with_steps((0, 0), (13, 11), (1, 1));
        assert_eq!(matmul(&v, Op::N, &x, Op::N).unwrap(), naive(&v.into_owned(), &x));
    }

    #[test]
    fn gemm_accumulates_with_beta_and_ignores_nan_with_beta_zero() {
        let a = Matrix::from_element(2, 2, 1.0_f64);
        let mut c = Matrix::from_element(2, 2, f64::NAN);
        gemm(1.0, &a, Op::N, &a, Op::N, 0.0, &mut c).unwrap();
        assert_eq!(c, Matrix::from_element(2, 2, 2.0));
        gemm(0.5, &a, Op::N, &a, Op::N, 1.0, &mut c).unwrap();
        assert_eq!(c, Matrix::from_element(2, 2, 3.0));
    }

    #[test]
    fn large_matrix_vector_products_are_the_same_bit_for_bit_on_any_number_of_threads() {
        // Above PARALLEL_GEMV_ENTRIES, in both layouts (columns contiguous:
        // `A x`; rows contiguous: `Aᵀ x`), with beta 0 and 1.
        let (m, k) = (1000, 700);
        let a = Matrix::<f32>::from_fn(m, k, |i, j| ((i * 31 + j * 7) % 23) as f32 / 7.0 - 1.5);
        let x = Matrix::<f32>::from_fn(k, 1, |i, _| ((i * 13) % 11) as f32 / 3.0 - 1.0);
        let xt = Matrix::<f32>::from_fn(m, 1, |i, _| ((i * 17) % 5) as f32 - 2.0);
        let products = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut y = Matrix::from_element(m, 1, 0.5f32);
                gemm(1.5, &a, Op::N, &x, Op::N, 1.0, &mut y).unwrap();
                let mut yt = Matrix::from_element(k, 1, f32::NAN);
                gemm(1.0, &a, Op::T, &xt, Op::N, 0.0, &mut yt).unwrap();
                (y, yt)
            })
        };
        let one = products(1);
        for threads in [2, 3, 4] {
            assert_eq!(products(threads), one, "{threads} threads");
        }
        // And outside any pool.
        let mut y = Matrix::from_element(m, 1, 0.5f32);
        gemm(1.5, &a, Op::N, &x, Op::N, 1.0, &mut y).unwrap();
        assert_eq!(y, one.0);
        // The right numbers: against f64.
        let (a64, x64, xt64) = (a.map(f64::from), x.map(f64::from), xt.map(f64::from));
        let want = (&a64 * &x64) * 1.5 + Matrix::from_element(m, 1, 0.5);
        let want_t = a64.transpose() * &xt64;
        for (got, want) in [(&one.0, &want), (&one.1, &want_t)] {
            let err = got.map(f64::from).iter().zip(want.iter()).fold(0.0f64, |e, (g, w)| e.max((g - w).abs()));
            assert!(err < 1e-3, "{err}");
        }
    }

    #[test]
    fn products_shared_among_threads_are_the_same_bit_for_bit() {
        // share_products hands large products to the gemm crate's threads:
        // they split the output, never a sum. Shapes above and below the
        // threshold, transposed operands, strided views, beta 0 and 1.
        let f = |r: usize, c: usize, s: usize| {
            Matrix::<f32>::from_fn(r, c, move |i, j| ((i * 31 + j * 7 + s) % 23) as f32 / 7.0 - 1.5)
        };
        for (m, k, n) in [(768, 768, 128), (2304, 768, 37), (50, 3072, 300), (17, 5, 3), (1000, 999, 65)] {
            let (a, b, bt) = (f(m, k, 1), f(k, n, 2), f(n, k, 3));
            let big = f(m + 3, k, 4);
            let av = big.view((2, 0), (m, k));
            let products = |threads: usize, shared: bool| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let run = || {
                        let mut c1 = Matrix::from_element(m, n, f32::NAN);
                        gemm(1.0, &a, Op::N, &b, Op::N, 0.0, &mut c1).unwrap();
                        let mut c2 = Matrix::from_element(m, n, 0.25f32);
                        gemm(0.5, &av, Op::N, &bt, Op::T, 1.0, &mut c2).unwrap();
                        let mut c3 = Matrix::from_element(k, n, 0.0f32);
                        gemm(1.0, &a, Op::T, &c1, Op::N, 0.0, &mut c3).unwrap();
                        (c1, c2, c3)
                    };
                    if shared { crate::parallel::share_products(run) } else { run() }
                })
            };
            let one = products(1, false);
            for threads in [2, 3] {
                assert_eq!(products(threads, true), one, "[{m}, {k}] x [{k}, {n}], {threads} threads");
            }
        }
        assert!(!crate::parallel::products_shared(), "the flag is reset");
    }

    #[test]
    fn gemm_works_on_column_and_row_views() {
        let a = Matrix::from_fn(6, 10, |i, j| (i as f64) - (j as f64) * 0.5);
        let b = Matrix::from_fn(6, 4, |i, j| (i * j) as f64);
        // rows 2..5 of a, columns 3..9, against rows 2..5 of b.
        let av = a.view((2, 3), (3, 6));
        let bv = b.view((2, 0), (3, 4));
        let mut c = Matrix::zeros(6, 4);
        gemm(1.0, &av, Op::T, &bv, Op::N, 0.0, &mut c).unwrap();
        assert_eq!(c, naive(&av.transpose(), &bv.into_owned()));
    }

    #[test]
    fn gemm_reports_mismatched_shapes() {
        let a = Matrix::<f32>::zeros(2, 3);
        let err = matmul(&a, Op::N, &a, Op::N).unwrap_err();
        assert!(err.to_string().contains("[2, 3]"), "{err}");
        let mut c = Matrix::<f32>::zeros(3, 3);
        let err = gemm(1.0, &a, Op::N, &a, Op::T, 0.0, &mut c).unwrap_err();
        assert_eq!(err.to_string(), "gemm: shape mismatch: expected [2, 2] for the output, got [3, 3]");
    }

    #[test]
    fn empty_inner_dimension_gives_zeros() {
        let a = Matrix::<f64>::zeros(3, 0);
        let b = Matrix::<f64>::zeros(0, 2);
        assert_eq!(matmul(&a, Op::N, &b, Op::N).unwrap(), Matrix::zeros(3, 2));
    }

    #[test]
    fn empty_inner_dimension_scales_c_by_beta() {
        let a = Matrix::<f32>::zeros(3, 0);
        let b = Matrix::<f32>::zeros(0, 2);
        let mut c = Matrix::from_element(3, 2, 4.0_f32);
        gemm(1.0, &a, Op::N, &b, Op::N, 0.5, &mut c).unwrap();
        assert_eq!(c, Matrix::from_element(3, 2, 2.0));
        c.fill(f32::NAN);
        gemm(1.0, &a, Op::N, &b, Op::N, 0.0, &mut c).unwrap();
        assert_eq!(c, Matrix::zeros(3, 2));
    }

    proptest::proptest! {
        /// The kernels' blocked paths (sizes past one register tile, every
        /// transpose, accumulation, NaN in C ignored with beta = 0) agree
        /// with a naive f64 product to f32 rounding.
        #[test]
        fn f32_gemm_matches_the_naive_product_at_kernel_sizes(
            m in 1usize..80, k in 1usize..80, n in 1usize..80,
            ta: bool, tb: bool, accumulate: bool, seed in 0u64..1000,
        ) {
            let val = |i: usize, j: usize, s: u64| (((i * 31 + j * 17) as u64 + s) % 23) as f64 / 8.0 - 1.4;
            let a = Matrix::from_fn(m, k, |i, j| val(i, j, seed));
            let b = Matrix::from_fn(k, n, |i, j| val(i, j, seed + 7));
            let c0 = Matrix::from_fn(m, n, |i, j| val(i, j, seed + 3));
            let (alpha, beta) = (0.75, if accumulate { -0.5 } else { 0.0 });
            let want = naive(&a, &b) * alpha + &c0 * beta;
            let (af, bf) = (convert::<f64, f32>(&a), convert::<f64, f32>(&b));
            let (at, bt) = (af.transpose(), bf.transpose());
            let (x, ox) = if ta { (&at, Op::T) } else { (&af, Op::N) };
            let (y, oy) = if tb { (&bt, Op::T) } else { (&bf, Op::N) };
            let mut c = if accumulate { convert::<f64, f32>(&c0) } else { Matrix::from_element(m, n, f32::NAN) };
            gemm(alpha as f32, x, ox, y, oy, beta as f32, &mut c).unwrap();
            let err = (convert::<f32, f64>(&c) - &want).abs().max();
            proptest::prop_assert!(err <= 1e-5 * (k as f64 + 1.0), "error {err}");
        }
    }

    #[test]
    fn expect_shape_names_the_wildcards() {
        let m = Matrix::<f64>::zeros(3, 5);
        let err = expect_shape("Linear::forward", &m, Some(4), None).unwrap_err();
        assert_eq!(err.to_string(), "Linear::forward: shape mismatch: expected [4, _], got [3, 5]");
    }
}
