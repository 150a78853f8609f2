//! Chapters 14 and 15: the GPT and the Transformer drawn from their real
//! configurations, every parameter count read off a built model.

use std::collections::BTreeMap;

use addmul::core::{Init, Parameters, rng};
use addmul::demos::NumbersOptions;
use addmul::gpt::{Gpt, GptTrainConfig};
use addmul::nn::{Activation, Linear, Mlp};
use addmul::plot::{ArchitectureDiagram, Stage};
use addmul::transformer::tasks::numbers;
use addmul::transformer::{Transformer, TransformerConfig};
use anyhow::{Result, ensure};

use super::{Gen, thousands};

/// Parameters by name, summed over every name that starts with a prefix.
fn counts<T: addmul::core::Float>(model: &dyn Parameters<T>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    model.visit(&mut |name, p| {
        out.insert(name.to_string(), p.len());
    });
    out
}

fn sum(counts: &BTreeMap<String, usize>, prefix: &str) -> usize {
    counts.iter().filter(|(n, _)| n.starts_with(prefix)).map(|(_, c)| c).sum()
}

fn params(n: usize) -> String {
    format!("{} parameters", thousands(n as u64))
}

pub fn generate(g: &mut Gen) -> Result<()> {
    gpt(g)?;
    transformer(g)
}

/// `cpu-small` on tinyshakespeare's 65 characters.
fn gpt(g: &mut Gen) -> Result<()> {
    let c = GptTrainConfig::cpu_small().model_config(65);
    let model = Gpt::<f32>::new(c, &mut rng(14))?;
    let n = counts(&model);
    let (v, t, d, l, h) = (c.vocab_size, c.block_size, c.n_embd, c.n_layer, c.n_head);
    let block = |part: &str| sum(&n, &format!("transformer.h.0.{part}"));
    let stages = vec![
        Stage::new("token ids", format!("up to {t} per window"), ""),
        Stage::new(
            "wte + wpe",
            format!("[{d}, {v}] tokens + [{d}, {t}] positions"),
            params(sum(&n, "transformer.wte") + sum(&n, "transformer.wpe")),
        ),
        Stage::new("ln_1", format!("layer norm over {d}"), params(block("ln_1"))),
        Stage::new(
            "causal self-attention",
            format!("{h} heads of {}: c_attn [{}, {d}], c_proj [{d}, {d}]", d / h, 3 * d),
            params(block("attn")),
        ),
        Stage::new("ln_2", format!("layer norm over {d}"), params(block("ln_2"))),
        Stage::new("MLP", format!("c_fc [{}, {d}], GELU, c_proj [{d}, {}]", 4 * d, 4 * d), params(block("mlp"))),
        Stage::new("ln_f", format!("layer norm over {d}"), params(sum(&n, "transformer.ln_f"))),
        Stage::new("lm_head = wte transposed", format!("[{v}, {d}], tied: no new numbers"), "0 parameters"),
        Stage::new("next-token scores", format!("[{v}, T]"), ""),
    ];
    let total: usize = n.values().sum();
    let per_block = block("ln_1") + block("attn") + block("ln_2") + block("mlp");
    ensure!(
        total == sum(&n, "transformer.wte") + sum(&n, "transformer.wpe") + l * per_block + sum(&n, "transformer.ln_f"),
        "the drawing's parts no longer add up to the model: update xtask/src/chapters/architecture.rs"
    );
    ArchitectureDiagram::new(format!("cpu-small on {v} characters: {} parameters", thousands(total as u64)))
        .column("the GPT (bottom to top)", stages, Some((2, 5, format!("× {l} blocks"))))
        .save(g.figure("ch14_architecture.svg"))?;
    g.values.set("ch14.arch.total", thousands(total as u64));
    g.values.set("ch14.arch.per_block", thousands(per_block as u64));
    feed_forward_without_activation(g)
}

/// Chapter 14's note on the feed-forward network: without its GELU, the
/// `c_fc` and `c_proj` layers of cpu-small's first block are one matrix.
fn feed_forward_without_activation(g: &mut Gen) -> Result<()> {
    let c = GptTrainConfig::cpu_small().model_config(65);
    let model = Gpt::<f64>::new(c, &mut rng(14))?;
    let layer = |name: &str| -> Result<Linear<f64>> {
        let full = format!("transformer.h.0.mlp.{name}");
        let found = model.linear_layers().into_iter().find(|(n, _)| *n == full);
        Ok(found.ok_or_else(|| anyhow::anyhow!("no layer {full}"))?.1.clone())
    };
    let layers = vec![layer("c_fc")?, layer("c_proj")?];
    let linear = Mlp::from_layers(layers, Activation::Identity)?;
    let one = linear.collapse()?;
    let x = Init::Normal { std: 1.0 }.matrix(c.n_embd, 64, &mut rng(140));
    let (two_layers, one_layer) = (linear.predict(&x)?, one.apply(&x)?);
    let scale = two_layers.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = two_layers.iter().zip(one_layer.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    ensure!(diff <= 1e-12 * scale, "two linear layers differ from their product by {diff}");
    let count = |l: &Linear<f64>| l.weight().len() + l.bias().map_or(0, |b| b.len());
    let two: usize = linear.layers().iter().map(count).sum();
    g.values.set("ch14.ffn.params", thousands(two as u64));
    g.values.set("ch14.ffn.collapsed_params", thousands(count(&one) as u64));
    g.values.set("ch14.ffn.collapsed_shape", format!("[{}, {}]", one.out_features(), one.in_features()));
    g.values.set("ch14.ffn.collapse_diff", format!("{diff:.0e}"));
    g.values.set("ch14.ffn.tokens", x.ncols());
    Ok(())
}

/// Chapter 15's number translator.
fn transformer(g: &mut Gen) -> Result<()> {
    let size = NumbersOptions::default().size;
    let (en, de) = (numbers::english_vocabulary()?, numbers::german_vocabulary()?);
    let config = TransformerConfig::for_vocabularies(&en, &de, size.d_model, size.n_head, size.layers)?;
    let config = TransformerConfig { d_ff: size.d_ff, max_len: 12, ..config };
    let model = Transformer::<f32>::new(config, &mut rng(15))?;
    let n = counts(&model);
    let (d, h, f, l) = (config.d_model, config.n_head, config.d_ff, config.n_encoder_layers);
    let layer = |side: &str, part: &str| sum(&n, &format!("{side}.layers.0.{part}"));
    let attn = |what: &str| format!("{what}, {h} heads of {}", d / h);
    let encoder = vec![
        Stage::new("English token ids", format!("{} words", en.len()), ""),
        Stage::new(
            "src_embed + sinusoid",
            format!("[{d}, {}], positions computed", en.len()),
            params(sum(&n, "src_embed")),
        ),
        Stage::new("self-attention", attn("every word sees every word"), params(layer("encoder", "self_attn"))),
        Stage::new("add & layer norm", format!("over {d}"), params(layer("encoder", "self_attn_norm"))),
        Stage::new("feed-forward", format!("[{f}, {d}], ReLU, [{d}, {f}]"), params(layer("encoder", "ffn"))),
        Stage::new("add & layer norm", format!("over {d}"), params(layer("encoder", "ffn_norm"))),
    ];
    let decoder = vec![
        Stage::new("German pieces so far", format!("{} pieces", de.len()), ""),
        Stage::new("tgt_embed + sinusoid", format!("[{d}, {}]", de.len()), params(sum(&n, "tgt_embed"))),
        Stage::new("masked self-attention", attn("sees only earlier pieces"), params(layer("decoder", "self_attn"))),
        Stage::new("add & layer norm", format!("over {d}"), params(layer("decoder", "self_attn_norm"))),
        Stage::new("cross-attention", attn("keys, values: the encoder's"), params(layer("decoder", "cross_attn"))),
        Stage::new("add & layer norm", format!("over {d}"), params(layer("decoder", "cross_attn_norm"))),
        Stage::new("feed-forward", format!("[{f}, {d}], ReLU, [{d}, {f}]"), params(layer("decoder", "ffn"))),
        Stage::new("add & layer norm", format!("over {d}"), params(layer("decoder", "ffn_norm"))),
        Stage::new(
            "output layer",
            if config.tie_output {
                format!("[{}, {d}], tied to tgt_embed", de.len())
            } else {
                format!("[{}, {d}]", de.len())
            },
            params(sum(&n, "lm_head") + sum(&n, "decoder.norm")),
        ),
    ];
    let total: usize = n.values().sum();
    ArchitectureDiagram::new(format!("The number translator: {} parameters", thousands(total as u64)))
        .column("encoder (English)", encoder, Some((2, 5, format!("× {l}"))))
        .column("decoder (German)", decoder, Some((2, 7, format!("× {}", config.n_decoder_layers))))
        .link((0, 5), (1, 4))
        .save(g.figure("ch15_architecture.svg"))?;
    g.values.set("ch15.arch.total", thousands(total as u64));
    Ok(())
}
