//! The model's shape, and Hugging Face's `config.json`.

use addmul_nn::Activation;
use serde::{Deserialize, Serialize};

use crate::{GptError, Result};

/// The architecture of a [`Gpt`](crate::Gpt).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GptConfig {
    /// Number of token ids.
    pub vocab_size: usize,
    /// The longest sequence the model can read (GPT-2's `n_positions`).
    pub block_size: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block.
    pub n_head: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Dropout probability on the embeddings and on both residual branches.
    pub dropout: f64,
    /// Biases in the linear layers and layer norms (GPT-2 has them).
    pub bias: bool,
    /// Layer norm `ε` (GPT-2: 1e-5).
    pub layer_norm_eps: f64,
    /// `true` for GPT-2's tanh approximation of GELU (`gelu_new`), `false`
    /// for the exact erf form.
    pub gelu_tanh: bool,
    /// Scale attention scores by `1/sqrt(head width)` (GPT-2: yes;
    /// Hugging Face's `scale_attn_weights`).
    #[serde(default = "yes")]
    pub scale_attn_weights: bool,
    /// Also divide block `i`'s attention scores by `i + 1` (Hugging Face's
    /// `scale_attn_by_inverse_layer_idx`; GPT-2: no).
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
}

fn yes() -> bool {
    true
}

impl GptConfig {
    /// A GPT-2-style configuration with biases, tanh GELU, `ε = 1e-5`, no
    /// dropout.
    pub fn new(vocab_size: usize, block_size: usize, n_layer: usize, n_head: usize, n_embd: usize) -> Self {
        GptConfig {
            vocab_size,
            block_size,
            n_layer,
            n_head,
            n_embd,
            dropout: 0.0,
            bias: true,
            layer_norm_eps: 1e-5,
            gelu_tanh: true,
            scale_attn_weights: true,
            scale_attn_by_inverse_layer_idx: false,
        }
    }

    /// The factor on block `layer`'s attention scores (counting from 0) when
    /// it is not the usual `1/sqrt(n_embd/n_head)`: 1 without
    /// `scale_attn_weights`, and divided by `layer + 1` with
    /// `scale_attn_by_inverse_layer_idx`. `None` for GPT-2's usual scale.
    pub fn attention_scale(&self, layer: usize) -> Option<f64> {
        if self.scale_attn_weights && !self.scale_attn_by_inverse_layer_idx {
            return None;
        }
        let head = if self.scale_attn_weights { 1.0 / ((self.n_embd / self.n_head.max(1)) as f64).sqrt() } else { 1.0 };
        Some(if self.scale_attn_by_inverse_layer_idx { head / (layer + 1) as f64 } else { head })
    }

    /// The MLP's activation.
    pub fn activation(&self) -> Activation {
        if self.gelu_tanh { Activation::GeluTanh } else { Activation::GeluErf }
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`GptError::Config`] naming the field: a size of 0, `n_embd` not
    /// divisible by `n_head`, dropout outside `[0, 1)`, a negative `ε`.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("block_size", self.block_size),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
        ] {
            if v == 0 {
                return Err(GptError::config(field, v, "must be at least 1"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(GptError::config(
                "n_embd",
                self.n_embd,
                format!("must be divisible by n_head = {} (each head gets n_embd / n_head features)", self.n_head),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(GptError::config("dropout", self.dropout, "must be in [0, 1)"));
        }
        if !(self.layer_norm_eps >= 0.0 && self.layer_norm_eps.is_finite()) {
            return Err(GptError::config("layer_norm_eps", self.layer_norm_eps, "must be >= 0 and finite"));
        }
        // Every parameter has a value, a gradient and two moments: their
        // bytes must be countable before anything is allocated.
        let bytes = self.checked_num_params().and_then(|n| n.checked_mul(4 * std::mem::size_of::<f64>()));
        if bytes.is_none_or(|b| b > isize::MAX as usize) {
            return Err(GptError::config(
                "n_embd",
                self.n_embd,
                format!(
                    "with vocab_size {}, block_size {} and n_layer {}, the model has more parameters than memory can address",
                    self.vocab_size, self.block_size, self.n_layer
                ),
            ));
        }
        Ok(())
    }

    /// Number of parameters (the tied head counted once).
    ///
    /// # Panics
    /// If the count overflows a `usize`, which [`GptConfig::validate`]
    /// refuses.
    pub fn num_params(&self) -> usize {
        self.checked_num_params().expect("a valid configuration's parameters can be counted")
    }

    /// [`GptConfig::num_params`], or `None` if the count overflows.
    fn checked_num_params(&self) -> Option<usize> {
        let (c, v, t, l) = (self.n_embd, self.vocab_size, self.block_size, self.n_layer);
        let b = usize::from(self.bias);
        // Per block: two layer norms, c_attn [3c, c], attn.c_proj [c, c],
        // mlp.c_fc [4c, c], mlp.c_proj [c, 4c], and their biases.
        let cc = c.checked_mul(c)?;
        let per_block = cc.checked_mul(12)?.checked_add(c.checked_mul(2 + 11 * b)?)?;
        let embeddings = v.checked_add(t)?.checked_mul(c)?;
        let final_norm = c.checked_mul(1 + b)?;
        l.checked_mul(per_block)?.checked_add(embeddings)?.checked_add(final_norm)
    }

    /// Parameters that take part in matrix products: every block's four
    /// weight matrices and the (tied) output head, `V · C` (biases, layer
    /// norms and the position table do not multiply anything).
    pub fn matmul_params(&self) -> usize {
        let c = self.n_embd;
        self.n_layer * 12 * c * c + self.vocab_size * c
    }

    // ANCHOR: flops
    /// Floating-point operations of one training step on `tokens` tokens of
    /// sequences of `seq_len`, counted the usual way: `6 N` per token for the
    /// matrix products (2 per multiply-add, backward twice the forward) plus
    /// `12 · n_layer · seq_len · C` for the attention scores and weighted
    /// sums (without taking the causal mask's saving into account), as the
    /// PyTorch reference counts them.
    pub fn training_flops(&self, tokens: usize, seq_len: usize) -> f64 {
        let per_token = 6.0 * self.matmul_params() as f64 + 12.0 * (self.n_layer * seq_len * self.n_embd) as f64;
        per_token * tokens as f64
    }
    // ANCHOR_END: flops

    /// The Hugging Face `config.json` of a `GPT2LMHeadModel` with this shape.
    pub fn to_hf_json(&self) -> String {
        let value = serde_json::json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": self.vocab_size,
            "n_positions": self.block_size,
            "n_ctx": self.block_size,
            "n_embd": self.n_embd,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_inner": null,
            "activation_function": if self.gelu_tanh { "gelu_new" } else { "gelu" },
            "resid_pdrop": self.dropout,
            "embd_pdrop": self.dropout,
            "attn_pdrop": 0.0,
            "layer_norm_epsilon": self.layer_norm_eps,
            "initializer_range": 0.02,
            "scale_attn_weights": self.scale_attn_weights,
            "scale_attn_by_inverse_layer_idx": self.scale_attn_by_inverse_layer_idx,
            "reorder_and_upcast_attn": false,
            "tie_word_embeddings": true,
            "use_cache": true,
            "bos_token_id": null,
            "eos_token_id": null,
            "torch_dtype": "float32",
            "addmul_bias": self.bias,
        });
        serde_json::to_string_pretty(&value).expect("a JSON value serialises")
    }

    /// Reads a Hugging Face GPT-2 `config.json`. Every field that changes the
    /// numbers is honoured (`activation_function` gelu_new, gelu_pytorch_tanh
    /// or gelu; `layer_norm_epsilon`; `scale_attn_weights`;
    /// `scale_attn_by_inverse_layer_idx`; `reorder_and_upcast_attn`, which in
    /// float32 gives the same numbers) or refused.
    ///
    /// # Errors
    /// [`GptError::Config`] for missing or unsupported fields (anything but
    /// `gpt2`, an inner width other than `4 · n_embd`, untied embeddings,
    /// another activation, a flag that is not a boolean).
    pub fn from_hf_json(text: &str) -> Result<Self> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| GptError::config("config.json", "", e.to_string()))?;
        let size = |field: &'static str| -> Result<usize> {
            v.get(field).and_then(serde_json::Value::as_u64).map(|n| n as usize).ok_or_else(|| {
                GptError::config(
                    field,
                    v.get(field).map_or("missing".into(), |x| x.to_string()),
                    "expected a whole number",
                )
            })
        };
        if let Some(t) = v.get("model_type").and_then(|t| t.as_str())
            && t != "gpt2"
        {
            return Err(GptError::config("model_type", t, "only gpt2 is supported"));
        }
        let n_embd = size("n_embd")?;
        if let Some(inner) = v.get("n_inner").and_then(serde_json::Value::as_u64)
            && n_embd.checked_mul(4) != Some(inner as usize)
        {
            return Err(GptError::config("n_inner", inner, "only 4 * n_embd is supported"));
        }
        if v.get("tie_word_embeddings").and_then(serde_json::Value::as_bool) == Some(false) {
            return Err(GptError::config("tie_word_embeddings", false, "the output head must be tied to wte"));
        }
        let gelu_tanh = match v.get("activation_function").and_then(|a| a.as_str()).unwrap_or("gelu_new") {
            "gelu_new" | "gelu_pytorch_tanh" => true,
            "gelu" => false,
            other => return Err(GptError::config("activation_function", other, "expected gelu_new or gelu")),
        };
        let float = |field: &str, default: f64| v.get(field).and_then(serde_json::Value::as_f64).unwrap_or(default);
        let flag = |field: &'static str, default: bool| match v.get(field) {
            None | Some(serde_json::Value::Null) => Ok(default),
            Some(serde_json::Value::Bool(b)) => Ok(*b),
            Some(other) => Err(GptError::config(field, other, "expected true or false")),
        };
        // `reorder_and_upcast_attn` computes the scores in float32 with the
        // scale applied first, which changes half-precision models only;
        // addmul computes in float32 throughout, so the flag is honoured by
        // construction (the same numbers up to float32 rounding; tested).
        flag("reorder_and_upcast_attn", false)?;
        let config = GptConfig {
            vocab_size: size("vocab_size")?,
            block_size: size("n_positions")?,
            n_layer: size("n_layer")?,
            n_head: size("n_head")?,
            n_embd,
            dropout: float("resid_pdrop", 0.0),
            bias: v.get("addmul_bias").and_then(serde_json::Value::as_bool).unwrap_or(true),
            layer_norm_eps: float("layer_norm_epsilon", 1e-5),
            gelu_tanh,
            scale_attn_weights: flag("scale_attn_weights", true)?,
            scale_attn_by_inverse_layer_idx: flag("scale_attn_by_inverse_layer_idx", false)?,
        };
        config.validate()?;
        Ok(config)
    }
}
