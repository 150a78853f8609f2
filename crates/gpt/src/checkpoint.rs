//! Checkpoints: Hugging Face-compatible weights, plus everything needed to
//! resume training exactly, written so that a crash never loses the last
//! good one.
//!
//! # Layout
//! ```text
//! run/
//!   latest                  the name of the newest complete checkpoint
//!   step-000500/
//!     config.json           Hugging Face GPT2Config (GPT2LMHeadModel reads it)
//!     model.safetensors     the weights, Hugging Face GPT-2 names and layouts
//!     optimizer.safetensors AdamW moments, `m.<name>` and `v.<name>` (training only)
//!     trainer.json          step, RNG states, configuration, corpus fingerprint
//!     ...                   any extra files, e.g. the tokenizer
//! ```
//!
//! `step-000500/` is first written as `.step-000500.tmp/`, every file synced,
//! then renamed into place; only then is `latest` replaced (again by writing a
//! temporary file and renaming it). A crash at any moment leaves `latest`
//! pointing at a complete checkpoint.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use addmul_core::{Float, Init, Matrix, Parameters};

use crate::safetensors_io::{load_stream_into, named_tensors, serialize, stored_values};
use crate::{Gpt, GptConfig, GptError, Result};

/// The name of the pointer file in a run folder.
pub const LATEST: &str = "latest";

/// Writes `bytes` to `path` atomically: a temporary file in the same folder,
/// synced, then renamed over `path`.
///
/// # Errors
/// [`GptError::Io`] naming the file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = File::create(&tmp).map_err(GptError::io("creating", &tmp))?;
        file.write_all(bytes).map_err(GptError::io("writing", &tmp))?;
        file.sync_all().map_err(GptError::io("syncing", &tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(GptError::io("renaming into place", path))
    })();
    if written.is_err() {
        // A half-written temporary file is of no use to anyone; `path`
        // itself was never touched.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Syncing a folder makes a rename durable; not every platform allows
    // opening one, which is fine there.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The model's weights as a Hugging Face `model.safetensors`: every
/// parameter of GPT-2 under its name; a model without biases gets all-zero
/// bias tensors so that `transformers` can load it. Side paths attached to
/// the linear layers (low-rank adapters) are not GPT-2's and are left to
/// their owners ([`CheckpointPlan::model_files`](crate::CheckpointPlan)).
///
/// # Errors
/// [`GptError::Checkpoint`] if serialisation fails.
pub fn model_safetensors<T: Float>(model: &Gpt<T>, path_for_errors: &Path) -> Result<Vec<u8>> {
    let side: std::collections::HashSet<String> = model.side_path_param_names().into_iter().collect();
    let mut tensors = named_tensors(model);
    tensors.retain(|(name, _, _)| !side.contains(name));
    if !model.config().bias {
        let mut zeros = Vec::new();
        model.visit(&mut |name, p| {
            if let Some(stem) = name.strip_suffix(".weight")
                && !side.contains(name)
                && !name.contains("wte")
                && !name.contains("wpe")
            {
                let n = p.value().nrows();
                zeros.push((format!("{stem}.bias"), vec![n], Matrix::zeros(n, 1)));
            }
        });
        tensors.extend(zeros);
    }
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    serialize(&tensors, metadata, path_for_errors)
}

/// Loads a model from a folder holding `config.json` and `model.safetensors`
/// (one written by addmul, or a `GPT2LMHeadModel` saved by `transformers`).
///
/// # Errors
/// [`GptError::Io`] for a missing file; [`GptError::Config`] for an invalid
/// or unsupported config; [`GptError::Checkpoint`] for a corrupt, truncated
/// or mismatched weights file, or one with a non-finite weight.
pub fn load_model<T: Float>(dir: &Path) -> Result<Gpt<T>> {
    let config_path = dir.join("config.json");
    let text = fs::read_to_string(&config_path).map_err(GptError::io("reading", &config_path))?;
    let weights = dir.join("model.safetensors");
    if !weights.is_file() {
        let problem = if dir.join("model.safetensors.index.json").is_file() {
            "is sharded (model.safetensors.index.json): addmul reads one model.safetensors; save the model again \
             with a max_shard_size larger than it"
        } else if dir.join("pytorch_model.bin").is_file() {
            "holds PyTorch pickle weights (pytorch_model.bin), which addmul does not read; save the model with \
             safe_serialization=True"
        } else {
            "has no model.safetensors"
        };
        return Err(GptError::checkpoint(dir, problem));
    }
    let mut file = File::open(&weights).map_err(GptError::io("opening", &weights))?;
    let len = file.metadata().map_err(GptError::io("reading", &weights))?.len();
    model_from_reader(&text, &mut file, len, &config_path, &weights)
}

/// [`load_model`] on the files' contents: `config_json` (read from
/// `config_path`) and the safetensors `weights` (read from `weights_path`);
/// the paths only name the files in errors.
///
/// # Errors
/// As [`load_model`].
pub fn model_from_bytes<T: Float>(
    config_json: &str,
    weights: &[u8],
    config_path: &Path,
    weights_path: &Path,
) -> Result<Gpt<T>> {
    let mut reader = std::io::Cursor::new(weights);
    model_from_reader(config_json, &mut reader, weights.len() as u64, config_path, weights_path)
}

/// The model of `config_json`, its weights streamed from a safetensors file
/// of `len` bytes straight into the parameters (no copy of the file is held).
fn model_from_reader<T: Float, R: Read + Seek>(
    config_json: &str,
    weights: &mut R,
    len: u64,
    config_path: &Path,
    weights_path: &Path,
) -> Result<Gpt<T>> {
    let config = GptConfig::from_hf_json(config_json)?;
    config.validate()?;
    // The model is allocated only once the file can fill it: a config.json
    // that claims more parameters than the file holds values is refused
    // before anything of its size exists.
    let stored = stored_values(weights, len, weights_path)?;
    if config.num_params() > stored {
        return Err(GptError::checkpoint(
            weights_path,
            format!(
                "holds {stored} values, but {} describes a model of {} parameters",
                config_path.display(),
                config.num_params()
            ),
        ));
    }
    // Zeros, not GPT-2's random initialisation: every value is overwritten.
    let mut model = Gpt::with_init(config, Init::Zeros, Init::Zeros, &mut addmul_core::rng(0))?;
    load_stream_into(&mut model, weights, len, weights_path)?;
    Ok(model)
}

/// Writes a checkpoint folder `run/name` containing `files` (name, bytes),
/// then points `run/latest` at it. See the module documentation for why a
/// crash cannot leave a half-written checkpoint behind `latest`.
///
/// # Errors
/// [`GptError::Io`] naming the file that could not be written.
pub fn save_checkpoint(run: &Path, name: &str, files: &[(&str, Vec<u8>)]) -> Result<PathBuf> {
    save_checkpoint_inner(run, name, files, None)
}

fn save_checkpoint_inner(
    run: &Path,
    name: &str,
    files: &[(&str, Vec<u8>)],
    crash_after: Option<usize>,
) -> Result<PathBuf> {
    fs::create_dir_all(run).map_err(GptError::io("creating", run))?;
    let dest = run.join(name);
    if dest.exists() {
        // Replacing it would leave a moment with no checkpoint behind `latest`.
        return Err(GptError::checkpoint(&dest, "already exists; checkpoints are never overwritten"));
    }
    let tmp = run.join(format!(".{name}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(GptError::io("removing a stale", &tmp))?;
    }
    fs::create_dir(&tmp).map_err(GptError::io("creating", &tmp))?;
    let written = (|| {
        for (i, (file, bytes)) in files.iter().enumerate() {
            if crash_after == Some(i) {
                // A crash leaves the temporary folder behind (the next save
                // removes it): return before the clean-up below.
                return Ok(Err(GptError::io("simulated crash while writing", tmp.join(file))(std::io::Error::other(
                    "crash",
                ))));
            }
            let path = tmp.join(file);
            let mut f = File::create(&path).map_err(GptError::io("creating", &path))?;
            f.write_all(bytes).map_err(GptError::io("writing", &path))?;
            f.sync_all().map_err(GptError::io("syncing", &path))?;
        }
        sync_dir(&tmp).map(Ok)
    })();
    match written {
        Ok(Ok(())) => {}
        Ok(Err(crash)) => return Err(crash),
        Err(e) => {
            // A failed write (a full disk, say): the partial folder goes;
            // `latest` and the checkpoint it names were never touched.
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    }
    fs::rename(&tmp, &dest).map_err(GptError::io("renaming into place", &dest))?;
    sync_dir(run)?;
    if crash_after == Some(files.len()) {
        return Err(GptError::io("simulated crash before updating", run.join(LATEST))(std::io::Error::other("crash")));
    }
    write_atomically(&run.join(LATEST), name.as_bytes())?;
    Ok(dest)
}

/// The newest complete checkpoint of a run folder (the one `latest` names),
/// or the folder itself if it is a checkpoint (has a `config.json`).
///
/// # Errors
/// [`GptError::Checkpoint`] if `path` is neither, or `latest` names a folder
/// that is not a complete checkpoint.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    if path.join("config.json").is_file() {
        return Ok(path.to_path_buf());
    }
    let latest = path.join(LATEST);
    if !latest.is_file() {
        let problem = if path.is_dir() {
            "is neither a run folder (no `latest` file) nor a checkpoint (no config.json)"
        } else {
            "does not exist"
        };
        return Err(GptError::checkpoint(path, problem));
    }
    let name = fs::read_to_string(&latest).map_err(GptError::io("reading", &latest))?;
    let name = name.trim();
    // `latest` names a folder inside the run, never a path elsewhere.
    let mut parts = Path::new(name).components();
    if !matches!((parts.next(), parts.next()), (Some(std::path::Component::Normal(_)), None)) {
        return Err(GptError::checkpoint(&latest, format!("names {name:?}, which is not a folder of this run")));
    }
    let dir = path.join(name);
    if !dir.join("config.json").is_file() {
        return Err(GptError::checkpoint(
            &latest,
            format!("names {}, which is not a complete checkpoint", dir.display()),
        ));
    }
    Ok(dir)
}

/// Points `run/latest` at the newest complete checkpoint `<prefix><step>`
/// when it names an older one or is missing, and returns the name it now
/// holds; `None` if nothing changed.
///
/// A checkpoint folder gets its final name only once every file in it is
/// written and synced, so a folder `step-000360` is complete even if `latest`
/// still names `step-000350`: that is what a crash between the rename and
/// the update of `latest` leaves behind. Without this repair a resumed run
/// would train to step 360 again and then find the folder in its way.
/// A `latest` naming something other than `<prefix><number>` is left alone.
///
/// # Errors
/// [`GptError::Io`] if the folder cannot be listed or `latest` written.
pub fn recover_latest(run: &Path, prefix: &str) -> Result<Option<String>> {
    if !run.is_dir() || run.join("config.json").is_file() {
        return Ok(None);
    }
    let newest = fs::read_dir(run)
        .map_err(GptError::io("listing", run))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| run.join(n).join("config.json").is_file())
        .filter_map(|n| Some((n.strip_prefix(prefix)?.parse::<u64>().ok()?, n)))
        .max();
    let Some((step, name)) = newest else { return Ok(None) };
    let latest = run.join(LATEST);
    let current = match fs::read_to_string(&latest) {
        Ok(text) => Some(text.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(GptError::io("reading", &latest)(e)),
    };
    let stale = match &current {
        None => true,
        Some(c) => c.strip_prefix(prefix).and_then(|n| n.parse::<u64>().ok()).is_some_and(|s| s < step),
    };
    if !stale {
        return Ok(None);
    }
    write_atomically(&latest, name.as_bytes())?;
    Ok(Some(name))
}

/// Removes checkpoint folders `<prefix><step>` of `run` other than the newest
/// `keep` (by step number, so `step-1000000` is newer than `step-999999`)
/// and the one `latest` names. Folders whose name does not end in a number
/// are left alone.
///
/// # Errors
/// [`GptError::Io`] if a folder cannot be removed.
pub fn prune(run: &Path, prefix: &str, keep: usize) -> Result<()> {
    let latest = fs::read_to_string(run.join(LATEST)).unwrap_or_default();
    let mut names: Vec<(u64, String)> = fs::read_dir(run)
        .map_err(GptError::io("listing", run))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| run.join(n).is_dir())
        .filter_map(|n| Some((n.strip_prefix(prefix)?.parse().ok()?, n)))
        .collect();
    names.sort();
    let cut = names.len().saturating_sub(keep);
    for (_, name) in &names[..cut] {
        if name.as_str() != latest.trim() {
            fs::remove_dir_all(run.join(name)).map_err(GptError::io("removing", run.join(name)))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_while_saving_leaves_the_previous_checkpoint_intact() {
        // Under the target folder (target/debug/deps/this-test → target/tmp):
        // tests write no files outside the repository.
        let exe = std::env::current_exe().unwrap();
        let target = exe.ancestors().nth(3).unwrap();
        let dir = target.join("tmp").join(format!("addmul-gpt-crash-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let files = |m: &Gpt<f32>| {
            vec![
                ("config.json", m.config().to_hf_json().into_bytes()),
                ("model.safetensors", model_safetensors(m, &dir).unwrap()),
            ]
        };
        let model = Gpt::<f32>::new(GptConfig::new(10, 8, 1, 2, 8), &mut addmul_core::rng(1)).unwrap();
        save_checkpoint(&dir, "step-000001", &files(&model)).unwrap();
        let other = Gpt::<f32>::new(GptConfig::new(10, 8, 1, 2, 8), &mut addmul_core::rng(2)).unwrap();
        // Stop (as a crash would) after writing 0, 1 or 2 of the 2 files: the
        // last stops between renaming the folder and updating `latest`.
        for crash_after in 0..=2 {
            let name = format!("step-00000{}", crash_after + 2);
            assert!(save_checkpoint_inner(&dir, &name, &files(&other), Some(crash_after)).is_err());
            assert_eq!(resolve(&dir).unwrap(), dir.join("step-000001"));
            let loaded = load_model::<f32>(&resolve(&dir).unwrap()).unwrap();
            assert_eq!(loaded, model, "crash after {crash_after} files");
        }
        assert_eq!(fs::read_to_string(dir.join(LATEST)).unwrap(), "step-000001");
        // A checkpoint is never overwritten.
        assert!(save_checkpoint(&dir, "step-000001", &files(&other)).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
