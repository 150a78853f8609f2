//! The encoder-decoder model: batches, the forward pass, its backward, and
//! the incremental decoder used for generation.

use addmul_core::{Float, Init, Matrix, Op, Param, Parameters, Rng, gemm, visit_child, visit_child_mut};
use addmul_dropout::{DropoutMask, Dropper};
use addmul_embedding::Embedding;
use addmul_layernorm::{LayerNorm, LayerNormCache};
use addmul_multihead::{CrossKv, LayerCaches};
use addmul_nn::Linear;
use addmul_posenc::{LearnedPositions, add_table, sinusoidal};
use addmul_softmax::CrossEntropy;

use crate::layers::{DecoderLayer, DecoderLayerCache, EncoderLayer, EncoderLayerCache, Seqs};
use crate::{NormPlacement, PositionKind, Result, Side, TokenId, TransformerConfig, TransformerError};

/// One training example: a source sequence and its target, as ordinary
/// token ids (no start, end or padding: [`Batch::new`] adds those).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pair {
    /// The sentence to translate.
    pub source: Vec<TokenId>,
    /// Its translation.
    pub target: Vec<TokenId>,
}

// ANCHOR: batch
/// A batch of pairs, padded and ready for the model.
///
/// With `S` the longest source and `T` one more than the longest target:
///
/// ```text
/// source          [B·S]   x₁ … xₘ <pad> …
/// decoder input   [B·T]   <s> y₁ … yₙ <pad> …       (teacher forcing: the true previous tokens)
/// decoder target  [B·T]   y₁ … yₙ </s> <pad> …      (the same, one position on)
/// ```
///
/// The padding flags mark the `<pad>` positions for the attention masks; the
/// loss ignores the `<pad>` targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    size: usize,
    src: Vec<usize>,
    src_len: usize,
    src_padding: Vec<bool>,
    tgt_in: Vec<usize>,
    tgt_out: Vec<usize>,
    tgt_len: usize,
    tgt_padding: Vec<bool>,
    tokens: usize,
}
// ANCHOR_END: batch

/// Checks one sequence against the model's vocabulary, specials and length.
fn check_sequence(config: &TransformerConfig, side: Side, index: usize, ids: &[TokenId]) -> Result<()> {
    let (vocab_size, max) = match side {
        Side::Source => (config.src_vocab_size, config.max_len),
        Side::Target => (config.tgt_vocab_size, config.max_len - 1),
    };
    if side == Side::Source && ids.is_empty() {
        return Err(TransformerError::EmptySource { index });
    }
    if ids.len() > max {
        let len = if side == Side::Target { ids.len() + 1 } else { ids.len() };
        return Err(TransformerError::TooLong { side, index, len, max: config.max_len });
    }
    for (position, &id) in ids.iter().enumerate() {
        if id as usize >= vocab_size {
            return Err(TransformerError::TokenOutOfRange { side, id, index, position, vocab_size });
        }
        if let Some(name) = config.specials.name(id) {
            return Err(TransformerError::SpecialToken { side, name, id, index, position });
        }
    }
    Ok(())
}

impl Batch {
    /// Pads `pairs` into one batch, adding the start and end tokens of
    /// `config.specials`.
    ///
    /// # Errors
    /// [`TransformerError::EmptySource`], [`TransformerError::TooLong`],
    /// [`TransformerError::TokenOutOfRange`] or
    /// [`TransformerError::SpecialToken`] naming the offending pair; an empty
    /// `pairs` is [`addmul_core::Error::Empty`].
    pub fn new(pairs: &[Pair], config: &TransformerConfig) -> Result<Self> {
        if pairs.is_empty() {
            return Err(addmul_core::Error::Empty { what: "batch of pairs" }.into());
        }
        for (index, pair) in pairs.iter().enumerate() {
            check_sequence(config, Side::Source, index, &pair.source)?;
            check_sequence(config, Side::Target, index, &pair.target)?;
        }
        let sp = config.specials;
        let (pad, start, end) = (sp.pad as usize, sp.start as usize, sp.end as usize);
        let src_len = pairs.iter().map(|p| p.source.len()).max().unwrap_or(1);
        let tgt_len = pairs.iter().map(|p| p.target.len()).max().unwrap_or(0) + 1;
        let b = pairs.len();
        let mut batch = Batch {
            size: b,
            src: vec![pad; b * src_len],
            src_len,
            src_padding: vec![true; b * src_len],
            tgt_in: vec![pad; b * tgt_len],
            tgt_out: vec![pad; b * tgt_len],
            tgt_len,
            tgt_padding: vec![true; b * tgt_len],
            tokens: 0,
        };
        for (i, pair) in pairs.iter().enumerate() {
            for (j, &id) in pair.source.iter().enumerate() {
                batch.src[i * src_len + j] = id as usize;
                batch.src_padding[i * src_len + j] = false;
            }
            let row = i * tgt_len;
            batch.tgt_in[row] = start;
            for (j, &id) in pair.target.iter().enumerate() {
                batch.tgt_in[row + j + 1] = id as usize;
                batch.tgt_out[row + j] = id as usize;
            }
            batch.tgt_out[row + pair.target.len()] = end;
            batch.tgt_padding[row..=row + pair.target.len()].fill(false);
            batch.tokens += pair.target.len() + 1;
        }
        Ok(batch)
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.size
    }

    /// `false`: a batch holds at least one pair.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The padded source length `S`.
    pub fn src_len(&self) -> usize {
        self.src_len
    }

    /// The padded decoder length `T` (longest target plus one).
    pub fn tgt_len(&self) -> usize {
        self.tgt_len
    }

    /// Number of target tokens the loss counts (each target plus its end
    /// token).
    pub fn target_tokens(&self) -> usize {
        self.tokens
    }

    /// The decoder's inputs, `B·T` ids (start token first).
    pub fn decoder_input(&self) -> &[usize] {
        &self.tgt_in
    }

    /// The decoder's targets, `B·T` ids (end token last, then padding).
    pub fn decoder_target(&self) -> &[usize] {
        &self.tgt_out
    }

    /// Which source positions are padding, `B·S` flags.
    pub fn source_padding(&self) -> &[bool] {
        &self.src_padding
    }

    fn src_seqs(&self) -> Seqs<'_> {
        Seqs { len: self.src_len, padding: Some(&self.src_padding) }
    }

    fn tgt_seqs(&self) -> Seqs<'_> {
        Seqs { len: self.tgt_len, padding: Some(&self.tgt_padding) }
    }
}

/// The loss of a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loss {
    /// The objective being minimised: cross-entropy against the smoothed
    /// targets, averaged over the counted target tokens.
    pub loss: f64,
    /// The plain cross-entropy `-log p(target)` per counted token (equal to
    /// `loss` without label smoothing); `exp(nll)` is the perplexity.
    pub nll: f64,
    /// Target tokens counted (padding excluded).
    pub tokens: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Positions<T: Float> {
    Sinusoidal(Matrix<T>),
    Learned { src: LearnedPositions<T>, tgt: LearnedPositions<T> },
}

/// The Transformer of "Attention Is All You Need" (see the crate
/// documentation).
///
/// Parameter names: `src_embed.weight`, `tgt_embed.weight`,
/// (`src_pos.weight`, `tgt_pos.weight` with learned positions),
/// `encoder.layers.{i}.*` (see [`EncoderLayer`]), `encoder.norm.*` (pre-norm
/// only), `decoder.layers.{i}.*` (see [`DecoderLayer`]), `decoder.norm.*`
/// (pre-norm only), `lm_head.*` (only without a tied output).
#[derive(Debug, Clone, PartialEq)]
pub struct Transformer<T: Float> {
    config: TransformerConfig,
    src_embed: Embedding<T>,
    tgt_embed: Embedding<T>,
    positions: Positions<T>,
    encoder: Vec<EncoderLayer<T>>,
    encoder_norm: Option<LayerNorm<T>>,
    decoder: Vec<DecoderLayer<T>>,
    decoder_norm: Option<LayerNorm<T>>,
    lm_head: Option<Linear<T>>,
}

/// What the forward pass keeps for the backward pass.
struct ForwardCache<T: Float> {
    src_drop: Option<DropoutMask<T>>,
    encoder: Vec<EncoderLayerCache<T>>,
    encoder_norm: Option<LayerNormCache<T>>,
    tgt_drop: Option<DropoutMask<T>>,
    decoder: Vec<DecoderLayerCache<T>>,
    decoder_norm: Option<LayerNormCache<T>>,
    memory_cols: usize,
    /// The decoder's final hidden states `[d, B·T]`.
    h: Matrix<T>,
}

/// A source sentence read by the encoder, with every decoder layer's
/// cross-attention keys and values computed from it once.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded<T: Float> {
    memory: Matrix<T>,
    cross: Vec<CrossKv<T>>,
}

impl<T: Float> Encoded<T> {
    /// The encoder's output `[d, S]`, one column per source token.
    pub fn memory(&self) -> &Matrix<T> {
        &self.memory
    }
}

/// The decoder's key/value caches for one hypothesis being decoded.
pub type DecoderState<T> = LayerCaches<T>;

impl<T: Float> Transformer<T> {
    // ANCHOR: init
    /// A new model. Linear and attention weights are Glorot-uniform (as
    /// PyTorch's `nn.Transformer`), biases zero, layer-norm gains one;
    /// embeddings are normal with standard deviation `d_model^-½`, so that
    /// after the `√d_model` scaling each entry has variance 1, like the
    /// positional signal it is added to.
    ///
    /// # Errors
    /// [`TransformerError::Config`] for an invalid configuration.
    pub fn new(config: TransformerConfig, rng: &mut Rng) -> Result<Self> {
        config.validate()?;
        let d = config.d_model;
        let embed_init = Init::Normal { std: (d as f64).powf(-0.5) };
        let src_embed = Embedding::new(config.src_vocab_size, d, embed_init, rng)?;
        let tgt_embed = Embedding::new(config.tgt_vocab_size, d, embed_init, rng)?;
        let positions = match config.positions {
            PositionKind::Sinusoidal => Positions::Sinusoidal(sinusoidal(d, config.max_len)),
            PositionKind::Learned => {
                let init = Init::Normal { std: 0.5f64.sqrt() }; // the sinusoid's variance
                Positions::Learned {
                    src: LearnedPositions::new(config.max_len, d, init, rng)?,
                    tgt: LearnedPositions::new(config.max_len, d, init, rng)?,
                }
            }
        };
        let encoder = (0..config.n_encoder_layers).map(|_| EncoderLayer::new(&config, rng)).collect::<Result<_>>()?;
        let decoder = (0..config.n_decoder_layers).map(|_| DecoderLayer::new(&config, rng)).collect::<Result<_>>()?;
        let final_norm = || -> Result<Option<LayerNorm<T>>> {
            Ok(match config.norm {
                NormPlacement::Post => None, // every layer already ends in a layer norm
                NormPlacement::Pre => Some(LayerNorm::new(d).with_eps(config.layer_norm_eps)?),
            })
        };
        let lm_head =
            (!config.tie_output).then(|| Linear::new(d, config.tgt_vocab_size, true, Init::XavierUniform, rng));
        Ok(Transformer {
            config,
            src_embed,
            tgt_embed,
            positions,
            encoder,
            encoder_norm: final_norm()?,
            decoder,
            decoder_norm: final_norm()?,
            lm_head,
        })
    }
    // ANCHOR_END: init

    /// The architecture.
    pub fn config(&self) -> &TransformerConfig {
        &self.config
    }

    /// Checks that two vocabularies are the ones this model was built for:
    /// the same sizes and special ids.
    ///
    /// # Errors
    /// [`TransformerError::VocabularyMismatch`] naming the side.
    pub fn check_vocabularies(&self, src: &crate::Vocab, tgt: &crate::Vocab) -> Result<()> {
        for (side, vocab, size) in
            [(Side::Source, src, self.config.src_vocab_size), (Side::Target, tgt, self.config.tgt_vocab_size)]
        {
            if vocab.len() != size || vocab.specials() != self.config.specials {
                return Err(TransformerError::VocabularyMismatch {
                    side,
                    expected: format!("{size} tokens with specials {:?}", self.config.specials),
                    got: format!("{} tokens with specials {:?}", vocab.len(), vocab.specials()),
                });
            }
        }
        Ok(())
    }

    /// Pads `pairs` into a [`Batch`] with this model's specials and limits.
    ///
    /// # Errors
    /// As [`Batch::new`].
    pub fn batch(&self, pairs: &[Pair]) -> Result<Batch> {
        Batch::new(pairs, &self.config)
    }

    fn scale(&self) -> T {
        T::of((self.config.d_model as f64).sqrt())
    }

    // ANCHOR: embed
    /// Token embeddings times `√d_model`, plus the positions
    /// `offset..offset + len` of each sequence.
    fn embed(&self, side: Side, ids: &[usize], len: usize, offset: usize) -> Result<Matrix<T>> {
        let table = if side == Side::Source { &self.src_embed } else { &self.tgt_embed };
        let mut x = table.forward(ids)?;
        x *= self.scale();
        match &self.positions {
            Positions::Sinusoidal(pe) => add_table(pe, &mut x, len, offset)?,
            Positions::Learned { src, tgt } => {
                let pe = if side == Side::Source { src } else { tgt };
                pe.add_to(&mut x, len, offset)?;
            }
        }
        Ok(x)
    }
    // ANCHOR_END: embed

    fn embed_backward(&mut self, side: Side, ids: &[usize], len: usize, dx: &Matrix<T>) -> Result<()> {
        if let Positions::Learned { src, tgt } = &mut self.positions {
            let pe = if side == Side::Source { src } else { tgt };
            pe.backward(dx, len, 0)?;
        }
        let scaled = dx * self.scale();
        let table = if side == Side::Source { &mut self.src_embed } else { &mut self.tgt_embed };
        table.backward(ids, &scaled)?;
        Ok(())
    }

    // ANCHOR: forward
    fn forward(&self, batch: &Batch, rng: Option<&mut Rng>) -> Result<ForwardCache<T>> {
        let placement = self.config.norm;
        let mut drop = Dropper::new(self.config.dropout, rng)?;
        // The encoder reads the whole source at once.
        let x = self.embed(Side::Source, &batch.src, batch.src_len, 0)?;
        let (mut x, src_drop) = drop.apply(x);
        let mut encoder = Vec::with_capacity(self.encoder.len());
        for layer in &self.encoder {
            encoder.push(layer.forward(&mut x, batch.src_seqs(), placement, &mut drop)?);
        }
        let (memory, encoder_norm) = final_norm(&self.encoder_norm, x)?;
        // The decoder reads the target shifted right, and every layer reads
        // the same final encoder output.
        let y = self.embed(Side::Target, &batch.tgt_in, batch.tgt_len, 0)?;
        let (mut y, tgt_drop) = drop.apply(y);
        let mut decoder = Vec::with_capacity(self.decoder.len());
        for layer in &self.decoder {
            decoder.push(layer.forward(&mut y, batch.tgt_seqs(), &memory, batch.src_seqs(), placement, &mut drop)?);
        }
        let (h, decoder_norm) = final_norm(&self.decoder_norm, y)?;
        let memory_cols = memory.ncols();
        Ok(ForwardCache { src_drop, encoder, encoder_norm, tgt_drop, decoder, decoder_norm, memory_cols, h })
    }
    // ANCHOR_END: forward

    /// Logits `[vocab, n]` from decoder states `[d, n]`: the target
    /// embedding, transposed, when tied; else `lm_head`.
    fn head(&self, h: &Matrix<T>) -> Result<Matrix<T>> {
        match &self.lm_head {
            Some(lm_head) => Ok(lm_head.apply(h)?),
            None => {
                let mut logits = Matrix::zeros(self.config.tgt_vocab_size, h.ncols());
                gemm(T::one(), self.tgt_embed.weight().value(), Op::T, h, Op::N, T::zero(), &mut logits)?;
                Ok(logits)
            }
        }
    }

    fn head_backward(&mut self, h: &Matrix<T>, d_logits: &Matrix<T>) -> Result<Matrix<T>> {
        match &mut self.lm_head {
            Some(lm_head) => Ok(addmul_core::Layer::backward(lm_head, h, d_logits)?),
            None => {
                // logits = Eᵀ h:  dE += h dlogitsᵀ,  dh = E dlogits.
                let e = self.tgt_embed.weight_mut();
                if let Some(grad) = e.trainable_grad() {
                    gemm(T::one(), h, Op::N, d_logits, Op::T, T::one(), grad)?;
                }
                let mut dh = Matrix::zeros(h.nrows(), h.ncols());
                gemm(T::one(), e.value(), Op::N, d_logits, Op::N, T::zero(), &mut dh)?;
                Ok(dh)
            }
        }
    }

    /// The encoder's output `[d, B·S]` for the batch's sources (evaluation:
    /// no dropout). Columns at padded positions hold numbers nobody reads.
    ///
    /// # Errors
    /// A numeric error (none for a batch built for this model).
    pub fn encoder_output(&self, batch: &Batch) -> Result<Matrix<T>> {
        let placement = self.config.norm;
        let mut x = self.embed(Side::Source, &batch.src, batch.src_len, 0)?;
        for layer in &self.encoder {
            layer.forward(&mut x, batch.src_seqs(), placement, &mut Dropper::off())?;
        }
        Ok(final_norm(&self.encoder_norm, x)?.0)
    }

    /// The logits `[tgt_vocab, B·T]` of every decoder position (evaluation:
    /// no dropout). Column `b·T + t` scores the token that follows decoder
    /// input `t` of pair `b`.
    ///
    /// # Errors
    /// A numeric error (none for a batch built for this model).
    pub fn logits(&self, batch: &Batch) -> Result<Matrix<T>> {
        let cache = self.forward(batch, None)?;
        self.head(&cache.h)
    }

    fn cross_entropy(&self, label_smoothing: f64) -> CrossEntropy {
        CrossEntropy { label_smoothing, ignore: Some(self.config.specials.pad as usize) }
    }

    /// The loss of a batch (evaluation: no dropout, no gradients).
    ///
    /// # Errors
    /// [`addmul_core::Error::InvalidValue`] for a smoothing outside `[0, 1)`.
    pub fn loss(&self, batch: &Batch, label_smoothing: f64) -> Result<Loss> {
        let logits = self.logits(batch)?;
        let (loss, ce) = self.cross_entropy(label_smoothing).forward(&logits, &batch.tgt_out)?;
        Ok(Loss {
            loss,
            nll: nll(ce.log_probabilities(), &batch.tgt_out, self.config.specials.pad),
            tokens: batch.tokens,
        })
    }

    // ANCHOR: forward_backward
    /// One forward and backward pass with teacher forcing: returns the
    /// batch's loss (cross-entropy with `label_smoothing`, padding ignored)
    /// and **adds** `loss_scale ×` its gradient into every parameter.
    ///
    /// With `dropout_rng` set (and `dropout > 0`), dropout masks are drawn
    /// from it; with `None` the pass is deterministic.
    ///
    /// # Errors
    /// [`addmul_core::Error::InvalidValue`] for a smoothing outside `[0, 1)`.
    pub fn forward_backward(
        &mut self,
        batch: &Batch,
        label_smoothing: f64,
        dropout_rng: Option<&mut Rng>,
        loss_scale: f64,
    ) -> Result<Loss> {
        let cache = self.forward(batch, dropout_rng)?;
        let logits = self.head(&cache.h)?;
        let (loss, ce) = self.cross_entropy(label_smoothing).forward(&logits, &batch.tgt_out)?;
        let nll = nll(ce.log_probabilities(), &batch.tgt_out, self.config.specials.pad);
        let mut d_logits = ce.backward();
        if loss_scale != 1.0 {
            d_logits *= T::of(loss_scale);
        }
        let placement = self.config.norm;
        // Back through the decoder, collecting the encoder output's gradient
        // from every layer's cross-attention.
        let dh = self.head_backward(&cache.h, &d_logits)?;
        let mut dy = final_norm_backward(&mut self.decoder_norm, cache.decoder_norm.as_ref(), dh)?;
        let mut d_memory = Matrix::zeros(self.config.d_model, cache.memory_cols);
        for (layer, layer_cache) in self.decoder.iter_mut().zip(&cache.decoder).rev() {
            dy = layer.backward(layer_cache, dy, placement, &mut d_memory)?;
        }
        let dy = DropoutMask::backward_of(cache.tgt_drop.as_ref(), &dy)?;
        self.embed_backward(Side::Target, &batch.tgt_in, batch.tgt_len, &dy)?;
        // Then back through the encoder.
        let mut dx = final_norm_backward(&mut self.encoder_norm, cache.encoder_norm.as_ref(), d_memory)?;
        for (layer, layer_cache) in self.encoder.iter_mut().zip(&cache.encoder).rev() {
            dx = layer.backward(layer_cache, dx, placement)?;
        }
        let dx = DropoutMask::backward_of(cache.src_drop.as_ref(), &dx)?;
        self.embed_backward(Side::Source, &batch.src, batch.src_len, &dx)?;
        Ok(Loss { loss, nll, tokens: batch.tokens })
    }
    // ANCHOR_END: forward_backward

    /// The cross-attention weights of every decoder layer and head for one
    /// pair, decoded with teacher forcing: `[layer][head]`, each `[S, T]`
    /// with `S = source.len()` and `T = target.len() + 1`. Column `t` holds
    /// how much decoder position `t` (the one that predicts target token `t`,
    /// or the end token for the last) takes from each source token.
    ///
    /// # Errors
    /// As [`Batch::new`].
    pub fn cross_attention(&self, source: &[TokenId], target: &[TokenId]) -> Result<Vec<Vec<Matrix<T>>>> {
        let batch = self.batch(&[Pair { source: source.to_vec(), target: target.to_vec() }])?;
        let cache = self.forward(&batch, None)?;
        Ok(cache
            .decoder
            .iter()
            .map(|layer| (0..self.config.n_head).map(|h| layer.cross_attn.inner().weights(0, h)).collect())
            .collect())
    }

    // ANCHOR: encode
    /// Reads one source sentence and projects its encoding into every decoder
    /// layer's cross-attention keys and values, once for the whole decoding.
    ///
    /// # Errors
    /// [`TransformerError::EmptySource`], [`TransformerError::TooLong`],
    /// [`TransformerError::TokenOutOfRange`], [`TransformerError::SpecialToken`].
    pub fn encode(&self, source: &[TokenId]) -> Result<Encoded<T>> {
        check_sequence(&self.config, Side::Source, 0, source)?;
        let ids: Vec<usize> = source.iter().map(|&id| id as usize).collect();
        let mut x = self.embed(Side::Source, &ids, ids.len(), 0)?;
        let all = Seqs { len: ids.len(), padding: None };
        for layer in &self.encoder {
            layer.forward(&mut x, all, self.config.norm, &mut Dropper::off())?;
        }
        let memory = final_norm(&self.encoder_norm, x)?.0;
        let cross = self.decoder.iter().map(|layer| layer.project_memory(&memory)).collect::<Result<_>>()?;
        Ok(Encoded { memory, cross })
    }
    // ANCHOR_END: encode

    /// Empty key/value caches for decoding one hypothesis.
    pub fn decoder_state(&self) -> DecoderState<T> {
        let (d, len) = (self.config.d_model, self.config.max_len);
        LayerCaches::new(self.decoder.len(), d, len)
    }

    // ANCHOR: decode_step
    /// Feeds the next decoder input `token` (the start token first) and
    /// returns the logits of the token that follows it. Earlier tokens are
    /// not recomputed: their keys and values are in `state`.
    ///
    /// # Errors
    /// [`TransformerError::TooLong`] once `max_len` tokens have been fed;
    /// [`TransformerError::TokenOutOfRange`] for an unknown id.
    pub fn decode_step(&self, encoded: &Encoded<T>, state: &mut DecoderState<T>, token: TokenId) -> Result<Vec<T>> {
        let position = state.len();
        if position >= self.config.max_len {
            let max = self.config.max_len;
            return Err(TransformerError::TooLong { side: Side::Target, index: 0, len: position + 1, max });
        }
        let vocab_size = self.config.tgt_vocab_size;
        if token as usize >= vocab_size {
            return Err(TransformerError::TokenOutOfRange {
                side: Side::Target,
                id: token,
                index: 0,
                position,
                vocab_size,
            });
        }
        let mut y = self.embed(Side::Target, &[token as usize], 1, position)?;
        for ((layer, cache), memory) in self.decoder.iter().zip(state.layers_mut()).zip(&encoded.cross) {
            layer.step(&mut y, cache, memory, self.config.norm)?;
        }
        let h = final_norm(&self.decoder_norm, y)?.0;
        Ok(self.head(&h)?.as_slice().to_vec())
    }
    // ANCHOR_END: decode_step
}

/// The pre-norm model's last layer norm (the identity for post-norm).
fn final_norm<T: Float>(norm: &Option<LayerNorm<T>>, x: Matrix<T>) -> Result<(Matrix<T>, Option<LayerNormCache<T>>)> {
    match norm {
        Some(norm) => {
            let (y, cache) = addmul_core::Layer::forward(norm, &x)?;
            Ok((y, Some(cache)))
        }
        None => Ok((x, None)),
    }
}

fn final_norm_backward<T: Float>(
    norm: &mut Option<LayerNorm<T>>,
    cache: Option<&LayerNormCache<T>>,
    dy: Matrix<T>,
) -> Result<Matrix<T>> {
    match (norm, cache) {
        (Some(norm), Some(cache)) => Ok(addmul_core::Layer::backward(norm, cache, &dy)?),
        _ => Ok(dy),
    }
}

/// Mean `-log p(target)` over the targets that are not padding.
fn nll<T: Float>(log_probs: &Matrix<T>, targets: &[usize], pad: TokenId) -> f64 {
    let (mut total, mut n) = (0.0, 0usize);
    for (j, &t) in targets.iter().enumerate() {
        if t != pad as usize {
            total -= log_probs[(t, j)].as_f64();
            n += 1;
        }
    }
    if n == 0 { 0.0 } else { total / n as f64 }
}

impl<T: Float> Parameters<T> for Transformer<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        visit_child("src_embed", &self.src_embed, f);
        visit_child("tgt_embed", &self.tgt_embed, f);
        if let Positions::Learned { src, tgt } = &self.positions {
            visit_child("src_pos", src, f);
            visit_child("tgt_pos", tgt, f);
        }
        for (i, layer) in self.encoder.iter().enumerate() {
            visit_child(&format!("encoder.layers.{i}"), layer, f);
        }
        if let Some(norm) = &self.encoder_norm {
            visit_child("encoder.norm", norm, f);
        }
        for (i, layer) in self.decoder.iter().enumerate() {
            visit_child(&format!("decoder.layers.{i}"), layer, f);
        }
        if let Some(norm) = &self.decoder_norm {
            visit_child("decoder.norm", norm, f);
        }
        if let Some(head) = &self.lm_head {
            visit_child("lm_head", head, f);
        }
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        visit_child_mut("src_embed", &mut self.src_embed, f);
        visit_child_mut("tgt_embed", &mut self.tgt_embed, f);
        if let Positions::Learned { src, tgt } = &mut self.positions {
            visit_child_mut("src_pos", src, f);
            visit_child_mut("tgt_pos", tgt, f);
        }
        for (i, layer) in self.encoder.iter_mut().enumerate() {
            visit_child_mut(&format!("encoder.layers.{i}"), layer, f);
        }
        if let Some(norm) = &mut self.encoder_norm {
            visit_child_mut("encoder.norm", norm, f);
        }
        for (i, layer) in self.decoder.iter_mut().enumerate() {
            visit_child_mut(&format!("decoder.layers.{i}"), layer, f);
        }
        if let Some(norm) = &mut self.decoder_norm {
            visit_child_mut("decoder.norm", norm, f);
        }
        if let Some(head) = &mut self.lm_head {
            visit_child_mut("lm_head", head, f);
        }
    }
}
