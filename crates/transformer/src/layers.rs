//! The encoder and decoder layers: attention and feed-forward sub-layers,
//! each wrapped in a residual connection and a layer norm.

use addmul_core::{Float, Init, Layer, Matrix, Param, Parameters, Rng, visit_child, visit_child_mut};
use addmul_dropout::{Dropout, DropoutMask};
use addmul_layernorm::{LayerNorm, LayerNormCache};
use addmul_multihead::{CrossKv, KvCache, MultiHeadAttention, MultiHeadCache, MultiHeadConfig};
use addmul_nn::{Activation, Mlp, MlpCache};

use crate::{NormPlacement, Result, TransformerConfig};

/// Dropout while training: the probability and the generator its masks come
/// from. Without a generator (evaluation, decoding) nothing is dropped.
pub(crate) struct Dropper<'a> {
    dropout: Option<Dropout>,
    rng: Option<&'a mut Rng>,
}

impl<'a> Dropper<'a> {
    /// No dropout.
    pub(crate) fn off() -> Dropper<'static> {
        Dropper { dropout: None, rng: None }
    }

    /// Dropout with probability `p`, drawn from `rng` when there is one.
    pub(crate) fn new(p: f64, rng: Option<&'a mut Rng>) -> Result<Self> {
        let dropout = (p > 0.0 && rng.is_some()).then(|| Dropout::new(p)).transpose()?;
        Ok(Dropper { dropout, rng })
    }

    pub(crate) fn apply<T: Float>(&mut self, x: Matrix<T>) -> (Matrix<T>, Option<DropoutMask<T>>) {
        match (&self.dropout, &mut self.rng) {
            (Some(d), Some(rng)) => {
                let (y, mask) = d.train(&x, rng);
                (y, Some(mask))
            }
            _ => (x, None),
        }
    }
}

/// The backward of [`Dropper::apply`].
pub(crate) fn undrop<T: Float>(mask: &Option<DropoutMask<T>>, dy: &Matrix<T>) -> Result<Matrix<T>> {
    Ok(match mask {
        Some(m) => m.backward(dy)?,
        None => dy.clone(),
    })
}

/// What a sub-layer keeps: its inner layer's cache, the layer norm's and the
/// dropout mask.
#[derive(Debug, Clone)]
pub(crate) struct SublayerCache<T: Float, C> {
    pub(crate) inner: C,
    norm: LayerNormCache<T>,
    drop: Option<DropoutMask<T>>,
}

// ANCHOR: sublayer
/// One sub-layer `f` with its residual connection and layer norm, placed as
/// `placement` says.
fn sublayer<T: Float, C>(
    placement: NormPlacement,
    norm: &LayerNorm<T>,
    x: Matrix<T>,
    drop: &mut Dropper<'_>,
    f: impl FnOnce(&Matrix<T>) -> addmul_core::Result<(Matrix<T>, C)>,
) -> Result<(Matrix<T>, SublayerCache<T, C>)> {
    match placement {
        NormPlacement::Post => {
            let (fx, inner) = f(&x)?;
            let (fx, drop) = drop.apply(fx);
            let (y, norm) = norm.forward(&(x + fx))?; // LayerNorm(x + f(x))
            Ok((y, SublayerCache { inner, norm, drop }))
        }
        NormPlacement::Pre => {
            let (h, norm) = norm.forward(&x)?;
            let (fx, inner) = f(&h)?;
            let (fx, drop) = drop.apply(fx);
            Ok((x + fx, SublayerCache { inner, norm, drop })) // x + f(LayerNorm(x))
        }
    }
}

/// The backward of [`sublayer`]: `f_back` turns the gradient of `f`'s output
/// into the gradient of its input (adding `f`'s parameter gradients).
fn sublayer_backward<T: Float, C>(
    placement: NormPlacement,
    norm: &mut LayerNorm<T>,
    cache: &SublayerCache<T, C>,
    dy: &Matrix<T>,
    f_back: impl FnOnce(&C, &Matrix<T>) -> addmul_core::Result<Matrix<T>>,
) -> Result<Matrix<T>> {
    match placement {
        NormPlacement::Post => {
            let dsum = norm.backward(&cache.norm, dy)?; // the gradient of x + f(x)
            let dfx = undrop(&cache.drop, &dsum)?;
            Ok(dsum + f_back(&cache.inner, &dfx)?) // straight through, plus through f
        }
        NormPlacement::Pre => {
            let dfx = undrop(&cache.drop, dy)?;
            let dh = f_back(&cache.inner, &dfx)?;
            Ok(dy + norm.backward(&cache.norm, &dh)?) // straight through, plus through f and the norm
        }
    }
}
// ANCHOR_END: sublayer

/// The sequences of a batch: their common (padded) length and which
/// positions are padding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seqs<'a> {
    pub(crate) len: usize,
    pub(crate) padding: Option<&'a [bool]>,
}

fn norm<T: Float>(config: &TransformerConfig) -> Result<LayerNorm<T>> {
    Ok(LayerNorm::new(config.d_model).with_eps(config.layer_norm_eps)?)
}

/// The position-wise feed-forward network `W₂ relu(W₁ x + b₁) + b₂`, a
/// two-layer [`Mlp`] of widths `d_model → d_ff → d_model`.
fn feed_forward<T: Float>(config: &TransformerConfig, rng: &mut Rng) -> Result<Mlp<T>> {
    Ok(Mlp::new(&[config.d_model, config.d_ff, config.d_model], Activation::Relu, Init::XavierUniform, rng)?)
}

/// One encoder layer: self-attention over the source, then the feed-forward
/// network.
///
/// Parameter names: `self_attn.*` (`c_attn`, `c_proj`), `self_attn_norm.*`,
/// `ffn.layers.{0,1}.*`, `ffn_norm.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderLayer<T: Float> {
    self_attn: MultiHeadAttention<T>,
    self_attn_norm: LayerNorm<T>,
    ffn: Mlp<T>,
    ffn_norm: LayerNorm<T>,
}

#[derive(Debug, Clone)]
pub(crate) struct EncoderLayerCache<T: Float> {
    attn: SublayerCache<T, MultiHeadCache<T>>,
    ffn: SublayerCache<T, MlpCache<T>>,
}

impl<T: Float> EncoderLayer<T> {
    pub(crate) fn new(config: &TransformerConfig, rng: &mut Rng) -> Result<Self> {
        let attn = MultiHeadConfig::self_attention(config.d_model, config.n_head);
        Ok(EncoderLayer {
            self_attn: attn.init(Init::XavierUniform, rng)?,
            self_attn_norm: norm(config)?,
            ffn: feed_forward(config, rng)?,
            ffn_norm: norm(config)?,
        })
    }

    // ANCHOR: encoder_layer
    pub(crate) fn forward(
        &self,
        x: Matrix<T>,
        src: Seqs<'_>,
        placement: NormPlacement,
        drop: &mut Dropper<'_>,
    ) -> Result<(Matrix<T>, EncoderLayerCache<T>)> {
        let (x, attn) = sublayer(placement, &self.self_attn_norm, x, drop, |h| {
            self.self_attn.forward_self(h, src.len, src.padding) // every source token sees every other
        })?;
        let (x, ffn) = sublayer(placement, &self.ffn_norm, x, drop, |h| self.ffn.forward(h))?;
        Ok((x, EncoderLayerCache { attn, ffn }))
    }
    // ANCHOR_END: encoder_layer

    pub(crate) fn backward(
        &mut self,
        cache: &EncoderLayerCache<T>,
        dy: &Matrix<T>,
        placement: NormPlacement,
    ) -> Result<Matrix<T>> {
        let dx = sublayer_backward(placement, &mut self.ffn_norm, &cache.ffn, dy, |c, d| self.ffn.backward(c, d))?;
        sublayer_backward(placement, &mut self.self_attn_norm, &cache.attn, &dx, |c, d| {
            Ok(self.self_attn.backward(c, d)?.dx)
        })
    }
}

impl<T: Float> Parameters<T> for EncoderLayer<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        visit_child("self_attn", &self.self_attn, f);
        visit_child("self_attn_norm", &self.self_attn_norm, f);
        visit_child("ffn", &self.ffn, f);
        visit_child("ffn_norm", &self.ffn_norm, f);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        visit_child_mut("self_attn", &mut self.self_attn, f);
        visit_child_mut("self_attn_norm", &mut self.self_attn_norm, f);
        visit_child_mut("ffn", &mut self.ffn, f);
        visit_child_mut("ffn_norm", &mut self.ffn_norm, f);
    }
}

/// One decoder layer: masked self-attention over the target so far,
/// cross-attention over the encoder's output, then the feed-forward network.
///
/// Parameter names: `self_attn.*`, `self_attn_norm.*`, `cross_attn.*`
/// (`c_q`, `c_kv`, `c_proj`), `cross_attn_norm.*`, `ffn.layers.{0,1}.*`,
/// `ffn_norm.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderLayer<T: Float> {
    self_attn: MultiHeadAttention<T>,
    self_attn_norm: LayerNorm<T>,
    cross_attn: MultiHeadAttention<T>,
    cross_attn_norm: LayerNorm<T>,
    ffn: Mlp<T>,
    ffn_norm: LayerNorm<T>,
}

#[derive(Debug, Clone)]
pub(crate) struct DecoderLayerCache<T: Float> {
    self_attn: SublayerCache<T, MultiHeadCache<T>>,
    pub(crate) cross_attn: SublayerCache<T, MultiHeadCache<T>>,
    ffn: SublayerCache<T, MlpCache<T>>,
}

impl<T: Float> DecoderLayer<T> {
    pub(crate) fn new(config: &TransformerConfig, rng: &mut Rng) -> Result<Self> {
        let (d, h) = (config.d_model, config.n_head);
        Ok(DecoderLayer {
            self_attn: MultiHeadConfig::self_attention(d, h).causal().init(Init::XavierUniform, rng)?,
            self_attn_norm: norm(config)?,
            cross_attn: MultiHeadConfig::cross_attention(d, d, h).init(Init::XavierUniform, rng)?,
            cross_attn_norm: norm(config)?,
            ffn: feed_forward(config, rng)?,
            ffn_norm: norm(config)?,
        })
    }

    // ANCHOR: decoder_layer
    pub(crate) fn forward(
        &self,
        y: Matrix<T>,
        tgt: Seqs<'_>,
        memory: &Matrix<T>,
        src: Seqs<'_>,
        placement: NormPlacement,
        drop: &mut Dropper<'_>,
    ) -> Result<(Matrix<T>, DecoderLayerCache<T>)> {
        let (y, self_attn) = sublayer(placement, &self.self_attn_norm, y, drop, |h| {
            self.self_attn.forward_self(h, tgt.len, tgt.padding) // causal: position t sees 0..=t only
        })?;
        let (y, cross_attn) = sublayer(placement, &self.cross_attn_norm, y, drop, |h| {
            self.cross_attn.forward_cross(h, tgt.len, memory, src.len, src.padding) // queries from the target, keys and values from the source
        })?;
        let (y, ffn) = sublayer(placement, &self.ffn_norm, y, drop, |h| self.ffn.forward(h))?;
        Ok((y, DecoderLayerCache { self_attn, cross_attn, ffn }))
    }
    // ANCHOR_END: decoder_layer

    /// The backward pass; the gradient reaching the encoder's output through
    /// the cross-attention is added into `d_memory`.
    pub(crate) fn backward(
        &mut self,
        cache: &DecoderLayerCache<T>,
        dy: &Matrix<T>,
        placement: NormPlacement,
        d_memory: &mut Matrix<T>,
    ) -> Result<Matrix<T>> {
        let dy = sublayer_backward(placement, &mut self.ffn_norm, &cache.ffn, dy, |c, d| self.ffn.backward(c, d))?;
        let dy = sublayer_backward(placement, &mut self.cross_attn_norm, &cache.cross_attn, &dy, |c, d| {
            let grads = self.cross_attn.backward(c, d)?;
            if let Some(dc) = grads.dcontext {
                *d_memory += dc;
            }
            Ok(grads.dx)
        })?;
        sublayer_backward(placement, &mut self.self_attn_norm, &cache.self_attn, &dy, |c, d| {
            Ok(self.self_attn.backward(c, d)?.dx)
        })
    }

    /// Projects the encoder's output into this layer's cross-attention keys
    /// and values, once per source sentence.
    pub(crate) fn project_memory(&self, memory: &Matrix<T>) -> Result<CrossKv<T>> {
        Ok(self.cross_attn.project_context(memory)?)
    }

    // ANCHOR: decoder_step
    /// One decoding step for one new token `y` (`[d, 1]`): its self-attention
    /// reads the earlier tokens' keys and values from `cache` (and appends its
    /// own); its cross-attention reads the source's projected keys and values.
    pub(crate) fn step(
        &self,
        y: Matrix<T>,
        cache: &mut KvCache<T>,
        memory: &CrossKv<T>,
        placement: NormPlacement,
    ) -> Result<Matrix<T>> {
        let off = &mut Dropper::off();
        let (y, _) =
            sublayer(placement, &self.self_attn_norm, y, off, |h| Ok((self.self_attn.forward_cached(h, cache)?, ())))?;
        let (y, _) = sublayer(placement, &self.cross_attn_norm, y, off, |h| {
            Ok((self.cross_attn.forward_cross_cached(h, memory, None)?, ()))
        })?;
        let (y, _) = sublayer(placement, &self.ffn_norm, y, off, |h| Ok((self.ffn.predict(h)?, ())))?;
        Ok(y)
    }
    // ANCHOR_END: decoder_step
}

impl<T: Float> Parameters<T> for DecoderLayer<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        visit_child("self_attn", &self.self_attn, f);
        visit_child("self_attn_norm", &self.self_attn_norm, f);
        visit_child("cross_attn", &self.cross_attn, f);
        visit_child("cross_attn_norm", &self.cross_attn_norm, f);
        visit_child("ffn", &self.ffn, f);
        visit_child("ffn_norm", &self.ffn_norm, f);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        visit_child_mut("self_attn", &mut self.self_attn, f);
        visit_child_mut("self_attn_norm", &mut self.self_attn_norm, f);
        visit_child_mut("cross_attn", &mut self.cross_attn, f);
        visit_child_mut("cross_attn_norm", &mut self.cross_attn_norm, f);
        visit_child_mut("ffn", &mut self.ffn, f);
        visit_child_mut("ffn_norm", &mut self.ffn_norm, f);
    }
}
