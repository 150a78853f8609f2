//! Low-rank adapters on the whole GPT: PEFT's adapted GPT-2 reproduced from
//! its files, and `addmul finetune --lora-rank` on the Hugging Face folder
//! `tests/data/hf_gpt2_tiny` (frozen weights, PEFT files in every
//! checkpoint, exact resume, loading, merging, bad flags).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use addmul::app;
use addmul::cli::{self, Cli};
use addmul::core::{Matrix, Parameters, ParametersExt};
use addmul::lora::{AdapterSet, BaseLayers};
use clap::Parser;
use common::Temp;

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf_gpt2_tiny")
}

fn peft_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/lora/tests/data/peft_gpt2_tiny")
}

fn layers<T: addmul::core::Float>(model: &addmul::gpt::Gpt<T>) -> BaseLayers {
    model.linear_layers().into_iter().map(|(n, l)| (n, (l.in_features(), l.out_features()))).collect()
}

fn values(model: &dyn Parameters<f32>) -> BTreeMap<String, Matrix<f32>> {
    let mut out = BTreeMap::new();
    model.visit(&mut |n, p| {
        out.insert(n.to_string(), p.value().clone());
    });
    out
}

/// Runs the command line `args`; returns what it said, or the error.
fn run(args: &[&str]) -> Result<String, String> {
    let said = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = std::rc::Rc::clone(&said);
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    cli::run(cli, &mut Vec::new(), move |l: &str| sink.borrow_mut().push(l.to_string())).map_err(|e| e.to_string())?;
    Ok(said.borrow().join("\n"))
}

#[test]
fn a_peft_adapter_on_the_whole_gpt_gives_pefts_logits_attached_and_merged() {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(peft_fixture().join("model_reference.json")).unwrap()).unwrap();
    let ids: Vec<u32> = reference["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let want: Vec<Vec<f64>> = reference["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect())
        .collect();
    let check = |logits: &Matrix<f64>, what: &str| {
        for (j, row) in want.iter().enumerate() {
            for (i, &w) in row.iter().enumerate() {
                let got = logits[(i, j)];
                assert!((got - w).abs() < 1e-5 * w.abs().max(1.0), "{what}: logit {i} of token {j}: {got} vs {w}");
            }
        }
    };
    let mut model = addmul::gpt::checkpoint::load_model::<f64>(&peft_fixture().join("base_model")).unwrap();
    let plain = model.logits(&ids, ids.len()).unwrap();
    let set = AdapterSet::<f64>::load(&peft_fixture(), &layers(&model)).unwrap();
    set.attach_to(model.linear_layers_mut()).unwrap();
    let adapted = model.logits(&ids, ids.len()).unwrap();
    check(&adapted, "attached");
    assert!((&adapted - &plain).abs().max() > 1e-3, "the adapters change the logits");
    // Merged into the weights instead: the same numbers from a plain GPT.
    let mut merged = addmul::gpt::checkpoint::load_model::<f64>(&peft_fixture().join("base_model")).unwrap();
    for (name, linear) in merged.linear_layers_mut() {
        if let Some(adapter) = set.get(&name) {
            adapter.merge_into(linear).unwrap();
        }
    }
    check(&merged.logits(&ids, ids.len()).unwrap(), "merged");
}

#[test]
fn finetune_with_lora_trains_only_the_adapters_and_checkpoints_them_as_peft_files() {
    let dir = Temp::new("lora-finetune");
    let data = dir.write("text.txt", &"The quick brown fox jumps over the lazy dog. ".repeat(100));
    let model = folder();
    let model = model.to_str().unwrap();
    let finetune = |out: &str, iters: &str| {
        let mut args = vec!["addmul", "finetune", "--model", model, "--data", &data, "--out", out];
        args.extend(["--lora-rank", "4", "--lora-targets", "c_attn,c_fc", "--max-iters", iters]);
        args.extend([
            "--set",
            "block_size=16",
            "--set",
            "lr=1e-2",
            "--set",
            "warmup_iters=2",
            "--set",
            "lr_decay_iters=30",
        ]);
        args.extend(["--set", "eval_interval=10"]);
        args.extend(["--set", "checkpoint_interval=10", "--quiet", "--sample", "0"]);
        run(&args)
    };
    let out = dir.arg("run");
    let said = finetune(&out, "30").unwrap();
    // 2 layers x (c_attn 16 -> 48 and c_fc 16 -> 64) x rank 4.
    let trained = 2 * 4 * ((16 + 48) + (16 + 64));
    assert!(said.contains(&format!("training {trained} of {} parameters", 16016 + trained)), "{said}");
    let val = common::val_losses(&dir.0.join("run"));
    assert!(val[val.len() - 1] < val[0] - 0.5, "validation loss {val:?}");

    // The checkpoint: GPT-2's own weights exactly as they were, and the
    // adapters as PEFT's two files, which load onto the base model.
    let last = dir.0.join("run/step-000030");
    let base = addmul::gpt::checkpoint::load_model::<f32>(&folder()).unwrap();
    let kept = addmul::gpt::checkpoint::load_model::<f32>(&last).unwrap();
    assert_eq!(values(&kept), values(&base), "the frozen weights did not move");
    let set = AdapterSet::<f32>::load(&last, &layers(&base)).unwrap();
    assert_eq!(set.adapters().len(), 4);
    assert_eq!(set.info().base_model_name_or_path.as_deref(), Some(model));
    assert!(set.adapters().values().all(|a| a.b().value().iter().any(|&v| v != 0.0)), "B moved from zero");
    let optimizer = std::fs::read(last.join("optimizer.safetensors")).unwrap();
    let moments = safetensors::SafeTensors::deserialize(&optimizer).unwrap().names().len();
    assert_eq!(moments, 2 * 2 * 4, "moments of the adapters only");

    // `addmul sample` and `eval` use the run with its adapters.
    let (tuned, _) = app::load(&dir.0.join("run")).unwrap();
    assert_eq!(tuned.num_params(), 16016 + trained);
    assert_eq!(tuned.num_trainable(), trained);
    let text = std::fs::read_to_string(&data).unwrap();
    let eval = |m: &str| {
        let args = ["addmul", "eval", "--model", m, "--data", &data, "--stride", "8"];
        let mut out = Vec::new();
        cli::run(Cli::try_parse_from(args).unwrap(), &mut out, |_| {}).unwrap();
        String::from_utf8(out).unwrap().trim().strip_prefix("perplexity ").unwrap().parse::<f64>().unwrap()
    };
    assert!(!text.is_empty());
    assert!(eval(&out) < 0.5 * eval(model), "the adapters lower the perplexity");

    // A run of 20 steps (on the same schedule, which ends at step 30)
    // resumed to 30 ends where the uninterrupted run ended, bit for bit.
    let out2 = dir.arg("run2");
    finetune(&out2, "20").unwrap();
    let resume = ["addmul", "train", "--resume", "--out", &out2, "--data", &data, "--max-iters", "30"];
    run(&[&resume[..], &["--quiet", "--sample", "0"]].concat()).unwrap();
    for name in ["adapter_model.safetensors", "optimizer.safetensors", "model.safetensors"] {
        let a = std::fs::read(last.join(name)).unwrap();
        let b = std::fs::read(dir.0.join("run2/step-000030").join(name)).unwrap();
        assert!(a == b, "{name} differs after resuming");
    }

    // Fine-tuning from the LoRA run merges its adapters first.
    let out3 = dir.arg("run3");
    let args = ["addmul", "finetune", "--model", &out, "--data", &data, "--out", &out3, "--max-iters", "1"];
    let said = run(&[&args[..], &["--set", "block_size=16", "--quiet", "--sample", "0"]].concat()).unwrap();
    assert!(said.contains("merged the 4 LoRA adapters"), "{said}");
}

#[test]
fn bad_lora_flags_are_named() {
    let dir = Temp::new("lora-bad");
    let data = dir.write("text.txt", &"The quick brown fox jumps over the lazy dog. ".repeat(100));
    let model = folder();
    let model = model.to_str().unwrap();
    let out = dir.arg("run");
    let attempt = |extra: &[&str]| {
        let args = ["addmul", "finetune", "--model", model, "--data", &data, "--out", &out, "--quiet"];
        run(&[&args[..], extra].concat()).unwrap_err()
    };
    let e = attempt(&["--lora-rank", "0"]);
    assert!(e.contains("rank") && e.contains('0'), "{e}");
    let e = attempt(&["--lora-rank", "17"]);
    assert!(e.contains("rank 17 is too large") && e.contains("transformer.h.0.attn.c_attn"), "{e}");
    let e = attempt(&["--lora-rank", "2", "--lora-targets", "q_proj"]);
    assert!(e.contains("target_modules") && e.contains("q_proj"), "{e}");
    let e = attempt(&["--lora-rank", "2", "--lora-alpha", "inf"]);
    assert!(e.contains("alpha"), "{e}");
    let e = attempt(&["--lora-alpha", "8"]);
    assert!(e.contains("--lora-rank"), "{e}");
    // Nothing was started.
    assert!(!dir.0.join("run").exists());
}
