//! The model against Hugging Face `transformers` (PyTorch): a small random
//! GPT-2's logits, loss, every gradient and 10 AdamW steps, from
//! `tests/data/gpt2_small_random` (see its README).

use std::path::{Path, PathBuf};

use addmul_core::{Parameters, ParametersExt, rng};
use addmul_gpt::safetensors_io::{Tensors, load_stream_into, read_tensors};
use addmul_gpt::{Batch, Gpt, GptConfig};
use addmul_train::{AdamW, AdamWConfig, Optimizer};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gpt2_small_random").join(name)
}

struct Reference {
    x: Vec<u32>,
    y: Vec<u32>,
    loss: f64,
    logits: Vec<f64>,
    adamw_losses: Vec<f64>,
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(fixture("ref.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ids = |key: &str| -> Vec<u32> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32))
            .collect()
    };
    let floats = |value: &serde_json::Value| -> Vec<f64> {
        fn flatten(v: &serde_json::Value, out: &mut Vec<f64>) {
            match v {
                serde_json::Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
                other => out.push(other.as_f64().unwrap()),
            }
        }
        let mut out = Vec::new();
        flatten(value, &mut out);
        out
    };
    Reference {
        x: ids("x"),
        y: ids("y"),
        loss: v["loss"].as_f64().unwrap(),
        logits: floats(&v["logits"]),
        adamw_losses: floats(&v["adamw"]["losses"]),
    }
}

fn model() -> Gpt<f32> {
    let config = GptConfig::from_hf_json(&std::fs::read_to_string(fixture("config.json")).unwrap()).unwrap();
    assert_eq!(
        (config.vocab_size, config.block_size, config.n_layer, config.n_head, config.n_embd),
        (65, 32, 2, 4, 32)
    );
    let mut model = Gpt::<f32>::new(config, &mut rng(0)).unwrap();
    let path = fixture("model.safetensors");
    let mut file = std::fs::File::open(&path).unwrap();
    let len = file.metadata().unwrap().len();
    load_stream_into(&mut model, &mut file, len, &path).unwrap();
    model
}

/// max |a - b| / max |b|: the error relative to the tensor's scale.
fn rel_error(a: impl Iterator<Item = f64>, b: &[f64]) -> f64 {
    let diff = a.zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    diff / b.iter().map(|v| v.abs()).fold(0.0, f64::max)
}

#[test]
fn logits_and_loss_match_transformers() {
    let (model, r) = (model(), reference());
    let logits = model.logits(&r.x, 11).unwrap();
    assert_eq!(logits.shape(), (65, 33));
    // ref.json holds logits[b][t][v]: row-major over (position, vocab), which
    // is exactly our column-major [vocab, position].
    let err = rel_error(logits.iter().map(|v| f64::from(*v)), &r.logits);
    eprintln!("logits: relative error {err:.2e}");
    assert!(err < 1e-5, "logits relative error {err:e}");
    let loss = model.loss(&Batch { inputs: &r.x, targets: &r.y, seq_len: 11, ignore: None }).unwrap();
    eprintln!("loss: {loss} vs {} (relative {:.2e})", r.loss, (loss - r.loss).abs() / r.loss);
    assert!((loss - r.loss).abs() / r.loss < 1e-5, "loss {loss} vs {}", r.loss);
}

#[test]
fn every_gradient_matches_transformers() {
    let (mut model, r) = (model(), reference());
    model.forward_backward(&Batch { inputs: &r.x, targets: &r.y, seq_len: 11, ignore: None }, None, 1.0).unwrap();
    let path = fixture("grads.safetensors");
    let grads: Tensors<f32> = read_tensors(&std::fs::read(&path).unwrap(), &path).unwrap();
    let mut checked = 0;
    let mut worst = (0.0f64, String::new());
    model.visit(&mut |name, p| {
        let (_, want) = &grads[&format!("grad.{name}")];
        let want: Vec<f64> = want.iter().map(|v| f64::from(*v)).collect();
        let err = rel_error(p.grad().iter().map(|v| f64::from(*v)), &want);
        assert!(err < 1e-4, "{name}: gradient relative error {err:e}");
        if err > worst.0 {
            worst = (err, name.to_string());
        }
        checked += 1;
    });
    eprintln!("{checked} gradients: worst relative error {:.2e} ({})", worst.0, worst.1);
    assert_eq!(checked, grads.len());
}

#[test]
fn ten_adamw_steps_match_transformers() {
    let (mut model, r) = (model(), reference());
    let config = AdamWConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
    let mut adam = AdamW::new(config).unwrap();
    let batch = Batch { inputs: &r.x, targets: &r.y, seq_len: 11, ignore: None };
    let mut worst = 0.0f64;
    for (step, want) in r.adamw_losses.iter().enumerate() {
        model.zero_grads();
        let loss = model.forward_backward(&batch, None, 1.0).unwrap();
        assert!((loss - want).abs() / want < 1e-5, "step {step}: loss {loss} vs {want}");
        worst = worst.max((loss - want).abs() / want);
        adam.step(&mut model).unwrap();
    }
    eprintln!("10 AdamW steps: worst relative loss error {worst:.2e}");
}
