//! addmul's adapters against Hugging Face PEFT's: the fixture in
//! `tests/data/peft_gpt2_tiny/` was made by PEFT on a tiny GPT-2
//! (`tests/data/make_peft_fixture.py`): LoRA of rank 2, alpha 4, on every
//! `c_attn` and `c_proj`, with non-zero `B`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use addmul_core::{Layer, Matrix, ParametersExt, rng};
use addmul_lora::peft::{CONFIG_FILE, WEIGHTS_FILE, tensor_names};
use addmul_lora::{AdapterSet, BaseLayers, LoraConfig, LoraError, LoraLinear, PeftInfo};
use addmul_nn::Linear;
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use serde_json::Value;

/// The layers `layer_reference.safetensors` has inputs and outputs for.
const LAYERS: [&str; 3] = ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_proj", "transformer.h.1.mlp.c_proj"];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/peft_gpt2_tiny")
}

/// A folder under the test temp dir, removed when dropped.
struct TempDir(PathBuf);
impl TempDir {
    fn new(name: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("addmul-lora-{name}-{}", std::process::id()));
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

/// The f32 tensors of a safetensors file: name -> (shape, values in stored order).
fn tensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), Dtype::F32, "{name}");
            let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            (name, (view.shape().to_vec(), values))
        })
        .collect()
}

/// The base model's linear layers, read from its own checkpoint: GPT-2's
/// `Conv1D` weights are `[in, out]`.
fn gpt2_layers() -> BaseLayers {
    tensors(&fixture().join("base_model/model.safetensors"))
        .into_iter()
        .filter_map(|(name, (shape, _))| {
            let layer = name.strip_suffix(".weight")?;
            let linear = [".c_attn", ".c_proj", ".c_fc"].iter().any(|s| layer.ends_with(s));
            linear.then(|| (layer.to_string(), (shape[0], shape[1])))
        })
        .collect()
}

fn fixture_files() -> (Vec<u8>, Vec<u8>) {
    (fs::read(fixture().join(CONFIG_FILE)).unwrap(), fs::read(fixture().join(WEIGHTS_FILE)).unwrap())
}

/// A PEFT-layout `[rows, cols]` row-major tensor as addmul's column-major
/// `[cols, rows]` matrix: the same bytes (a Conv1D weight `[in, out]` is
/// addmul's `[out, in]`; tokens `[n, features]` are addmul's `[features, n]`).
fn column_major<T: addmul_core::Float>(shape: &[usize], values: &[f32]) -> Matrix<T> {
    Matrix::from_iterator(shape[1], shape[0], values.iter().map(|&v| T::of(f64::from(v))))
}

/// The largest `|a - b|` relative to the largest `|b|` (at least 1).
fn max_rel_diff<T: addmul_core::Float>(a: &Matrix<T>, b: &Matrix<T>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.as_f64().abs()));
    a.iter().zip(b.iter()).fold(0.0f64, |m, (x, y)| m.max((x.as_f64() - y.as_f64()).abs())) / scale
}

#[test]
fn peft_adapters_load_under_their_layer_names() {
    let set = AdapterSet::<f32>::load(&fixture(), &gpt2_layers()).unwrap();
    let names: Vec<_> = set.adapters().keys().cloned().collect();
    let expected: Vec<String> = (0..2)
        .flat_map(|i| ["attn.c_attn", "attn.c_proj", "mlp.c_proj"].map(|l| format!("transformer.h.{i}.{l}")))
        .collect();
    assert_eq!(names, expected);
    assert_eq!(set.config(), &LoraConfig::new(2, 4.0, &["c_attn", "c_proj"]));
    let info = PeftInfo {
        base_model_name_or_path: Some("base_model".to_string()),
        fan_in_fan_out: true,
        task_type: Some("CAUSAL_LM".to_string()),
    };
    assert_eq!(set.info(), &info);
    let c_attn = set.get("transformer.h.0.attn.c_attn").unwrap();
    assert_eq!((c_attn.rank(), c_attn.in_features(), c_attn.out_features(), c_attn.scale()), (2, 8, 24, 2.0));
    assert!(c_attn.b().value().iter().any(|&v| v != 0.0));
}

fn check_against_peft<T: addmul_core::Float>(tolerance: f64) {
    let set = AdapterSet::<T>::load(&fixture(), &gpt2_layers()).unwrap();
    let reference = tensors(&fixture().join("layer_reference.safetensors"));
    for layer in LAYERS {
        let get = |what: &str| &reference[&format!("{layer}.{what}")];
        let (w_shape, w) = get("weight");
        let bias = get("bias").1.iter().map(|&v| T::of(f64::from(v))).collect();
        let base = Linear::from_weights(column_major::<T>(w_shape, w), Some(bias)).unwrap();
        let mut lora = LoraLinear::with_adapter(base, set.get(layer).unwrap().clone()).unwrap();
        let (x_shape, x) = get("x");
        let (y_shape, y) = get("y");
        let (ours, _) = lora.forward(&column_major(x_shape, x)).unwrap();
        let err = max_rel_diff(&ours, &column_major(y_shape, y));
        assert!(err < tolerance, "{layer} ({}): output differs from PEFT's by {err:e}", T::NAME);
        // ... and not because the adapter does nothing.
        let base_only = lora.base().apply(&column_major(x_shape, x)).unwrap();
        assert!(max_rel_diff(&base_only, &column_major(y_shape, y)) > 1e-2);

        lora.merge().unwrap();
        let (m_shape, merged) = get("merged_weight");
        let err = max_rel_diff(lora.base().weight().value(), &column_major(m_shape, merged));
        assert!(err < tolerance, "{layer} ({}): merged weight differs from PEFT's by {err:e}", T::NAME);
    }
}

#[test]
fn adapted_layers_and_merged_weights_match_peft_in_f32() {
    check_against_peft::<f32>(1e-6);
}

#[test]
fn adapted_layers_and_merged_weights_match_peft_in_f64() {
    check_against_peft::<f64>(1e-6);
}

#[test]
fn saving_writes_back_peft_files() {
    let layers = gpt2_layers();
    let set = AdapterSet::<f32>::load(&fixture(), &layers).unwrap();
    let dir = TempDir::new("round-trip");
    set.save(&dir.0).unwrap();

    // The tensors: the same names, shapes, dtype and bytes as PEFT's.
    let ours = fs::read(dir.0.join(WEIGHTS_FILE)).unwrap();
    let (peft_config, peft) = fixture_files();
    let (ours, peft) = (SafeTensors::deserialize(&ours).unwrap(), SafeTensors::deserialize(&peft).unwrap());
    let mut names = ours.names();
    names.sort();
    let mut peft_names = peft.names();
    peft_names.sort();
    assert_eq!(names, peft_names);
    assert_eq!(names.len(), 12);
    for name in names {
        let (a, b) = (ours.tensor(name).unwrap(), peft.tensor(name).unwrap());
        assert_eq!((a.dtype(), a.shape()), (b.dtype(), b.shape()), "{name}");
        assert_eq!(a.data(), b.data(), "{name}");
    }
    let (_, metadata) = SafeTensors::read_metadata(&fs::read(dir.0.join(WEIGHTS_FILE)).unwrap()).unwrap();
    assert_eq!(metadata.metadata().as_ref().unwrap()["format"], "pt");

    // The configuration: every field written is one PEFT wrote, with PEFT's
    // value (except how B was initialised, which is history).
    let ours: Value = serde_json::from_slice(&fs::read(dir.0.join(CONFIG_FILE)).unwrap()).unwrap();
    let peft: Value = serde_json::from_slice(&peft_config).unwrap();
    for (key, value) in ours.as_object().unwrap() {
        let theirs = peft.get(key).unwrap_or_else(|| panic!("PEFT writes no field {key}"));
        if key != "init_lora_weights" {
            assert_eq!(value, theirs, "{key}");
        }
    }
    for key in ["peft_type", "r", "lora_alpha", "lora_dropout", "target_modules", "fan_in_fan_out", "bias", "task_type"]
    {
        assert!(ours.get(key).is_some(), "{key} is written");
    }

    assert_eq!(AdapterSet::<f32>::load(&dir.0, &layers).unwrap(), set);
}

/// An adapter trained here, with addmul's outputs beside it: with
/// `ADDMUL_LORA_EXPORT=<dir>` it is written there, for
/// `make_peft_fixture.py --check <dir>` to load with PEFT.
#[test]
fn an_adapter_made_here_round_trips_and_can_be_exported_for_peft() {
    let layers = gpt2_layers();
    let config = LoraConfig::new(2, 4.0, &["c_attn", "c_proj"]);
    let mut set = AdapterSet::<f32>::new(config, &layers, &mut rng(7))
        .unwrap()
        .with_info(PeftInfo { base_model_name_or_path: Some("base_model".to_string()), ..PeftInfo::default() });
    // "Train": B away from zero, as a few steps would move it.
    for (i, p) in set.params_mut().into_iter().enumerate() {
        if p.value().nrows() > 2 {
            *p.value_mut() = addmul_core::Init::Normal { std: 0.2 }.matrix(p.value().nrows(), 2, &mut rng(i as u64));
        }
    }
    let temp = TempDir::new("export");
    let dir = std::env::var_os("ADDMUL_LORA_EXPORT").map_or_else(|| temp.0.clone(), PathBuf::from);
    set.save(&dir).unwrap();
    assert_eq!(AdapterSet::<f32>::load(&dir, &layers).unwrap(), set);

    let reference = tensors(&fixture().join("layer_reference.safetensors"));
    let mut outputs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for layer in LAYERS {
        let get = |what: &str| &reference[&format!("{layer}.{what}")];
        let (w_shape, w) = get("weight");
        let base = Linear::from_weights(column_major(w_shape, w), Some(get("bias").1.clone())).unwrap();
        let lora = LoraLinear::with_adapter(base, set.get(layer).unwrap().clone()).unwrap();
        let (x_shape, x) = get("x");
        let (y, _) = lora.forward(&column_major::<f32>(x_shape, x)).unwrap();
        let bytes = |m: &[f32]| m.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
        outputs.push((format!("{layer}.x"), x_shape.clone(), bytes(x)));
        outputs.push((format!("{layer}.y"), vec![y.ncols(), y.nrows()], bytes(y.as_slice())));
    }
    let views: Vec<_> =
        outputs.iter().map(|(n, s, b)| (n.as_str(), TensorView::new(Dtype::F32, s.clone(), b).unwrap())).collect();
    fs::write(dir.join("rust_reference.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
}

// --- damaged files and other models: typed errors naming the file and what is wrong

/// The fixture's weights with every tensor passed through `edit` (which may
/// drop it by returning `None`).
fn edited_weights(mut edit: impl FnMut(&str, TensorView<'_>) -> Option<(Dtype, Vec<usize>, Vec<u8>)>) -> Vec<u8> {
    let (_, bytes) = fixture_files();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .filter_map(|(name, view)| edit(&name, view).map(|(d, s, b)| (name, d, s, b)))
        .collect();
    let views: Vec<_> =
        kept.iter().map(|(n, d, s, b)| (n.as_str(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::serialize(views, Some(HashMap::from([("format".to_string(), "pt".to_string())]))).unwrap()
}

fn unchanged(view: TensorView<'_>) -> Option<(Dtype, Vec<usize>, Vec<u8>)> {
    Some((view.dtype(), view.shape().to_vec(), view.data().to_vec()))
}

/// The fixture's configuration with `field` set to `value` (removed for `null`).
fn edited_config(field: &str, value: Value) -> Vec<u8> {
    let (config, _) = fixture_files();
    let mut json: Value = serde_json::from_slice(&config).unwrap();
    if value.is_null() {
        json.as_object_mut().unwrap().remove(field);
    } else {
        json[field] = value;
    }
    serde_json::to_vec(&json).unwrap()
}

fn load(config: &[u8], weights: &[u8], layers: &BaseLayers) -> Result<AdapterSet<f32>, LoraError> {
    AdapterSet::from_files(config, weights, layers, Path::new("adapters"))
}

#[test]
fn a_rank_other_than_the_configurations_is_named() {
    let (_, weights) = fixture_files();
    let err = load(&edited_config("r", 3.into()), &weights, &gpt2_layers()).unwrap_err();
    assert!(matches!(err, LoraError::RankMismatch { got: 2, config: 3, .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "adapters/adapter_model.safetensors: tensor `base_model.model.transformer.h.0.attn.c_attn.lora_A.weight` \
         has rank 2 (shape [2, 8]) but adapter_config.json says r = 3"
    );
    // One tensor of another rank among the right ones.
    let (config, _) = fixture_files();
    let weights = edited_weights(|name, view| {
        if name.ends_with("h.1.mlp.c_proj.lora_B.weight") {
            Some((Dtype::F32, vec![8, 3], vec![0; 8 * 3 * 4]))
        } else {
            unchanged(view)
        }
    });
    let err = load(&config, &weights, &gpt2_layers()).unwrap_err();
    assert!(
        matches!(&err, LoraError::RankMismatch { tensor, got: 3, config: 2, .. } if tensor.ends_with("h.1.mlp.c_proj.lora_B.weight")),
        "{err}"
    );
}

#[test]
fn a_missing_tensor_is_named() {
    let (config, _) = fixture_files();
    let weights =
        edited_weights(|name, view| (!name.ends_with("h.1.attn.c_proj.lora_B.weight")).then(|| unchanged(view))?);
    let err = load(&config, &weights, &gpt2_layers()).unwrap_err();
    assert!(matches!(&err, LoraError::MissingTensor { layer, .. } if layer == "transformer.h.1.attn.c_proj"), "{err}");
    assert!(err.to_string().contains("adapters/adapter_model.safetensors: tensor `base_model.model.transformer.h.1.attn.c_proj.lora_B.weight` is missing"), "{err}");
}

#[test]
fn an_adapter_for_another_base_model_is_refused() {
    let (config, weights) = fixture_files();
    // Wider layers (n_embd 16): the shapes do not fit.
    let wider: BaseLayers = gpt2_layers().into_iter().map(|(n, (i, o))| (n, (i * 2, o * 2))).collect();
    let err = load(&config, &weights, &wider).unwrap_err();
    assert!(
        matches!(&err, LoraError::TensorShape { expected, got, .. } if expected == &[2, 16] && got == &[2, 8]),
        "{err}"
    );
    assert!(err.to_string().contains("the base model's layer `transformer.h.0.attn.c_attn` needs [2, 16]"), "{err}");
    // Another architecture's names (a Llama): no such layers.
    let llama: BaseLayers = ["q_proj", "k_proj", "v_proj", "o_proj"]
        .iter()
        .map(|p| (format!("model.layers.0.self_attn.{p}"), (8, 8)))
        .collect();
    let err = load(&config, &weights, &llama).unwrap_err();
    assert!(matches!(&err, LoraError::ConfigField { field, .. } if field == "target_modules"), "{err}");
    assert!(err.to_string().contains("matches no layer of the base model"), "{err}");
    // GPT-2 without its language-model head (`GPT2Model`: `h.0.attn.c_attn`):
    // the names do not line up.
    let headless: BaseLayers = gpt2_layers()
        .into_iter()
        .map(|(n, size)| (n.strip_prefix("transformer.").unwrap().to_string(), size))
        .collect();
    let err = load(&config, &weights, &headless).unwrap_err();
    assert!(matches!(err, LoraError::UnexpectedTensor { .. }), "{err}");
    assert!(err.to_string().contains("the base model has no layer `transformer.h.0.attn.c_attn`"), "{err}");
    // A shallower GPT-2: block 1's adapters have nowhere to go.
    let shallow: BaseLayers = gpt2_layers().into_iter().filter(|(n, _)| n.starts_with("transformer.h.0.")).collect();
    let err = load(&config, &weights, &shallow).unwrap_err();
    assert!(err.to_string().contains("no layer `transformer.h.1.attn.c_attn`"), "{err}");
    // Tensors for layers the configuration does not target.
    let err =
        load(&edited_config("target_modules", serde_json::json!(["c_attn"])), &weights, &gpt2_layers()).unwrap_err();
    assert!(err.to_string().contains("is not in target_modules"), "{err}");
    // A targeted layer too small for the rank.
    let narrow: BaseLayers = gpt2_layers().into_iter().map(|(n, (i, o))| (n, (i.min(1), o))).collect();
    assert!(load(&config, &weights, &narrow).is_err());
}

/// An exactly representable f32 as IEEE half-precision bits.
fn f16_bits(v: f32) -> u16 {
    if v == 0.0 {
        return 0;
    }
    let bits = v.to_bits();
    let exponent = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    assert!((1..31).contains(&exponent) && bits & 0x1fff == 0, "{v} is not a normal f16");
    (((bits >> 16) & 0x8000) | ((exponent as u32) << 10) | ((bits >> 13) & 0x3ff)) as u16
}

#[test]
fn half_precision_tensors_are_widened_and_other_dtypes_refused() {
    let (config, _) = fixture_files();
    let target = "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight";
    // B of c_attn, [24, 2] row-major: values k/8 - 3, exact in both half formats.
    let values: Vec<f32> = (0..48).map(|k| k as f32 / 8.0 - 3.0).collect();
    for dtype in [Dtype::F16, Dtype::BF16] {
        let weights = edited_weights(|name, view| {
            if name != target {
                return unchanged(view);
            }
            let half = |v: f32| if dtype == Dtype::F16 { f16_bits(v) } else { (v.to_bits() >> 16) as u16 };
            Some((dtype, vec![24, 2], values.iter().flat_map(|&v| half(v).to_le_bytes()).collect()))
        });
        let set = load(&config, &weights, &gpt2_layers()).unwrap();
        let b = set.get("transformer.h.0.attn.c_attn").unwrap().b().value();
        assert_eq!(b, &Matrix::from_row_slice(24, 2, &values), "{dtype:?}");
    }
    let weights =
        edited_weights(
            |name, view| {
                if name == target { Some((Dtype::I32, vec![24, 2], vec![0; 48 * 4])) } else { unchanged(view) }
            },
        );
    let err = load(&config, &weights, &gpt2_layers()).unwrap_err();
    assert!(matches!(&err, LoraError::Dtype { tensor, dtype, .. } if tensor == target && dtype == "I32"), "{err}");
    assert!(err.to_string().starts_with("adapters/adapter_model.safetensors: tensor"), "{err}");
}

#[test]
fn damaged_values_and_files_are_named() {
    let (config, weights) = fixture_files();
    let nan = edited_weights(|name, view| {
        let (d, s, mut b) = unchanged(view)?;
        if name.ends_with("h.0.attn.c_proj.lora_A.weight") {
            b[12..16].copy_from_slice(&f32::NAN.to_le_bytes());
        }
        Some((d, s, b))
    });
    let err = load(&config, &nan, &gpt2_layers()).unwrap_err();
    assert!(matches!(err, LoraError::NonFinite { index: 3, .. }), "{err}");

    let err = load(&config, b"not safetensors", &gpt2_layers()).unwrap_err();
    assert!(
        matches!(err, LoraError::Malformed { .. }) && err.to_string().contains("adapter_model.safetensors"),
        "{err}"
    );
    let err = load(b"{ not json", &weights, &gpt2_layers()).unwrap_err();
    assert!(matches!(err, LoraError::Malformed { .. }) && err.to_string().contains("adapter_config.json"), "{err}");
    let err = AdapterSet::<f32>::load(Path::new("/nonexistent/adapter"), &gpt2_layers()).unwrap_err();
    assert!(matches!(err, LoraError::Io { .. }) && err.to_string().contains("adapter_config.json"), "{err}");
    // A tensor under PEFT's in-memory name (with the adapter's name) is not
    // what PEFT saves.
    let (_, bytes) = fixture_files();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut views = st.tensors();
    let stray = views[0].1.clone();
    views.push(("base_model.model.transformer.h.0.attn.c_attn.lora_A.default.weight".to_string(), stray));
    let stray = safetensors::serialize(views.iter().map(|(n, v)| (n.as_str(), v.clone())), None).unwrap();
    let err = load(&config, &stray, &gpt2_layers()).unwrap_err();
    assert!(err.to_string().contains("lora_A.default.weight`: not a LoRA tensor in PEFT's naming"), "{err}");
}

#[test]
fn configuration_fields_are_checked_and_unsupported_features_refused() {
    let (_, weights) = fixture_files();
    let field_error = |field: &str, value: Value| {
        let err = load(&edited_config(field, value), &weights, &gpt2_layers()).unwrap_err();
        match &err {
            LoraError::ConfigField { path, field, .. } => {
                assert_eq!(path, Path::new("adapters/adapter_config.json"));
                field.clone()
            }
            other => panic!("{field}: {other}"),
        }
    };
    assert_eq!(field_error("peft_type", "IA3".into()), "peft_type");
    assert_eq!(field_error("peft_type", Value::Null), "peft_type");
    assert_eq!(field_error("r", 0.into()), "r");
    assert_eq!(field_error("r", Value::Null), "r");
    assert_eq!(field_error("r", "two".into()), "r");
    assert_eq!(field_error("lora_alpha", Value::Null), "lora_alpha");
    assert_eq!(field_error("lora_dropout", 1.5.into()), "lora_dropout");
    assert_eq!(field_error("target_modules", ".*c_attn".into()), "target_modules");
    assert_eq!(field_error("target_modules", serde_json::json!(["q_proj"])), "target_modules");
    assert_eq!(field_error("use_dora", true.into()), "use_dora");
    assert_eq!(field_error("use_rslora", true.into()), "use_rslora");
    assert_eq!(field_error("rank_pattern", serde_json::json!({"c_attn": 4})), "rank_pattern");
    assert_eq!(field_error("modules_to_save", serde_json::json!(["lm_head"])), "modules_to_save");
    assert_eq!(field_error("layers_to_transform", serde_json::json!([0])), "layers_to_transform");
    assert_eq!(field_error("bias", "all".into()), "bias");
    // Fields PEFT has defaults for may be left out.
    let minimal =
        serde_json::json!({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["c_proj", "c_attn"]});
    let set = load(&serde_json::to_vec(&minimal).unwrap(), &weights, &gpt2_layers()).unwrap();
    assert_eq!(set.config().dropout, 0.0);
    assert!(!set.info().fan_in_fan_out);
    let err = load(&edited_config("lora_dropout", 1.5.into()), &weights, &gpt2_layers()).unwrap_err();
    assert_eq!(err.to_string(), "adapters/adapter_config.json: field `lora_dropout`: is 1.5: must be in [0, 1)");
}

#[test]
fn tensor_names_are_pefts() {
    assert_eq!(
        tensor_names("transformer.h.3.mlp.c_fc"),
        [
            "base_model.model.transformer.h.3.mlp.c_fc.lora_A.weight",
            "base_model.model.transformer.h.3.mlp.c_fc.lora_B.weight"
        ]
    );
}
