//! The `addmul` command as a user runs it: arguments parsed by the same
//! [`Cli`] the binary uses, handed to [`cli::run`] (or to the options they
//! choose), on a tiny text in a temporary folder. A renamed flag, a wrong
//! default or a wrong mapping fails here.

mod common;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use addmul::app;
use addmul::cli::{self, BenchArgs, Cli, Command, SampleArgs, TokenizerCommand, TrainArgs, TransformerCommand};
use addmul::corpus::{self, Remote, Source};
use addmul::gpt::{GptError, GptTrainConfig};
use addmul::text::{TextTokenizer, TokenizerKind};
use addmul::{Error, Result};
use clap::Parser;
use common::{Temp, serve_once};

/// Long enough for a window of the `tiny` preset (block 32) and of
/// `cpu-small` (block 64) in the validation tenth.
fn text() -> String {
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n".repeat(30)
}

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("addmul").chain(args.iter().copied())).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_error(args: &[&str]) -> String {
    Cli::try_parse_from(std::iter::once("addmul").chain(args.iter().copied())).unwrap_err().to_string()
}

/// What a run printed: its result, what went to `out` (stdout), and the lines
/// given to `say` (stderr).
struct Ran {
    result: Result<()>,
    out: String,
    said: Vec<String>,
}

impl Ran {
    fn said(&self, part: &str) -> bool {
        self.said.iter().any(|line| line.contains(part))
    }

    fn ok(self) -> Self {
        if let Err(e) = &self.result {
            panic!("{e}\n{}", self.said.join("\n"));
        }
        self
    }

    fn err(self) -> Error {
        self.result.expect_err("the command should have failed")
    }
}

/// Lines for `say`, and the closure that collects them.
fn collector() -> (Rc<RefCell<Vec<String>>>, impl FnMut(&str) + 'static) {
    let said = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&said);
    (said, move |line: &str| sink.borrow_mut().push(line.to_string()))
}

fn run(args: &[&str]) -> Ran {
    let (said, say) = collector();
    let mut out = Vec::new();
    let result = cli::run(parse(args), &mut out, say);
    let said = said.borrow().clone();
    Ran { result, out: String::from_utf8_lossy(&out).into_owned(), said }
}

fn train_args(args: &[&str]) -> TrainArgs {
    match parse(args).command {
        Command::Train(a) => a,
        other => panic!("parsed as {other:?}"),
    }
}

/// A `tiny` run of `steps` steps (character tokens, no sample) in `dir`.
fn train_tiny(data: &str, dir: &str, steps: &str) -> Ran {
    run(&[
        "train",
        "--preset",
        "tiny",
        "--data",
        data,
        "--out",
        dir,
        "--max-iters",
        steps,
        "--set",
        "warmup_iters=1",
        "--threads",
        "2",
        "--quiet",
        "--sample",
        "0",
    ])
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

/// The `"step"` numbers of a run's `log.jsonl`, in order.
fn logged_steps(run: &str) -> Vec<u64> {
    read(Path::new(run).join("log.jsonl"))
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "step")
        .map(|v| v["step"].as_u64().unwrap())
        .collect()
}

/// tinyshakespeare's digest, but an address that answers 503 and a cache
/// file in `dir`: what a machine without the network sees.
fn offline_tinyshakespeare(dir: &Temp) -> Remote {
    Remote {
        name: "tinyshakespeare (offline)".into(),
        url: serve_once("503 Service Unavailable", b"offline".to_vec()),
        cache: dir.0.join("cache").join("tinyshakespeare.txt"),
        ..Remote::tinyshakespeare()
    }
}

// ------------------------------------------------------------------- train

#[test]
fn train_flags_layer_preset_file_set_and_named_flags() {
    let dir = Temp::new("train-flags");
    let config = dir.write("config.toml", "n_embd = 16\nlr = 0.5\nmax_iters = 9\nbatch_size = 4\n");
    let a = train_args(&[
        "train",
        "--preset",
        "tiny",
        "--config",
        &config,
        "--set",
        "lr=0.01",
        "--set",
        "max_iters=7",
        "--max-iters",
        "5",
        "--threads",
        "1",
        "--seed",
        "42",
        "--data",
        "text.txt",
        "--out",
        "run",
        "--resume",
        "--tokenizer",
        "bpe",
        "--vocab-size",
        "300",
        "--sample",
        "7",
        "--quiet",
    ]);
    let o = a.options().unwrap();
    let tiny = GptTrainConfig::preset("tiny").unwrap();
    // The preset where nothing overrides it, the file over the preset,
    // --set over the file, named flags over --set.
    assert_eq!((o.config.n_layer, o.config.n_head, o.config.block_size), (tiny.n_layer, tiny.n_head, tiny.block_size));
    assert_eq!(o.config.n_embd, 16);
    assert_eq!(o.config.batch_size, 4);
    assert_eq!(o.config.lr, 0.01);
    assert_eq!(o.config.max_iters, 5);
    assert_eq!((o.config.threads, o.config.seed), (1, 42));
    assert_eq!(o.data.as_deref(), Some(Path::new("text.txt")));
    assert_eq!(o.out, Path::new("run"));
    assert!(o.resume && o.quiet);
    assert_eq!((o.tokenizer, o.vocab_size, o.sample_chars), (TokenizerKind::Bpe, 300, 7));
    let o = train_args(&["train", "--preset", "tiny", "--batch-size", "3"]).options().unwrap();
    assert_eq!(o.config, GptTrainConfig { batch_size: 3, ..tiny });

    // The defaults.
    let o = train_args(&["train"]).options().unwrap();
    assert_eq!(o.config, GptTrainConfig::cpu_small());
    assert_eq!(o.out, Path::new("runs").join("cpu-small"));
    assert_eq!(o.data, None);
    assert_eq!(o.remote, Remote::tinyshakespeare());
    assert!(!o.resume && !o.quiet);
    assert_eq!((o.tokenizer, o.vocab_size, o.sample_chars), (TokenizerKind::Char, 1024, 500));
}

#[test]
fn bad_configurations_are_typed_errors_that_name_the_problem() {
    let dir = Temp::new("train-bad");
    let options = |args: &[&str]| train_args(&[&["train", "--preset", "tiny"], args].concat()).options();
    let message = |e: Error| e.to_string();

    let e = train_args(&["train", "--preset", "nope"]).options().unwrap_err();
    assert!(matches!(e, Error::Gpt(GptError::UnknownPreset { .. })), "{e:?}");
    assert!(message(e).contains("cpu-small, shakespeare-char, tiny"));
    let e = options(&["--set", "no_such_key=1"]).unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }) && message(e).contains("no_such_key"));
    let e = options(&["--set", "n_embd=abc"]).unwrap_err();
    assert!(matches!(&e, Error::Invalid { what, .. } if what.contains("n_embd")), "{e:?}");
    let e = options(&["--set", "lr=abc"]).unwrap_err();
    assert!(matches!(&e, Error::Invalid { what, .. } if what.contains("`lr`")), "{e:?}");
    let e = options(&["--config", &dir.arg("missing.toml")]).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    let bad = dir.write("bad.toml", "n_embd = = 3\n");
    let e = options(&["--config", &bad]).unwrap_err();
    assert!(matches!(&e, Error::Invalid { what, .. } if what.contains("bad.toml")), "{e:?}");

    // Clap refuses what cannot be parsed at all.
    assert!(parse_error(&["train", "--set", "lr"]).contains("expected KEY=VALUE"));
    assert!(parse_error(&["train", "--tokenizer", "words"]).contains("expected char or bpe"));
    assert!(parse_error(&["train", "--max-iters", "many"]).contains("--max-iters"));
    assert!(parse_error(&["leaf-flower", "--every", "0"]).contains("--every"));

    // A configuration that parses but cannot be built, and a text too short
    // for a window, fail when training starts, without a panic.
    let data = dir.write("text.txt", &text());
    // Neither leaves a run folder behind.
    let e = run(&["train", "--preset", "tiny", "--data", &data, "--out", &dir.arg("run"), "--set", "n_head=3"]).err();
    assert!(matches!(e, Error::Gpt(GptError::Config { .. })), "{e:?}");
    assert!(!dir.0.join("run").exists(), "a bad configuration leaves no folder");
    let e = run(&["train", "--preset", "tiny", "--data", &data, "--out", &dir.arg("run"), "--set", "block_size=4096"])
        .err();
    assert!(matches!(e, Error::Gpt(GptError::CorpusTooShort { .. })), "{e:?}");
    assert!(!dir.0.join("run").exists(), "a text too short leaves no folder");
    let e = run(&["train", "--data", &dir.arg("missing.txt"), "--out", &dir.arg("run")]).err();
    assert!(matches!(e, Error::Corpus(corpus::CorpusError::Io { .. })), "{e:?}");
}

#[test]
fn train_writes_a_run_folder_and_resume_continues_it() {
    let dir = Temp::new("train-resume");
    let data = dir.write("text.txt", &text());
    let out = dir.arg("run");
    let first = run(&[
        "train",
        "--preset",
        "tiny",
        "--data",
        &data,
        "--out",
        &out,
        "--max-iters",
        "4",
        "--set",
        "warmup_iters=1",
        "--threads",
        "2",
        "--quiet",
        "--sample",
        "40",
    ])
    .ok();
    assert!(first.said("done: step 4"), "{:?}", first.said);
    assert!(!first.said("inf tokens/s"), "{:?}", first.said);
    // The sample: 40 characters and a newline.
    assert_eq!(first.out.chars().count(), 41, "{:?}", first.out);
    assert_eq!(read(dir.0.join("run/latest")), "step-000004");
    for file in ["config.json", "model.safetensors", "optimizer.safetensors", "trainer.json", "tokenizer.json"] {
        assert!(dir.0.join("run/step-000004").join(file).is_file(), "{file}");
    }
    assert!(read(dir.0.join("run/step-000004/tokenizer.json")).contains("\"kind\": \"char\""));
    assert!(read(dir.0.join("run/loss.svg")).starts_with("<svg"));
    assert_eq!(logged_steps(&out), [1, 2, 3, 4]);

    // Resuming continues from step 4 to the new --max-iters, in the same log.
    let more = run(&[
        "train",
        "--preset",
        "tiny",
        "--data",
        &data,
        "--out",
        &out,
        "--max-iters",
        "6",
        "--resume",
        "--quiet",
        "--sample",
        "0",
    ])
    .ok();
    assert!(more.said("at step 4"), "{:?}", more.said);
    assert!(more.said("done: step 6"), "{:?}", more.said);
    assert_eq!(more.out, "");
    assert_eq!(read(dir.0.join("run/latest")), "step-000006");
    assert!(dir.0.join("run/step-000004").is_dir(), "the preset keeps two checkpoints");
    assert_eq!(logged_steps(&out), [1, 2, 3, 4, 5, 6]);

    // Another text (the same characters, in another order) is refused, and
    // nothing is written.
    let other = dir.write("other.txt", &text().replace("speak", "kaeps"));
    let e = run(&["train", "--preset", "tiny", "--data", &other, "--out", &out, "--max-iters", "8", "--resume"]).err();
    assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    assert!(e.to_string().contains("--data") && e.to_string().contains("not the text this run was trained on"), "{e}");
    assert_eq!(read(dir.0.join("run/latest")), "step-000006");

    // Resuming where there is no run creates nothing.
    let e = run(&["train", "--preset", "tiny", "--data", &data, "--out", &dir.arg("empty"), "--resume"]).err();
    assert!(matches!(e, Error::Gpt(GptError::Checkpoint { .. })), "{e:?}");
    assert!(!dir.0.join("empty").exists());
}

#[test]
fn train_with_bpe_and_a_configuration_file() {
    let dir = Temp::new("train-bpe");
    let data = dir.write("text.txt", &text());
    let config =
        dir.write("small.toml", "n_layer = 1\nn_embd = 16\nblock_size = 16\nmax_iters = 3\nwarmup_iters = 1\n");
    let out = dir.arg("run");
    run(&[
        "train",
        "--preset",
        "tiny",
        "--config",
        &config,
        "--tokenizer",
        "bpe",
        "--vocab-size",
        "280",
        "--data",
        &data,
        "--out",
        &out,
        "--quiet",
        "--sample",
        "0",
    ])
    .ok();
    assert_eq!(read(dir.0.join("run/latest")), "step-000003");
    assert!(read(dir.0.join("run/step-000003/tokenizer.json")).contains("\"kind\": \"bpe\""));
    let (model, tokenizer) = app::load(Path::new(&out)).unwrap();
    let c = model.config();
    assert_eq!((c.vocab_size, c.n_layer, c.n_embd, c.block_size), (280, 1, 16, 16));
    assert_eq!(tokenizer.as_dyn().decode(&tokenizer.as_dyn().encode(&text()).unwrap()).unwrap(), text());
}

#[test]
fn train_refuses_a_folder_that_holds_a_run_before_training() {
    let dir = Temp::new("train-existing");
    let data = dir.write("text.txt", &text());
    let out = dir.arg("run");
    train_tiny(&data, &out, "2").ok();
    assert_eq!(read(dir.0.join("run/latest")), "step-000002");

    // Again without --resume: refused at once, nothing trained or written.
    let again = train_tiny(&data, &out, "3");
    assert!(!again.said("tokenizer:"), "refused before any work: {:?}", again.said);
    let e = again.err();
    assert!(matches!(&e, Error::Invalid { what, .. } if what == &format!("--out {out}")), "{e:?}");
    let message = e.to_string();
    assert!(message.contains("already holds a training run") && message.contains("--resume"), "{message}");
    assert!(message.contains("another --out"), "{message}");
    assert_eq!(read(dir.0.join("run/latest")), "step-000002");
    assert_eq!(logged_steps(&out), [1, 2]);

    // A run stopped before its first checkpoint cannot be resumed: said so.
    std::fs::create_dir(dir.0.join("stopped")).unwrap();
    std::fs::write(dir.0.join("stopped/log.jsonl"), "").unwrap();
    let e = train_tiny(&data, &dir.arg("stopped"), "1").err();
    assert!(e.to_string().contains("saved no checkpoint (log.jsonl)"), "{e}");

    // An empty folder is not a run: training goes ahead.
    std::fs::create_dir(dir.0.join("made")).unwrap();
    train_tiny(&data, &dir.arg("made"), "1").ok();
    assert_eq!(read(dir.0.join("made/latest")), "step-000001");
}

#[test]
fn force_replaces_the_run_in_a_folder_and_keeps_other_files() {
    let dir = Temp::new("train-force");
    let data = dir.write("text.txt", &text());
    let out = dir.arg("run");
    train_tiny(&data, &out, "3").ok();
    std::fs::write(dir.0.join("run/notes.txt"), "mine").unwrap();
    let mut args = vec!["train", "--preset", "tiny", "--data", &data, "--out", &out, "--max-iters", "2"];
    args.extend(["--set", "warmup_iters=1", "--quiet", "--sample", "0", "--force"]);
    let again = run(&args).ok();
    assert!(again.said("--force: removed the previous run"), "{:?}", again.said);
    assert_eq!(read(dir.0.join("run/latest")), "step-000002");
    assert!(!dir.0.join("run/step-000003").exists());
    assert_eq!(logged_steps(&out), [1, 2], "the old run's log is gone");
    assert_eq!(read(dir.0.join("run/notes.txt")), "mine");
    // --force starts a new run: it cannot go with --resume.
    args.push("--resume");
    assert!(parse_error(&args).contains("cannot be used with"));
}

#[test]
fn a_checkpoint_saved_but_not_yet_named_by_latest_is_resumed() {
    // A kill between renaming step-000004 into place and updating `latest`
    // leaves `latest` at step 2 beside a complete step 4. Resuming trained
    // to step 4 again and then failed: "step-000004: already exists".
    let dir = Temp::new("train-wedge");
    let data = dir.write("text.txt", &text());
    let out = dir.arg("run");
    let mut args = vec!["train", "--preset", "tiny", "--data", &data, "--out", &out, "--max-iters", "4"];
    args.extend(["--set", "warmup_iters=1", "--set", "checkpoint_interval=2", "--quiet", "--sample", "0"]);
    run(&args).ok();
    std::fs::write(dir.0.join("run/latest"), "step-000002").unwrap();
    let resumed =
        run(&["train", "--resume", "--data", &data, "--out", &out, "--max-iters", "6", "--quiet", "--sample", "0"])
            .ok();
    assert!(resumed.said("step-000004 is the newest complete checkpoint"), "{:?}", resumed.said);
    assert!(resumed.said("resuming"), "{:?}", resumed.said);
    assert_eq!(read(dir.0.join("run/latest")), "step-000006");
    assert_eq!(logged_steps(&out), [1, 2, 3, 4, 5, 6]);
    // With no `latest` at all (a kill before the first one was written).
    std::fs::remove_file(dir.0.join("run/latest")).unwrap();
    run(&["train", "--resume", "--data", &data, "--out", &out, "--max-iters", "7", "--quiet", "--sample", "0"]).ok();
    assert_eq!(read(dir.0.join("run/latest")), "step-000007");
}

#[test]
fn the_room_a_checkpoint_needs_is_estimated_before_training() {
    // The estimate behind the free-space check, against a real checkpoint.
    let dir = Temp::new("train-room");
    let data = dir.write("text.txt", &text());
    let out = dir.arg("run");
    train_tiny(&data, &out, "1").ok();
    let checkpoint = dir.0.join("run/step-000001");
    let size = |name: &str| std::fs::metadata(checkpoint.join(name)).unwrap().len();
    let files = ["config.json", "model.safetensors", "optimizer.safetensors", "trainer.json", "tokenizer.json"];
    let actual: u64 = files.iter().map(|f| size(f)).sum();
    let model = addmul::gpt::checkpoint::load_model::<f32>(&checkpoint).unwrap();
    let params = addmul::core::ParametersExt::num_params(&model);
    let estimate = addmul::app::checkpoint_bytes(params, params, size("tokenizer.json") as usize);
    assert!(estimate >= actual && estimate < actual + actual / 10, "estimated {estimate} bytes, wrote {actual}");
}

#[test]
fn a_run_folder_is_locked_while_a_process_trains_in_it() {
    let dir = Temp::new("train-lock");
    let data = dir.write("text.txt", &text());
    let out = dir.arg("run");
    // Another process training here: it holds the lock on run/.lock.
    std::fs::create_dir(dir.0.join("run")).unwrap();
    let mut other =
        std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(dir.0.join("run/.lock")).unwrap();
    other.lock().unwrap();
    std::io::Write::write_all(&mut other, b"4242").unwrap();
    let e = train_tiny(&data, &out, "2").err();
    assert!(matches!(&e, Error::Invalid { what, .. } if what == &format!("--out {out}")), "{e:?}");
    let message = e.to_string();
    assert!(message.contains("pid 4242") && message.contains(".lock"), "{message}");
    assert!(!dir.0.join("run/latest").exists(), "nothing was written");

    // Once it is gone (the file stays, with its old pid), training goes ahead.
    drop(other);
    train_tiny(&data, &out, "2").ok();
    assert_eq!(read(dir.0.join("run/latest")), "step-000002");
    // The lock is released at the end.
    let lock = std::fs::File::open(dir.0.join("run/.lock")).unwrap();
    lock.try_lock().expect("the run released its lock");
    drop(lock);

    // Resuming takes the lock too; a new run is told of the lock before
    // being told of the run.
    let other = std::fs::OpenOptions::new().write(true).open(dir.0.join("run/.lock")).unwrap();
    other.lock().unwrap();
    let e = train_tiny(&data, &out, "2").err();
    assert!(e.to_string().contains("is training in this folder"), "{e}");
    let e =
        run(&["train", "--preset", "tiny", "--data", &data, "--out", &out, "--max-iters", "4", "--resume", "--quiet"])
            .err();
    assert!(e.to_string().contains("is training in this folder"), "{e}");
    assert_eq!(read(dir.0.join("run/latest")), "step-000002");
}

#[test]
fn a_warmup_longer_than_the_run_is_shortened_or_named() {
    // The preset's warmup (cpu-small: 100 steps) fits a shorter run.
    let o = train_args(&["train", "--max-iters", "50"]).options().unwrap();
    assert_eq!((o.config.max_iters, o.config.warmup_iters), (50, 50));
    let o = train_args(&["train", "--preset", "tiny", "--set", "lr_decay_iters=10"]).options().unwrap();
    assert_eq!(o.config.warmup_iters, 10);
    let o = train_args(&["train", "--max-iters", "500"]).options().unwrap();
    assert_eq!(o.config.warmup_iters, 100, "a warmup that fits is kept");
    // A warmup the user chose is not changed behind their back.
    let e = train_args(&["train", "--set", "warmup_iters=80", "--max-iters", "50"]).options().unwrap_err();
    assert!(matches!(&e, Error::Invalid { what, .. } if what.contains("warmup_iters")), "{e:?}");
    let message = e.to_string();
    assert!(message.contains("80") && message.contains("max_iters = 50"), "{message}");

    // A short run of the tiny preset (warmup 20) trains.
    let dir = Temp::new("train-warmup");
    let data = dir.write("text.txt", &text());
    let ran = run(&[
        "train",
        "--preset",
        "tiny",
        "--data",
        &data,
        "--out",
        &dir.arg("run"),
        "--max-iters",
        "3",
        "--threads",
        "2",
        "--quiet",
        "--sample",
        "0",
    ])
    .ok();
    assert!(ran.said("done: step 3"), "{:?}", ran.said);
}

#[test]
fn resume_keeps_the_runs_configuration_and_says_when_it_is_complete() {
    let dir = Temp::new("train-resume-config");
    let data = dir.write("text.txt", &text());
    let out = dir.arg("run");
    train_tiny(&data, &out, "3").ok();
    let resume = |extra: &[&str]| {
        run(&[
            &["train", "--preset", "tiny", "--data", &data, "--out", &out, "--resume", "--quiet", "--sample", "0"],
            extra,
        ]
        .concat())
    };

    // Complete: said so, with how to go on; nothing trained, nothing infinite.
    let done = resume(&[]).ok();
    assert!(done.said("is complete: step 3 of max_iters 3"), "{:?}", done.said);
    assert!(done.said("--max-iters"), "{:?}", done.said);
    assert!(!done.said.iter().any(|l| l.contains("inf")), "{:?}", done.said);
    assert_eq!(logged_steps(&out), [1, 2, 3]);
    assert_eq!(read(dir.0.join("run/latest")), "step-000003");

    // Fewer steps than taken, and settings that differ from the run's, are
    // refused by name; nothing is written.
    let e = resume(&["--max-iters", "2"]).err();
    assert!(matches!(&e, Error::Invalid { what, .. } if what == "--max-iters 2"), "{e:?}");
    assert!(e.to_string().contains("already at step 3"), "{e}");
    let e = resume(&["--max-iters", "5", "--set", "lr=0.5"]).err();
    assert!(matches!(&e, Error::Invalid { what, .. } if what.contains("`lr`")), "{e:?}");
    assert!(e.to_string().contains("0.5") && e.to_string().contains("keeps its configuration"), "{e}");
    let e = resume(&["--max-iters", "5", "--threads", "1"]).err();
    assert!(matches!(&e, Error::Invalid { what, .. } if what.contains("`threads`")), "{e:?}");
    let e = resume(&["--max-iters", "5", "--tokenizer", "bpe"]).err();
    assert!(matches!(&e, Error::Invalid { what, .. } if what == "--tokenizer"), "{e:?}");
    assert!(e.to_string().contains("is char"), "{e}");
    let other = dir.write("other.txt", "xyz".repeat(500).as_str());
    let e = run(&["train", "--preset", "tiny", "--data", &other, "--out", &out, "--max-iters", "5", "--resume"]).err();
    assert!(matches!(&e, Error::Invalid { what, .. } if what == &format!("--data {other}")), "{e:?}");
    assert_eq!(logged_steps(&out), [1, 2, 3]);

    // The same values as the run's are fine; --max-iters extends it.
    let more = resume(&["--max-iters", "5", "--threads", "2", "--set", "warmup_iters=1", "--tokenizer", "char"]).ok();
    assert!(more.said("at step 3 of 5") && more.said("done: step 5"), "{:?}", more.said);
    assert_eq!(logged_steps(&out), [1, 2, 3, 4, 5]);
}

#[test]
fn a_run_without_steps_reports_no_speed() {
    let dir = Temp::new("train-zero");
    let data = dir.write("text.txt", &text());
    let ran = run(&[
        "train",
        "--preset",
        "tiny",
        "--data",
        &data,
        "--out",
        &dir.arg("run"),
        "--max-iters",
        "0",
        "--quiet",
        "--sample",
        "0",
    ])
    .ok();
    assert!(ran.said("done: step 0"), "{:?}", ran.said);
    assert!(!ran.said.iter().any(|l| l.contains("inf") || l.contains("NaN")), "{:?}", ran.said);
}

#[test]
fn without_quiet_and_without_a_terminal_the_lines_are_still_said() {
    let dir = Temp::new("train-lines");
    let data = dir.write("text.txt", &text());
    let ran = run(&[
        "train",
        "--preset",
        "tiny",
        "--data",
        &data,
        "--out",
        &dir.arg("run"),
        "--max-iters",
        "2",
        "--set",
        "warmup_iters=1",
        "--set",
        "checkpoint_interval=1",
        "--threads",
        "2",
        "--sample",
        "0",
    ])
    .ok();
    assert!(ran.said("step     0: train loss"), "{:?}", ran.said);
    assert!(ran.said("step     2: train loss"), "{:?}", ran.said);
    assert!(ran.said(&format!("checkpoint: {}", dir.0.join("run/step-000001").display())), "{:?}", ran.said);
    assert!(ran.said("done: step 2"), "{:?}", ran.said);
}

// ------------------------------------------------------------------ sample

#[test]
fn sample_is_seeded_stops_at_stop_strings_and_refuses_bad_input() {
    let dir = Temp::new("sample");
    let data = dir.write("text.txt", &text());
    let model = dir.arg("run");
    train_tiny(&data, &model, "3").ok();
    let sample =
        |extra: &[&str]| run(&[&["sample", "--model", &model, "--prompt", "First", "--tokens", "30"], extra].concat());

    let a = sample(&["--seed", "3"]).ok().out;
    assert_eq!(sample(&["--seed", "3"]).ok().out, a);
    assert_ne!(sample(&["--seed", "4"]).ok().out, a, "--seed is used");
    assert!(a.starts_with("First") && a.ends_with('\n'), "{a:?}");
    assert_eq!(a.chars().count(), "First".len() + 30 + 1, "{a:?}");

    // Greedy decoding, then the same cut at a stop string it produces.
    let greedy = sample(&["--temperature", "0"]).ok().out;
    assert_eq!(sample(&["--temperature", "0", "--seed", "9"]).ok().out, greedy);
    let generated: String = greedy["First".len()..].trim_end_matches('\n').to_string();
    let stop: String = generated.chars().skip(10).take(2).collect();
    let cut = generated.find(&stop).unwrap();
    let stopped = sample(&["--temperature", "0", "--stop", "never", "--stop", &stop]).ok().out;
    assert_eq!(stopped, format!("First{}\n", &generated[..cut]));

    let e = run(&["sample", "--model", &model, "--prompt", ""]).err();
    assert!(matches!(&e, Error::Invalid { what, .. } if what == "--prompt"), "{e:?}");
    // Bad input prints nothing, not even the prompt.
    let ran = run(&["sample", "--model", &model, "--prompt", "F€"]);
    assert_eq!(ran.out, "");
    let e = ran.err();
    assert!(matches!(e, Error::Tokenizer(_)), "{e:?}");
    let ran = sample(&["--top-p", "0"]);
    assert_eq!(ran.out, "");
    let e = ran.err();
    assert!(matches!(e, Error::Gpt(GptError::Config { field: "top_p", .. })), "{e:?}");
    // The options are checked first, before the model is looked for.
    let e = run(&["sample", "--model", &dir.arg("missing"), "--top-k", "0"]).err();
    assert!(matches!(e, Error::Gpt(GptError::Config { field: "top_k", .. })), "{e:?}");
    // A missing model says how to make one.
    let e = run(&["sample", "--model", &dir.arg("missing")]).err();
    assert!(matches!(&e, Error::Invalid { what, .. } if what.contains("--model")), "{e:?}");
    let message = e.to_string();
    assert!(message.contains("does not exist"), "{message}");
    assert!(message.contains(&format!("addmul train --out {}", dir.arg("missing"))), "{message}");
}

#[test]
fn sample_flags_map_onto_the_options() {
    let args = |a: &[&str]| match parse(a).command {
        Command::Sample(a) => a,
        other => panic!("parsed as {other:?}"),
    };
    let a: SampleArgs = args(&[
        "sample",
        "--model",
        "m",
        "--prompt",
        "Hi",
        "--tokens",
        "12",
        "--temperature",
        "0.7",
        "--top-k",
        "5",
        "--top-p",
        "0.9",
        "--seed",
        "8",
        "--stop",
        "a",
        "--stop",
        "bc",
    ]);
    let o = a.options();
    assert_eq!(a.model, Path::new("m"));
    assert_eq!((o.prompt.as_str(), o.max_tokens, o.stops.as_slice()), ("Hi", 12, &["a".to_string(), "bc".into()][..]));
    let s = o.sampling;
    assert_eq!((s.temperature, s.top_k, s.top_p, s.seed), (0.7, Some(5), Some(0.9), 8));
    let a = args(&["sample"]);
    let o = a.options();
    assert_eq!(a.model, Path::new("runs/cpu-small"));
    assert_eq!(a.model, SampleArgs::default_model(), "the default that `sample` names when it is missing");
    assert_eq!((o.prompt.as_str(), o.max_tokens, o.stops.len()), ("\n", 500, 0));
    let s = o.sampling;
    assert_eq!((s.temperature, s.top_k, s.top_p, s.seed), (1.0, None, None, 0));
}

/// An output whose reader has gone after `room` bytes (`| head`), failing
/// then with `kind`.
struct Closed {
    room: usize,
    kind: std::io::ErrorKind,
    got: Vec<u8>,
}

impl std::io::Write for Closed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.got.len() + buf.len() > self.room {
            return Err(std::io::Error::from(self.kind));
        }
        self.got.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_closed_pipe_ends_sample_quietly() {
    let dir = Temp::new("sample-pipe");
    let data = dir.write("text.txt", &text());
    let model = dir.arg("run");
    train_tiny(&data, &model, "2").ok();
    let args = ["sample", "--model", &model, "--prompt", "First", "--tokens", "50"];
    for room in [0, 3, 20] {
        let mut out = Closed { room, kind: std::io::ErrorKind::BrokenPipe, got: Vec::new() };
        let (_, say) = collector();
        cli::run(parse(&args), &mut out, say).unwrap_or_else(|e| panic!("room {room}: {e}"));
        assert!(out.got.len() <= room && (room < 20 || out.got.starts_with(b"First")), "{:?}", out.got);
    }
    // Any other write error is still an error.
    let mut out = Closed { room: 3, kind: std::io::ErrorKind::StorageFull, got: Vec::new() };
    let (_, say) = collector();
    let e = cli::run(parse(&args), &mut out, say).unwrap_err();
    assert!(matches!(&e, Error::Io { context, .. } if context == "writing the sample"), "{e:?}");
}

// --------------------------------------------------------------- tokenizer

#[test]
fn tokenizer_train_writes_a_file_that_loads_back() {
    let dir = Temp::new("tokenizer");
    let data = dir.write("text.txt", &text());
    for (kind, vocab, expect) in [("bpe", "270", 270), ("char", "270", 30)] {
        let file = dir.arg(&format!("{kind}.json"));
        let ran =
            run(&["tokenizer", "train", "--data", &data, "--kind", kind, "--vocab-size", vocab, "--out", &file]).ok();
        assert!(ran.said(&format!("with {expect} ids")), "{:?}", ran.said);
        let tokenizer = TextTokenizer::from_json(&read(&file)).unwrap();
        let tok = tokenizer.as_dyn();
        assert_eq!(tok.vocab_size(), expect);
        let ids = tok.encode(&text()).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), text());
    }
    match parse(&["tokenizer", "train", "--data", "t.txt"]).command {
        Command::Tokenizer(TokenizerCommand::Train { kind, vocab_size, out, .. }) => {
            assert_eq!((kind, vocab_size, out), (TokenizerKind::Bpe, 4096, PathBuf::from("tokenizer.json")));
        }
        other => panic!("parsed as {other:?}"),
    }
    let e = run(&["tokenizer", "train", "--data", &data, "--vocab-size", "100", "--out", &dir.arg("x.json")]).err();
    assert!(matches!(e, Error::Tokenizer(_)), "{e:?}");
    let e = run(&["tokenizer", "train", "--data", &dir.arg("missing.txt"), "--out", &dir.arg("x.json")]).err();
    assert!(matches!(e, Error::Corpus(_)), "{e:?}");
    assert!(!dir.0.join("x.json").exists());
}

#[test]
fn tokenizer_train_refuses_an_empty_text_and_checks_out_first() {
    let dir = Temp::new("tokenizer-checks");
    let empty = dir.write("empty.txt", "");
    for kind in ["bpe", "char"] {
        let e = run(&["tokenizer", "train", "--data", &empty, "--kind", kind, "--out", &dir.arg("x.json")]).err();
        assert!(matches!(&e, Error::Invalid { what, .. } if what == &format!("--data {empty}")), "{kind}: {e:?}");
        assert!(e.to_string().contains("is empty"), "{e}");
    }
    assert!(!dir.0.join("x.json").exists());

    // --out in a folder that does not exist, or a folder: said before the
    // text is even read (here it is missing too).
    let missing = dir.arg("missing.txt");
    let out = dir.arg("no/such/folder/tok.json");
    let e = run(&["tokenizer", "train", "--data", &missing, "--out", &out]).err();
    assert!(matches!(&e, Error::Invalid { what, .. } if what == &format!("--out {out}")), "{e:?}");
    assert!(e.to_string().contains("does not exist"), "{e}");
    let e = run(&["tokenizer", "train", "--data", &missing, "--out", &dir.arg("")]).err();
    assert!(matches!(&e, Error::Invalid { what, .. } if what.starts_with("--out")), "{e:?}");
    assert!(e.to_string().contains("is a folder"), "{e}");
}

// ------------------------------------------------------------------- bench

#[test]
fn bench_runs_small_and_writes_its_report() {
    let dir = Temp::new("bench");
    let data = dir.write("text.txt", &text());
    let report = dir.arg("bench.json");
    let ran = run(&[
        "bench",
        "--data",
        &data,
        "--iters",
        "2",
        "--threads",
        "2",
        "--sample-tokens",
        "5",
        "--large-iters",
        "0",
        "--out",
        &report,
    ])
    .ok();
    assert!(ran.said("cpu-small: 2 steps on 2 threads"), "{:?}", ran.said);
    assert!(ran.said("median of 5 rounds of 5"), "{:?}", ran.said);
    assert!(ran.said(&format!("report: {report}")), "{:?}", ran.said);
    let r: serde_json::Value = serde_json::from_str(&read(&report)).unwrap();
    assert_eq!(r["threads"], 2);
    assert_eq!(r["corpus"], format!("{:?}", Source::File(data.clone().into())));
    let steps: Vec<u64> = r["evals"].as_array().unwrap().iter().map(|e| e["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [0, 2]);
    // Of two steps, the first is left out as warm-up.
    assert_eq!(r["cpu_small"]["steps"], 1);
    for key in ["median_ms", "p10_ms", "p90_ms", "tokens_per_s", "gflops", "other_load"] {
        let v = r["cpu_small"][key].as_f64().unwrap_or_else(|| panic!("{key}: {}", r["cpu_small"][key]));
        assert!(v.is_finite() && v >= 0.0, "{key} = {v}");
    }
    assert!(r["cpu_small"]["median_ms"].as_f64().unwrap() > 0.0);
    let rounds: Vec<f64> = r["sample_rounds"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(rounds.len(), 5);
    assert!(rounds.is_sorted() && rounds.iter().all(|v| v.is_finite() && *v > 0.0), "{rounds:?}");
    assert_eq!(r["sample_tokens_per_s"].as_f64().unwrap(), rounds[2]);
    assert_eq!(r["sample"].as_str().unwrap().chars().count(), 5);
    assert!(r["large"].is_null());
    // What the book checks before it uses the figures.
    assert_eq!(r["corpus_sha256"], corpus::sha256_hex(text().as_bytes()));
    assert_eq!(r["corpus_bytes"], text().len());
    let config: addmul::gpt::GptTrainConfig = serde_json::from_value(r["config"].clone()).unwrap();
    assert_eq!((config.max_iters, config.n_layer), (2, addmul::gpt::GptTrainConfig::cpu_small().n_layer));
    let cpu = r["cpu"].as_str().unwrap();
    assert!(cpu.ends_with(" cores") || cpu.ends_with(" 1 core"), "{cpu}");
    // The products' ceiling, and what the kernels can use, beside the speeds.
    assert_eq!((r["gemm_ceiling"]["threads"].as_u64(), r["gemm_ceiling"]["size"].as_u64()), (Some(2), Some(1024)));
    assert!(r["gemm_ceiling"]["gflops"].as_f64().unwrap() > 0.0);
    assert!(r["cpu_flags"].is_array());
    assert!(ran.said("of the products' ceiling"), "{:?}", ran.said);

    // --compare: the new report beside this one (the same machine and shape,
    // a different step count is fine), written first either way.
    let again = dir.arg("again.json");
    let bench_args = |out: &str, compare: &str| {
        let mut args = vec!["bench", "--data", &data, "--iters", "3", "--threads", "2", "--sample-tokens", "5"];
        args.extend(["--large-iters", "0", "--out", out, "--compare", compare].iter().copied());
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let args = bench_args(&again, &report);
    let ran = run(&args.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    assert!(ran.said(&format!("compared with {report}")), "{:?}", ran.said);
    assert!(ran.said("cpu-small: "), "{:?}", ran.said);
    assert!(ran.said("the products' ceiling: "), "{:?}", ran.said);
    // Another machine's report is refused, naming what differs; the new
    // report is still written.
    let mut other = r.clone();
    other["cpu"] = "Another CPU, 64 cores".into();
    other["threads"] = 64.into();
    let other_path = dir.write("other.json", &other.to_string());
    let third = dir.arg("third.json");
    let args = bench_args(&third, &other_path);
    let err = run(&args.iter().map(String::as_str).collect::<Vec<_>>()).err().to_string();
    assert!(err.contains("measured differently") && err.contains("cpu") && err.contains("threads"), "{err}");
    assert!(!err.contains("n_layer"), "{err}");
    assert!(std::path::Path::new(&third).exists(), "the new report must be written before the comparison");
    // Something that is not a report, and no file at all.
    let not_report = dir.write("not.json", "{\"date\": \"2026-12-05\"}");
    let args = bench_args(&third, &not_report);
    let err = run(&args.iter().map(String::as_str).collect::<Vec<_>>()).err().to_string();
    assert!(err.contains("not a bench report"), "{err}");
    let args = bench_args(&third, &dir.arg("missing.json"));
    let err = run(&args.iter().map(String::as_str).collect::<Vec<_>>()).err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn bench_on_the_offline_fallback_records_no_quality_figures() {
    let dir = Temp::new("bench-offline");
    let args = match parse(&["bench", "--iters", "2", "--sample-tokens", "5", "--large-iters", "0"]).command {
        Command::Bench(a) => a,
        other => panic!("parsed as {other:?}"),
    };
    let mut options = args.options();
    options.remote = offline_tinyshakespeare(&dir);
    let (said, say) = collector();
    let report = app::bench(&options, say).unwrap();
    let said = said.borrow().join("\n");
    assert!(said.contains("records speed only"), "{said}");
    assert!(report.evals.is_none() && report.sample.is_none());
    assert_eq!(report.corpus_sha256, corpus::sha256_hex(corpus::book_text().as_bytes()));
    let json = serde_json::to_value(&report).unwrap();
    assert!(json.get("evals").is_none() && json.get("sample").is_none(), "{json}");
    assert!(json["cpu_small"]["median_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_flags_map_onto_the_options() {
    let args = |a: &[&str]| match parse(a).command {
        Command::Bench(a) => a,
        other => panic!("parsed as {other:?}"),
    };
    let a: BenchArgs = args(&[
        "bench",
        "--data",
        "t.txt",
        "--iters",
        "3",
        "--threads",
        "1",
        "--sample-tokens",
        "9",
        "--large-iters",
        "2",
        "--out",
        "r.json",
    ]);
    let o = a.options();
    assert_eq!((o.data.as_deref(), o.iters, o.threads), (Some(Path::new("t.txt")), 3, 1));
    assert_eq!((o.sample_tokens, o.large_iters, a.out), (9, 2, PathBuf::from("r.json")));
    let a = args(&["bench"]);
    let o = a.options();
    assert_eq!((o.data, o.iters, o.threads, o.sample_tokens, o.large_iters), (None, 2000, 0, 1000, 30));
    assert_eq!((o.remote, a.out), (Remote::tinyshakespeare(), PathBuf::from("bench.json")));
}

// ------------------------------------------------------------- transformer

#[test]
fn transformer_copy_and_numbers_run_small() {
    let dir = Temp::new("transformer");
    let args = ["transformer", "copy", "--steps", "3", "--threads", "2", "--warmup", "2", "--lr-factor", "0.3"];
    match parse(&[&args[..], &["--seed", "5"]].concat()).command {
        Command::Transformer(TransformerCommand::Copy(a)) => {
            let o = a.options();
            assert_eq!((o.steps, o.threads, o.warmup, o.lr_factor, o.seed), (3, 2, 2, 0.3, 5));
        }
        other => panic!("parsed as {other:?}"),
    }
    let copy = run(&args).ok();
    assert!(copy.out.contains("step     3"), "{}", copy.out);
    assert!(!copy.out.contains("step     4"), "{}", copy.out);
    assert!(copy.out.contains("held-out sequences copied exactly"), "{}", copy.out);

    let (json, figures) = (dir.arg("numbers.json"), dir.arg("figures"));
    let args = [
        "transformer",
        "numbers",
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--test-size",
        "10",
        "--no-gpt",
        "--threads",
        "2",
        "--warmup",
        "1",
        "--json",
        &json,
        "--figures",
        &figures,
    ];
    match parse(&args).command {
        Command::Transformer(TransformerCommand::Numbers(a)) => {
            let o = a.options();
            assert_eq!((o.steps, o.batch_size, o.test_size, o.gpt, o.threads, o.warmup), (2, 4, 10, false, 2, 1));
            assert_eq!(o.figures.as_deref(), Some(Path::new(&figures)));
        }
        other => panic!("parsed as {other:?}"),
    }
    let numbers = run(&args).ok();
    assert!(numbers.out.contains(&format!("wrote {json}")), "{}", numbers.out);
    let record: serde_json::Value = serde_json::from_str(&read(&json)).unwrap();
    assert!(record.is_object(), "{record}");
    assert!(std::fs::read_dir(&figures).unwrap().count() > 0);
}

// ------------------------------------------------------------------ corpus

#[test]
fn without_data_and_offline_training_falls_back_to_the_book() {
    let dir = Temp::new("offline");
    let a = train_args(&[
        "train",
        "--preset",
        "tiny",
        "--out",
        &dir.arg("run"),
        "--max-iters",
        "2",
        "--set",
        "warmup_iters=1",
        "--set",
        "eval_iters=1",
        "--quiet",
        "--sample",
        "0",
    ]);
    let mut options = a.options().unwrap();
    assert_eq!((options.data.clone(), options.remote.clone()), (None, Remote::tinyshakespeare()));
    options.remote = offline_tinyshakespeare(&dir);
    let (said, say) = collector();
    app::train(&options, &mut Vec::new(), say).unwrap();
    let said = said.borrow().join("\n");
    assert!(said.contains("could not get tinyshakespeare (offline)"), "{said}");
    assert!(said.contains("this project's own book"), "{said}");
    assert!(!options.remote.cache.exists(), "nothing is cached");
    let (_, tokenizer) = app::load(&options.out).unwrap();
    assert_eq!(
        tokenizer.as_dyn().decode(&tokenizer.as_dyn().encode(corpus::book_text()).unwrap()).unwrap(),
        corpus::book_text()
    );
}

#[test]
fn the_default_corpus_is_downloaded_once_then_read_from_the_cache() {
    let dir = Temp::new("cache");
    let body = text();
    let remote = Remote {
        name: "a test text".into(),
        url: serve_once("200 OK", body.clone().into_bytes()),
        sha256: corpus::sha256_hex(body.as_bytes()),
        cache: dir.0.join("cache").join("text.txt"),
    };
    let (said, mut say) = collector();
    let got = corpus::load_or(None, &remote, &mut say).unwrap();
    assert_eq!((got.text.as_str(), got.source), (body.as_str(), Source::Downloaded(remote.cache.clone())));
    assert_eq!(read(&remote.cache), body);
    // Only the file: the temporary one it was written through is gone.
    assert_eq!(std::fs::read_dir(dir.0.join("cache")).unwrap().count(), 1);
    // The second time, from the cache (the server is gone).
    let got = corpus::load_or(None, &remote, &mut say).unwrap();
    assert_eq!((got.text.as_str(), got.source), (body.as_str(), Source::Cached(remote.cache.clone())));
    assert!(said.borrow().iter().any(|l| l.contains("a test text from the cache")), "{:?}", said.borrow());
    // A damaged cache is not trusted; offline, the book is used instead.
    std::fs::write(&remote.cache, "damaged").unwrap();
    let offline = Remote { url: offline_tinyshakespeare(&dir).url, ..remote.clone() };
    let got = corpus::load_or(None, &offline, &mut say).unwrap();
    assert_eq!(got.source, Source::Embedded);
    assert_eq!(got.text, corpus::book_text());
    // A file given wins over all of them.
    let file = dir.write("given.txt", "given");
    let got = corpus::load_or(Some(Path::new(&file)), &offline, &mut say).unwrap();
    assert_eq!((got.text.as_str(), got.source), ("given", Source::File(file.into())));
}

// ------------------------------------------------------------------ binary

#[test]
fn the_binary_runs_a_command_and_reports_errors() {
    let dir = Temp::new("binary");
    let data = dir.write("text.txt", &text());
    let addmul = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_addmul")).args(args).current_dir(&dir.0).output().unwrap()
    };
    let ok = addmul(&["tokenizer", "train", "--data", &data, "--kind", "char", "--out", "tok.json"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stderr).contains("trained a character tokenizer"));
    assert!(dir.0.join("tok.json").is_file());
    let failed = addmul(&["train", "--preset", "nope", "--data", &data, "--out", "run"]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.starts_with("error: unknown preset `nope`"), "{stderr}");
    assert!(!dir.0.join("run").exists());
    let unknown = addmul(&["train", "--no-such-flag"]);
    assert_eq!(unknown.status.code(), Some(2), "clap's usage error");
    // Where there is no run yet, `sample` says how to train one.
    let no_run = addmul(&["sample"]);
    assert!(!no_run.status.success());
    let stderr = String::from_utf8_lossy(&no_run.stderr);
    assert!(stderr.contains("runs/cpu-small: does not exist") && stderr.contains("`addmul train`"), "{stderr}");
}
