//! The encoder and decoder layers: attention and feed-forward sub-layers,
//! each wrapped in a residual connection and a layer norm.

use addmul_core::{Float, Init, Layer, Matrix, Param, Parameters, Rng, visit_child, visit_child_mut};
use addmul_dropout::Dropper;
use addmul_layernorm::{LayerNorm, LayerNormCache};
use addmul_multihead::{CrossKv, KvCache, MultiHeadAttention, MultiHeadCache, MultiHeadConfig};
use addmul_nn::{Activation, Mlp, MlpCache};
use addmul_residual::{SublayerCache, sublayer, sublayer_backward};

use crate::{NormPlacement, Result, TransformerConfig};

/// A sub-layer's cache: `f`'s, the layer norm's and the dropout mask.
type Cached<T, C> = SublayerCache<T, LayerNormCache<T>, C>;

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
    attn: Cached<T, MultiHeadCache<T>>,
    ffn: Cached<T, MlpCache<T>>,
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
        x: &mut Matrix<T>,
        src: Seqs<'_>,
        placement: NormPlacement,
        drop: &mut Dropper<'_>,
    ) -> Result<EncoderLayerCache<T>> {
        let attn = sublayer(placement, &self.self_attn_norm, x, drop, |h| {
            self.self_attn.forward_self_owned(h, src.len, src.padding) // every source token sees every other
        })?;
        let ffn = sublayer(placement, &self.ffn_norm, x, drop, |h| self.ffn.forward_owned(h))?;
        Ok(EncoderLayerCache { attn, ffn })
    }
    // ANCHOR_END: encoder_layer

    pub(crate) fn backward(
        &mut self,
        cache: &EncoderLayerCache<T>,
        dy: Matrix<T>,
        placement: NormPlacement,
    ) -> Result<Matrix<T>> {
        let ffn = &mut self.ffn;
        let dx = sublayer_backward(placement, &mut self.ffn_norm, &cache.ffn, dy, |c, d| ffn.backward(c, d))?;
        let attn = &mut self.self_attn;
        Ok(sublayer_backward(placement, &mut self.self_attn_norm, &cache.attn, dx, |c, d| Ok(attn.backward(c, d)?.dx))?)
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
    self_attn: Cached<T, MultiHeadCache<T>>,
    pub(crate) cross_attn: Cached<T, MultiHeadCache<T>>,
    ffn: Cached<T, MlpCache<T>>,
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
        y: &mut Matrix<T>,
        tgt: Seqs<'_>,
        memory: &Matrix<T>,
        src: Seqs<'_>,
        placement: NormPlacement,
        drop: &mut Dropper<'_>,
    ) -> Result<DecoderLayerCache<T>> {
        let self_attn = sublayer(placement, &self.self_attn_norm, y, drop, |h| {
            self.self_attn.forward_self_owned(h, tgt.len, tgt.padding) // causal: position t sees 0..=t only
        })?;
        let cross_attn = sublayer(placement, &self.cross_attn_norm, y, drop, |h| {
            self.cross_attn.forward_cross_owned(h, tgt.len, memory, src.len, src.padding) // queries from the target, keys and values from the source
        })?;
        let ffn = sublayer(placement, &self.ffn_norm, y, drop, |h| self.ffn.forward_owned(h))?;
        Ok(DecoderLayerCache { self_attn, cross_attn, ffn })
    }
    // ANCHOR_END: decoder_layer

    /// The backward pass; the gradient reaching the encoder's output through
    /// the cross-attention is added into `d_memory`.
    pub(crate) fn backward(
        &mut self,
        cache: &DecoderLayerCache<T>,
        dy: Matrix<T>,
        placement: NormPlacement,
        d_memory: &mut Matrix<T>,
    ) -> Result<Matrix<T>> {
        let ffn = &mut self.ffn;
        let dy = sublayer_backward(placement, &mut self.ffn_norm, &cache.ffn, dy, |c, d| ffn.backward(c, d))?;
        let cross = &mut self.cross_attn;
        let dy = sublayer_backward(placement, &mut self.cross_attn_norm, &cache.cross_attn, dy, |c, d| {
            let grads = cross.backward(c, d)?;
            if let Some(dc) = grads.dcontext {
                *d_memory += dc;
            }
            Ok(grads.dx)
        })?;
        let attn = &mut self.self_attn;
        Ok(sublayer_backward(placement, &mut self.self_attn_norm, &cache.self_attn, dy, |c, d| {
            Ok(attn.backward(c, d)?.dx)
        })?)
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
        y: &mut Matrix<T>,
        cache: &mut KvCache<T>,
        memory: &CrossKv<T>,
        placement: NormPlacement,
    ) -> Result<()> {
        let off = &mut Dropper::off();
        sublayer(placement, &self.self_attn_norm, y, off, |h| Ok((self.self_attn.forward_cached(&h, cache)?, ())))?;
        sublayer(placement, &self.cross_attn_norm, y, off, |h| {
            Ok((self.cross_attn.forward_cross_cached(&h, memory, None)?, ()))
        })?;
        sublayer(placement, &self.ffn_norm, y, off, |h| Ok((self.ffn.predict(&h)?, ())))?;
        Ok(())
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
