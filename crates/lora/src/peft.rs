//! Sets of adapters, saved and loaded as Hugging Face PEFT saves them.
//!
//! A folder holds two files:
//!
//! - `adapter_model.safetensors`: for every adapted layer `L` (by its name
//!   in the base model, e.g. `transformer.h.0.attn.c_attn`), the tensors
//!   `base_model.model.L.lora_A.weight`, shape `[r, in]`, and
//!   `base_model.model.L.lora_B.weight`, shape `[out, r]`, row-major, with
//!   the metadata `{"format": "pt"}`;
//! - `adapter_config.json`: `peft_type` `"LORA"`, `r`, `lora_alpha`,
//!   `lora_dropout`, `target_modules`, `fan_in_fan_out`, `bias` `"none"`,
//!   `task_type`, `base_model_name_or_path`, and PEFT's other fields at
//!   their defaults.
//!
//! `lora_A` and `lora_B` are PyTorch `nn.Linear` weights in PEFT, stored
//! `[out, in]` row-major, also for GPT-2, whose own layers are `Conv1D`
//! (weights `[in, out]`): PEFT's `fan_in_fan_out = true` for GPT-2 changes
//! how the update is merged into the base weight, never how `A` and `B` are
//! stored (checked against PEFT itself in `tests/peft.rs`). So, unlike a
//! GPT-2 checkpoint, these two tensors are the transposes of the bytes of
//! addmul's column-major matrices, and are transposed on the way in and
//! out: a few thousand numbers per layer, once.
//!
//! # Example
//! ```
//! use std::collections::BTreeMap;
//! use addmul_core::rng;
//! use addmul_lora::{AdapterSet, LoraConfig};
//!
//! // The base model's linear layers: name -> (inputs, outputs).
//! let layers = BTreeMap::from([
//!     ("transformer.h.0.attn.c_attn".to_string(), (8, 24)),
//!     ("transformer.h.0.attn.c_proj".to_string(), (8, 8)),
//!     ("transformer.h.0.mlp.c_fc".to_string(), (8, 32)),
//! ]);
//! let config = LoraConfig::new(2, 4.0, &["c_attn", "c_proj"]);
//! let set = AdapterSet::<f32>::new(config, &layers, &mut rng(0))?;
//! assert_eq!(set.adapters().len(), 2); // c_fc is not a target
//!
//! # // (The repository's tests write only under its target folder.)
//! # let tmp = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp");
//! let dir = tmp.join(format!("addmul-lora-doc-{}", std::process::id()));
//! set.save(&dir)?;
//! let back = AdapterSet::<f32>::load(&dir, &layers)?;
//! assert_eq!(back, set);
//! std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), addmul_lora::LoraError>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use addmul_core::{Float, Matrix, Param, Parameters, Rng, bf16_to_f32, f16_to_f32, visit_child, visit_child_mut};
use addmul_nn::Linear;
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{Map, Value, json};

use crate::config::check_rank;
use crate::{LoraAdapter, LoraConfig, LoraError, Result};

/// The weights' file name in an adapter folder.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// The configuration's file name in an adapter folder.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// What PEFT puts before a layer's name in the tensor names (its wrapper
/// `PeftModel.base_model.model`).
pub const TENSOR_PREFIX: &str = "base_model.model.";

/// The base model's linear layers that adapters can attach to: each layer's
/// name (`transformer.h.0.attn.c_attn`) and its `(inputs, outputs)`.
pub type BaseLayers = BTreeMap<String, (usize, usize)>;

/// The names of `layer`'s two tensors in `adapter_model.safetensors`:
/// `base_model.model.{layer}.lora_A.weight` and `...lora_B.weight`.
pub fn tensor_names(layer: &str) -> [String; 2] {
    [format!("{TENSOR_PREFIX}{layer}.lora_A.weight"), format!("{TENSOR_PREFIX}{layer}.lora_B.weight")]
}

/// What `adapter_config.json` says about the base model beyond the
/// [`LoraConfig`]: kept so that a loaded adapter is saved back as it came.
#[derive(Debug, Clone, PartialEq)]
pub struct PeftInfo {
    /// The base model's Hugging Face name or folder (PEFT's
    /// `base_model_name_or_path`).
    pub base_model_name_or_path: Option<String>,
    /// PEFT's `fan_in_fan_out`: the base layers store their weights
    /// `[in, out]` (GPT-2's `Conv1D`). It only changes how PEFT merges;
    /// `A` and `B` are stored alike either way. addmul's weights are GPT-2's
    /// layout, hence `true` by default.
    pub fan_in_fan_out: bool,
    /// PEFT's `task_type` (`"CAUSAL_LM"` by default).
    pub task_type: Option<String>,
}

impl Default for PeftInfo {
    fn default() -> Self {
        PeftInfo { base_model_name_or_path: None, fan_in_fan_out: true, task_type: Some("CAUSAL_LM".to_string()) }
    }
}

/// Adapters for the layers of one base model, by layer name, with their
/// shared configuration.
///
/// Its [`Parameters`] are every adapter's, named `{layer}.lora_A.weight` and
/// `{layer}.lora_B.weight` (PEFT's tensor names without
/// [`TENSOR_PREFIX`]), in the layers' name order.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterSet<T: Float> {
    config: LoraConfig,
    info: PeftInfo,
    adapters: BTreeMap<String, LoraAdapter<T>>,
}

impl<T: Float> AdapterSet<T> {
    /// Fresh adapters ([`LoraAdapter::new`]) for every layer of `layers` that
    /// `config.target_modules` matches, drawn in the layers' name order.
    ///
    /// # Errors
    /// [`LoraError::Config`] for an invalid configuration or one that matches
    /// no layer; [`LoraError::RankTooLarge`] naming the first layer too small
    /// for the rank.
    pub fn new(config: LoraConfig, layers: &BaseLayers, rng: &mut Rng) -> Result<Self> {
        config.validate()?;
        let mut adapters = BTreeMap::new();
        for (name, &(inputs, outputs)) in layers.iter().filter(|(name, _)| config.matches(name)) {
            check_rank(name, config.rank, inputs, outputs)?;
            adapters.insert(name.clone(), LoraAdapter::new(inputs, outputs, &config, rng)?);
        }
        if adapters.is_empty() {
            return Err(LoraError::config(
                "target_modules",
                format!("{:?}", config.target_modules),
                "matches no layer of the base model",
            ));
        }
        Ok(AdapterSet { config, info: PeftInfo::default(), adapters })
    }

    /// A set of existing adapters, which must agree with `config`: its rank,
    /// scale (`alpha / r`) and dropout.
    ///
    /// # Errors
    /// [`LoraError::Config`] for an invalid configuration, an empty set, or
    /// an adapter that disagrees with the configuration.
    pub fn from_adapters(config: LoraConfig, adapters: BTreeMap<String, LoraAdapter<T>>) -> Result<Self> {
        config.validate()?;
        if adapters.is_empty() {
            return Err(LoraError::config("adapters", 0, "a set needs at least one adapter"));
        }
        for (name, adapter) in &adapters {
            if !config.matches(name) {
                return Err(LoraError::config(
                    "target_modules",
                    format!("{:?} (adapter of {name})", config.target_modules),
                    "must match every adapter's layer",
                ));
            }
            if adapter.rank() != config.rank {
                return Err(LoraError::config(
                    "rank",
                    format!("{} (adapter of {name})", adapter.rank()),
                    "differs from the configuration's",
                ));
            }
            if adapter.scale() != config.scale() {
                return Err(LoraError::config(
                    "alpha / rank",
                    format!("{} (adapter of {name})", adapter.scale()),
                    "differs from the configuration's",
                ));
            }
            if adapter.dropout() != config.dropout {
                return Err(LoraError::config(
                    "dropout",
                    format!("{} (adapter of {name})", adapter.dropout()),
                    "differs from the configuration's",
                ));
            }
        }
        Ok(AdapterSet { config, info: PeftInfo::default(), adapters })
    }

    /// The same set with `info` written into `adapter_config.json`.
    pub fn with_info(mut self, info: PeftInfo) -> Self {
        self.info = info;
        self
    }

    /// The shared configuration.
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// What `adapter_config.json` says about the base model.
    pub fn info(&self) -> &PeftInfo {
        &self.info
    }

    /// The adapters by layer name.
    pub fn adapters(&self) -> &BTreeMap<String, LoraAdapter<T>> {
        &self.adapters
    }

    /// The adapter of `layer`, if it has one.
    pub fn get(&self, layer: &str) -> Option<&LoraAdapter<T>> {
        self.adapters.get(layer)
    }

    /// The adapter of `layer`, mutably.
    pub fn get_mut(&mut self, layer: &str) -> Option<&mut LoraAdapter<T>> {
        self.adapters.get_mut(layer)
    }

    /// The adapters by layer name, to attach to a model's layers.
    pub fn into_adapters(self) -> BTreeMap<String, LoraAdapter<T>> {
        self.adapters
    }

    // ANCHOR: attach
    /// Attaches a copy of every adapter, as a side path
    /// ([`Linear::attach`]), to the layer of its name among `layers` (a
    /// model's named linear layers: `Gpt::linear_layers_mut`). The model
    /// then computes `W x + b + s · B A x` in those layers, in training and
    /// in inference; freeze its own parameters first to train the adapters
    /// alone. The adapters' parameters become the model's, named
    /// `{layer}.lora_A.weight` and `{layer}.lora_B.weight`.
    ///
    /// # Errors
    /// [`LoraError::NoSuchLayer`] for an adapter whose layer `layers` does
    /// not have (nothing is attached then); a shape error for a layer of
    /// other sizes.
    pub fn attach_to(&self, layers: Vec<(String, &mut Linear<T>)>) -> Result<()> {
        let mut by_name: BTreeMap<String, &mut Linear<T>> = layers.into_iter().collect();
        if let Some(missing) = self.adapters.keys().find(|name| !by_name.contains_key(*name)) {
            return Err(LoraError::NoSuchLayer { layer: missing.clone() });
        }
        for (name, adapter) in &self.adapters {
            let layer = by_name.get_mut(name).expect("checked above");
            adapter.check_fits(name, layer.in_features(), layer.out_features())?;
        }
        for (name, adapter) in &self.adapters {
            by_name.get_mut(name).expect("checked above").attach(Box::new(adapter.clone()))?;
        }
        Ok(())
    }
    // ANCHOR_END: attach

    /// Copies the values of the adapters attached to `model` (after
    /// training) into this set: every `{layer}.lora_A.weight` and
    /// `{layer}.lora_B.weight` of `model` by name.
    ///
    /// # Errors
    /// [`LoraError::NoSuchLayer`] if `model` lacks one of the set's adapters;
    /// a shape error if one is shaped otherwise.
    pub fn read_from(&mut self, model: &dyn Parameters<T>) -> Result<()> {
        let mut values: HashMap<String, &Param<T>> = HashMap::new();
        model.visit(&mut |name, p| {
            if name.ends_with(".lora_A.weight") || name.ends_with(".lora_B.weight") {
                values.insert(name.to_string(), p);
            }
        });
        let mut result = Ok(());
        self.visit_mut(&mut |name, p| {
            if result.is_err() {
                return;
            }
            result = match values.get(name) {
                Some(v) => p.load(v.value()).map_err(LoraError::from),
                None => {
                    let layer = name.trim_end_matches(".lora_A.weight").trim_end_matches(".lora_B.weight");
                    Err(LoraError::NoSuchLayer { layer: layer.to_string() })
                }
            };
        });
        result
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` into
    /// `dir` (created if needed).
    ///
    /// # Errors
    /// [`LoraError::Io`] naming the file that could not be written.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let (config, weights) = self.to_files(dir)?;
        fs::create_dir_all(dir).map_err(LoraError::io("creating", dir))?;
        let config_path = dir.join(CONFIG_FILE);
        fs::write(&config_path, config).map_err(LoraError::io("writing", &config_path))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        fs::write(&weights_path, weights).map_err(LoraError::io("writing", &weights_path))?;
        Ok(())
    }

    /// The contents of `adapter_config.json` and `adapter_model.safetensors`
    /// (in `T`'s precision: `F32` for `f32`, as PEFT writes an `f32` model).
    /// `dir` only names the files in errors.
    ///
    /// # Errors
    /// [`LoraError::Malformed`] if safetensors refuses the tensors (a bug).
    pub fn to_files(&self, dir: &Path) -> Result<(String, Vec<u8>)> {
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (layer, adapter) in &self.adapters {
            let [a_name, b_name] = tensor_names(layer);
            let (a, b) = (adapter.a().value(), adapter.b().value());
            // PEFT's nn.Linear layout: [out, in] row-major, the transpose of
            // our column-major bytes.
            tensors.push((a_name, vec![a.nrows(), a.ncols()], le_bytes(&a.transpose())));
            tensors.push((b_name, vec![b.nrows(), b.ncols()], le_bytes(&b.transpose())));
        }
        let path = dir.join(WEIGHTS_FILE);
        let malformed =
            |e: safetensors::SafeTensorError| LoraError::Malformed { path: path.clone(), problem: e.to_string() };
        let views = tensors
            .iter()
            .map(|(name, shape, bytes)| Ok((name.as_str(), TensorView::new(dtype_of::<T>(), shape.clone(), bytes)?)))
            .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
            .map_err(malformed)?;
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        let weights = safetensors::serialize(views, Some(metadata)).map_err(malformed)?;
        Ok((self.config_json(), weights))
    }

    /// `adapter_config.json`: the fields PEFT 0.21 writes for a plain LoRA,
    /// in its (sorted) order.
    fn config_json(&self) -> String {
        let alpha = self.config.alpha;
        // PEFT's lora_alpha is an integer in practice; keep it one when it is.
        let lora_alpha = if alpha.fract() == 0.0 && alpha.abs() < 9.0e15 { json!(alpha as i64) } else { json!(alpha) };
        let mut m = Map::new();
        m.insert("alpha_pattern".into(), json!({}));
        m.insert("base_model_name_or_path".into(), json!(self.info.base_model_name_or_path));
        m.insert("bias".into(), json!("none"));
        m.insert("exclude_modules".into(), Value::Null);
        m.insert("fan_in_fan_out".into(), json!(self.info.fan_in_fan_out));
        m.insert("inference_mode".into(), json!(true));
        m.insert("init_lora_weights".into(), json!(true));
        m.insert("layers_pattern".into(), Value::Null);
        m.insert("layers_to_transform".into(), Value::Null);
        m.insert("lora_alpha".into(), lora_alpha);
        m.insert("lora_bias".into(), json!(false));
        m.insert("lora_dropout".into(), json!(self.config.dropout));
        m.insert("modules_to_save".into(), Value::Null);
        m.insert("peft_type".into(), json!("LORA"));
        m.insert("r".into(), json!(self.config.rank));
        m.insert("rank_pattern".into(), json!({}));
        m.insert("revision".into(), Value::Null);
        m.insert("target_modules".into(), json!(self.config.target_modules));
        m.insert("task_type".into(), json!(self.info.task_type));
        m.insert("use_dora".into(), json!(false));
        m.insert("use_rslora".into(), json!(false));
        let mut text = serde_json::to_string_pretty(&Value::Object(m)).expect("a JSON value always serialises");
        text.push('\n');
        text
    }

    /// Reads the adapters in `dir` for a base model with `layers`.
    ///
    /// # Errors
    /// See [`AdapterSet::from_files`]; [`LoraError::Io`] if a file cannot be
    /// read.
    pub fn load(dir: &Path, layers: &BaseLayers) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        let config = fs::read(&config_path).map_err(LoraError::io("reading", &config_path))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let weights = fs::read(&weights_path).map_err(LoraError::io("reading", &weights_path))?;
        Self::from_files(&config, &weights, layers, dir)
    }

    /// Reads adapters from the contents of `adapter_config.json` and
    /// `adapter_model.safetensors`, for a base model with `layers`. Every
    /// layer that the configuration's `target_modules` matches must have
    /// both tensors, and no other tensor may be present. `F16` and `BF16`
    /// tensors are widened exactly; `F64` is rounded to `T`. `dir` only
    /// names the files in errors.
    ///
    /// # Errors
    /// Each naming the file, and the field or tensor:
    /// [`LoraError::Malformed`] (not JSON, not safetensors),
    /// [`LoraError::ConfigField`] (a missing or invalid field, or a PEFT
    /// feature addmul does not implement: DoRA, rsLoRA, per-layer ranks,
    /// trained biases, regular-expression targets, ...),
    /// [`LoraError::MissingTensor`], [`LoraError::RankMismatch`] (a tensor's
    /// rank is not `r`), [`LoraError::TensorShape`] (a tensor does not fit
    /// its base layer), [`LoraError::UnexpectedTensor`] (a layer the base
    /// model does not have, or the configuration does not target),
    /// [`LoraError::Dtype`], [`LoraError::NonFinite`], and
    /// [`LoraError::RankTooLarge`].
    pub fn from_files(config_json: &[u8], weights: &[u8], layers: &BaseLayers, dir: &Path) -> Result<Self> {
        let (config, info) = parse_config(config_json, &dir.join(CONFIG_FILE))?;
        if !layers.keys().any(|name| config.matches(name)) {
            let problem = format!("{:?} matches no layer of the base model", config.target_modules);
            return Err(LoraError::field(dir.join(CONFIG_FILE), "target_modules", problem));
        }
        let path = dir.join(WEIGHTS_FILE);
        let st = SafeTensors::deserialize(weights).map_err(|e| LoraError::Malformed {
            path: path.clone(),
            problem: format!("not a valid safetensors file: {e}"),
        })?;
        let mut views: BTreeMap<String, TensorView<'_>> = st.tensors().into_iter().collect();

        // Every tensor must be one of a targeted layer of this base model.
        for name in views.keys() {
            let Some((layer, _)) = split_tensor_name(name) else {
                let reason = format!("not a LoRA tensor in PEFT's naming ({TENSOR_PREFIX}<layer>.lora_A.weight)");
                return Err(LoraError::unexpected(&path, name, reason));
            };
            if !layers.contains_key(layer) {
                let reason = format!("the base model has no layer `{layer}`: an adapter made for another model?");
                return Err(LoraError::unexpected(&path, name, reason));
            }
            if !config.matches(layer) {
                let reason = format!("layer `{layer}` is not in target_modules {:?}", config.target_modules);
                return Err(LoraError::unexpected(&path, name, reason));
            }
        }

        let mut adapters = BTreeMap::new();
        for (layer, &(inputs, outputs)) in layers.iter().filter(|(name, _)| config.matches(name)) {
            let [a_name, b_name] = tensor_names(layer);
            let mut take = |name: &str| {
                views.remove(name).ok_or_else(|| LoraError::MissingTensor {
                    path: path.clone(),
                    tensor: name.to_string(),
                    layer: layer.clone(),
                })
            };
            let (a_view, b_view) = (take(&a_name)?, take(&b_name)?);
            let r = config.rank;
            let shape_error = |tensor: &str, expected: Vec<usize>, got: &[usize]| LoraError::TensorShape {
                path: path.clone(),
                tensor: tensor.to_string(),
                layer: layer.clone(),
                expected,
                got: got.to_vec(),
            };
            let rank_error = |tensor: &str, got: usize, shape: &[usize]| LoraError::RankMismatch {
                path: path.clone(),
                tensor: tensor.to_string(),
                shape: shape.to_vec(),
                got,
                config: r,
            };
            // A: [r, in]
            match *a_view.shape() {
                [rank, cols] if cols == inputs && rank != r => return Err(rank_error(&a_name, rank, a_view.shape())),
                [rank, cols] if cols == inputs && rank == r => {}
                _ => return Err(shape_error(&a_name, vec![r, inputs], a_view.shape())),
            }
            // B: [out, r]
            match *b_view.shape() {
                [rows, rank] if rows == outputs && rank != r => return Err(rank_error(&b_name, rank, b_view.shape())),
                [rows, rank] if rows == outputs && rank == r => {}
                _ => return Err(shape_error(&b_name, vec![outputs, r], b_view.shape())),
            }
            check_rank(layer, r, inputs, outputs)?;
            let a = Matrix::from_row_slice(r, inputs, &decode::<T>(&a_view, &a_name, &path)?);
            let b = Matrix::from_row_slice(outputs, r, &decode::<T>(&b_view, &b_name, &path)?);
            adapters.insert(layer.clone(), LoraAdapter::from_weights(a, b, config.scale(), config.dropout)?);
        }
        Ok(AdapterSet { config, info, adapters })
    }
}

/// Every adapter's parameters, prefixed by its layer's name.
impl<T: Float> Parameters<T> for AdapterSet<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        for (layer, adapter) in &self.adapters {
            visit_child(layer, adapter, f);
        }
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        for (layer, adapter) in &mut self.adapters {
            visit_child_mut(layer, adapter, f);
        }
    }
}

/// `base_model.model.{layer}.lora_{A,B}.weight` → (`layer`, `'A'` or `'B'`).
fn split_tensor_name(name: &str) -> Option<(&str, char)> {
    let rest = name.strip_prefix(TENSOR_PREFIX)?;
    let (layer, which) = match (rest.strip_suffix(".lora_A.weight"), rest.strip_suffix(".lora_B.weight")) {
        (Some(layer), _) => (layer, 'A'),
        (_, Some(layer)) => (layer, 'B'),
        _ => return None,
    };
    (!layer.is_empty()).then_some((layer, which))
}

/// The fields of `adapter_config.json` that must be absent or at their
/// defaults: each asks for something addmul's LoRA does not do.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("use_dora", "DoRA (weight-decomposed adapters)"),
    ("use_rslora", "rank-stabilised scaling (alpha / sqrt(r))"),
    ("lora_bias", "a trained bias on lora_B"),
    ("rank_pattern", "per-layer ranks"),
    ("alpha_pattern", "per-layer alphas"),
    ("modules_to_save", "fully trained extra modules"),
    ("layers_to_transform", "adapting only some layer indices"),
    ("exclude_modules", "excluded modules"),
    ("target_parameters", "adapters on raw parameters"),
    ("layer_replication", "layer replication"),
    ("trainable_token_indices", "trainable token embeddings"),
];

/// The `LoraConfig` and `PeftInfo` of an `adapter_config.json`.
fn parse_config(bytes: &[u8], path: &Path) -> Result<(LoraConfig, PeftInfo)> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| LoraError::Malformed { path: path.to_path_buf(), problem: format!("not valid JSON: {e}") })?;
    let Value::Object(obj) = value else {
        return Err(LoraError::Malformed { path: path.to_path_buf(), problem: "not a JSON object".to_string() });
    };
    let field = |name: &str, problem: String| LoraError::field(path, name, problem);
    let present = |name: &str| obj.get(name).filter(|v| !v.is_null());

    match present("peft_type") {
        Some(Value::String(t)) if t == "LORA" => {}
        Some(other) => return Err(field("peft_type", format!("is {other}; addmul reads LoRA adapters (\"LORA\")"))),
        None => return Err(field("peft_type", "is missing".to_string())),
    }
    for &(name, what) in UNSUPPORTED {
        let set = match present(name) {
            None | Some(Value::Bool(false)) => false,
            Some(Value::Object(m)) => !m.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        if set {
            return Err(field(name, format!("is {}: {what} is not supported", obj[name])));
        }
    }
    match present("bias") {
        None => {}
        Some(Value::String(b)) if b == "none" => {}
        Some(other) => return Err(field("bias", format!("is {other}: only \"none\" (frozen biases) is supported"))),
    }

    let rank = match present("r") {
        Some(v) => v.as_u64().ok_or_else(|| field("r", format!("is {v}; expected a whole number")))?,
        None => return Err(field("r", "is missing".to_string())),
    };
    let number = |name: &str| -> Result<Option<f64>> {
        match present(name) {
            Some(v) => v.as_f64().map(Some).ok_or_else(|| field(name, format!("is {v}; expected a number"))),
            None => Ok(None),
        }
    };
    let alpha = number("lora_alpha")?.ok_or_else(|| field("lora_alpha", "is missing".to_string()))?;
    let dropout = number("lora_dropout")?.unwrap_or(0.0);
    let target_modules = match present("target_modules") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| field("target_modules", format!("holds {v}; expected names")))
            })
            .collect::<Result<Vec<_>>>()?,
        Some(Value::String(s)) => {
            let problem =
                format!("is the string {s:?}: a regular expression (or \"all-linear\"); addmul reads a list of names");
            return Err(field("target_modules", problem));
        }
        Some(other) => return Err(field("target_modules", format!("is {other}; expected a list of names"))),
        None => return Err(field("target_modules", "is missing".to_string())),
    };
    let text = |name: &str| -> Result<Option<String>> {
        match present(name) {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(field(name, format!("is {other}; expected a string"))),
            None => Ok(None),
        }
    };
    let fan_in_fan_out = match present("fan_in_fan_out") {
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(field("fan_in_fan_out", format!("is {other}; expected true or false"))),
        None => false,
    };
    let info = PeftInfo {
        base_model_name_or_path: text("base_model_name_or_path")?,
        fan_in_fan_out,
        task_type: text("task_type")?,
    };

    let rank = usize::try_from(rank).map_err(|_| field("r", format!("is {rank}: too large")))?;
    let config = LoraConfig { rank, alpha, dropout, target_modules };
    config.validate().map_err(|e| match e {
        LoraError::Config { field: f, value, reason } => {
            let name = match f {
                "rank" => "r",
                "alpha" => "lora_alpha",
                "dropout" => "lora_dropout",
                other => other,
            };
            field(name, format!("is {value}: {reason}"))
        }
        other => other,
    })?;
    Ok((config, info))
}

fn dtype_of<T: Float>() -> Dtype {
    if size_of::<T>() == 4 { Dtype::F32 } else { Dtype::F64 }
}

/// The little-endian bytes of a matrix's column-major storage, in `T`'s
/// precision.
fn le_bytes<T: Float>(m: &Matrix<T>) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.len() * size_of::<T>());
    for &v in m.iter() {
        if size_of::<T>() == 4 {
            out.extend_from_slice(&(v.as_f64() as f32).to_le_bytes());
        } else {
            out.extend_from_slice(&v.as_f64().to_le_bytes());
        }
    }
    out
}

/// A tensor's values in stored (row-major) order, as `T`.
///
/// # Errors
/// [`LoraError::Dtype`] for a type other than F32, F64, F16 and BF16;
/// [`LoraError::NonFinite`] for NaN or an infinity.
fn decode<T: Float>(view: &TensorView<'_>, name: &str, path: &Path) -> Result<Vec<T>> {
    let data = view.data();
    let values: Vec<f64> = match view.dtype() {
        Dtype::F32 => data.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect(),
        Dtype::F64 => data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8"))).collect(),
        Dtype::F16 => data.chunks_exact(2).map(|c| f64::from(f16_to_f32(u16::from_le_bytes([c[0], c[1]])))).collect(),
        Dtype::BF16 => data.chunks_exact(2).map(|c| f64::from(bf16_to_f32(u16::from_le_bytes([c[0], c[1]])))).collect(),
        other => {
            return Err(LoraError::Dtype {
                path: path.to_path_buf(),
                tensor: name.to_string(),
                dtype: format!("{other:?}"),
            });
        }
    };
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(LoraError::NonFinite { path: path.to_path_buf(), tensor: name.to_string(), index, value });
    }
    Ok(values.into_iter().map(T::of).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_names_split_back_into_layers() {
        let [a, b] = tensor_names("transformer.h.0.attn.c_attn");
        assert_eq!(a, "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight");
        assert_eq!(split_tensor_name(&a), Some(("transformer.h.0.attn.c_attn", 'A')));
        assert_eq!(split_tensor_name(&b), Some(("transformer.h.0.attn.c_attn", 'B')));
        assert_eq!(split_tensor_name("base_model.model.lora_A.weight"), None);
        assert_eq!(split_tensor_name("transformer.h.0.attn.c_attn.lora_A.weight"), None);
        assert_eq!(split_tensor_name("base_model.model.x.lora_A.default.weight"), None);
    }
}
