//! The GPT-2 architecture, forward and backward.

use addmul_core::{Float, Init, Layer, Matrix, Op, Param, Parameters, Rng, gemm, matmul, visit_child, visit_child_mut};
use addmul_dropout::{DropoutMask, Dropper};
use addmul_embedding::Embedding;
use addmul_layernorm::{LayerNorm, LayerNormCache};
use addmul_multihead::{KvCache, LayerCaches, MultiHeadAttention, MultiHeadCache, MultiHeadConfig};
use addmul_nn::{Linear, Mlp, MlpCache};
use addmul_posenc::LearnedPositions;
use addmul_residual::NormPlacement::Pre;
use addmul_residual::{SublayerCache, sublayer, sublayer_backward};
use addmul_softmax::CrossEntropy;

use crate::{GptConfig, GptError, Result};

/// A token id.
pub type TokenId = u32;

/// The position-wise feed-forward network of a block, `c_proj(gelu(c_fc(x)))`,
/// widening to `4 · n_embd` and back: an [`Mlp`] whose layers carry GPT-2's
/// names, the second initialised like every projection into the residual
/// stream.
fn feed_forward<T: Float>(config: &GptConfig, init: Init, out_init: Init, rng: &mut Rng) -> Result<Mlp<T>> {
    let (d, bias) = (config.n_embd, config.bias);
    let layers = vec![Linear::new(d, 4 * d, bias, init, rng), Linear::new(4 * d, d, bias, out_init, rng)];
    Ok(Mlp::from_layers(layers, config.activation())?.with_names(&["c_fc", "c_proj"])?)
}

/// One transformer block, pre-norm as GPT-2:
/// `x ← x + attn(ln_1(x))`, then `x ← x + mlp(ln_2(x))`.
#[derive(Debug, Clone, PartialEq)]
pub struct Block<T: Float> {
    ln_1: LayerNorm<T>,
    attn: MultiHeadAttention<T>,
    ln_2: LayerNorm<T>,
    mlp: Mlp<T>,
}

#[derive(Debug, Clone)]
struct BlockCache<T: Float> {
    attn: SublayerCache<T, LayerNormCache<T>, MultiHeadCache<T>>,
    mlp: SublayerCache<T, LayerNormCache<T>, MlpCache<T>>,
}

impl<T: Float> Block<T> {
    // ANCHOR: block_forward
    fn forward(&self, x: &mut Matrix<T>, seq_len: usize, drop: &mut Dropper<'_>) -> Result<BlockCache<T>> {
        let attn = sublayer(Pre, &self.ln_1, x, drop, |h| self.attn.forward_self_owned(h, seq_len, None))?;
        let mlp = sublayer(Pre, &self.ln_2, x, drop, |h| self.mlp.forward_owned(h))?;
        Ok(BlockCache { attn, mlp })
    }
    // ANCHOR_END: block_forward

    fn backward(&mut self, cache: &BlockCache<T>, dy: Matrix<T>) -> Result<Matrix<T>> {
        let mlp = &mut self.mlp;
        let dx = sublayer_backward(Pre, &mut self.ln_2, &cache.mlp, dy, |c, d| mlp.backward(c, d))?;
        let attn = &mut self.attn;
        Ok(sublayer_backward(Pre, &mut self.ln_1, &cache.attn, dx, |c, d| Ok(attn.backward(c, d)?.dx))?)
    }

    fn decode(&self, x: &mut Matrix<T>, cache: &mut KvCache<T>) -> Result<()> {
        let off = &mut Dropper::off();
        sublayer(Pre, &self.ln_1, x, off, |h| Ok((self.attn.forward_cached(&h, cache)?, ())))?;
        sublayer(Pre, &self.ln_2, x, off, |h| Ok((self.mlp.predict(&h)?, ())))?;
        Ok(())
    }
}

impl<T: Float> Parameters<T> for Block<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        visit_child("ln_1", &self.ln_1, f);
        visit_child("attn", &self.attn, f);
        visit_child("ln_2", &self.ln_2, f);
        visit_child("mlp", &self.mlp, f);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        visit_child_mut("ln_1", &mut self.ln_1, f);
        visit_child_mut("attn", &mut self.attn, f);
        visit_child_mut("ln_2", &mut self.ln_2, f);
        visit_child_mut("mlp", &mut self.mlp, f);
    }
}

/// A batch of `B` sequences of `seq_len` tokens, side by side, and the token
/// that follows each position.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// `B · seq_len` input ids.
    pub inputs: &'a [TokenId],
    /// `B · seq_len` target ids: `targets[i]` is the token after `inputs[i]`.
    pub targets: &'a [TokenId],
    /// Tokens per sequence.
    pub seq_len: usize,
    /// A target id that is not predicted: its positions add neither loss nor
    /// gradient, and the loss is the mean over the other positions (for
    /// padding, or a prompt the model should read but not learn to write).
    pub ignore: Option<TokenId>,
}

impl Batch<'_> {
    /// The loss: plain cross-entropy, skipping the ignored target.
    fn cross_entropy(&self) -> CrossEntropy {
        CrossEntropy { label_smoothing: 0.0, ignore: self.ignore.map(|id| id as usize) }
    }
}

/// A GPT-2-style decoder-only transformer (see the crate documentation).
///
/// Parameter names are Hugging Face's: `transformer.wte.weight`,
/// `transformer.wpe.weight`, `transformer.h.{i}.ln_1.weight`, …,
/// `transformer.ln_f.bias`. The output head is `transformer.wte.weight`
/// itself (tied), so it has no name of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpt<T: Float> {
    config: GptConfig,
    wte: Embedding<T>,
    wpe: LearnedPositions<T>,
    h: Vec<Block<T>>,
    ln_f: LayerNorm<T>,
}

struct ForwardCache<T: Float> {
    ids: Vec<usize>,
    seq_len: usize,
    drop_emb: Option<DropoutMask<T>>,
    blocks: Vec<BlockCache<T>>,
    ln_f: LayerNormCache<T>,
    h_f: Matrix<T>,
}

/// The key/value caches of every block, for incremental decoding of one
/// sequence.
pub type DecodeState<T> = LayerCaches<T>;

impl<T: Float> Gpt<T> {
    // ANCHOR: init
    /// A model with GPT-2's initialisation: weights `N(0, 0.02)`, the two
    /// projections into the residual stream (`attn.c_proj`, `mlp.c_proj`)
    /// `N(0, 0.02 / sqrt(2 · n_layer))` so that the stream's variance does not
    /// grow with depth, biases 0, layer-norm gains 1.
    ///
    /// # Errors
    /// [`GptError::Config`] for an invalid configuration.
    pub fn new(config: GptConfig, rng: &mut Rng) -> Result<Self> {
        let out_std = 0.02 / (2.0 * config.n_layer as f64).sqrt();
        Self::with_init(config, Init::Normal { std: 0.02 }, Init::Normal { std: out_std }, rng)
    }

    /// A model with its weights drawn from `init`, and the two projections
    /// into the residual stream from `out_init`; biases 0, layer-norm gains
    /// one. `Init::Zeros` makes a model to load weights into, at the cost of
    /// one pass of writes instead of drawing 124M random numbers.
    ///
    /// # Errors
    /// [`GptError::Config`] for an invalid configuration.
    pub fn with_init(config: GptConfig, init: Init, out_init: Init, rng: &mut Rng) -> Result<Self> {
        config.validate()?;
        let (c, b) = (config.n_embd, config.bias);
        let norm = |d| {
            let ln = LayerNorm::new(d).with_eps(config.layer_norm_eps)?;
            Ok::<_, addmul_core::Error>(if b { ln } else { ln.without_bias() })
        };
        let wte = Embedding::new(config.vocab_size, c, init, rng)?;
        let wpe = LearnedPositions::new(config.block_size, c, init, rng)?;
        let mut h = Vec::with_capacity(config.n_layer);
        for layer in 0..config.n_layer {
            let mut attn = MultiHeadConfig::self_attention(c, config.n_head).causal().bias(b);
            if let Some(scale) = config.attention_scale(layer) {
                attn = attn.score_scale(scale); // Hugging Face variants of GPT-2
            }
            let attn = attn.init_with(init, out_init, rng)?;
            let mlp = feed_forward(&config, init, out_init, rng)?;
            h.push(Block { ln_1: norm(c)?, attn, ln_2: norm(c)?, mlp });
        }
        Ok(Gpt { config, wte, wpe, h, ln_f: norm(c)? })
    }
    // ANCHOR_END: init

    /// The architecture.
    pub fn config(&self) -> &GptConfig {
        &self.config
    }

    /// Sets the dropout probability used in training (fine-tuning a
    /// pretrained model with other dropout than it was trained with).
    ///
    /// # Errors
    /// [`GptError::Config`] unless `p` is in `[0, 1)`.
    pub fn set_dropout(&mut self, p: f64) -> Result<()> {
        GptConfig { dropout: p, ..self.config }.validate()?;
        self.config.dropout = p;
        Ok(())
    }

    fn check_ids(&self, ids: &[TokenId]) -> Result<Vec<usize>> {
        ids.iter()
            .enumerate()
            .map(|(position, &id)| {
                if (id as usize) < self.config.vocab_size {
                    Ok(id as usize)
                } else {
                    Err(GptError::TokenOutOfRange { id, position, vocab_size: self.config.vocab_size })
                }
            })
            .collect()
    }

    fn check_batch(&self, inputs: &[TokenId], seq_len: usize) -> Result<Vec<usize>> {
        if seq_len == 0 || seq_len > self.config.block_size {
            return Err(GptError::config("seq_len", seq_len, format!("must be in 1..={}", self.config.block_size)));
        }
        if inputs.is_empty() || !inputs.len().is_multiple_of(seq_len) {
            return Err(GptError::config(
                "batch",
                inputs.len(),
                format!("must be a non-zero multiple of seq_len {seq_len}"),
            ));
        }
        self.check_ids(inputs)
    }

    // ANCHOR: forward
    /// The final hidden states `[n_embd, B·T]` and everything backward needs.
    fn forward_hidden(&self, inputs: &[TokenId], seq_len: usize, rng: Option<&mut Rng>) -> Result<ForwardCache<T>> {
        let ids = self.check_batch(inputs, seq_len)?;
        let mut drop = Dropper::new(self.config.dropout, rng)?;
        let mut x = self.wte.forward(&ids)?; // token embeddings
        self.wpe.add_to(&mut x, seq_len, 0)?; // + position embeddings
        let (mut x, drop_emb) = drop.apply(x);
        let mut blocks = Vec::with_capacity(self.h.len());
        for block in &self.h {
            blocks.push(block.forward(&mut x, seq_len, &mut drop)?);
        }
        let (h_f, ln_f) = self.ln_f.forward(&x)?;
        Ok(ForwardCache { ids, seq_len, drop_emb, blocks, ln_f, h_f })
    }

    /// Logits `[vocab, n]` from hidden states `[n_embd, n]`: the output head
    /// is the token embedding, transposed (weight tying).
    fn head(&self, h: &Matrix<T>) -> Result<Matrix<T>> {
        Ok(matmul(self.wte.weight().value(), Op::T, h, Op::N)?)
    }
    // ANCHOR_END: forward

    /// The logits `[vocab, B·T]` for a batch of `B` sequences of `seq_len`
    /// tokens (evaluation: no dropout).
    ///
    /// # Errors
    /// [`GptError::TokenOutOfRange`] for an unknown id; [`GptError::Config`]
    /// for a length that does not fit the model.
    pub fn logits(&self, inputs: &[TokenId], seq_len: usize) -> Result<Matrix<T>> {
        let cache = self.forward_hidden(inputs, seq_len, None)?;
        self.head(&cache.h_f)
    }

    /// Where every head of every block looks, for one sequence `ids`
    /// (evaluation: no dropout): `maps[block][head]` is `[T, T]`, column `j`
    /// holding query `j`'s weights over the keys (zero on the future).
    ///
    /// # Errors
    /// As [`Gpt::logits`].
    pub fn attention_maps(&self, ids: &[TokenId]) -> Result<Vec<Vec<Matrix<T>>>> {
        let cache = self.forward_hidden(ids, ids.len(), None)?;
        Ok(cache
            .blocks
            .iter()
            .map(|block| (0..self.config.n_head).map(|head| block.attn.inner().weights(0, head)).collect())
            .collect())
    }

    /// The mean cross-entropy of the batch (evaluation: no dropout, no
    /// gradients).
    ///
    /// # Errors
    /// As [`Gpt::logits`], and for targets outside the vocabulary.
    pub fn loss(&self, batch: &Batch<'_>) -> Result<f64> {
        let targets = self.check_targets(batch)?;
        let logits = self.logits(batch.inputs, batch.seq_len)?;
        Ok(batch.cross_entropy().forward(&logits, &targets)?.0)
    }

    fn check_targets(&self, batch: &Batch<'_>) -> Result<Vec<usize>> {
        if batch.targets.len() != batch.inputs.len() {
            return Err(GptError::config(
                "targets",
                batch.targets.len(),
                format!("need one per input ({})", batch.inputs.len()),
            ));
        }
        self.check_ids(batch.targets)
    }

    // ANCHOR: forward_backward
    /// One forward and backward pass: returns the batch's mean cross-entropy
    /// and **adds** `loss_scale ×` its gradient into every parameter.
    ///
    /// With `dropout_rng` set (and `dropout > 0`), dropout masks are drawn from
    /// it; with `None` the pass is deterministic. `loss_scale` lets several
    /// micro-batches or threads add up to the gradient of their overall mean.
    ///
    /// # Errors
    /// As [`Gpt::loss`].
    pub fn forward_backward(
        &mut self,
        batch: &Batch<'_>,
        dropout_rng: Option<&mut Rng>,
        loss_scale: f64,
    ) -> Result<f64> {
        let targets = self.check_targets(batch)?;
        let cache = self.forward_hidden(batch.inputs, batch.seq_len, dropout_rng)?;
        let logits = self.head(&cache.h_f)?;
        let (loss, ce) = batch.cross_entropy().forward(&logits, &targets)?;
        drop(logits);
        let mut d_logits = ce.backward();
        drop(ce);
        if loss_scale != 1.0 {
            d_logits *= T::of(loss_scale);
        }
        // The tied head: dWte += h · dlogitsᵀ, dh = Wte · dlogits.
        if let Some(grad) = self.wte.weight_mut().trainable_grad() {
            gemm(T::one(), &cache.h_f, Op::N, &d_logits, Op::T, T::one(), grad)?;
        }
        let dh = matmul(self.wte.weight().value(), Op::N, &d_logits, Op::N)?;
        let mut dx = self.ln_f.backward(&cache.ln_f, &dh)?;
        for (block, block_cache) in self.h.iter_mut().zip(&cache.blocks).rev() {
            dx = block.backward(block_cache, dx)?;
        }
        let dx = DropoutMask::backward_of(cache.drop_emb.as_ref(), &dx)?;
        self.wpe.backward(&dx, cache.seq_len, 0)?;
        self.wte.backward(&cache.ids, &dx)?;
        Ok(loss)
    }
    // ANCHOR_END: forward_backward

    /// Empty key/value caches for decoding one sequence of up to `block_size`
    /// tokens.
    pub fn decode_state(&self) -> DecodeState<T> {
        LayerCaches::new(self.h.len(), self.config.n_embd, self.config.block_size)
    }

    // ANCHOR: decode
    /// Feeds `ids` (which follow the `state.len()` tokens already decoded) and
    /// returns the logits of the last one. Each new token costs one position:
    /// earlier tokens' keys and values come from the caches.
    ///
    /// # Errors
    /// [`GptError::Config`] if the sequence would exceed `block_size` (the
    /// caller must start again from a shorter context);
    /// [`GptError::TokenOutOfRange`] for an unknown id.
    pub fn decode(&self, state: &mut DecodeState<T>, ids: &[TokenId]) -> Result<Vec<T>> {
        let start = state.len();
        if ids.is_empty() || start + ids.len() > self.config.block_size {
            return Err(GptError::config(
                "decode length",
                start + ids.len(),
                format!("must be in 1..={} (block_size)", self.config.block_size),
            ));
        }
        let ids = self.check_ids(ids)?;
        let mut x = self.wte.forward(&ids)?;
        self.wpe.add_to(&mut x, ids.len(), start)?;
        // Several tokens (a prompt): each product is large enough to share
        // among the cores (one token's are shared by the matrix-vector path).
        let mut blocks = |x: &mut Matrix<T>| -> Result<()> {
            for (block, cache) in self.h.iter().zip(state.layers_mut()) {
                block.decode(x, cache)?;
            }
            Ok(())
        };
        if ids.len() > 1 {
            addmul_core::parallel::share_products(|| blocks(&mut x))?
        } else {
            blocks(&mut x)?
        }
        let last = x.columns(ids.len() - 1, 1).into_owned();
        let (h, _) = self.ln_f.forward(&last)?;
        Ok(self.head(&h)?.as_slice().to_vec())
    }
    // ANCHOR_END: decode

    /// The token embedding (also the output head).
    pub fn wte(&self) -> &Embedding<T> {
        &self.wte
    }

    /// The learned position table, one column per position.
    pub fn wpe(&self) -> &LearnedPositions<T> {
        &self.wpe
    }

    /// Every linear layer under its Hugging Face name, as
    /// [`Gpt::linear_layers_mut`] lists them.
    pub fn linear_layers(&self) -> Vec<(String, &Linear<T>)> {
        let mut out = Vec::with_capacity(4 * self.h.len());
        for (i, block) in self.h.iter().enumerate() {
            for (name, layer) in block.attn.linear_layers() {
                out.push((format!("transformer.h.{i}.attn.{name}"), layer));
            }
            for (name, layer) in block.mlp.linear_layers() {
                out.push((format!("transformer.h.{i}.mlp.{name}"), layer));
            }
        }
        out
    }

    /// The names of the parameters of side paths attached to the linear
    /// layers (low-rank adapters: `transformer.h.0.attn.c_attn.lora_A.weight`,
    /// ...): parameters of the model that are not GPT-2's own.
    pub fn side_path_param_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for (layer, linear) in self.linear_layers() {
            if let Some(side) = linear.side_path() {
                side.visit(&mut |name, _| names.push(format!("{layer}.{name}")));
            }
        }
        names
    }

    /// Every linear layer under its Hugging Face name
    /// (`transformer.h.0.attn.c_attn`, `transformer.h.0.attn.c_proj`,
    /// `transformer.h.0.mlp.c_fc`, `transformer.h.0.mlp.c_proj`, ...),
    /// mutably: where low-rank adapters attach ([`Linear::attach`]).
    pub fn linear_layers_mut(&mut self) -> Vec<(String, &mut Linear<T>)> {
        let mut out = Vec::with_capacity(4 * self.h.len());
        for (i, block) in self.h.iter_mut().enumerate() {
            for (name, layer) in block.attn.linear_layers_mut() {
                out.push((format!("transformer.h.{i}.attn.{name}"), layer));
            }
            for (name, layer) in block.mlp.linear_layers_mut() {
                out.push((format!("transformer.h.{i}.mlp.{name}"), layer));
            }
        }
        out
    }
}

impl<T: Float> Parameters<T> for Gpt<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        visit_child("transformer.wte", &self.wte, f);
        visit_child("transformer.wpe", &self.wpe, f);
        for (i, block) in self.h.iter().enumerate() {
            visit_child(&format!("transformer.h.{i}"), block, f);
        }
        visit_child("transformer.ln_f", &self.ln_f, f);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        visit_child_mut("transformer.wte", &mut self.wte, f);
        visit_child_mut("transformer.wpe", &mut self.wpe, f);
        for (i, block) in self.h.iter_mut().enumerate() {
            visit_child_mut(&format!("transformer.h.{i}"), block, f);
        }
        visit_child_mut("transformer.ln_f", &mut self.ln_f, f);
    }
}
