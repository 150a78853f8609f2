//! Single-head attention with its three projections.

use addmul_core::{
    Error, Float, Init, Layer, Matrix, Param, Parameters, Result, Rng, Shape, visit_child, visit_child_mut,
};
use addmul_nn::Linear;

use crate::{Mask, attend, attend_backward};

/// The sizes and switches of an [`Attention`] layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionConfig {
    /// Width of the inputs that make the queries.
    pub d_model: usize,
    /// Width of the inputs that make the keys and values: `d_model` for
    /// self-attention, the encoder's width for cross-attention.
    pub d_context: usize,
    /// Width of queries and keys.
    pub d_k: usize,
    /// Width of values (and of the output).
    pub d_v: usize,
    /// Whether the projections have biases.
    pub bias: bool,
    /// Divide the scores by `sqrt(d_k)` (the article leaves this out).
    pub scaled: bool,
    /// Hide each query's future (a decoder, GPT).
    pub causal: bool,
}

impl AttentionConfig {
    /// Scaled self-attention without biases or mask, with `d_k = d_v = d_head`.
    pub fn new(d_model: usize, d_head: usize) -> Self {
        AttentionConfig {
            d_model,
            d_context: d_model,
            d_k: d_head,
            d_v: d_head,
            bias: false,
            scaled: true,
            causal: false,
        }
    }

    /// The same, with a causal mask.
    pub fn causal(self) -> Self {
        AttentionConfig { causal: true, ..self }
    }

    /// A layer with projection weights drawn from `init`.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] if a width is 0.
    pub fn init<T: Float>(&self, init: Init, rng: &mut Rng) -> Result<Attention<T>> {
        for (what, v) in
            [("d_model", self.d_model), ("d_context", self.d_context), ("d_k", self.d_k), ("d_v", self.d_v)]
        {
            if v == 0 {
                return Err(Error::InvalidValue { what, value: 0.0, requirement: ">= 1" });
            }
        }
        Ok(Attention {
            w_q: Linear::new(self.d_model, self.d_k, self.bias, init, rng),
            w_k: Linear::new(self.d_context, self.d_k, self.bias, init, rng),
            w_v: Linear::new(self.d_context, self.d_v, self.bias, init, rng),
            scaled: self.scaled,
            causal: self.causal,
        })
    }
}

/// Scaled dot-product attention with learned projections:
///
/// ```text
/// Q = W_q x,  K = W_k c,  V = W_v c        (c = x for self-attention)
/// y = V · softmax(Kᵀ Q / sqrt(d_k))        (softmax over the keys, per query)
/// ```
///
/// # Shapes
/// - `x`: `[d_model, B·T]`: `B` sequences of `T` tokens, side by side
/// - `c`: `[d_context, B·S]` for cross-attention (`S` tokens per sequence)
/// - `y`: `[d_v, B·T]`; each sequence attends only within itself
///
/// Parameter names: `w_q.weight`, `w_k.weight`, `w_v.weight` (and `.bias`).
#[derive(Debug, Clone, PartialEq)]
pub struct Attention<T: Float> {
    w_q: Linear<T>,
    w_k: Linear<T>,
    w_v: Linear<T>,
    scaled: bool,
    causal: bool,
}

/// What [`Attention`]'s forward keeps for the backward pass, and the
/// attention weights for inspection.
#[derive(Debug, Clone)]
pub struct AttentionCache<T: Float> {
    x: Matrix<T>,
    context: Option<Matrix<T>>,
    q: Matrix<T>,
    k: Matrix<T>,
    v: Matrix<T>,
    weights: Matrix<T>,
    seq_len: usize,
    context_len: usize,
}

impl<T: Float> AttentionCache<T> {
    /// All attention weights, `[S, B·T]`: the block of columns
    /// `b·T..(b+1)·T` belongs to sequence `b`, and entry `(i, j)` of a block is
    /// how much query `j` takes from key `i`.
    pub fn weights(&self) -> &Matrix<T> {
        &self.weights
    }

    /// The `[S, T]` weights of sequence `b`.
    pub fn weights_of(&self, b: usize) -> Matrix<T> {
        self.weights.columns(b * self.seq_len, self.seq_len).into_owned()
    }

    /// Queries, keys and values after projection.
    pub fn qkv(&self) -> (&Matrix<T>, &Matrix<T>, &Matrix<T>) {
        (&self.q, &self.k, &self.v)
    }
}

/// The gradients [`Attention::backward`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionGrads<T: Float> {
    /// With respect to the query inputs `x` (and, for self-attention, also
    /// through the keys and values).
    pub dx: Matrix<T>,
    /// With respect to the context, for cross-attention.
    pub dcontext: Option<Matrix<T>>,
}

fn batch_count(what: &'static str, cols: usize, len: usize) -> Result<usize> {
    if len == 0 {
        return Err(Error::InvalidValue { what, value: 0.0, requirement: ">= 1" });
    }
    if !cols.is_multiple_of(len) {
        return Err(Error::shape(
            "Attention::forward",
            format!("[_, a multiple of {len}] ({what})"),
            Shape { rows: 0, cols },
        ));
    }
    Ok(cols / len)
}

impl<T: Float> Attention<T> {
    /// A layer from given projections.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `w_q` and `w_k` differ in output width or
    /// `w_k` and `w_v` in input width.
    pub fn from_projections(
        w_q: Linear<T>,
        w_k: Linear<T>,
        w_v: Linear<T>,
        scaled: bool,
        causal: bool,
    ) -> Result<Self> {
        if w_k.out_features() != w_q.out_features() {
            return Err(Error::shape(
                "Attention",
                format!("W_k with {} outputs (as W_q)", w_q.out_features()),
                w_k.weight().shape(),
            ));
        }
        if w_v.in_features() != w_k.in_features() {
            return Err(Error::shape(
                "Attention",
                format!("W_v with {} inputs (as W_k)", w_k.in_features()),
                w_v.weight().shape(),
            ));
        }
        Ok(Attention { w_q, w_k, w_v, scaled, causal })
    }

    /// The query projection `[d_k, d_model]`.
    pub fn w_q(&self) -> &Linear<T> {
        &self.w_q
    }

    /// The key projection `[d_k, d_context]`.
    pub fn w_k(&self) -> &Linear<T> {
        &self.w_k
    }

    /// The value projection `[d_v, d_context]`.
    pub fn w_v(&self) -> &Linear<T> {
        &self.w_v
    }

    /// Whether the layer hides each query's future.
    pub fn is_causal(&self) -> bool {
        self.causal
    }

    /// The score scale, `1/sqrt(d_k)` or 1.
    pub fn scale(&self) -> T {
        if self.scaled { T::one() / T::of(self.w_q.out_features() as f64).sqrt() } else { T::one() }
    }

    /// Self-attention over `x`, cut into sequences of `seq_len` tokens.
    /// `key_padding` (one flag per column of `x`) marks padding tokens that no
    /// query may attend to.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` does not have `d_model` rows and a
    /// multiple of `seq_len` columns, or the padding has the wrong length;
    /// [`Error::InvalidValue`] if `seq_len` is 0.
    pub fn forward_self(
        &self,
        x: &Matrix<T>,
        seq_len: usize,
        key_padding: Option<&[bool]>,
    ) -> Result<(Matrix<T>, AttentionCache<T>)> {
        self.run(x, seq_len, None, key_padding)
    }

    /// Cross-attention: queries from `x` (sequences of `seq_len`), keys and
    /// values from `context` (sequences of `context_len`, the same number of
    /// sequences). `context_padding` marks padding in the context.
    ///
    /// # Errors
    /// As [`Attention::forward_self`], and [`Error::ShapeMismatch`] if the
    /// context holds a different number of sequences.
    pub fn forward_cross(
        &self,
        x: &Matrix<T>,
        seq_len: usize,
        context: &Matrix<T>,
        context_len: usize,
        context_padding: Option<&[bool]>,
    ) -> Result<(Matrix<T>, AttentionCache<T>)> {
        self.run(x, seq_len, Some((context, context_len)), context_padding)
    }

    fn run(
        &self,
        x: &Matrix<T>,
        seq_len: usize,
        context: Option<(&Matrix<T>, usize)>,
        padding: Option<&[bool]>,
    ) -> Result<(Matrix<T>, AttentionCache<T>)> {
        let batches = batch_count("sequence length", x.ncols(), seq_len)?;
        let (source, context_len) = context.unwrap_or((x, seq_len));
        let source_batches = batch_count("context length", source.ncols(), context_len)?;
        if source_batches != batches {
            return Err(Error::shape(
                "Attention::forward_cross",
                format!("context [_, {}] ({batches} sequences of {context_len})", batches * context_len),
                Shape::of(source),
            ));
        }
        if let Some(p) = padding
            && p.len() != source.ncols()
        {
            return Err(Error::shape(
                "Attention::forward",
                format!("key padding of length {}", source.ncols()),
                Shape { rows: p.len(), cols: 1 },
            ));
        }
        let q = self.w_q.apply(x)?;
        let k = self.w_k.apply(source)?;
        let v = self.w_v.apply(source)?;
        let (t, s) = (seq_len, context_len);
        let mut weights = Matrix::zeros(s, x.ncols());
        let mut y = Matrix::zeros(v.nrows(), x.ncols());
        let scale = self.scale();
        for b in 0..batches {
            let mask = Mask { causal: self.causal, offset: 0, key_padding: padding.map(|p| &p[b * s..(b + 1) * s]) };
            attend(
                &q.columns(b * t, t),
                &k.columns(b * s, s),
                &v.columns(b * s, s),
                scale,
                &mask,
                &mut weights.as_mut_slice()[b * s * t..(b + 1) * s * t],
                &mut y.columns_mut(b * t, t),
            )?;
        }
        let cache = AttentionCache {
            x: x.clone(),
            context: context.map(|(c, _)| c.clone()),
            q,
            k,
            v,
            weights,
            seq_len: t,
            context_len: s,
        };
        Ok((y, cache))
    }

    /// The backward pass: parameter gradients are added into the projections;
    /// the input (and context) gradients are returned.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `dy` is not the forward output's shape.
    pub fn backward(&mut self, cache: &AttentionCache<T>, dy: &Matrix<T>) -> Result<AttentionGrads<T>> {
        addmul_core::expect_shape("Attention::backward", dy, Some(cache.v.nrows()), Some(cache.x.ncols()))?;
        let (t, s) = (cache.seq_len, cache.context_len);
        let batches = cache.x.ncols() / t;
        let mut dq = Matrix::zeros(cache.q.nrows(), cache.q.ncols());
        let mut dk = Matrix::zeros(cache.k.nrows(), cache.k.ncols());
        let mut dv = Matrix::zeros(cache.v.nrows(), cache.v.ncols());
        let mut scratch = vec![T::zero(); s * t];
        let scale = self.scale();
        for b in 0..batches {
            attend_backward(
                &cache.q.columns(b * t, t),
                &cache.k.columns(b * s, s),
                &cache.v.columns(b * s, s),
                scale,
                &cache.weights.as_slice()[b * s * t..(b + 1) * s * t],
                &dy.columns(b * t, t),
                &mut dq.columns_mut(b * t, t),
                &mut dk.columns_mut(b * s, s),
                &mut dv.columns_mut(b * s, s),
                &mut scratch,
            )?;
        }
        let source = cache.context.as_ref().unwrap_or(&cache.x);
        let mut dx = self.w_q.backward(&cache.x, &dq)?;
        let mut dsource = self.w_k.backward(source, &dk)?;
        dsource += self.w_v.backward(source, &dv)?;
        if cache.context.is_some() {
            Ok(AttentionGrads { dx, dcontext: Some(dsource) })
        } else {
            dx += dsource;
            Ok(AttentionGrads { dx, dcontext: None })
        }
    }
}

/// As a [`Layer`], attention treats its whole input as **one** sequence
/// (self-attention, with the layer's own causal setting).
impl<T: Float> Layer<T> for Attention<T> {
    type Cache = AttentionCache<T>;

    fn forward(&self, x: &Matrix<T>) -> Result<(Matrix<T>, AttentionCache<T>)> {
        self.forward_self(x, x.ncols(), None)
    }

    fn backward(&mut self, cache: &AttentionCache<T>, dy: &Matrix<T>) -> Result<Matrix<T>> {
        Ok(Attention::backward(self, cache, dy)?.dx)
    }
}

impl<T: Float> Parameters<T> for Attention<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        visit_child("w_q", &self.w_q, f);
        visit_child("w_k", &self.w_k, f);
        visit_child("w_v", &self.w_v, f);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        visit_child_mut("w_q", &mut self.w_q, f);
        visit_child_mut("w_k", &mut self.w_k, f);
        visit_child_mut("w_v", &mut self.w_v, f);
    }
}
