//! Fine-tuning with low-rank adapters: what `addmul finetune --lora-rank`
//! attaches to a pretrained GPT, how its checkpoints carry the adapters (as
//! Hugging Face PEFT's two files beside GPT-2's own), and how a run or
//! checkpoint folder with adapters is loaded again.

use std::path::Path;
use std::sync::Arc;

use addmul_core::{ParametersExt, rng};
use addmul_gpt::{Gpt, GptError, ModelFiles};
use addmul_lora::peft::{CONFIG_FILE, WEIGHTS_FILE};
use addmul_lora::{AdapterSet, BaseLayers, LoraConfig, PeftInfo};

use crate::Result;

/// What `--lora-rank`, `--lora-alpha` and `--lora-targets` choose.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraOptions {
    /// The adapters' rank `r`.
    pub rank: usize,
    /// `alpha`: the update is scaled by `alpha / r`.
    pub alpha: f64,
    /// The layers adapted, by the last part of their names (`c_attn`,
    /// `c_proj`, `c_fc`), as PEFT's `target_modules`.
    pub targets: Vec<String>,
}

/// The model's linear layers: name and `(inputs, outputs)`.
fn base_layers(model: &Gpt<f32>) -> BaseLayers {
    model.linear_layers().into_iter().map(|(name, l)| (name, (l.in_features(), l.out_features()))).collect()
}

// ANCHOR: attach_new
/// Freezes every weight of `model` and attaches fresh adapters (`B = 0`: the
/// model's outputs are unchanged until training moves them) to the layers
/// `options` targets, drawn from `seed`. `base` is recorded in the adapters'
/// `adapter_config.json` as PEFT's `base_model_name_or_path`.
///
/// # Errors
/// An invalid rank, alpha or target list, named.
pub fn attach_new(model: &mut Gpt<f32>, options: &LoraOptions, base: &Path, seed: u64) -> Result<AdapterSet<f32>> {
    let targets: Vec<&str> = options.targets.iter().map(String::as_str).collect();
    let config = LoraConfig::new(options.rank, options.alpha, &targets);
    let info = PeftInfo { base_model_name_or_path: Some(base.display().to_string()), ..PeftInfo::default() };
    let set = AdapterSet::new(config, &base_layers(model), &mut rng(seed))?.with_info(info);
    model.freeze_all();
    set.attach_to(model.linear_layers_mut())?;
    Ok(set)
}
// ANCHOR_END: attach_new

/// The adapters saved in `dir` for `model`'s layers (PEFT's
/// `adapter_config.json` and `adapter_model.safetensors`), or `None` for a
/// folder without adapters; nothing is attached.
///
/// # Errors
/// As [`attach_saved`].
pub fn saved(model: &Gpt<f32>, dir: &Path) -> Result<Option<AdapterSet<f32>>> {
    if !dir.join(CONFIG_FILE).is_file() {
        return Ok(None);
    }
    Ok(Some(AdapterSet::load(dir, &base_layers(model))?))
}

/// If `dir` holds adapters (PEFT's `adapter_config.json` and
/// `adapter_model.safetensors`), freezes `model`'s weights and attaches them;
/// returns them, or `None` for a folder without adapters.
///
/// # Errors
/// Adapters that do not fit the model (another base model, another rank),
/// or damaged files, named.
pub fn attach_saved(model: &mut Gpt<f32>, dir: &Path) -> Result<Option<AdapterSet<f32>>> {
    let Some(set) = saved(model, dir)? else { return Ok(None) };
    model.freeze_all();
    set.attach_to(model.linear_layers_mut())?;
    Ok(Some(set))
}

/// If `dir` holds adapters, merges them into `model`'s weights
/// (`W ← W + s · B A`): the model then computes what the adapted model did,
/// as a plain GPT-2. Returns the adapters merged, or `None`.
///
/// # Errors
/// As [`attach_saved`].
pub fn merge_saved(model: &mut Gpt<f32>, dir: &Path) -> Result<Option<AdapterSet<f32>>> {
    let Some(set) = saved(model, dir)? else { return Ok(None) };
    for (name, linear) in model.linear_layers_mut() {
        if let Some(adapter) = set.get(&name) {
            adapter.merge_into(linear)?;
        }
    }
    Ok(Some(set))
}

/// [`attach_saved`] as [`addmul_gpt::GptTrainer::resume_with`] wants it.
///
/// # Errors
/// As [`attach_saved`], as a checkpoint error naming the folder.
pub fn prepare_resume(model: &mut Gpt<f32>, dir: &Path) -> addmul_gpt::Result<()> {
    match attach_saved(model, dir) {
        Ok(_) => Ok(()),
        Err(e) => Err(GptError::Extension(Box::new(e))),
    }
}

/// The checkpoint files of a run that trains `set`'s adapters: PEFT's
/// `adapter_config.json` and `adapter_model.safetensors`, holding the values
/// the model's attached adapters have when the checkpoint is written.
pub fn checkpoint_files(set: AdapterSet<f32>) -> ModelFiles {
    Arc::new(move |model: &Gpt<f32>| {
        let mut set = set.clone();
        let problem = |e: addmul_lora::LoraError| GptError::Extension(Box::new(e));
        set.read_from(model).map_err(problem)?;
        let (config, weights) = set.to_files(Path::new(".")).map_err(problem)?;
        Ok(vec![(CONFIG_FILE.to_string(), config.into_bytes()), (WEIGHTS_FILE.to_string(), weights)])
    })
}

/// Bytes of training state a model needs beyond its weights: a gradient and
/// AdamW's two moments (f32) for every trained parameter.
pub fn training_state_bytes(model: &Gpt<f32>) -> u64 {
    3 * 4 * model.num_trainable() as u64
}

/// The line `addmul finetune` prints about what it trains: the trained and
/// total parameters, and the memory of weights and training state against
/// what full fine-tuning would hold.
pub fn summary(model: &Gpt<f32>, set: &AdapterSet<f32>) -> String {
    let (trained, total) = (model.num_trainable(), model.num_params());
    let base = total - trained;
    let mb = |bytes: u64| bytes as f64 / 1e6;
    let weights = 4 * total as u64;
    format!(
        "LoRA: rank {}, alpha {}, on {} layers ({}): training {trained} of {total} parameters ({:.2}%); weights \
         {:.1} MB + gradients and AdamW moments {:.1} MB (full fine-tuning: {:.1} MB + {:.1} MB)",
        set.config().rank,
        set.config().alpha,
        set.adapters().len(),
        set.config().target_modules.join(", "),
        100.0 * trained as f64 / total as f64,
        mb(weights),
        mb(training_state_bytes(model)),
        mb(4 * base as u64),
        mb(3 * 4 * base as u64),
    )
}
