//! Checkpoint folders that are damaged or lie: a typed error naming the
//! problem, never a panic, an abort or an allocation of what a file claims.

use std::fs;
use std::path::{Path, PathBuf};

use addmul_core::{Parameters, rng};
use addmul_gpt::checkpoint::{LATEST, load_model, model_safetensors, prune, resolve};
use addmul_gpt::{Gpt, GptConfig, GptError, GptTrainConfig, GptTrainer};

/// A folder under the target folder's `tmp`, removed when dropped.
struct TempDir(PathBuf);
impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("addmul-gpt-hostile-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn small() -> Gpt<f32> {
    Gpt::new(GptConfig::new(10, 8, 1, 2, 8), &mut rng(1)).unwrap()
}

/// Writes `model` into `dir` as a checkpoint, with `config.json` replaced by
/// `config` when given.
fn write(dir: &Path, model: &Gpt<f32>, config: Option<String>) {
    let config = config.unwrap_or_else(|| model.config().to_hf_json());
    fs::write(dir.join("config.json"), config).unwrap();
    fs::write(dir.join("model.safetensors"), model_safetensors(model, dir).unwrap()).unwrap();
}

/// `model`'s config.json with `field` set to `value`.
fn config_with(model: &Gpt<f32>, field: &str, value: serde_json::Value) -> String {
    let mut json: serde_json::Value = serde_json::from_str(&model.config().to_hf_json()).unwrap();
    json[field] = value;
    json.to_string()
}

#[test]
fn a_config_larger_than_its_weights_is_refused_before_allocating() {
    let dir = TempDir::new("large");
    let model = small();
    // 10 layers of width 65,536: 5e11 parameters, 2 TB of f32; the file holds
    // about two thousand values.
    let mut json: serde_json::Value = serde_json::from_str(&model.config().to_hf_json()).unwrap();
    json["n_embd"] = 65_536.into();
    json["n_layer"] = 10.into();
    write(&dir.0, &model, Some(json.to_string()));
    let err = load_model::<f32>(&dir.0).unwrap_err().to_string();
    assert!(err.contains("holds") && err.contains("parameters"), "{err}");
}

#[test]
fn sizes_whose_product_overflows_are_config_errors() {
    let dir = TempDir::new("overflow");
    let model = small();
    for (field, value) in [("n_embd", 1u64 << 62), ("vocab_size", u64::MAX / 2), ("n_layer", 1 << 60)] {
        let mut json: serde_json::Value = serde_json::from_str(&config_with(&model, field, value.into())).unwrap();
        json["n_head"] = 1.into();
        write(&dir.0, &model, Some(json.to_string()));
        let err = load_model::<f32>(&dir.0).unwrap_err();
        assert!(matches!(err, GptError::Config { .. } | GptError::Checkpoint { .. }), "{field}: {err}");
    }
    // n_inner is compared with 4 · n_embd, which must not overflow either.
    let mut json: serde_json::Value =
        serde_json::from_str(&config_with(&model, "n_embd", (1u64 << 62).into())).unwrap();
    json["n_inner"] = 64.into();
    assert!(GptConfig::from_hf_json(&json.to_string()).is_err());
}

#[test]
fn a_non_finite_weight_is_an_error_naming_the_tensor() {
    let dir = TempDir::new("nan");
    let mut model = small();
    model.visit_mut(&mut |name, p| {
        if name == "transformer.h.0.mlp.c_fc.weight" {
            p.value_mut()[(2, 3)] = f32::NAN;
        }
    });
    write(&dir.0, &model, None);
    let err = load_model::<f32>(&dir.0).unwrap_err().to_string();
    assert!(err.contains("transformer.h.0.mlp.c_fc.weight") && err.contains("NaN"), "{err}");
}

#[test]
fn latest_cannot_point_outside_the_run() {
    let run = TempDir::new("latest");
    let inside = run.0.join("step-000001");
    fs::create_dir_all(&inside).unwrap();
    write(&inside, &small(), None);
    for name in ["../step-000001", "/tmp", "step-000001/../..", ".", ""] {
        fs::write(run.0.join(LATEST), name).unwrap();
        let err = resolve(&run.0).unwrap_err().to_string();
        assert!(err.contains("not a folder of this run"), "{name:?}: {err}");
    }
    fs::write(run.0.join(LATEST), "step-000001\n").unwrap();
    assert_eq!(resolve(&run.0).unwrap(), inside);
}

#[test]
fn pruning_orders_checkpoints_by_step_past_a_million() {
    let run = TempDir::new("prune");
    for name in ["step-999999", "step-1000000", "step-1000001", "step-notes"] {
        fs::create_dir_all(run.0.join(name)).unwrap();
    }
    fs::write(run.0.join(LATEST), "step-1000001").unwrap();
    prune(&run.0, "step-", 2).unwrap();
    let mut left: Vec<String> =
        fs::read_dir(&run.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    // By name, step-999999 would have looked newest and step-1000000 gone.
    assert_eq!(left, ["latest", "step-1000000", "step-1000001", "step-notes"]);
}

#[test]
fn a_configuration_too_large_for_the_machine_is_refused_with_its_figures() {
    let tokens: Vec<u32> = (0..4000).map(|i| i % 10).collect();
    let huge = GptTrainConfig {
        n_layer: 100_000,
        n_embd: 4096,
        n_head: 4,
        block_size: 8,
        ..GptTrainConfig::preset("tiny").unwrap()
    };
    let estimate = huge.memory_estimate(10);
    assert!(estimate.total() > 1e14, "{estimate:?}"); // 2e13 parameters
    let err = GptTrainer::new(huge, 10, &tokens).unwrap_err();
    assert!(matches!(err, GptError::TooLarge { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("GB to train") && text.contains("make n_layer"), "{text}");
    // cpu-small is far from any limit: about 12 MB of weights and 30 MB of activations.
    let small = GptTrainConfig { threads: 2, ..GptTrainConfig::cpu_small() }.memory_estimate(65);
    assert!(small.total() < 100e6 && small.activations > 10e6, "{small:?}");
}

/// Values exact in both float16 and bfloat16, with their float16 bits:
/// normal, negative, a power of two, the smallest float16 subnormal.
const HALF: [(f32, u16); 6] = [
    (0.5, 0x3800),
    (-1.25, 0xBD00),
    (3.0, 0x4200),
    (96.0, 0x5600),
    (0.000_976_562_5, 0x1400),
    (5.960_464_5e-8, 0x0001),
];

#[test]
fn float16_and_bfloat16_weights_are_widened_exactly() {
    let model = small();
    let mut shapes = Vec::new();
    model.visit(&mut |name, p| shapes.push((name.to_string(), p.row_major_shape(), p.len())));
    for dtype in [safetensors::Dtype::F16, safetensors::Dtype::BF16] {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
            .iter()
            .map(|(name, shape, n)| {
                let data = (0..*n)
                    .flat_map(|i| {
                        let (value, f16) = HALF[i % HALF.len()];
                        let bits = if dtype == safetensors::Dtype::F16 { f16 } else { (value.to_bits() >> 16) as u16 };
                        bits.to_le_bytes()
                    })
                    .collect();
                (name.clone(), shape.clone(), data)
            })
            .collect();
        let views: Vec<_> = bytes
            .iter()
            .map(|(n, s, b)| (n.as_str(), safetensors::tensor::TensorView::new(dtype, s.clone(), b).unwrap()))
            .collect();
        let dir = TempDir::new(&format!("{dtype:?}"));
        fs::write(dir.0.join("config.json"), model.config().to_hf_json()).unwrap();
        fs::write(dir.0.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
        let loaded = load_model::<f32>(&dir.0).unwrap_or_else(|e| panic!("{dtype:?}: {e}"));
        loaded.visit(&mut |name, p| {
            for (i, v) in p.value().iter().enumerate() {
                assert_eq!(*v, HALF[i % HALF.len()].0, "{dtype:?} {name}[{i}]");
            }
        });
    }
}

#[test]
fn sharded_and_pickled_checkpoints_are_refused_with_what_to_do() {
    let dir = TempDir::new("sharded");
    fs::write(dir.0.join("config.json"), small().config().to_hf_json()).unwrap();
    fs::write(dir.0.join("model.safetensors.index.json"), "{}").unwrap();
    let e = load_model::<f32>(&dir.0).unwrap_err().to_string();
    assert!(e.contains("sharded") && e.contains("max_shard_size"), "{e}");
    fs::remove_file(dir.0.join("model.safetensors.index.json")).unwrap();
    fs::write(dir.0.join("pytorch_model.bin"), "pickle").unwrap();
    let e = load_model::<f32>(&dir.0).unwrap_err().to_string();
    assert!(e.contains("pytorch_model.bin") && e.contains("safe_serialization=True"), "{e}");
    fs::remove_file(dir.0.join("pytorch_model.bin")).unwrap();
    let e = load_model::<f32>(&dir.0).unwrap_err().to_string();
    assert!(e.contains("has no model.safetensors"), "{e}");
}

#[test]
fn a_model_loaded_to_run_has_its_gradients_unwritten_but_zero() {
    // Gradients come from the allocator's zeroed pages: zero, and training
    // from a loaded model works as from a new one.
    let dir = TempDir::new("grads");
    write(&dir.0, &small(), None);
    let loaded = load_model::<f32>(&dir.0).unwrap();
    assert_eq!(loaded, small());
    loaded.visit(&mut |name, p| assert!(p.grad().iter().all(|g| *g == 0.0), "{name}"));
}
