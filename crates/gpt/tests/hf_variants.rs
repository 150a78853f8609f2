//! Every Hugging Face `config.json` field that changes GPT-2's numbers is
//! honoured or refused, never read as something else: tiny random models
//! saved by `transformers`, one per field, from `tests/data/gpt2_variants`
//! (made by `tests/data/make_variants.py`), with the logits
//! `GPT2LMHeadModel` computes.

use std::path::{Path, PathBuf};

use addmul_core::rng;
use addmul_gpt::checkpoint::{load_model, model_from_bytes};
use addmul_gpt::safetensors_io::load_stream_into;
use addmul_gpt::{Gpt, GptConfig, GptError};

const SEQ: usize = 8;

fn variant(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gpt2_variants").join(name)
}

/// The batch and the logits `transformers` computed, `logits[b][t][v]`
/// flattened (row-major over (position, vocab): our column-major
/// `[vocab, position]`).
fn reference(name: &str) -> (Vec<u32>, Vec<f64>) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(variant(name).join("ref.json")).unwrap()).unwrap();
    let x = v["x"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().clone())
        .map(|t| t.as_u64().unwrap() as u32);
    let logits = v["logits"].as_array().unwrap().iter().flat_map(|s| s.as_array().unwrap().clone());
    let logits = logits.flat_map(|r| r.as_array().unwrap().clone()).map(|l| l.as_f64().unwrap());
    (x.collect(), logits.collect())
}

/// max |ours - theirs| / max |theirs|.
fn error_against(model: &Gpt<f32>, name: &str) -> f64 {
    let (x, want) = reference(name);
    let got = model.logits(&x, SEQ).unwrap();
    assert_eq!(got.len(), want.len());
    let diff = got.iter().zip(&want).map(|(a, b)| (f64::from(*a) - b).abs()).fold(0.0, f64::max);
    diff / want.iter().map(|v| v.abs()).fold(0.0, f64::max)
}

/// The variant's weights in a model of `config` (whatever its config.json
/// says), to show what reading a field wrongly would do.
fn with_config(name: &str, config: GptConfig) -> Gpt<f32> {
    let mut model = Gpt::<f32>::new(config, &mut rng(0)).unwrap();
    let path = variant(name).join("model.safetensors");
    let mut file = std::fs::File::open(&path).unwrap();
    let len = file.metadata().unwrap().len();
    load_stream_into(&mut model, &mut file, len, &path).unwrap();
    model
}

/// Loads a variant as `addmul` loads any Hugging Face folder, checks its
/// logits against `transformers`', and returns the config read.
fn matches_transformers(name: &str) -> GptConfig {
    let model = load_model::<f32>(&variant(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let err = error_against(&model, name);
    eprintln!("{name}: logits relative error {err:.1e}");
    assert!(err < 1e-5, "{name}: logits relative error {err:e}");
    // Decoding with the caches computes the same attention.
    let (x, _) = reference(name);
    let full = model.logits(&x[..SEQ], SEQ).unwrap();
    let mut state = model.decode_state();
    for (t, id) in x[..SEQ].iter().enumerate() {
        let step = model.decode(&mut state, &[*id]).unwrap();
        for (a, b) in step.iter().zip(full.column(t).iter()) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{name}: cached decoding differs at {t}");
        }
    }
    *model.config()
}

#[test]
fn the_base_model_matches() {
    let config = matches_transformers("base");
    assert!(config.scale_attn_weights && !config.scale_attn_by_inverse_layer_idx && config.gelu_tanh);
}

#[test]
fn scale_attn_weights_false_is_honoured() {
    let config = matches_transformers("scale_attn_weights_false");
    assert!(!config.scale_attn_weights);
    // Read as GPT-2's usual scale, the logits were far off (64% on the model
    // the issue tried).
    let wrong = with_config("scale_attn_weights_false", GptConfig { scale_attn_weights: true, ..config });
    assert!(error_against(&wrong, "scale_attn_weights_false") > 1e-2);
}

#[test]
fn scale_attn_by_inverse_layer_idx_is_honoured() {
    let config = matches_transformers("scale_attn_by_inverse_layer_idx");
    assert!(config.scale_attn_by_inverse_layer_idx);
    let wrong =
        with_config("scale_attn_by_inverse_layer_idx", GptConfig { scale_attn_by_inverse_layer_idx: false, ..config });
    assert!(error_against(&wrong, "scale_attn_by_inverse_layer_idx") > 1e-2);
    // And both together.
    let both = matches_transformers("unscaled_by_inverse_layer_idx");
    assert!(!both.scale_attn_weights && both.scale_attn_by_inverse_layer_idx);
}

#[test]
fn reorder_and_upcast_attn_gives_the_same_numbers_in_float32() {
    matches_transformers("reorder_and_upcast_attn");
}

#[test]
fn the_activation_function_is_honoured() {
    assert!(!matches_transformers("gelu_exact").gelu_tanh);
    let wrong = with_config("gelu_exact", GptConfig { gelu_tanh: true, ..matches_transformers("gelu_exact") });
    assert!(error_against(&wrong, "gelu_exact") > 1e-4);
    assert!(matches_transformers("gelu_pytorch_tanh").gelu_tanh);
}

#[test]
fn layer_norm_epsilon_is_honoured() {
    let config = matches_transformers("layer_norm_epsilon");
    assert_eq!(config.layer_norm_eps, 0.25);
    let wrong = with_config("layer_norm_epsilon", GptConfig { layer_norm_eps: 1e-5, ..config });
    assert!(error_against(&wrong, "layer_norm_epsilon") > 1e-2);
}

/// The error loading a variant, as text.
fn refusal(name: &str) -> String {
    let e = load_model::<f32>(&variant(name)).expect_err(name);
    e.to_string()
}

#[test]
fn fields_addmul_cannot_honour_are_refused_by_name() {
    let e = refusal("n_inner");
    assert!(e.contains("n_inner") && e.contains("24"), "{e}");
    let e = refusal("relu");
    assert!(e.contains("activation_function") && e.contains("relu"), "{e}");
    let e = refusal("untied_head");
    assert!(e.contains("tie_word_embeddings"), "{e}");
}

#[test]
fn an_output_head_that_differs_from_the_embeddings_is_refused() {
    // The untied model's files with a config.json that claims a tied head:
    // using wte as the head would give other logits without a word.
    let dir = variant("untied_head");
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let tied = config.replace(r#""tie_word_embeddings": false"#, r#""tie_word_embeddings": true"#);
    assert_ne!(tied, config);
    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    let e = model_from_bytes::<f32>(&tied, &weights, &dir.join("config.json"), &dir.join("model.safetensors"))
        .expect_err("an untied head");
    assert!(matches!(e, GptError::Checkpoint { .. }), "{e:?}");
    assert!(e.to_string().contains("lm_head.weight differs from transformer.wte.weight"), "{e}");
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}

#[test]
fn the_fields_are_written_back_as_read() {
    for name in ["scale_attn_weights_false", "unscaled_by_inverse_layer_idx", "gelu_exact", "layer_norm_epsilon"] {
        let config = *load_model::<f32>(&variant(name)).unwrap().config();
        assert_eq!(GptConfig::from_hf_json(&config.to_hf_json()).unwrap(), config, "{name}");
    }
}
