//! A GPT-2 folder as Hugging Face `transformers` saves it, used by the
//! `addmul` commands as is: `tests/data/hf_gpt2_tiny` (made by
//! `tests/data/make_hf_gpt2_tiny.py`: GPT-2's tokenizer cut after 300
//! merges, a random 2-layer model) and what `transformers` computed from it.

mod common;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use addmul::app;
use addmul::cli::{self, Cli};
use addmul::text::TextTokenizer;
use addmul::tokenizer::SpecialPolicy;
use clap::Parser;
use common::Temp;

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf_gpt2_tiny")
}

fn reference() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(folder().join("ref.json")).unwrap()).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect()
}

/// Each text of `ref.json` encodes to the ids `transformers` gave it
/// (`<|endoftext|>` in the text is the special token, as there) and back.
fn encodes_as_transformers(tokenizer: &TextTokenizer) {
    let TextTokenizer::Bpe(bpe) = tokenizer else { panic!("GPT-2's tokenizer is a BPE") };
    assert_eq!(bpe.vocab_size(), 557);
    for case in reference()["encodings"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let got = bpe.encode_with(text, &SpecialPolicy::allow_all()).unwrap();
        assert_eq!(got, ids(&case["ids"]), "{text:?}");
        assert_eq!(bpe.decode(&got).unwrap(), text);
    }
}

#[test]
fn the_tokenizer_is_read_from_tokenizer_json() {
    encodes_as_transformers(&TextTokenizer::load_dir(&folder()).unwrap());
}

#[test]
fn the_tokenizer_is_read_from_vocab_json_and_merges_txt() {
    let dir = Temp::new("hf-pair");
    for name in ["config.json", "model.safetensors", "vocab.json", "merges.txt"] {
        std::fs::copy(folder().join(name), dir.0.join(name)).unwrap();
    }
    encodes_as_transformers(&TextTokenizer::load_dir(&dir.0).unwrap());
    // And without either: said, naming the folder.
    std::fs::remove_file(dir.0.join("merges.txt")).unwrap();
    let e = app::load(&dir.0).unwrap_err().to_string();
    assert!(e.contains(&dir.0.display().to_string()) && e.contains("vocab.json and merges.txt"), "{e}");
}

#[test]
fn a_tokenizer_other_than_gpt2s_is_refused_naming_the_file() {
    let dir = Temp::new("hf-unigram");
    std::fs::copy(folder().join("config.json"), dir.0.join("config.json")).unwrap();
    std::fs::copy(folder().join("model.safetensors"), dir.0.join("model.safetensors")).unwrap();
    let json = std::fs::read_to_string(folder().join("tokenizer.json")).unwrap();
    std::fs::write(dir.0.join("tokenizer.json"), json.replacen(r#""type": "BPE""#, r#""type": "Unigram""#, 1)).unwrap();
    let e = app::load(&dir.0).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json") && e.contains("Unigram") && e.contains("byte-level BPE"), "{e}");
}

/// Every file of `dir` with its length and modification time.
fn snapshot(dir: &Path) -> Vec<(String, u64, SystemTime)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            (e.file_name().to_string_lossy().into_owned(), m.len(), m.modified().unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn sample_continues_a_prompt_as_transformers_generate_does() {
    let r = reference();
    let before = snapshot(&folder());
    let (model, tokenizer) = app::load(&folder()).unwrap();
    // The prompt's next-token logits.
    let prompt = ids(&r["prompt"]);
    assert_eq!(tokenizer.as_dyn().encode("The quick brown fox").unwrap(), prompt);
    let logits = model.logits(&prompt, prompt.len()).unwrap();
    let last = logits.column(prompt.len() - 1);
    let want: Vec<f64> = r["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let scale = want.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let err = last.iter().zip(&want).map(|(a, b)| (f64::from(*a) - b).abs()).fold(0.0, f64::max) / scale;
    assert!(err < 1e-5, "logits relative error {err:e}");
    // Greedy decoding through the command: transformers' 20 tokens (the
    // closest call along the way was a gap of r["min_margin"] in logits).
    assert!(r["min_margin"].as_f64().unwrap() > 1e-3);
    let model_dir = folder();
    let args = ["addmul", "sample", "--model", model_dir.to_str().unwrap(), "--prompt", "The quick brown fox"];
    let cli = Cli::try_parse_from(args.into_iter().chain(["--temperature", "0", "--tokens", "20"])).unwrap();
    let mut out = Vec::new();
    cli::run(cli, &mut out, |_| {}).unwrap();
    // (A random model's bytes need not be UTF-8: what cannot be decoded
    // prints as U+FFFD, as in `transformers`' decode with errors="replace".)
    let want = tokenizer.as_dyn().decode_bytes(&ids(&r["greedy"])).unwrap();
    // (`sample` ends its output with a newline.)
    assert_eq!(String::from_utf8(out).unwrap(), format!("The quick brown fox{}\n", String::from_utf8_lossy(&want)));
    // The model folder is never written to.
    assert_eq!(snapshot(&folder()), before);
}

#[test]
fn perplexity_is_what_the_transformers_recipe_computes() {
    let r = reference();
    let (model, tokenizer) = app::load(&folder()).unwrap();
    let text = r["eval_text"].as_str().unwrap();
    let ids = tokenizer.encode_text(text).unwrap();
    assert_eq!(ids.len() as u64, r["eval_tokens"].as_u64().unwrap());
    for (stride, want) in r["perplexity"].as_object().unwrap() {
        let p = addmul::gpt::perplexity(&model, &ids, stride.parse().unwrap()).unwrap();
        let want_ppl = want["perplexity"].as_f64().unwrap();
        let err = (p.perplexity - want_ppl).abs() / want_ppl;
        eprintln!("stride {stride}: perplexity {} vs transformers {want_ppl} (relative {err:.1e})", p.perplexity);
        assert!(err < 1e-5, "stride {stride}: {} vs {want_ppl}", p.perplexity);
        assert_eq!(p.tokens as u64, want["tokens"].as_u64().unwrap(), "stride {stride}");
    }
    // Through the command, which prints it.
    let dir = Temp::new("hf-eval");
    let data = dir.write("text.txt", text);
    let model_dir = folder();
    let args = ["addmul", "eval", "--model", model_dir.to_str().unwrap(), "--data", &data, "--stride", "16"];
    let mut out = Vec::new();
    let said = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = std::rc::Rc::clone(&said);
    cli::run(Cli::try_parse_from(args).unwrap(), &mut out, move |l: &str| sink.borrow_mut().push(l.to_string()))
        .unwrap();
    let want = r["perplexity"]["16"]["perplexity"].as_f64().unwrap();
    let printed: f64 = String::from_utf8(out).unwrap().trim().strip_prefix("perplexity ").unwrap().parse().unwrap();
    assert!((printed - want).abs() / want < 1e-5, "{printed} vs {want}");
    assert!(said.borrow().iter().any(|l| l.contains("97 tokens") && l.contains("stride 16")), "{:?}", said.borrow());
    // A stride longer than the context is named.
    let args = ["addmul", "eval", "--model", model_dir.to_str().unwrap(), "--data", &data, "--stride", "33"];
    let e = cli::run(Cli::try_parse_from(args).unwrap(), &mut Vec::new(), |_| {}).unwrap_err().to_string();
    assert!(e.contains("--stride 33") && e.contains("1..=32"), "{e}");
}

#[test]
fn finetune_trains_every_weight_and_each_checkpoint_is_again_a_hugging_face_folder() {
    let before = snapshot(&folder());
    let dir = Temp::new("hf-finetune");
    let data = dir.write("text.txt", &"The quick brown fox jumps over the lazy dog. ".repeat(100));
    let out = dir.arg("run");
    let model_dir = folder();
    let mut args = vec!["addmul", "finetune", "--model", model_dir.to_str().unwrap(), "--data", &data, "--out", &out];
    args.extend(["--max-iters", "30", "--set", "block_size=16", "--set", "lr=3e-3", "--set", "warmup_iters=2"]);
    args.extend(["--set", "eval_interval=10", "--set", "checkpoint_interval=10", "--quiet", "--sample", "0"]);
    let said = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = std::rc::Rc::clone(&said);
    cli::run(Cli::try_parse_from(&args).unwrap(), &mut Vec::new(), move |l: &str| {
        sink.borrow_mut().push(l.to_string())
    })
    .unwrap();
    let said = said.borrow().join("\n");
    assert!(said.contains("fine-tuning") && said.contains("16016 parameters"), "{said}");
    // The validation loss falls from the pretrained model's.
    let val = common::val_losses(&dir.0.join("run"));
    assert_eq!(val.len(), 4, "{val:?}");
    assert!(val[3] < val[0] - 1.0, "validation loss {val:?}");
    // The checkpoint holds the model's tokenizer files byte for byte, and
    // loads (as transformers loads it: same files, same layout).
    let last = dir.0.join("run/step-000030");
    for name in ["tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "generation_config.json"] {
        assert_eq!(std::fs::read(last.join(name)).unwrap(), std::fs::read(folder().join(name)).unwrap(), "{name}");
    }
    let (tuned, _) = app::load(&last).unwrap();
    let (pretrained, _) = app::load(&folder()).unwrap();
    assert_eq!(tuned.config(), pretrained.config());
    // Every weight moved (full fine-tuning).
    let mut moved = 0;
    let mut total = 0;
    let mut before_params = std::collections::BTreeMap::new();
    addmul::core::Parameters::visit(&pretrained, &mut |n, p| {
        before_params.insert(n.to_string(), p.value().clone());
    });
    addmul::core::Parameters::visit(&tuned, &mut |n, p| {
        total += 1;
        moved += usize::from(p.value() != &before_params[n]);
    });
    assert_eq!(moved, total);
    // Architecture keys are the model's; resuming goes on as for any run.
    let bad = ["addmul", "finetune", "--model", model_dir.to_str().unwrap(), "--data", &data, "--set", "n_layer=4"];
    let e = cli::run(Cli::try_parse_from(bad).unwrap(), &mut Vec::new(), |_| {}).unwrap_err().to_string();
    assert!(e.contains("n_layer") && e.contains("comes from the pretrained model"), "{e}");
    let resume = [
        "addmul",
        "train",
        "--resume",
        "--out",
        &out,
        "--data",
        &data,
        "--max-iters",
        "35",
        "--quiet",
        "--sample",
        "0",
    ];
    cli::run(Cli::try_parse_from(resume).unwrap(), &mut Vec::new(), |_| {}).unwrap();
    assert_eq!(std::fs::read_to_string(dir.0.join("run/latest")).unwrap(), "step-000035");
    // The pretrained folder was only read.
    assert_eq!(snapshot(&folder()), before);
}
