//! The shape of a Transformer and its switches.

pub use addmul_residual::NormPlacement;

use crate::{Batch, Result, Side, Specials, TransformerError, Vocab};

/// How the model learns where each token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PositionKind {
    /// The fixed sine/cosine table of the paper (nothing to learn).
    #[default]
    Sinusoidal,
    /// One learned vector per position, separately for source and target
    /// (the paper reports nearly identical results).
    Learned,
}

/// The architecture of a [`Transformer`](crate::Transformer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransformerConfig {
    /// Number of source token ids.
    pub src_vocab_size: usize,
    /// Number of target token ids.
    pub tgt_vocab_size: usize,
    /// The padding, start and end ids, shared by both vocabularies.
    pub specials: Specials,
    /// The longest source, and the longest decoder input (a target plus its
    /// start token), the model reads.
    pub max_len: usize,
    /// Width of every token's vector, `d_model`.
    pub d_model: usize,
    /// Attention heads per attention layer.
    pub n_head: usize,
    /// Width of the feed-forward networks' hidden layer, `d_ff`.
    pub d_ff: usize,
    /// Encoder layers, `N`.
    pub n_encoder_layers: usize,
    /// Decoder layers.
    pub n_decoder_layers: usize,
    /// Post-norm (the paper) or pre-norm.
    pub norm: NormPlacement,
    /// Sinusoidal (the paper) or learned positions.
    pub positions: PositionKind,
    /// Use the target embedding, transposed, as the output projection (the
    /// paper shares it).
    pub tie_output: bool,
    /// Dropout on the embeddings and on every sub-layer's output.
    pub dropout: f64,
    /// Layer norm `ε`.
    pub layer_norm_eps: f64,
}

impl TransformerConfig {
    /// A model for the given vocabulary sizes with the paper's choices
    /// (post-norm, sinusoidal positions, tied output, ReLU feed-forward of
    /// width `4 · d_model`) at the given size, without dropout.
    pub fn new(src_vocab_size: usize, tgt_vocab_size: usize, d_model: usize, n_head: usize, n_layers: usize) -> Self {
        TransformerConfig {
            src_vocab_size,
            tgt_vocab_size,
            specials: Specials::DEFAULT,
            max_len: 64,
            d_model,
            n_head,
            d_ff: 4 * d_model,
            n_encoder_layers: n_layers,
            n_decoder_layers: n_layers,
            norm: NormPlacement::Post,
            positions: PositionKind::Sinusoidal,
            tie_output: true,
            dropout: 0.0,
            layer_norm_eps: 1e-5,
        }
    }

    /// The paper's base model: `d_model` 512, 8 heads, `d_ff` 2048, 6 + 6
    /// layers, dropout 0.1. (The paper's 65 million parameters count one
    /// embedding table shared by both languages and the output; here source
    /// and target have tables of their own.)
    pub fn base(src_vocab_size: usize, tgt_vocab_size: usize) -> Self {
        TransformerConfig {
            d_ff: 2048,
            dropout: 0.1,
            max_len: 256,
            ..Self::new(src_vocab_size, tgt_vocab_size, 512, 8, 6)
        }
    }

    /// [`TransformerConfig::new`] sized for two vocabularies.
    ///
    /// # Errors
    /// [`TransformerError::VocabularyMismatch`] if the vocabularies do not use
    /// the same special ids.
    pub fn for_vocabularies(src: &Vocab, tgt: &Vocab, d_model: usize, n_head: usize, n_layers: usize) -> Result<Self> {
        if src.specials() != tgt.specials() {
            return Err(TransformerError::VocabularyMismatch {
                side: Side::Source,
                expected: format!("the target's special ids {:?}", tgt.specials()),
                got: format!("{:?}", src.specials()),
            });
        }
        Ok(TransformerConfig { specials: tgt.specials(), ..Self::new(src.len(), tgt.len(), d_model, n_head, n_layers) })
    }

    /// Number of parameters of a model with this configuration.
    pub fn num_params(&self) -> usize {
        let (d, ff) = (self.d_model, self.d_ff);
        let norm = 2 * d;
        let attention = 4 * d * d + 4 * d; // [Q; K; V] (or Q and [K; V]) and the output projection, with biases
        let ffn = d * ff + ff + ff * d + d;
        let encoder = self.n_encoder_layers * (attention + ffn + 2 * norm);
        let decoder = self.n_decoder_layers * (2 * attention + ffn + 3 * norm);
        let embeddings = (self.src_vocab_size + self.tgt_vocab_size) * d;
        let positions = if self.positions == PositionKind::Learned { 2 * self.max_len * d } else { 0 };
        let final_norms = if self.norm == NormPlacement::Pre { 2 * norm } else { 0 };
        let head = if self.tie_output { 0 } else { d * self.tgt_vocab_size + self.tgt_vocab_size };
        embeddings + positions + encoder + decoder + final_norms + head
    }

    // ANCHOR: flops
    /// Floating-point operations of one training step on `batch`, counted as
    /// for the GPT (chapter 14): `6` per weight per token for the matrix
    /// products (a multiply and an add, and the backward pass costs twice the
    /// forward) and `12 · d_model` per query per key for the attention scores
    /// and weighted sums. Padded positions count: they are computed too.
    ///
    /// Per source token: the encoder layers' weights (`4d² + 2 d d_ff` each)
    /// and every decoder layer's cross-attention keys and values (`2d²`).
    /// Per target token: the decoder layers' other weights
    /// (`6d² + 2 d d_ff` each) and the output projection (`V d`).
    pub fn training_flops(&self, batch: &Batch) -> f64 {
        let (d, ff) = (self.d_model as f64, self.d_ff as f64);
        let (n_enc, n_dec) = (self.n_encoder_layers as f64, self.n_decoder_layers as f64);
        let (s, t) = (batch.src_len() as f64, batch.tgt_len() as f64);
        let (src_tokens, tgt_tokens) = (batch.len() as f64 * s, batch.len() as f64 * t);
        let per_source = n_enc * (4.0 * d * d + 2.0 * d * ff) + n_dec * 2.0 * d * d;
        let per_target = n_dec * (6.0 * d * d + 2.0 * d * ff) + self.tgt_vocab_size as f64 * d;
        let attention = 12.0 * d * (n_enc * s * src_tokens + n_dec * (t + s) * tgt_tokens);
        6.0 * (per_source * src_tokens + per_target * tgt_tokens) + attention
    }
    // ANCHOR_END: flops

    /// Checks every field.
    ///
    /// # Errors
    /// [`TransformerError::Config`] naming the field: a size of 0, `d_model`
    /// not divisible by `n_head`, special ids outside the target vocabulary
    /// or equal to each other, dropout outside `[0, 1)`, a negative `ε`.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("src_vocab_size", self.src_vocab_size),
            ("tgt_vocab_size", self.tgt_vocab_size),
            ("max_len", self.max_len),
            ("d_model", self.d_model),
            ("n_head", self.n_head),
            ("d_ff", self.d_ff),
            ("n_encoder_layers", self.n_encoder_layers),
            ("n_decoder_layers", self.n_decoder_layers),
        ] {
            if v == 0 {
                return Err(TransformerError::config(field, v, "must be at least 1"));
            }
        }
        if !self.d_model.is_multiple_of(self.n_head) {
            return Err(TransformerError::config(
                "d_model",
                self.d_model,
                format!("must be divisible by n_head = {}", self.n_head),
            ));
        }
        let Specials { pad, start, end } = self.specials;
        if pad == start || pad == end || start == end {
            return Err(TransformerError::config(
                "specials",
                format!("{:?}", self.specials),
                "must be three different ids",
            ));
        }
        let smallest = self.src_vocab_size.min(self.tgt_vocab_size);
        if [pad, start, end].iter().any(|&id| id as usize >= smallest) {
            return Err(TransformerError::config(
                "specials",
                format!("{:?}", self.specials),
                format!("must be ids of both vocabularies (below {smallest})"),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(TransformerError::config("dropout", self.dropout, "must be in [0, 1)"));
        }
        if !(self.layer_norm_eps >= 0.0 && self.layer_norm_eps.is_finite()) {
            return Err(TransformerError::config("layer_norm_eps", self.layer_norm_eps, "must be >= 0 and finite"));
        }
        Ok(())
    }
}
