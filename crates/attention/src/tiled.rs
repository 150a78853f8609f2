//! Attention that never holds the whole `[S, T]` weight matrix: the queries
//! are taken a tile at a time, and each tile's scores and weights live only
//! in a scratch buffer of `S × QUERY_TILE` numbers. Memory grows linearly
//! with the sequence, not with its square.
//!
//! The backward pass keeps nothing from the forward but its inputs: it
//! computes each tile's weights again, the same operations in the same order,
//! so they are the very numbers the forward used. Under a causal mask, a tile
//! of queries looks only at the keys its last query may see, so the masked
//! half of the scores is (nearly) never computed.
//!
//! This is the structure of FlashAttention-2's outer loop; the keys of a tile
//! are taken all at once (one product per tile), which keeps every product
//! on the shared [`gemm`] kernels.

use addmul_core::{AnyMatrix, Error, Float, Op, Result, Shape, gemm};
use addmul_softmax::softmax_backward_in_place;
use nalgebra::{DMatrixView, DMatrixViewMut, Dyn, RawStorage, RawStorageMut};

use crate::Mask;
use crate::kernel::{check_kernel_shapes, mask_and_softmax};

/// Queries per tile: each tile's scores are `S × QUERY_TILE` numbers.
pub const QUERY_TILE: usize = 64;

/// The weights of the queries `j0..j0 + width` (a tile) over the keys each may
/// see, into `p` (`[visible, width]`, column-major; `visible` keys: those the
/// tile's last query may see). Returns `visible`.
fn tile_weights<T, SQ, SK>(
    q: &AnyMatrix<T, SQ>,
    k: &AnyMatrix<T, SK>,
    scale: T,
    mask: &Mask<'_>,
    (j0, width): (usize, usize),
    p: &mut Vec<T>,
) -> Result<usize>
where
    T: Float,
    SQ: RawStorage<T, Dyn, Dyn>,
    SK: RawStorage<T, Dyn, Dyn>,
{
    let keys = k.ncols();
    let visible = mask.visible_prefix(j0 + width - 1, keys);
    p.resize(visible * width, T::zero());
    let mut s = DMatrixViewMut::from_slice(&mut p[..visible * width], visible, width);
    gemm(scale, &k.columns(0, visible), Op::T, &q.columns(j0, width), Op::N, T::zero(), &mut s)?;
    for (c, col) in p[..visible * width].chunks_exact_mut(visible).enumerate() {
        mask_and_softmax(col, mask.visible_prefix(j0 + c, keys), mask.key_padding);
    }
    Ok(visible)
}

// ANCHOR: attend_tiled
/// [`attend`](crate::attend) without the `[S, T]` weights: `out = V ·
/// softmax(scale · Kᵀ Q)`, a tile of [`QUERY_TILE`] queries at a time.
/// `scratch` is working memory (grown to `S · QUERY_TILE` numbers).
///
/// # Errors
/// [`Error::ShapeMismatch`] if the shapes do not fit, or the padding mask does
/// not have one flag per key.
pub fn attend_tiled<T, SQ, SK, SV, SO>(
    q: &AnyMatrix<T, SQ>,
    k: &AnyMatrix<T, SK>,
    v: &AnyMatrix<T, SV>,
    scale: T,
    mask: &Mask<'_>,
    out: &mut AnyMatrix<T, SO>,
    scratch: &mut Vec<T>,
) -> Result<()>
where
    T: Float,
    SQ: RawStorage<T, Dyn, Dyn>,
    SK: RawStorage<T, Dyn, Dyn>,
    SV: RawStorage<T, Dyn, Dyn>,
    SO: RawStorageMut<T, Dyn, Dyn>,
{
    let (keys, queries) = (k.ncols(), q.ncols());
    check_kernel_shapes(v, keys, queries, keys * queries, mask)?;
    check_out(out, v.nrows(), queries)?;
    for j0 in (0..queries).step_by(QUERY_TILE) {
        let width = QUERY_TILE.min(queries - j0);
        let visible = tile_weights(q, k, scale, mask, (j0, width), scratch)?;
        let p = DMatrixView::from_slice(&scratch[..visible * width], visible, width);
        gemm(T::one(), &v.columns(0, visible), Op::N, &p, Op::N, T::zero(), &mut out.columns_mut(j0, width))?;
    }
    Ok(())
}
// ANCHOR_END: attend_tiled

// ANCHOR: attend_tiled_backward
/// The backward of [`attend_tiled`] from its inputs and the gradient `dout`
/// of its output; each tile's weights are computed again. Writes (does not
/// accumulate) `dq`, `dk` and `dv`; `scratch` is working memory (grown to
/// `2 · S · QUERY_TILE` numbers).
///
/// Per tile of queries `t`, over the `visible` keys:
/// ```text
/// P = softmax(scale · Kᵀ Q_t)       (as the forward computed it)
/// dV += dout_t Pᵀ,   dP = Vᵀ dout_t,   dZ = P ⊙ (dP - Σᵢ P ⊙ dP)
/// dQ_t = scale · K dZ,   dK += scale · Q_t dZᵀ
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`] if the shapes do not fit.
#[allow(clippy::too_many_arguments)]
pub fn attend_tiled_backward<T, SQ, SK, SV, SD, DQ, DK, DV>(
    q: &AnyMatrix<T, SQ>,
    k: &AnyMatrix<T, SK>,
    v: &AnyMatrix<T, SV>,
    scale: T,
    mask: &Mask<'_>,
    dout: &AnyMatrix<T, SD>,
    dq: &mut AnyMatrix<T, DQ>,
    dk: &mut AnyMatrix<T, DK>,
    dv: &mut AnyMatrix<T, DV>,
    scratch: &mut Vec<T>,
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
    check_kernel_shapes(v, keys, queries, keys * queries, mask)?;
    check_out(dout, v.nrows(), queries)?;
    check_out(dq, q.nrows(), queries)?;
    check_out(dk, k.nrows(), keys)?;
    check_out(dv, v.nrows(), keys)?;
    dk.fill(T::zero());
    dv.fill(T::zero());
    let mut ds = Vec::new();
    std::mem::swap(&mut ds, scratch);
    let mut p = Vec::new();
    for j0 in (0..queries).step_by(QUERY_TILE) {
        let width = QUERY_TILE.min(queries - j0);
        let visible = tile_weights(q, k, scale, mask, (j0, width), &mut p)?;
        let p_t = DMatrixView::from_slice(&p[..visible * width], visible, width);
        let dout_t = dout.columns(j0, width);
        gemm(T::one(), &dout_t, Op::N, &p_t, Op::T, T::one(), &mut dv.columns_mut(0, visible))?;
        ds.resize(visible * width, T::zero());
        let mut d = DMatrixViewMut::from_slice(&mut ds[..visible * width], visible, width);
        gemm(T::one(), &v.columns(0, visible), Op::T, &dout_t, Op::N, T::zero(), &mut d)?;
        for (a, g) in p[..visible * width].chunks_exact(visible).zip(ds[..visible * width].chunks_exact_mut(visible)) {
            softmax_backward_in_place(a, g);
        }
        let d = DMatrixView::from_slice(&ds[..visible * width], visible, width);
        gemm(scale, &k.columns(0, visible), Op::N, &d, Op::N, T::zero(), &mut dq.columns_mut(j0, width))?;
        gemm(scale, &q.columns(j0, width), Op::N, &d, Op::T, T::one(), &mut dk.columns_mut(0, visible))?;
    }
    // Keep the larger buffer for the next call.
    *scratch = if ds.capacity() >= p.capacity() { ds } else { p };
    Ok(())
}
// ANCHOR_END: attend_tiled_backward

fn check_out<T: Float, S: RawStorage<T, Dyn, Dyn>>(m: &AnyMatrix<T, S>, rows: usize, cols: usize) -> Result<()> {
    if m.nrows() != rows || m.ncols() != cols {
        return Err(Error::shape("tiled attention", format!("[{rows}, {cols}]"), Shape::of(m)));
    }
    Ok(())
}
