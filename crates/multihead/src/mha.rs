//! The multi-head attention layer.

use std::borrow::Cow;

use addmul_attention::{AttentionGrads, Mask, attend, attend_backward, attend_tiled, attend_tiled_backward};
use addmul_core::{
    AnyMatrix, Error, Float, Init, Layer, Matrix, Param, Parameters, Result, Rng, Shape, expect_shape, visit_child,
    visit_child_mut,
};
use addmul_nn::Linear;
use nalgebra::{Dyn, RawStorageMut};

use crate::{CrossKv, KvCache};

/// The sizes and switches of a [`MultiHeadAttention`] layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MultiHeadConfig {
    /// Model width `d`.
    pub d_model: usize,
    /// Number of heads `h`; each has width `d/h`.
    pub n_head: usize,
    /// Width of the keys' and values' source for cross-attention; `None` for
    /// self-attention.
    pub d_context: Option<usize>,
    /// Biases in the projections (GPT-2 has them).
    pub bias: bool,
    /// Hide each query's future.
    pub causal: bool,
    /// The factor on the scores `q·k` before the softmax; `None` for the
    /// usual `1/sqrt(d/h)`. (Hugging Face GPT-2 can turn the scaling off,
    /// `scale_attn_weights = false`, or divide further by the layer's number,
    /// `scale_attn_by_inverse_layer_idx`.)
    pub score_scale: Option<f64>,
}

impl MultiHeadConfig {
    /// Self-attention of width `d_model` with `n_head` heads, with biases, no mask.
    pub fn self_attention(d_model: usize, n_head: usize) -> Self {
        MultiHeadConfig { d_model, n_head, d_context: None, bias: true, causal: false, score_scale: None }
    }

    /// Cross-attention: queries of width `d_model`, keys and values from a
    /// context of width `d_context`.
    pub fn cross_attention(d_model: usize, d_context: usize, n_head: usize) -> Self {
        MultiHeadConfig { d_model, n_head, d_context: Some(d_context), bias: true, causal: false, score_scale: None }
    }

    /// With a causal mask.
    pub fn causal(self) -> Self {
        MultiHeadConfig { causal: true, ..self }
    }

    /// With or without biases.
    pub fn bias(self, bias: bool) -> Self {
        MultiHeadConfig { bias, ..self }
    }

    /// With `scale` on the scores instead of `1/sqrt(d/h)`.
    pub fn score_scale(self, scale: f64) -> Self {
        MultiHeadConfig { score_scale: Some(scale), ..self }
    }

    /// Checks the sizes.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] if a size is 0 or `d_model` is not divisible by
    /// `n_head`.
    pub fn validate(&self) -> Result<()> {
        if self.n_head == 0 {
            return Err(Error::InvalidValue { what: "n_head", value: 0.0, requirement: ">= 1" });
        }
        if self.d_model == 0 || self.d_context == Some(0) {
            return Err(Error::InvalidValue { what: "attention width", value: 0.0, requirement: ">= 1" });
        }
        if let Some(scale) = self.score_scale
            && !scale.is_finite()
        {
            return Err(Error::InvalidValue { what: "attention score scale", value: scale, requirement: "finite" });
        }
        if !self.d_model.is_multiple_of(self.n_head) {
            return Err(Error::InvalidValue {
                what: "n_embd (d_model) divided by n_head",
                value: self.d_model as f64 / self.n_head as f64,
                requirement: "a whole number (n_embd must be divisible by n_head)",
            });
        }
        Ok(())
    }

    /// A layer with every weight drawn from `init` and the output projection
    /// from `out_init` (GPT-2 scales it down by `1/sqrt(2 · n_layer)`); zero
    /// biases.
    ///
    /// # Errors
    /// As [`MultiHeadConfig::validate`].
    pub fn init_with<T: Float>(&self, init: Init, out_init: Init, rng: &mut Rng) -> Result<MultiHeadAttention<T>> {
        self.validate()?;
        let d = self.d_model;
        let proj = match self.d_context {
            None => Projections::Fused(Linear::new(d, 3 * d, self.bias, init, rng)),
            Some(dc) => Projections::Cross {
                c_q: Linear::new(d, d, self.bias, init, rng),
                c_kv: Linear::new(dc, 2 * d, self.bias, init, rng),
            },
        };
        let c_proj = Linear::new(d, d, self.bias, out_init, rng);
        Ok(MultiHeadAttention { proj, c_proj, n_head: self.n_head, causal: self.causal, score_scale: self.score_scale })
    }

    /// A layer with every weight drawn from `init`.
    ///
    /// # Errors
    /// As [`MultiHeadConfig::validate`].
    pub fn init<T: Float>(&self, init: Init, rng: &mut Rng) -> Result<MultiHeadAttention<T>> {
        self.init_with(init, init, rng)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Projections<T: Float> {
    /// Self-attention: `[Q; K; V] = c_attn x`, `c_attn: [3d, d]`.
    Fused(Linear<T>),
    /// Cross-attention: `Q = c_q x`, `[K; V] = c_kv c`.
    Cross { c_q: Linear<T>, c_kv: Linear<T> },
}

/// Multi-head attention (see the crate documentation).
///
/// # Shapes
/// - `x`: `[d, B·T]`, `B` sequences of `T` tokens side by side
/// - context (cross-attention): `[d_context, B·S]`
/// - output: `[d, B·T]`
///
/// Parameter names: `c_attn.weight` `[3d, d]` (rows `0..d` make the queries,
/// `d..2d` the keys, `2d..3d` the values; head `i` uses rows `i·d/h..(i+1)·d/h`
/// of each block, exactly GPT-2's layout), `c_proj.weight` `[d, d]`, and their
/// biases; for cross-attention `c_q.*`, `c_kv.*` (keys then values) and
/// `c_proj.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiHeadAttention<T: Float> {
    proj: Projections<T>,
    c_proj: Linear<T>,
    n_head: usize,
    causal: bool,
    score_scale: Option<f64>,
}

/// What [`MultiHeadAttention`]'s forward keeps, and the attention weights of
/// every head for inspection.
#[derive(Debug, Clone)]
pub struct MultiHeadCache<T: Float> {
    x: Matrix<T>,
    context: Option<Matrix<T>>,
    /// `[Q; K; V]` for self-attention, `Q` for cross-attention.
    q: Matrix<T>,
    /// `[K; V]` for cross-attention.
    kv: Option<Matrix<T>>,
    heads: Matrix<T>,
    /// Every head's `[S, T]` weights, or `None` where they were too many to
    /// keep (see [`TILED_FROM_SCORES`]): the backward and
    /// [`MultiHeadCache::weights`] compute them again.
    weights: Option<Vec<T>>,
    /// What the weights need to be computed again.
    scale: T,
    causal: bool,
    padding: Option<Vec<bool>>,
    seq_len: usize,
    context_len: usize,
    n_head: usize,
}

/// From this many scores per head and sequence (`S · T`) on, attention runs
/// tiled ([`attend_tiled`]): the weights are not kept, so that memory grows
/// with the sequence rather than its square, and a causal layer skips most
/// of the masked half. Below it the weights are kept, which for short
/// sequences is as fast and lets the backward reuse them.
pub const TILED_FROM_SCORES: usize = 128 * 128;

impl<T: Float> MultiHeadCache<T> {
    /// The heads' outputs side by side, `[d, B·T]`, before `W_O`: rows
    /// `i·d/h..(i+1)·d/h` are head `i`'s.
    pub fn heads(&self) -> &Matrix<T> {
        &self.heads
    }

    /// The `[S, T]` attention weights of head `head` in sequence `b`; column
    /// `j` is query `j`'s weights over the keys.
    pub fn weights(&self, b: usize, head: usize) -> Matrix<T> {
        let (s, t) = (self.context_len, self.seq_len);
        if let Some(weights) = &self.weights {
            let start = (b * self.n_head + head) * s * t;
            return Matrix::from_column_slice(s, t, &weights[start..start + s * t]);
        }
        // Computed again, as the tiled kernel computes them.
        let (d, hs) = (self.heads.nrows(), self.heads.nrows() / self.n_head);
        let source = self.kv.as_ref().unwrap_or(&self.q);
        let k_row = if self.kv.is_some() { 0 } else { d };
        let mut w = vec![T::zero(); s * t];
        let mut out = Matrix::zeros(hs, t);
        attend(
            &self.q.view((head * hs, b * t), (hs, t)),
            &source.view((k_row + head * hs, b * s), (hs, s)),
            &source.view((k_row + head * hs, b * s), (hs, s)),
            self.scale,
            &self.mask(b),
            &mut w,
            &mut out,
        )
        .expect("the shapes of a forward pass's own cache fit");
        Matrix::from_column_slice(s, t, &w)
    }

    /// The mask sequence `b`'s attention used.
    fn mask(&self, b: usize) -> Mask<'_> {
        let s = self.context_len;
        Mask { causal: self.causal, offset: 0, key_padding: self.padding.as_deref().map(|p| &p[b * s..(b + 1) * s]) }
    }
}

/// Rows of the per-head slices: where the queries, keys and values of head
/// `i` start in their source matrices.
struct Layout {
    d: usize,
    hs: usize,
    k_row: usize,
    v_row: usize,
}

impl Layout {
    fn q(&self, h: usize) -> usize {
        h * self.hs
    }
    fn k(&self, h: usize) -> usize {
        self.k_row + h * self.hs
    }
    fn v(&self, h: usize) -> usize {
        self.v_row + h * self.hs
    }
}

fn sequences(what: &'static str, cols: usize, len: usize) -> Result<usize> {
    if len == 0 {
        return Err(Error::InvalidValue { what, value: 0.0, requirement: ">= 1" });
    }
    if !cols.is_multiple_of(len) {
        return Err(Error::shape(
            "MultiHeadAttention::forward",
            format!("[_, a multiple of {len}] ({what})"),
            Shape { rows: 0, cols },
        ));
    }
    Ok(cols / len)
}

impl<T: Float> MultiHeadAttention<T> {
    /// A self-attention layer from given projections.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `c_attn` is `[3d, d]` and `c_proj`
    /// `[d, d]`; [`Error::InvalidValue`] if `d` is not divisible by `n_head`.
    pub fn from_parts(c_attn: Linear<T>, c_proj: Linear<T>, n_head: usize, causal: bool) -> Result<Self> {
        let d = c_attn.in_features();
        MultiHeadConfig { d_model: d, n_head, d_context: None, bias: false, causal, score_scale: None }.validate()?;
        expect_shape("MultiHeadAttention::from_parts", c_attn.weight().value(), Some(3 * d), Some(d))?;
        expect_shape("MultiHeadAttention::from_parts", c_proj.weight().value(), Some(d), Some(d))?;
        Ok(MultiHeadAttention { proj: Projections::Fused(c_attn), c_proj, n_head, causal, score_scale: None })
    }

    /// Model width `d`.
    pub fn d_model(&self) -> usize {
        self.c_proj.out_features()
    }

    /// Number of heads.
    pub fn n_head(&self) -> usize {
        self.n_head
    }

    /// Width of each head, `d/h`.
    pub fn head_dim(&self) -> usize {
        self.d_model() / self.n_head
    }

    /// Whether the layer hides each query's future.
    pub fn is_causal(&self) -> bool {
        self.causal
    }

    /// The output projection `W_O`.
    pub fn c_proj(&self) -> &Linear<T> {
        &self.c_proj
    }

    /// The fused query/key/value projection of a self-attention layer.
    pub fn c_attn(&self) -> Option<&Linear<T>> {
        match &self.proj {
            Projections::Fused(c) => Some(c),
            Projections::Cross { .. } => None,
        }
    }

    /// The linear layers by their parameter-name prefixes: `c_attn`, or
    /// `c_q` and `c_kv`; then `c_proj`.
    pub fn linear_layers(&self) -> Vec<(&'static str, &Linear<T>)> {
        let mut out = match &self.proj {
            Projections::Fused(c) => vec![("c_attn", c)],
            Projections::Cross { c_q, c_kv } => vec![("c_q", c_q), ("c_kv", c_kv)],
        };
        out.push(("c_proj", &self.c_proj));
        out
    }

    /// The linear layers by their parameter-name prefixes (`c_attn`, or
    /// `c_q` and `c_kv`; then `c_proj`), mutably: to freeze them or attach
    /// adapters to them.
    pub fn linear_layers_mut(&mut self) -> Vec<(&'static str, &mut Linear<T>)> {
        let mut out = match &mut self.proj {
            Projections::Fused(c) => vec![("c_attn", c)],
            Projections::Cross { c_q, c_kv } => vec![("c_q", c_q), ("c_kv", c_kv)],
        };
        out.push(("c_proj", &mut self.c_proj));
        out
    }

    fn scale(&self) -> T {
        match self.score_scale {
            Some(scale) => T::of(scale),
            None => T::one() / T::of(self.head_dim() as f64).sqrt(),
        }
    }

    fn layout(&self) -> Layout {
        let d = self.d_model();
        match self.proj {
            Projections::Fused(_) => Layout { d, hs: self.head_dim(), k_row: d, v_row: 2 * d },
            Projections::Cross { .. } => Layout { d, hs: self.head_dim(), k_row: 0, v_row: d },
        }
    }

    /// Self-attention over `x`, cut into sequences of `seq_len` tokens;
    /// `key_padding` (one flag per column) marks tokens no query may see.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a cross-attention layer;
    /// [`Error::ShapeMismatch`] or [`Error::InvalidValue`] for shapes that do
    /// not fit.
    pub fn forward_self(
        &self,
        x: &Matrix<T>,
        seq_len: usize,
        key_padding: Option<&[bool]>,
    ) -> Result<(Matrix<T>, MultiHeadCache<T>)> {
        self.run(Cow::Borrowed(x), seq_len, None, key_padding)
    }

    /// [`MultiHeadAttention::forward_self`] that keeps `x`, which the caller
    /// no longer needs, for the backward pass instead of copying it.
    ///
    /// # Errors
    /// As [`MultiHeadAttention::forward_self`].
    pub fn forward_self_owned(
        &self,
        x: Matrix<T>,
        seq_len: usize,
        key_padding: Option<&[bool]>,
    ) -> Result<(Matrix<T>, MultiHeadCache<T>)> {
        self.run(Cow::Owned(x), seq_len, None, key_padding)
    }

    /// Cross-attention: queries from `x` (sequences of `seq_len`), keys and
    /// values from `context` (as many sequences, of `context_len`).
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a self-attention layer; shape errors as
    /// [`MultiHeadAttention::forward_self`].
    pub fn forward_cross(
        &self,
        x: &Matrix<T>,
        seq_len: usize,
        context: &Matrix<T>,
        context_len: usize,
        context_padding: Option<&[bool]>,
    ) -> Result<(Matrix<T>, MultiHeadCache<T>)> {
        self.run(Cow::Borrowed(x), seq_len, Some((context, context_len)), context_padding)
    }

    /// [`MultiHeadAttention::forward_cross`] that keeps `x`, which the caller
    /// no longer needs, for the backward pass instead of copying it.
    ///
    /// # Errors
    /// As [`MultiHeadAttention::forward_cross`].
    pub fn forward_cross_owned(
        &self,
        x: Matrix<T>,
        seq_len: usize,
        context: &Matrix<T>,
        context_len: usize,
        context_padding: Option<&[bool]>,
    ) -> Result<(Matrix<T>, MultiHeadCache<T>)> {
        self.run(Cow::Owned(x), seq_len, Some((context, context_len)), context_padding)
    }

    // ANCHOR: forward
    fn run(
        &self,
        x: Cow<'_, Matrix<T>>,
        seq_len: usize,
        context: Option<(&Matrix<T>, usize)>,
        padding: Option<&[bool]>,
    ) -> Result<(Matrix<T>, MultiHeadCache<T>)> {
        let batches = sequences("sequence length", x.ncols(), seq_len)?;
        let (q, kv) = match (&self.proj, context) {
            (Projections::Fused(c_attn), None) => (c_attn.apply(&x)?, None),
            (Projections::Cross { c_q, c_kv }, Some((c, _))) => (c_q.apply(&x)?, Some(c_kv.apply(c)?)),
            (Projections::Fused(_), Some(_)) => {
                return Err(Error::Unsupported { op: "forward_cross", reason: "this is a self-attention layer" });
            }
            (Projections::Cross { .. }, None) => {
                return Err(Error::Unsupported { op: "forward_self", reason: "this is a cross-attention layer" });
            }
        };
        let (source_cols, s) = context.map_or((x.ncols(), seq_len), |(c, len)| (c.ncols(), len));
        if sequences("context length", source_cols, s)? != batches {
            let want = format!("context [_, {}] ({batches} sequences of {s})", batches * s);
            return Err(Error::shape("MultiHeadAttention::forward_cross", want, Shape { rows: 0, cols: source_cols }));
        }
        if let Some(p) = padding
            && p.len() != source_cols
        {
            let got = Shape { rows: p.len(), cols: 1 };
            return Err(Error::shape(
                "MultiHeadAttention::forward",
                format!("key padding of length {source_cols}"),
                got,
            ));
        }
        let (t, lay, scale) = (seq_len, self.layout(), self.scale());
        let keys_and_values = kv.as_ref().unwrap_or(&q);
        let mut heads = Matrix::zeros(lay.d, x.ncols());
        let tiled = s * t >= TILED_FROM_SCORES;
        let mut weights = if tiled { Vec::new() } else { vec![T::zero(); batches * self.n_head * s * t] };
        let mut scratch = Vec::new();
        for b in 0..batches {
            let mask = Mask { causal: self.causal, offset: 0, key_padding: padding.map(|p| &p[b * s..(b + 1) * s]) };
            for h in 0..self.n_head {
                let (q, k, v) = (
                    &q.view((lay.q(h), b * t), (lay.hs, t)),
                    &keys_and_values.view((lay.k(h), b * s), (lay.hs, s)),
                    &keys_and_values.view((lay.v(h), b * s), (lay.hs, s)),
                );
                let out = &mut heads.view_mut((lay.q(h), b * t), (lay.hs, t));
                if tiled {
                    attend_tiled(q, k, v, scale, &mask, out, &mut scratch)?;
                } else {
                    let block = (b * self.n_head + h) * s * t;
                    attend(q, k, v, scale, &mask, &mut weights[block..block + s * t], out)?;
                }
            }
        }
        let y = self.c_proj.apply(&heads)?;
        let cache = MultiHeadCache {
            x: x.into_owned(),
            context: context.map(|(c, _)| c.clone()),
            q,
            kv,
            heads,
            weights: (!tiled).then_some(weights),
            scale,
            causal: self.causal,
            padding: padding.map(<[bool]>::to_vec),
            seq_len: t,
            context_len: s,
            n_head: self.n_head,
        };
        Ok((y, cache))
    }
    // ANCHOR_END: forward

    /// The backward pass: adds every projection's gradients and returns the
    /// gradient of the input (and of the context, for cross-attention).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `dy` is not the forward output's shape.
    pub fn backward(&mut self, cache: &MultiHeadCache<T>, dy: &Matrix<T>) -> Result<AttentionGrads<T>> {
        let d_heads = self.c_proj.backward(&cache.heads, dy)?;
        let (lay, scale, n) = (self.layout(), self.scale(), cache.x.ncols());
        let (d, kv_cols) = (lay.d, cache.kv.as_ref().map_or(n, |kv| kv.ncols()));
        // Each head writes its gradients straight into the rows that feed the
        // projections' backward: `[dQ; dK; dV]` for self-attention, `dQ` and
        // `[dK; dV]` for cross-attention.
        match &mut self.proj {
            Projections::Fused(c_attn) => {
                let mut dqkv = Matrix::zeros(3 * d, n);
                {
                    let (mut dq, mut dkv) = dqkv.rows_range_pair_mut(0..d, d..3 * d);
                    let (mut dk, mut dv) = dkv.rows_range_pair_mut(0..d, d..2 * d);
                    heads_backward(cache, &d_heads, (&lay, scale), &mut dq, &mut dk, &mut dv)?;
                }
                Ok(AttentionGrads { dx: c_attn.backward(&cache.x, &dqkv)?, dcontext: None })
            }
            Projections::Cross { c_q, c_kv } => {
                let context = cache.context.as_ref().expect("a cross-attention cache holds its context");
                let mut dq = Matrix::zeros(d, n);
                let mut dkv = Matrix::zeros(2 * d, kv_cols);
                {
                    let (mut dk, mut dv) = dkv.rows_range_pair_mut(0..d, d..2 * d);
                    heads_backward(cache, &d_heads, (&lay, scale), &mut dq.view_mut((0, 0), (d, n)), &mut dk, &mut dv)?;
                }
                let dx = c_q.backward(&cache.x, &dq)?;
                Ok(AttentionGrads { dx, dcontext: Some(c_kv.backward(context, &dkv)?) })
            }
        }
    }

    // ANCHOR: cached
    /// Causal self-attention for new tokens `x` (`[d, t]`, one sequence) that
    /// follow the `cache.len()` tokens already in `cache`: only the new
    /// tokens' queries, keys and values are computed, and the new keys and
    /// values are appended to the cache.
    ///
    /// # Errors
    /// [`Error::Unsupported`] unless the layer is causal self-attention;
    /// [`Error::OutOfRange`] when the cache is full; shape errors.
    pub fn forward_cached(&self, x: &Matrix<T>, cache: &mut KvCache<T>) -> Result<Matrix<T>> {
        let Projections::Fused(c_attn) = &self.proj else {
            return Err(Error::Unsupported {
                op: "forward_cached",
                reason: "use forward_cross_cached for cross-attention",
            });
        };
        if !self.causal {
            return Err(Error::Unsupported { op: "forward_cached", reason: "a key/value cache needs a causal layer" });
        }
        let lay = self.layout();
        expect_shape("KvCache", &cache.k, Some(lay.d), None)?;
        let (start, t) = (cache.len, x.ncols());
        if start + t > cache.capacity() {
            return Err(Error::OutOfRange {
                what: "key/value cache position",
                index: start + t - 1,
                len: cache.capacity(),
            });
        }
        let qkv = c_attn.apply(x)?;
        cache.k.columns_mut(start, t).copy_from(&qkv.rows(lay.k_row, lay.d));
        cache.v.columns_mut(start, t).copy_from(&qkv.rows(lay.v_row, lay.d));
        let s = start + t;
        cache.scratch.resize(s * t, T::zero());
        let mut heads = Matrix::zeros(lay.d, t);
        let mask = Mask { causal: true, offset: start, key_padding: None };
        for h in 0..self.n_head {
            let rows = h * lay.hs;
            attend(
                &qkv.view((lay.q(h), 0), (lay.hs, t)),
                &cache.k.view((rows, 0), (lay.hs, s)),
                &cache.v.view((rows, 0), (lay.hs, s)),
                self.scale(),
                &mask,
                &mut cache.scratch,
                &mut heads.view_mut((rows, 0), (lay.hs, t)),
            )?;
        }
        cache.len = s;
        self.c_proj.apply(&heads)
    }
    // ANCHOR_END: cached

    /// Projects an encoder output once into the keys and values every
    /// decoding step of this cross-attention will read.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a self-attention layer; shape errors.
    pub fn project_context(&self, context: &Matrix<T>) -> Result<CrossKv<T>> {
        let Projections::Cross { c_kv, .. } = &self.proj else {
            return Err(Error::Unsupported { op: "project_context", reason: "this is a self-attention layer" });
        };
        let kv = c_kv.apply(context)?;
        let d = self.d_model();
        Ok(CrossKv { k: kv.rows(0, d).into_owned(), v: kv.rows(d, d).into_owned() })
    }

    /// Cross-attention of new queries `x` (`[d, t]`, one sequence) over a
    /// context projected by [`MultiHeadAttention::project_context`].
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a self-attention layer; shape errors.
    pub fn forward_cross_cached(&self, x: &Matrix<T>, kv: &CrossKv<T>, padding: Option<&[bool]>) -> Result<Matrix<T>> {
        let Projections::Cross { c_q, .. } = &self.proj else {
            return Err(Error::Unsupported { op: "forward_cross_cached", reason: "this is a self-attention layer" });
        };
        let q = c_q.apply(x)?;
        let (lay, t, s) = (self.layout(), x.ncols(), kv.len());
        let mut heads = Matrix::zeros(lay.d, t);
        let mut weights = vec![T::zero(); s * t];
        let mask = Mask { causal: false, offset: 0, key_padding: padding };
        for h in 0..self.n_head {
            let rows = h * lay.hs;
            attend(
                &q.view((rows, 0), (lay.hs, t)),
                &kv.k.view((rows, 0), (lay.hs, s)),
                &kv.v.view((rows, 0), (lay.hs, s)),
                self.scale(),
                &mask,
                &mut weights,
                &mut heads.view_mut((rows, 0), (lay.hs, t)),
            )?;
        }
        self.c_proj.apply(&heads)
    }
}

/// The attention backward of every head of every sequence: writes `dQ`
/// (`[d, B·T]`), `dK` and `dV` (`[d, B·S]`) from the gradient of the heads'
/// outputs.
fn heads_backward<T, SQ, SK, SV>(
    cache: &MultiHeadCache<T>,
    d_heads: &Matrix<T>,
    (lay, scale): (&Layout, T),
    dq: &mut AnyMatrix<T, SQ>,
    dk: &mut AnyMatrix<T, SK>,
    dv: &mut AnyMatrix<T, SV>,
) -> Result<()>
where
    T: Float,
    SQ: RawStorageMut<T, Dyn, Dyn>,
    SK: RawStorageMut<T, Dyn, Dyn>,
    SV: RawStorageMut<T, Dyn, Dyn>,
{
    let (t, s, n_head, hs) = (cache.seq_len, cache.context_len, cache.n_head, lay.hs);
    let batches = d_heads.ncols() / t;
    let source = cache.kv.as_ref().unwrap_or(&cache.q);
    let mut scratch = if cache.weights.is_some() { vec![T::zero(); s * t] } else { Vec::new() };
    for b in 0..batches {
        for h in 0..n_head {
            let rows = h * hs;
            let (q, k, v, dout) = (
                &cache.q.view((lay.q(h), b * t), (hs, t)),
                &source.view((lay.k(h), b * s), (hs, s)),
                &source.view((lay.v(h), b * s), (hs, s)),
                &d_heads.view((rows, b * t), (hs, t)),
            );
            let dq = &mut dq.view_mut((rows, b * t), (hs, t));
            let dk = &mut dk.view_mut((rows, b * s), (hs, s));
            let dv = &mut dv.view_mut((rows, b * s), (hs, s));
            match &cache.weights {
                Some(weights) => {
                    let block = (b * n_head + h) * s * t;
                    attend_backward(q, k, v, scale, &weights[block..block + s * t], dout, dq, dk, dv, &mut scratch)?;
                }
                None => attend_tiled_backward(q, k, v, scale, &cache.mask(b), dout, dq, dk, dv, &mut scratch)?,
            }
        }
    }
    Ok(())
}

/// As a [`Layer`], multi-head self-attention treats its input as one
/// sequence.
impl<T: Float> Layer<T> for MultiHeadAttention<T> {
    type Cache = MultiHeadCache<T>;

    fn forward(&self, x: &Matrix<T>) -> Result<(Matrix<T>, MultiHeadCache<T>)> {
        self.forward_self(x, x.ncols(), None)
    }

    fn backward(&mut self, cache: &MultiHeadCache<T>, dy: &Matrix<T>) -> Result<Matrix<T>> {
        Ok(MultiHeadAttention::backward(self, cache, dy)?.dx)
    }
}

impl<T: Float> Parameters<T> for MultiHeadAttention<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        match &self.proj {
            Projections::Fused(c_attn) => visit_child("c_attn", c_attn, f),
            Projections::Cross { c_q, c_kv } => {
                visit_child("c_q", c_q, f);
                visit_child("c_kv", c_kv, f);
            }
        }
        visit_child("c_proj", &self.c_proj, f);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        match &mut self.proj {
            Projections::Fused(c_attn) => visit_child_mut("c_attn", c_attn, f),
            Projections::Cross { c_q, c_kv } => {
                visit_child_mut("c_q", c_q, f);
                visit_child_mut("c_kv", c_kv, f);
            }
        }
        visit_child_mut("c_proj", &mut self.c_proj, f);
    }
}
