//! The attention kernel on raw matrices, shared by the single-head layer and
//! by multi-head attention (which calls it once per head on row views).

use addmul_core::{AnyMatrix, Error, Float, Op, Result, Shape, gemm};
use addmul_softmax::{softmax_backward_in_place, softmax_in_place};
use nalgebra::{DMatrixView, DMatrixViewMut, Dyn, RawStorage, RawStorageMut};

use crate::Mask;

// ANCHOR: attend
/// Attention for one sequence: `out = V · softmax(scale · Kᵀ Q)`.
///
/// # Shapes
/// - `q`: `[d_k, T]`, one column per query
/// - `k`: `[d_k, S]`, `v`: `[d_v, S]`, one column per key
/// - `weights` (written): `S · T` numbers, the column-major `[S, T]` matrix
///   whose column `j` holds query `j`'s weights over the keys: they sum to 1
///   over the visible keys and are exactly 0 elsewhere
/// - `out` (written): `[d_v, T]`
///
/// # Errors
/// [`Error::ShapeMismatch`] if the shapes do not fit, or the padding mask does
/// not have one flag per key.
pub fn attend<T, SQ, SK, SV, SO>(
    q: &AnyMatrix<T, SQ>,
    k: &AnyMatrix<T, SK>,
    v: &AnyMatrix<T, SV>,
    scale: T,
    mask: &Mask<'_>,
    weights: &mut [T],
    out: &mut AnyMatrix<T, SO>,
) -> Result<()>
where
    T: Float,
    SQ: RawStorage<T, Dyn, Dyn>,
    SK: RawStorage<T, Dyn, Dyn>,
    SV: RawStorage<T, Dyn, Dyn>,
    SO: RawStorageMut<T, Dyn, Dyn>,
{
    let (keys, queries) = (k.ncols(), q.ncols());
    check_kernel_shapes(v, keys, queries, weights.len(), mask)?;
    // Scores: how well each key matches each query.
    gemm(scale, k, Op::T, q, Op::N, T::zero(), &mut DMatrixViewMut::from_slice(weights, keys, queries))?;
    // Each query's scores become weights that sum to 1 over what it may see.
    for (j, col) in weights.chunks_exact_mut(keys).enumerate() {
        mask_and_softmax(col, mask.visible_prefix(j, keys), mask.key_padding);
    }
    // Each output is the weighted mix of the values.
    gemm(T::one(), v, Op::N, &DMatrixView::from_slice(weights, keys, queries), Op::N, T::zero(), out)
}
// ANCHOR_END: attend

/// One query's scores `col` (over the keys) become its weights: a softmax
/// over the first `visible` keys, padding and the keys after them exactly 0.
pub(crate) fn mask_and_softmax<T: Float>(col: &mut [T], visible: usize, padding: Option<&[bool]>) {
    if let Some(padding) = padding {
        for (s, &pad) in col[..visible].iter_mut().zip(padding) {
            if pad {
                *s = T::NEG_INFINITY;
            }
        }
    }
    softmax_in_place(&mut col[..visible]);
    col[visible..].fill(T::zero());
}

pub(crate) fn check_kernel_shapes<T: Float, SV: RawStorage<T, Dyn, Dyn>>(
    v: &AnyMatrix<T, SV>,
    keys: usize,
    queries: usize,
    weights_len: usize,
    mask: &Mask<'_>,
) -> Result<()> {
    if keys == 0 {
        return Err(Error::Empty { what: "attention keys" });
    }
    if v.ncols() != keys {
        return Err(Error::shape("attention", format!("values [_, {keys}] (one per key)"), Shape::of(v)));
    }
    if weights_len != keys * queries {
        let got = Shape { rows: weights_len, cols: 1 };
        return Err(Error::shape("attention", format!("{} weights ([{keys}, {queries}])", keys * queries), got));
    }
    if let Some(p) = mask.key_padding
        && p.len() != keys
    {
        return Err(Error::shape(
            "attention",
            format!("key padding of length {keys}"),
            Shape { rows: p.len(), cols: 1 },
        ));
    }
    Ok(())
}

// ANCHOR: attend_backward
/// The backward of [`attend`], from its inputs, its `weights` and the
/// gradient `dout` of its output. Writes (does not accumulate) `dq`, `dk` and
/// `dv`; `scratch` is `S · T` numbers of working memory.
///
/// ```text
/// dV = dout Aᵀ                      (each value gets its share of dout)
/// dA = Vᵀ dout
/// dZ = A ⊙ (dA - Σᵢ A ⊙ dA)          (softmax backward, per query)
/// dQ = scale · K dZ,   dK = scale · Q dZᵀ
/// ```
///
/// Hidden keys have `A = 0`, so they get no gradient through the scores.
///
/// # Errors
/// [`Error::ShapeMismatch`] if the shapes do not fit.
pub fn attend_backward<T, SQ, SK, SV, SD, DQ, DK, DV>(
    q: &AnyMatrix<T, SQ>,
    k: &AnyMatrix<T, SK>,
    v: &AnyMatrix<T, SV>,
    scale: T,
    weights: &[T],
    dout: &AnyMatrix<T, SD>,
    dq: &mut AnyMatrix<T, DQ>,
    dk: &mut AnyMatrix<T, DK>,
    dv: &mut AnyMatrix<T, DV>,
    scratch: &mut [T],
) -> Result<()>
where
    T: Float,
    SQ: RawStorage<T, Dyn, Dyn>,
    SK: RawStorage<T, Dyn, Dyn>,
    SV: RawStorage<T, Dyn, Dyn>,
    SD: RawStorage<T, Dyn, Dyn>,
    DQ: RawStorageMut<T, Dyn, Dyn>,
    DK: RawStorageMut<T, Dyn, Dyn>,
    DV: RawStorageMut<T, Dyn, Dyn>,
{
    let (keys, queries) = (k.ncols(), q.ncols());
    check_kernel_shapes(v, keys, queries, weights.len(), &Mask::NONE)?;
    if scratch.len() != weights.len() {
        let got = Shape { rows: scratch.len(), cols: 1 };
        return Err(Error::shape("attention backward", format!("{} scratch numbers", weights.len()), got));
    }
    let a = DMatrixView::from_slice(weights, keys, queries);
    gemm(T::one(), dout, Op::N, &a, Op::T, T::zero(), dv)?;
    gemm(T::one(), v, Op::T, dout, Op::N, T::zero(), &mut DMatrixViewMut::from_slice(scratch, keys, queries))?;
    for (a, d) in weights.chunks_exact(keys).zip(scratch.chunks_exact_mut(keys)) {
        softmax_backward_in_place(a, d);
    }
    let d = DMatrixView::from_slice(scratch, keys, queries);
    gemm(scale, k, Op::N, &d, Op::N, T::zero(), dq)?;
    gemm(scale, q, Op::N, &d, Op::T, T::zero(), dk)
}
// ANCHOR_END: attend_backward
