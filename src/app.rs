//! What the `addmul` command's subcommands do, as functions: [`train`],
//! [`load`] and [`generate`], [`tokenizer_train`], [`bench`](fn@bench). Its
//! arguments, and the one function the binary calls, are in
//! [`crate::cli`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use addmul_gpt::checkpoint::resolve;
use addmul_gpt::{
    CheckpointPlan, EvalReport, Gpt, GptTrainConfig, GptTrainer, Observer, Sampler, SamplingConfig, StepReport, TokenId,
};
use addmul_plot::{LineChart, Series};
use indicatif::{ProgressBar, ProgressStyle};

use crate::corpus;
use crate::text::{TextStream, TextTokenizer, TokenizerKind};
use crate::{Error, Result};

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

fn invalid(what: &str, problem: impl Into<String>) -> Error {
    Error::Invalid { what: what.to_string(), problem: problem.into() }
}

/// Builds a training configuration: a preset, then a TOML file's keys on top,
/// then `overrides` (`key = value` pairs, as TOML values) on top of that.
///
/// A preset's warmup longer than the run (`max_iters`, or `lr_decay_iters`
/// if set) is shortened to the run; a `warmup_iters` given in the file or the
/// overrides is not: it is an error naming both keys.
///
/// # Errors
/// [`Error::Gpt`] for an unknown preset; [`Error::Invalid`] for a file or
/// override that is not valid TOML or names an unknown key, or a warmup
/// longer than the run.
pub fn train_config(preset: &str, file: Option<&Path>, overrides: &[(String, String)]) -> Result<GptTrainConfig> {
    Ok(train_config_given(preset, file, overrides)?.0)
}

/// [`train_config`], and the keys that the file and `overrides` set (in
/// order, without repeats): what a user chose rather than the preset.
///
/// # Errors
/// As [`train_config`].
pub fn train_config_given(
    preset: &str,
    file: Option<&Path>,
    overrides: &[(String, String)],
) -> Result<(GptTrainConfig, Vec<String>)> {
    let base = GptTrainConfig::preset(preset)?;
    let preset_table = toml::Table::try_from(&base).map_err(|e| invalid("preset", e.to_string()))?;
    let mut table = preset_table.clone();
    let mut given: Vec<String> = Vec::new();
    let mut note = |keys: &toml::Table| {
        for key in keys.keys() {
            if !given.contains(key) {
                given.push(key.clone());
            }
        }
    };
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(io(format!("reading {}", path.display())))?;
        let from_file: toml::Table =
            text.parse().map_err(|e: toml::de::Error| invalid(&path.display().to_string(), e.to_string()))?;
        note(&from_file);
        table.extend(from_file);
    }
    for (key, value) in overrides {
        let parsed: toml::Table = format!("{key} = {value}")
            .parse()
            .or_else(|_| format!("{key} = {:?}", value).parse())
            .map_err(|e: toml::de::Error| invalid(&format!("--{key}"), e.to_string()))?;
        note(&parsed);
        table.extend(parsed);
    }
    let parse = |table: toml::Table| toml::Value::Table(table).try_into::<GptTrainConfig>();
    let mut config = parse(table.clone()).map_err(|e| {
        // Name the first key whose value does not fit even on its own.
        let fits = |key: &String, value: &toml::Value| {
            let mut one = preset_table.clone();
            one.insert(key.clone(), value.clone());
            parse(one).is_ok()
        };
        let what = table
            .iter()
            .find(|(key, value)| !fits(key, value))
            .map_or_else(|| "configuration".to_string(), |(key, _)| format!("configuration key `{key}`"));
        invalid(&what, e.message().to_string())
    })?;
    let (decay_key, decay) = match config.lr_decay_iters {
        Some(d) => ("lr_decay_iters", d),
        None => ("max_iters", config.max_iters),
    };
    if config.warmup_iters > decay {
        if given.iter().any(|k| k == "warmup_iters") {
            return Err(invalid(
                "configuration key `warmup_iters`",
                format!(
                    "{} warmup steps do not fit in {decay_key} = {decay}; lower warmup_iters or raise {decay_key}",
                    config.warmup_iters
                ),
            ));
        }
        config.warmup_iters = decay;
    }
    Ok((config, given))
}

/// What `addmul train` does.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The configuration.
    pub config: GptTrainConfig,
    /// The text file (else `remote`, else the book's text).
    pub data: Option<PathBuf>,
    /// The text without `data`: tinyshakespeare's address and cache file.
    pub remote: corpus::Remote,
    /// The run folder for checkpoints, the log and the loss curve.
    pub out: PathBuf,
    /// Continue the run in `out` instead of starting a new one.
    pub resume: bool,
    /// Start a new run in `out` even if it holds one, deleting the old run's
    /// files ([`run_files`]) once the folder is locked.
    pub force: bool,
    /// Fine-tune: start from the model in this folder (a run, a checkpoint
    /// or a Hugging Face GPT-2 folder) with its tokenizer, instead of a new
    /// model; its architecture replaces the configuration's.
    pub base: Option<PathBuf>,
    /// Fine-tune with low-rank adapters on the frozen `base` (LoRA) instead
    /// of every weight.
    pub lora: Option<crate::adapters::LoraOptions>,
    /// What the user chose rather than left to the preset and the defaults:
    /// configuration keys (by a file, `--set` or a named flag, as
    /// [`train_config_given`] returns them), and `--tokenizer` and
    /// `--vocab-size` if given. Resuming keeps the run's configuration and
    /// tokenizer: a chosen `max_iters` extends the run, and anything else
    /// chosen must equal the run's (it is refused otherwise).
    pub given: Vec<String>,
    /// Character or BPE tokens.
    pub tokenizer: TokenizerKind,
    /// BPE vocabulary size.
    pub vocab_size: usize,
    /// Characters of text to sample after training (0: none).
    pub sample_chars: usize,
    /// Hide the progress bar (the log and summaries are still written).
    pub quiet: bool,
}

/// How the command line named the training text, for messages.
fn data_flag(options: &TrainOptions) -> String {
    match &options.data {
        Some(path) => format!("--data {}", path.display()),
        None => "the default text (no --data)".to_string(),
    }
}

/// Drops the lines of `log.jsonl` after step `step` (those a run logged
/// after its last checkpoint before it was stopped), so that a resumed run
/// logs each step once. The log is rewritten atomically; lines that are not
/// JSON with a `step` are kept, except a last line without its newline (a
/// write cut short by a kill).
fn truncate_log(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let after = |line: &str| {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("step")?.as_u64())
            .is_some_and(|s| s > step)
    };
    let kept: String = whole.lines().filter(|l| !after(l)).flat_map(|l| [l, "\n"]).collect();
    if kept.len() != text.len() {
        addmul_gpt::checkpoint::write_atomically(path, kept.as_bytes())?;
    }
    Ok(())
}

/// A step or measurement, as a line of `log.jsonl`.
#[derive(serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum LogLine<'a> {
    Step(&'a StepReport),
    Eval(&'a EvalReport),
}

/// Set (by the binary's Ctrl-C handler, see [`request_stop`]) to stop a
/// training run after its current step.
static STOP: AtomicBool = AtomicBool::new(false);
/// Whether a training run is in progress (so that a stop request is heard).
static TRAINING: AtomicBool = AtomicBool::new(false);

/// Asks the training run in progress to stop after its current step, save
/// a checkpoint and return [`GptError::Stopped`](addmul_gpt::GptError::Stopped).
/// Returns `false` if no run is in progress (then nothing will hear it).
pub fn request_stop() -> bool {
    STOP.store(true, Ordering::SeqCst);
    TRAINING.load(Ordering::SeqCst)
}

/// Marks a training run as in progress while it lives.
struct Training;

impl Training {
    fn start() -> Self {
        STOP.store(false, Ordering::SeqCst);
        TRAINING.store(true, Ordering::SeqCst);
        Training
    }
}

impl Drop for Training {
    fn drop(&mut self) {
        TRAINING.store(false, Ordering::SeqCst);
    }
}

struct Progress {
    bar: Option<ProgressBar>,
    log: std::fs::File,
    steps: Vec<StepReport>,
    evals: Vec<EvalReport>,
    say: Box<dyn FnMut(&str)>,
}

impl Progress {
    fn write(&mut self, line: &LogLine<'_>) {
        let mut text = serde_json::to_string(line).expect("reports serialise");
        text.push('\n');
        // One write of the whole line, so that a kill cannot cut it in two
        // (the log is opened for appending). The log is best effort: a full
        // disk must not stop training.
        let _ = self.log.write_all(text.as_bytes());
    }
}

impl Observer for Progress {
    fn stop_requested(&mut self) -> bool {
        STOP.load(Ordering::SeqCst)
    }
    fn step(&mut self, r: &StepReport) {
        self.write(&LogLine::Step(r));
        self.steps.push(*r);
        if let Some(bar) = &self.bar {
            bar.set_position(r.step);
            let recent = &self.steps[self.steps.len().saturating_sub(20)..];
            let secs: f64 = recent.iter().map(|s| s.seconds).sum();
            let tokens: usize = recent.iter().map(|s| s.tokens).sum();
            bar.set_message(format!("loss {:.4}  {:.0} tok/s", r.loss, tokens as f64 / secs.max(1e-9)));
        }
    }
    fn eval(&mut self, r: &EvalReport) {
        self.write(&LogLine::Eval(r));
        self.evals.push(*r);
        let line = format!("step {:>5}: train loss {:.4}, validation loss {:.4}", r.step, r.train_loss, r.val_loss);
        self.say(&line);
    }
    fn checkpoint(&mut self, dir: &Path) {
        self.say(&format!("checkpoint: {}", dir.display()));
    }
}

impl Progress {
    /// A line through `say`, with the bar (if any) out of the way meanwhile:
    /// only the bar depends on a terminal, never the lines.
    fn say(&mut self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| (self.say)(line)),
            None => (self.say)(line),
        }
    }
}

/// Files and folders that make a folder a training run (checkpoints, their
/// temporary folders, `latest`, the log and the loss curve).
fn run_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            ["latest", "log.jsonl", "loss.svg"].contains(&n.as_str())
                || n.starts_with("step-")
                || n.starts_with(".step-")
        })
        .collect();
    names.sort();
    names
}

/// Refuses to start a new run in a folder that already holds one: its
/// checkpoints would collide with the new run's at the end of training.
fn refuse_existing_run(out: &Path) -> Result<()> {
    let names = run_files(out);
    if names.is_empty() {
        return Ok(());
    }
    let problem = if names.iter().any(|n| n == "latest") {
        format!(
            "already holds a training run ({}); continue it with --resume (and a larger --max-iters to train \
             further), start a new run with another --out, or replace it with --force",
            names.join(", ")
        )
    } else {
        format!(
            "holds the files of a training run that saved no checkpoint ({}); remove them (or give --force), or \
             start a new run with another --out",
            names.join(", ")
        )
    };
    Err(invalid(&format!("--out {}", out.display()), problem))
}

/// Makes and locks the folder of a new run (removing an old run with
/// `--force`, else refusing one that appeared since the first look).
fn new_run_folder(options: &TrainOptions, say: &mut dyn FnMut(&str)) -> Result<RunLock> {
    std::fs::create_dir_all(&options.out).map_err(io(format!("creating {}", options.out.display())))?;
    let lock = RunLock::acquire(&options.out)?;
    if options.force {
        remove_run(&options.out, say)?;
    } else {
        refuse_existing_run(&options.out)?;
    }
    Ok(lock)
}

/// The tokenizer files of model folder `dir`, to be written into every
/// checkpoint: a Hugging Face tokenizer's own files, byte for byte (so that
/// a checkpoint of a fine-tuned GPT-2 is again a folder `transformers`
/// loads), or addmul's `tokenizer.json`.
fn checkpoint_files(dir: &Path, tokenizer: &TextTokenizer) -> Result<Vec<(String, Vec<u8>)>> {
    const HF: [&str; 6] = [
        "tokenizer.json",
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "generation_config.json",
    ];
    let ours = std::fs::read_to_string(dir.join("tokenizer.json")).is_ok_and(|t| TextTokenizer::from_json(&t).is_ok());
    if ours || !HF.iter().any(|name| dir.join(name).is_file()) {
        return Ok(vec![("tokenizer.json".to_string(), tokenizer.to_json().into_bytes())]);
    }
    HF.iter()
        .filter(|name| dir.join(name).is_file())
        .map(|name| {
            let path = dir.join(name);
            Ok((name.to_string(), std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?))
        })
        .collect()
}

/// The configuration of a fine-tuning run of `model`: the options' recipe,
/// with the model's dropout unless one was chosen and windows no longer than
/// its context; architecture keys cannot be chosen (they are the model's).
fn finetune_config(options: &TrainOptions, model: &addmul_gpt::GptConfig) -> Result<GptTrainConfig> {
    let chose = |key: &str| options.given.iter().any(|k| k == key);
    if let Some(key) =
        ["n_layer", "n_head", "n_embd", "bias", "--tokenizer", "--vocab-size"].into_iter().find(|k| chose(k))
    {
        return Err(invalid(
            &format!("configuration key `{}`", key.trim_start_matches('-')),
            "comes from the pretrained model when fine-tuning; leave it out",
        ));
    }
    let mut config = options.config.clone();
    if !chose("dropout") {
        config.dropout = model.dropout;
    }
    // Adapters start at zero and hold few numbers: they take larger steps
    // than the pretrained weights would bear.
    if options.lora.is_some() && !chose("lr") {
        (config.lr, config.min_lr) = (1e-3, 1e-4);
    }
    if !chose("block_size") {
        config.block_size = config.block_size.min(model.block_size);
    }
    Ok(config)
}

/// Deletes the files of the run in `out` ([`run_files`]), for `--force`;
/// other files in the folder are left alone.
fn remove_run(out: &Path, say: &mut dyn FnMut(&str)) -> Result<()> {
    let names = run_files(out);
    for name in &names {
        let path = out.join(name);
        let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        removed.map_err(io(format!("removing {} (--force)", path.display())))?;
    }
    if !names.is_empty() {
        say(&format!("--force: removed the previous run in {} ({})", out.display(), names.join(", ")));
    }
    Ok(())
}

/// Bytes free to this user on the file system that holds `dir`; `None`
/// where that cannot be asked.
#[cfg(unix)]
fn available_bytes(dir: &Path) -> Option<u64> {
    let stats = nix::sys::statvfs::statvfs(dir).ok()?;
    (stats.blocks_available() as u64).checked_mul(stats.fragment_size() as u64)
}

#[cfg(not(unix))]
fn available_bytes(_: &Path) -> Option<u64> {
    None
}

/// The bytes of one checkpoint of a model of `params` parameters of which
/// `trained` are trained: the weights, and AdamW's two moments of the trained
/// ones, in f32, plus `extra` bytes of other files (the tokenizer) and a few
/// KiB of configuration and state.
pub fn checkpoint_bytes(params: usize, trained: usize, extra: usize) -> u64 {
    4 * params as u64 + 2 * 4 * trained as u64 + extra as u64 + 16 * 1024
}

/// Why `available` bytes are too few for `at_once` checkpoints of
/// `checkpoint` bytes each, or `None` if they are enough.
fn room_problem(available: u64, checkpoint: u64, at_once: u64) -> Option<String> {
    let needed = checkpoint.saturating_mul(at_once);
    let mb = |b: u64| b as f64 / 1e6;
    (available < needed).then(|| {
        format!(
            "has {:.1} MB free on its file system, but a checkpoint of this model takes {:.1} MB and the run \
             needs room for {at_once} at once ({:.1} MB); free some space, choose another --out, or keep fewer \
             checkpoints (--set keep_checkpoints=1)",
            mb(available),
            mb(checkpoint),
            mb(needed)
        )
    })
}

/// Refuses to train when the run folder's file system has no room for the
/// checkpoints still to come, instead of finding out at the first
/// checkpoint, after the training it was to save. A run holds up to
/// `keep_checkpoints + 1` at once (the new one is written before old ones are
/// pruned); those already in the folder count.
fn check_room(out: &Path, trainer: &GptTrainer, extra: usize) -> Result<()> {
    let Some(available) = available_bytes(out) else { return Ok(()) };
    let params = addmul_core::ParametersExt::num_params(trainer.model());
    let trained = addmul_core::ParametersExt::num_trainable(trainer.model());
    let existing = run_files(out).iter().filter(|n| n.starts_with("step-")).count() as u64;
    let peak = trainer.config().keep_checkpoints.max(1) as u64 + 1;
    let at_once = peak.saturating_sub(existing).max(1);
    match room_problem(available, checkpoint_bytes(params, trained, extra), at_once) {
        Some(problem) => Err(invalid(&format!("--out {}", out.display()), problem)),
        None => Ok(()),
    }
}

/// The lock of a run folder while a process trains in it: `.lock`, locked
/// by the operating system (so that a process that dies, even by Ctrl-C or
/// `kill -9`, leaves no stale lock) and holding the process id, for the
/// message of the next one. Released when dropped.
#[derive(Debug)]
struct RunLock(std::fs::File);

/// The error for a run folder that another process has locked.
fn locked(dir: &Path, path: &Path) -> Error {
    let pid = std::fs::read_to_string(path).unwrap_or_default();
    let who = match pid.trim() {
        "" => "another process".to_string(),
        pid => format!("another process (pid {pid})"),
    };
    invalid(
        &format!("--out {}", dir.display()),
        format!(
            "{who} is training in this folder (it holds {}); wait for it to finish, or choose another --out",
            path.display()
        ),
    )
}

impl RunLock {
    /// Refuses a folder another process has locked, without locking it.
    fn check(dir: &Path) -> Result<()> {
        let path = dir.join(".lock");
        match std::fs::File::open(&path).map(|file| file.try_lock()) {
            Ok(Err(std::fs::TryLockError::WouldBlock)) => Err(locked(dir, &path)),
            _ => Ok(()),
        }
    }

    fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(".lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(format!("opening {}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {
                // The process id, for the message of a second process.
                let _ = file.set_len(0).and_then(|()| write!(file, "{}", std::process::id()));
                Ok(RunLock(file))
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(locked(dir, &path)),
            // A file system without locks: train unlocked, as before locks.
            Err(std::fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => Ok(RunLock(file)),
            Err(std::fs::TryLockError::Error(e)) => Err(io(format!("locking {}", path.display()))(e)),
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // The file stays (removing it could let two processes lock two
        // different files); its process id goes. Closing it unlocks it.
        let _ = self.0.set_len(0);
    }
}

/// Measurements, sorted, to read percentiles from.
#[derive(Debug, Clone)]
struct Percentiles(Vec<f64>);

impl Percentiles {
    /// Sorts `xs`.
    fn new(mut xs: Vec<f64>) -> Self {
        xs.sort_by(f64::total_cmp);
        Percentiles(xs)
    }

    /// The `q`-quantile (`q` in 0..=1) by nearest rank: the measurement at
    /// `round((n - 1) q)` from the smallest; 0 for no measurements.
    fn at(&self, q: f64) -> f64 {
        self.0.get(((self.0.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0)
    }

    /// The median (for an even count, the upper of the two middle values).
    fn median(&self) -> f64 {
        self.at(0.5)
    }

    /// How many measurements.
    fn len(&self) -> usize {
        self.0.len()
    }

    /// The measurements, smallest first.
    fn into_sorted(self) -> Vec<f64> {
        self.0
    }
}

/// A resumed run keeps its configuration: refuses any key the user chose
/// (other than `max_iters`, which extends the run) whose value differs from
/// the run's.
fn refuse_changed_keys(options: &TrainOptions, run: &GptTrainConfig) -> Result<()> {
    let table = |c: &GptTrainConfig| toml::Table::try_from(c).map_err(|e| invalid("configuration", e.to_string()));
    let (asked, kept) = (table(&options.config)?, table(run)?);
    for key in options.given.iter().filter(|k| *k != "max_iters") {
        let (a, k) = (asked.get(key), kept.get(key));
        if a != k {
            let show = |v: Option<&toml::Value>| v.map_or_else(|| "unset".to_string(), ToString::to_string);
            return Err(invalid(
                &format!("configuration key `{key}`"),
                format!(
                    "is {} but the run in {} has {}; a resumed run keeps its configuration (only --max-iters can \
                     change): leave `{key}` out, or start a new run with another --out",
                    show(a),
                    options.out.display(),
                    show(k)
                ),
            ));
        }
    }
    Ok(())
}

/// A resumed run keeps its tokenizer: refuses a `--tokenizer` or
/// `--vocab-size` the user chose that differs from it.
fn refuse_changed_tokenizer(options: &TrainOptions, tokenizer: &TextTokenizer, path: &Path) -> Result<()> {
    let chose = |flag: &str| options.given.iter().any(|k| k == flag);
    let (kind, name) = match tokenizer {
        TextTokenizer::Char(_) => (TokenizerKind::Char, "char"),
        TextTokenizer::Bpe(_) => (TokenizerKind::Bpe, "bpe"),
    };
    let vocab = tokenizer.as_dyn().vocab_size();
    let changed = if chose("--tokenizer") && options.tokenizer != kind {
        Some(("--tokenizer", format!("the run's tokenizer ({}) is {name}", path.display())))
    } else if chose("--vocab-size") && kind == TokenizerKind::Bpe && options.vocab_size != vocab {
        Some(("--vocab-size", format!("the run's tokenizer ({}) has {vocab} ids", path.display())))
    } else {
        None
    };
    match changed {
        Some((flag, problem)) => Err(invalid(
            flag,
            format!(
                "{problem}; a resumed run keeps its tokenizer: leave {flag} out, or start a new run with another --out"
            ),
        )),
        None => Ok(()),
    }
}

/// Trains a GPT as `options` say, printing progress through `say` and the
/// sample after training to `out`; returns the run folder.
///
/// A new run refuses a folder that already holds one; a resumed run keeps
/// its configuration (see [`TrainOptions::given`]). While training, the run
/// folder is locked (`.lock`): a second process refuses it.
///
/// # Errors
/// A corpus, tokenizer, configuration, training or checkpoint error; an
/// [`Error::Invalid`] naming `--out` for a folder that holds a run (without
/// `--resume`) or is locked by another process.
pub fn train(options: &TrainOptions, out: &mut dyn Write, mut say: impl FnMut(&str) + 'static) -> Result<PathBuf> {
    // What can be checked before the corpus is read (or downloaded).
    let resumed_lock = if options.resume {
        if options.out.join("config.json").is_file() {
            return Err(invalid(
                &format!("--out {}", options.out.display()),
                "is a checkpoint; give --out the run folder it is in (its `latest` is resumed)",
            ));
        }
        if !options.out.is_dir() {
            resolve(&options.out)?; // says that it does not exist
        }
        let lock = RunLock::acquire(&options.out)?;
        // A run stopped between renaming a checkpoint into place and
        // updating `latest` resumes from that checkpoint.
        if let Some(name) = addmul_gpt::checkpoint::recover_latest(&options.out, "step-")? {
            say(&format!("{name} is the newest complete checkpoint; `latest` now names it"));
        }
        resolve(&options.out)?;
        Some(lock)
    } else {
        RunLock::check(&options.out)?;
        if !options.force {
            refuse_existing_run(&options.out)?;
        }
        None
    };
    let corpus = corpus::load_or(options.data.as_deref(), &options.remote, &mut say)?;
    let (tokenizer, mut trainer, _lock, extra_files, adapters) = if let Some(lock) = resumed_lock {
        let dir = resolve(&options.out)?;
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = TextTokenizer::load_dir(&dir)?;
        refuse_changed_tokenizer(options, &tokenizer, &tok_path)?;
        let ids = tokenizer.encode_text(&corpus.text).map_err(|e| {
            invalid(
                &data_flag(options),
                format!("is not the text this run was trained on ({e}); resume with the run's --data"),
            )
        })?;
        let mut trainer = GptTrainer::resume_with(&options.out, &ids, crate::adapters::prepare_resume).map_err(|e| match e {
            addmul_gpt::GptError::CorpusMismatch { trained, given, .. } => invalid(
                &data_flag(options),
                format!(
                    "is not the text this run was trained on ({given} tokens; the run's had {trained}); resume with the run's --data"
                ),
            ),
            e => e.into(),
        })?;
        refuse_changed_keys(options, trainer.config())?;
        let steps = trainer.steps_taken();
        let given_max = options.given.iter().any(|k| k == "max_iters").then_some(options.config.max_iters);
        match given_max {
            Some(max) if max < steps => {
                return Err(invalid(
                    &format!("--max-iters {max}"),
                    format!(
                        "the run in {} is already at step {steps}; give more steps to train further",
                        options.out.display()
                    ),
                ));
            }
            Some(max) if max > steps => trainer.set_max_iters(max)?,
            _ => {}
        }
        if trainer.config().max_iters <= steps {
            say(&format!(
                "{} is complete: step {steps} of max_iters {}; to train further, resume with a larger --max-iters \
                 (e.g. --max-iters {})",
                options.out.display(),
                trainer.config().max_iters,
                steps.max(1) * 2
            ));
            return Ok(options.out.clone());
        }
        say(&format!("resuming {} at step {steps} of {}", dir.display(), trainer.config().max_iters));
        let extra = checkpoint_files(&dir, &tokenizer)?;
        let adapters = crate::adapters::saved(trainer.model(), &dir)?;
        (tokenizer, trainer, lock, extra, adapters)
    } else if let Some(base) = &options.base {
        let (mut model, tokenizer) = load_plain(base)?;
        if let Some(merged) = crate::adapters::merge_saved(&mut model, &resolve(base)?)? {
            say(&format!(
                "merged the {} LoRA adapters of {} into its weights",
                merged.adapters().len(),
                base.display()
            ));
        }
        let ids = tokenizer.encode_text(&corpus.text)?;
        let config = finetune_config(options, model.config())?;
        say(&format!(
            "fine-tuning {} ({} parameters) on {} tokens",
            base.display(),
            addmul_core::ParametersExt::num_params(&model),
            ids.len()
        ));
        let adapters = match &options.lora {
            Some(lora) => {
                let set = crate::adapters::attach_new(&mut model, lora, base, config.seed)?;
                say(&crate::adapters::summary(&model, &set));
                Some(set)
            }
            None => None,
        };
        let trainer = GptTrainer::from_model(model, config, &ids)?;
        let extra = checkpoint_files(&resolve(base)?, &tokenizer)?;
        let lock = new_run_folder(options, &mut say)?;
        (tokenizer, trainer, lock, extra, adapters)
    } else {
        let start = Instant::now();
        let tokenizer = TextTokenizer::train(options.tokenizer, &corpus.text, options.vocab_size)?;
        let ids = tokenizer.as_dyn().encode(&corpus.text)?;
        say(&format!(
            "tokenizer: {} ids; the corpus is {} tokens ({:.1}s)",
            tokenizer.as_dyn().vocab_size(),
            ids.len(),
            start.elapsed().as_secs_f64()
        ));
        // The configuration is checked here, before the run folder is made.
        let trainer = GptTrainer::new(options.config.clone(), tokenizer.as_dyn().vocab_size(), &ids)?;
        let lock = new_run_folder(options, &mut say)?;
        let extra = vec![("tokenizer.json".to_string(), tokenizer.to_json().into_bytes())];
        (tokenizer, trainer, lock, extra, None)
    };
    check_room(&options.out, &trainer, extra_files.iter().map(|(_, bytes)| bytes.len()).sum())?;
    let config = trainer.config().clone();
    let model_config = *trainer.model().config();
    say(&format!(
        "model: {} layers, {} heads, {} dims, block {}, {} parameters; {} threads",
        model_config.n_layer,
        model_config.n_head,
        model_config.n_embd,
        model_config.block_size,
        addmul_core::ParametersExt::num_params(trainer.model()),
        trainer.threads()
    ));
    let log_path = options.out.join("log.jsonl");
    if options.resume {
        truncate_log(&log_path, trainer.steps_taken())?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io(format!("opening {}", log_path.display())))?;
    let bar = (!options.quiet).then(|| {
        let bar = ProgressBar::new(config.max_iters);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} elapsed, {eta_precise} left]",
            )
            .expect("a valid template"),
        );
        bar.set_position(trainer.steps_taken());
        bar
    });
    let mut progress = Progress { bar, log, steps: Vec::new(), evals: Vec::new(), say: Box::new(say) };
    let model_files = adapters.map(crate::adapters::checkpoint_files);
    let plan = CheckpointPlan { dir: options.out.clone(), extra_files, model_files };
    let result = {
        let _training = Training::start();
        trainer.run(&mut progress, Some(&plan))
    };
    if let Some(bar) = &progress.bar {
        bar.finish_and_clear();
    }
    match &result {
        Err(addmul_gpt::GptError::Stopped { step, .. }) => (progress.say)(&format!(
            "stopped at step {step} of {}; continue with: addmul train --resume --out {}",
            config.max_iters,
            options.out.display()
        )),
        // A failed checkpoint write (a full disk, say) leaves the last
        // complete checkpoint as it was: say where the run can go on from.
        Err(_) => {
            if let Ok(dir) = resolve(&options.out) {
                (progress.say)(&format!(
                    "the last complete checkpoint is {}; once the problem is fixed, continue with: addmul train \
                     --resume --out {}",
                    dir.display(),
                    options.out.display()
                ));
            }
        }
        Ok(()) => {}
    }
    result?;

    // A summary, and the loss curve.
    // Not the first 20 steps (or the first half of a shorter run): they warm up.
    let warm = 20.min(progress.steps.len() / 2);
    let ms = Percentiles::new(progress.steps.iter().skip(warm).map(|s| s.seconds).collect()).median() * 1000.0;
    let tokens_per_step = (config.batch_size * config.block_size * config.grad_accum) as f64;
    if progress.steps.is_empty()
        && let Some(last) = trainer.evals().last()
    {
        // No step was timed: no speed to report.
        (progress.say)(&format!(
            "done: step {}, train loss {:.4}, validation loss {:.4}",
            last.step, last.train_loss, last.val_loss
        ));
    } else if let Some(last) = trainer.evals().last() {
        // The FLOP count is full training's; a run with frozen weights (LoRA)
        // skips their gradients, so it has no such figure.
        let frozen = addmul_core::ParametersExt::num_trainable(trainer.model())
            < addmul_core::ParametersExt::num_params(trainer.model());
        let gflops = model_config.training_flops(tokens_per_step as usize, config.block_size) / (ms / 1000.0) / 1e9;
        (progress.say)(&format!(
            "done: step {}, train loss {:.4}, validation loss {:.4}; median {:.1} ms per step, {:.0} tokens/s{}",
            last.step,
            last.train_loss,
            last.val_loss,
            ms,
            tokens_per_step / (ms / 1000.0),
            if frozen { String::new() } else { format!(", {gflops:.1} GFLOP/s") },
        ));
    }
    let evals = trainer.evals();
    let train_steps: Vec<(f64, f64)> = progress.steps.iter().map(|s| (s.step as f64, s.loss)).collect();
    if !train_steps.is_empty() {
        LineChart::new("Training a GPT", "step", "cross-entropy")
            .series(Series::new("training batches", train_steps))
            .series(Series::new("training (evaluated)", evals.iter().map(|e| (e.step as f64, e.train_loss)).collect()))
            .series(Series::new("validation", evals.iter().map(|e| (e.step as f64, e.val_loss)).collect()))
            .save(options.out.join("loss.svg"))?;
        (progress.say)(&format!("loss curve: {}", options.out.join("loss.svg").display()));
    }
    if options.sample_chars > 0 {
        (progress.say)("sample:");
        let prompt = corpus.text.chars().next().map(String::from).unwrap_or_else(|| "\n".into());
        let options =
            SampleOptions { prompt, max_tokens: options.sample_chars, stops: Vec::new(), ..SampleOptions::default() };
        generate(trainer.model(), &tokenizer, &options, out)?;
    }
    Ok(options.out.clone())
}

/// What `addmul sample` does.
#[derive(Debug, Clone)]
pub struct SampleOptions {
    /// The text to continue.
    pub prompt: String,
    /// Write the prompt to the output before the generated text (once the
    /// prompt and the sampling options are known to be valid).
    pub echo_prompt: bool,
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Temperature, top-k, top-p, seed.
    pub sampling: SamplingConfig,
    /// Stop (without printing it) at the first of these strings.
    pub stops: Vec<String>,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            prompt: "\n".into(),
            echo_prompt: false,
            max_tokens: 500,
            sampling: SamplingConfig::default(),
            stops: Vec::new(),
        }
    }
}

/// Loads a model and its tokenizer from a run folder, a checkpoint folder or
/// a Hugging Face GPT-2 folder (`config.json`, `model.safetensors`, and
/// `tokenizer.json` or `vocab.json` + `merges.txt`), with the LoRA adapters
/// the folder holds (PEFT's `adapter_config.json` and
/// `adapter_model.safetensors`, as `addmul finetune --lora-rank` writes
/// them) attached; nothing is written.
///
/// # Errors
/// A missing or corrupt checkpoint or tokenizer file.
pub fn load(path: &Path) -> Result<(Gpt<f32>, TextTokenizer)> {
    let (mut model, tokenizer) = load_plain(path)?;
    crate::adapters::attach_saved(&mut model, &resolve(path)?)?;
    Ok((model, tokenizer))
}

/// [`load`] without the adapters a folder of a LoRA run holds: GPT-2's own
/// weights and the tokenizer.
///
/// # Errors
/// As [`load`].
fn load_plain(path: &Path) -> Result<(Gpt<f32>, TextTokenizer)> {
    let dir = resolve(path)?;
    let model = addmul_gpt::checkpoint::load_model(&dir)?;
    let tokenizer = TextTokenizer::load_dir(&dir)?;
    if tokenizer.as_dyn().vocab_size() != model.config().vocab_size {
        return Err(invalid(
            &format!("the tokenizer in {}", dir.display()),
            format!("has {} ids but the model has {}", tokenizer.as_dyn().vocab_size(), model.config().vocab_size),
        ));
    }
    Ok((model, tokenizer))
}

// ANCHOR: generate
/// Generates text after `options.prompt`, writing each piece to `out` as soon
/// as it is a whole character (and cannot be the start of a stop string),
/// until `max_tokens`, a stop string or the end-of-text token. Returns the
/// text generated and the number of tokens.
///
/// # Errors
/// A prompt the tokenizer cannot encode; a write error.
pub fn generate(
    model: &Gpt<f32>,
    tokenizer: &TextTokenizer,
    options: &SampleOptions,
    out: &mut dyn Write,
) -> Result<(String, usize)> {
    let tok = tokenizer.as_dyn();
    let prompt = tokenizer.encode_text(&options.prompt)?;
    // A GPT-2 tokenizer's `<|endoftext|>` ends the text, as in transformers'
    // generate (it is not printed).
    let end_of_text = tokenizer.end_of_text();
    if prompt.is_empty() {
        return Err(invalid("--prompt", "is empty after tokenizing; give at least one character"));
    }
    let mut sampler = Sampler::new(model, &prompt, options.sampling)?;
    let mut stream = TextStream::new(options.stops.clone());
    let mut text = String::new();
    let mut count = 0;
    let w = |e| Error::Io { context: "writing the sample".into(), source: e };
    if options.echo_prompt {
        out.write_all(options.prompt.as_bytes()).map_err(w)?;
    }
    while count < options.max_tokens && !stream.stopped() {
        let id = sampler.next_token()?;
        count += 1;
        if Some(id) == end_of_text {
            break;
        }
        let piece = stream.push(&tok.decode_bytes(&[id])?);
        out.write_all(piece.as_bytes()).map_err(w)?;
        out.flush().map_err(w)?;
        text.push_str(&piece);
    }
    let rest = stream.finish();
    out.write_all(rest.as_bytes()).map_err(w)?;
    writeln!(out).map_err(w)?;
    text.push_str(&rest);
    Ok((text, count))
}
// ANCHOR_END: generate

/// What `addmul tokenizer train` does: trains a tokenizer on a text file and
/// saves it; returns a summary.
///
/// # Errors
/// A file or tokenizer error.
pub fn tokenizer_train(data: &Path, kind: TokenizerKind, vocab_size: usize, out: &Path) -> Result<String> {
    // Where the result goes, before the work: not a folder, in a folder that
    // exists.
    let what = || format!("--out {}", out.display());
    if out.is_dir() {
        return Err(invalid(&what(), "is a folder; give a file name, e.g. tokenizer.json"));
    }
    let folder = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !folder.is_dir() {
        return Err(invalid(&what(), format!("its folder {} does not exist; create it first", folder.display())));
    }
    let text = corpus::read_text(data)?;
    if text.is_empty() {
        return Err(invalid(&format!("--data {}", data.display()), "is empty; give a text to train the tokenizer on"));
    }
    let start = Instant::now();
    let tokenizer = TextTokenizer::train(kind, &text, vocab_size)?;
    let seconds = start.elapsed().as_secs_f64();
    let ids = tokenizer.as_dyn().encode(&text)?;
    std::fs::write(out, tokenizer.to_json()).map_err(io(format!("writing {}", out.display())))?;
    Ok(format!(
        "trained a {} tokenizer with {} ids in {seconds:.2}s; {} bytes become {} tokens ({:.2} bytes per token); saved to {}",
        match kind {
            TokenizerKind::Char => "character",
            TokenizerKind::Bpe => "byte-level BPE",
        },
        tokenizer.as_dyn().vocab_size(),
        text.len(),
        ids.len(),
        text.len() as f64 / ids.len().max(1) as f64,
        out.display()
    ))
}

/// What `addmul bench` measures.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The text (default: tinyshakespeare as `addmul train` finds it).
    pub data: Option<PathBuf>,
    /// The text without `data`: tinyshakespeare's address and cache file.
    pub remote: corpus::Remote,
    /// Steps of the cpu-small run (nanoGPT's 2000 for the quality figure).
    pub iters: u64,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Tokens per round of the sampling speed (the median of five rounds is reported).
    pub sample_tokens: usize,
    /// Steps timed for the larger configuration (0: skip it).
    pub large_iters: u64,
}

/// One configuration's training speed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpeedReport {
    /// Which configuration.
    pub name: String,
    /// Steps timed (after the first few).
    pub steps: usize,
    /// Median milliseconds per step.
    pub median_ms: f64,
    /// 10th and 90th percentiles.
    pub p10_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Tokens per second at the median.
    pub tokens_per_s: f64,
    /// Achieved GFLOP/s at the median (`GptConfig::training_flops`).
    pub gflops: f64,
    /// Share of the machine's CPU time that other processes used meanwhile.
    pub other_load: f64,
}

/// Everything `addmul bench` measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// The day of the measurement (UTC), `YYYY-MM-DD`.
    pub date: String,
    /// The command that produced the report.
    pub command: String,
    /// The processor ([`crate::demos::cpu_description`]).
    pub cpu: String,
    /// Where the text came from.
    pub corpus: String,
    /// The SHA-256 of the text's bytes: the book uses the quality figures
    /// only of a run on tinyshakespeare.
    pub corpus_sha256: String,
    /// The text's length in bytes.
    pub corpus_bytes: usize,
    /// The cpu-small run's configuration.
    pub config: GptTrainConfig,
    /// Worker threads.
    pub threads: usize,
    /// cpu-small's speed.
    pub cpu_small: SpeedReport,
    /// Validation measurements of the cpu-small run; left out (with
    /// `sample`) when the text was the offline fallback, the book's own
    /// text, whose losses say nothing about tinyshakespeare's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evals: Option<Vec<EvalReport>>,
    /// Tokens per second when sampling with the cache, batch 1: the median
    /// of the rounds.
    pub sample_tokens_per_s: f64,
    /// Every round's tokens per second, slowest first.
    pub sample_rounds: Vec<f64>,
    /// The text sampled for the speed measurement (temperature 1); left out
    /// with `evals`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<String>,
    /// The larger configuration's speed, if measured.
    pub large: Option<SpeedReport>,
    /// The processor's vector instructions the matrix kernels can use
    /// (results from machines with other ones are not comparable).
    pub cpu_flags: Vec<String>,
    /// The products' ceiling on this machine ([`gemm_ceiling`]).
    pub gemm_ceiling: Ceiling,
}

/// What must match for two `addmul bench` reports to be compared: the
/// machine (CPU, the vector instructions the kernels use, worker threads),
/// the text (its SHA-256: the vocabulary changes the model) and the
/// configuration's fields that change a step's work. Schedules, step counts
/// and seeds may differ.
const COMPARABLE: [&str; 12] = [
    "/cpu",
    "/cpu_flags",
    "/threads",
    "/corpus_sha256",
    "/config/n_layer",
    "/config/n_head",
    "/config/n_embd",
    "/config/block_size",
    "/config/batch_size",
    "/config/grad_accum",
    "/config/dropout",
    "/config/bias",
];

/// `addmul bench --compare OLD`: this report's speeds beside an earlier
/// report's, one line per figure (ratios > 1 mean faster now), refused
/// unless the two were measured alike ([`COMPARABLE`]), so that figures from
/// different machines or settings are never mixed.
///
/// # Errors
/// [`Error::Io`] if `old` cannot be read; [`Error::Invalid`] if it is not a
/// bench report or was measured differently (naming every difference).
pub fn compare_bench(new: &BenchReport, old: &Path) -> Result<Vec<String>> {
    let what = old.display().to_string();
    let text = std::fs::read_to_string(old).map_err(io(format!("reading {what}")))?;
    let earlier: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(&what, format!("not a bench report (JSON: {e})")))?;
    let now = serde_json::to_value(new).map_err(|e| invalid("the new report", e.to_string()))?;
    let mut differences = Vec::new();
    for pointer in COMPARABLE {
        match (earlier.pointer(pointer), now.pointer(pointer)) {
            (None, _) => return Err(invalid(&what, format!("not a bench report: no {}", &pointer[1..]))),
            (Some(a), Some(b)) if a == b => {}
            (Some(a), b) => {
                differences.push(format!("{} {a} there, {} here", &pointer[1..], b.unwrap_or(&serde_json::Value::Null)))
            }
        }
    }
    if !differences.is_empty() {
        return Err(invalid(&what, format!("measured differently, so not compared: {}", differences.join("; "))));
    }
    let date = earlier.get("date").and_then(serde_json::Value::as_str).unwrap_or("an unknown date");
    let mut lines = vec![format!("compared with {what} ({date}), the same machine and configuration:")];
    // (figure, pointer, unit, whether more is faster)
    let figures = [
        ("cpu-small", "/cpu_small/median_ms", "ms per step", false),
        ("sampling", "/sample_tokens_per_s", "tokens/s", true),
        ("the larger configuration", "/large/median_ms", "ms per step", false),
        ("the products' ceiling", "/gemm_ceiling/gflops", "GFLOP/s", true),
    ];
    for (name, pointer, unit, more_is_faster) in figures {
        let value = |report: &serde_json::Value| report.pointer(pointer).and_then(serde_json::Value::as_f64);
        if let (Some(before), Some(here)) = (value(&earlier), value(&now))
            && before > 0.0
            && here > 0.0
        {
            let speedup = if more_is_faster { here / before } else { before / here };
            lines.push(format!("  {name}: {here:.1} {unit} now, {before:.1} then: {speedup:.2}x"));
        }
    }
    Ok(lines)
}

/// The most a training step's products could reach on this machine: large
/// square products through [`addmul_core::gemm`], one per worker thread at
/// once (as a data-parallel step runs them).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ceiling {
    /// Threads, each multiplying its own pair of matrices.
    pub threads: usize,
    /// The matrices' side.
    pub size: usize,
    /// GFLOP/s over all threads: the median of the rounds.
    pub gflops: f64,
}

/// Measures [`Ceiling`]: `threads` products of `size x size` f32 matrices at
/// once, the median of five rounds after one untimed round.
pub fn gemm_ceiling(threads: usize, size: usize) -> Ceiling {
    use addmul_core::{Matrix, Op, gemm, parallel::run_each};
    let a = Matrix::<f32>::from_fn(size, size, |i, j| ((i * 7 + j * 13) % 17) as f32 / 17.0 - 0.5);
    let round = || {
        let t = Instant::now();
        run_each(vec![(); threads], |()| {
            let mut c = Matrix::<f32>::zeros(size, size);
            gemm(1.0, &a, Op::N, &a, Op::N, 0.0, &mut c).expect("square matrices of one size");
            c[(0, 0)]
        });
        t.elapsed().as_secs_f64()
    };
    round();
    let seconds = Percentiles::new((0..5).map(|_| round()).collect()).median();
    let flops = 2.0 * (size as f64).powi(3) * threads as f64;
    Ceiling { threads, size, gflops: flops / seconds / 1e9 }
}

/// The vector-instruction flags of `/proc/cpuinfo` that matter to the matrix
/// kernels (none where it cannot be read).
fn cpu_flags() -> Vec<String> {
    const WANTED: [&str; 7] = ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512vl", "avx512bw"];
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split_once(':'))
        .map_or(Vec::new(), |(_, f)| f.split_whitespace().collect());
    WANTED.iter().filter(|w| flags.contains(w)).map(|w| w.to_string()).collect()
}

/// CPU seconds used by the whole machine (busy) and by this process, from
/// `/proc` (zeros where there is no `/proc`).
fn cpu_times() -> (f64, f64) {
    let tick = 100.0; // USER_HZ on Linux
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let f: Vec<f64> = s.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
            Some((f.iter().sum::<f64>() - f.get(3)? - f.get(4)?) / tick)
        })
        .unwrap_or(0.0);
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command's closing parenthesis, from the state
            // (field 3); utime and stime are fields 14 and 15.
            let f: Vec<&str> = s[s.rfind(')')? + 2..].split_whitespace().collect();
            let field = |n: usize| f.get(n - 3)?.parse::<f64>().ok();
            Some((field(14)? + field(15)?) / tick)
        })
        .unwrap_or(0.0);
    (machine, own)
}

impl SpeedReport {
    /// A configuration's speed from its step times in milliseconds, with
    /// `tokens` and `flops` per step.
    fn new(name: &str, times_ms: Percentiles, tokens: usize, flops: f64, other_load: f64) -> Self {
        let median_ms = times_ms.median();
        SpeedReport {
            name: name.to_string(),
            steps: times_ms.len(),
            median_ms,
            p10_ms: times_ms.at(0.1),
            p90_ms: times_ms.at(0.9),
            tokens_per_s: tokens as f64 / (median_ms / 1000.0),
            gflops: flops / (median_ms / 1000.0) / 1e9,
            other_load,
        }
    }
}

/// Times `steps` training steps (`each` sees every one); the first `skip`
/// are left out of the percentiles.
fn speed(
    name: &str,
    trainer: &mut GptTrainer,
    steps: u64,
    skip: usize,
    mut each: impl FnMut(&StepReport),
) -> Result<SpeedReport> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let (m0, o0) = cpu_times();
    let t0 = Instant::now();
    let mut times = Vec::new();
    let mut tokens = 0;
    for _ in 0..steps {
        let r = trainer.train_step()?;
        each(&r);
        tokens = r.tokens;
        times.push(r.seconds * 1000.0);
    }
    let wall = t0.elapsed().as_secs_f64();
    let (m1, o1) = cpu_times();
    let other_load = (((m1 - m0) - (o1 - o0)) / (wall * cores)).clamp(0.0, 1.0);
    let flops = trainer.model().config().training_flops(tokens, trainer.config().block_size);
    Ok(SpeedReport::new(name, Percentiles::new(times.into_iter().skip(skip).collect()), tokens, flops, other_load))
}

/// What [`train_between_evals`] measured.
struct Stretches {
    /// At the start, then after every stretch.
    evals: Vec<EvalReport>,
    /// Every step's milliseconds.
    times_ms: Vec<f64>,
    /// Every stretch's share of the machine used by other processes.
    other_loads: Vec<f64>,
}

/// Trains to `max_iters`, evaluating at the start, every `eval_interval`
/// steps and at the end. Evaluations are not timed: the steps run in timed
/// stretches between them.
fn train_between_evals(trainer: &mut GptTrainer, say: &mut dyn FnMut(&str)) -> Result<Stretches> {
    let (iters, interval) = (trainer.config().max_iters, trainer.config().eval_interval);
    let mut run = Stretches { evals: vec![trainer.evaluate()?], times_ms: Vec::new(), other_loads: Vec::new() };
    for next in (1..=iters).filter(|s| s % interval == 0 || *s == iters) {
        let steps = next - trainer.steps_taken();
        let r = speed("cpu-small", trainer, steps, 0, |s| run.times_ms.push(s.seconds * 1000.0))?;
        run.other_loads.push(r.other_load);
        let e = trainer.evaluate()?;
        say(&format!(
            "step {:>5}: validation loss {:.4} ({:.1} ms per step in this stretch)",
            e.step, e.val_loss, r.median_ms
        ));
        run.evals.push(e);
    }
    Ok(run)
}

/// The cpu-small run of [`bench`]: the trained model, its speed and its
/// evaluations.
struct CpuSmallRun {
    trainer: GptTrainer,
    speed: SpeedReport,
    evals: Vec<EvalReport>,
}

/// Trains cpu-small for `options.iters` steps; its speed is taken over all
/// steps but the first 20 (or the first half of a shorter run).
fn bench_cpu_small(
    options: &BenchOptions,
    vocab: usize,
    ids: &[TokenId],
    say: &mut dyn FnMut(&str),
) -> Result<CpuSmallRun> {
    let base = GptTrainConfig::cpu_small();
    let warmup_iters = base.warmup_iters.min(options.iters);
    let config = GptTrainConfig { max_iters: options.iters, warmup_iters, threads: options.threads, ..base };
    let mut trainer = GptTrainer::new(config.clone(), vocab, ids)?;
    say(&format!("cpu-small: {} steps on {} threads", options.iters, trainer.threads()));
    let run = train_between_evals(&mut trainer, say)?;
    if run.other_loads.is_empty() {
        return Err(invalid("--iters", "must be at least 1"));
    }
    let warm = 20.min(run.times_ms.len() / 2);
    let timed = Percentiles::new(run.times_ms.into_iter().skip(warm).collect());
    let tokens = config.batch_size * config.block_size;
    let flops = trainer.model().config().training_flops(tokens, config.block_size);
    let other_load = run.other_loads.iter().sum::<f64>() / run.other_loads.len().max(1) as f64;
    let speed = SpeedReport::new("cpu-small", timed, tokens, flops, other_load);
    Ok(CpuSmallRun { trainer, speed, evals: run.evals })
}

/// Rounds of the sampling speed; their median is reported.
const SAMPLE_ROUNDS: usize = 5;

/// What [`bench_sampling`] measured.
struct SamplingSpeed {
    /// The median round's tokens per second.
    tokens_per_s: f64,
    /// Every round's tokens per second, slowest first.
    rounds: Vec<f64>,
    /// The first round's text.
    sample: String,
}

/// Sampling speed: batch 1, temperature 1, with the key/value cache. The
/// median of [`SAMPLE_ROUNDS`] rounds of `tokens` tokens each (one round takes
/// a fraction of a second, and the machine's speed drifts); the first round's
/// text is kept as the sample.
fn bench_sampling(
    model: &Gpt<f32>,
    tokenizer: &TextTokenizer,
    tokens: usize,
    say: &mut dyn FnMut(&str),
) -> Result<SamplingSpeed> {
    let prompt = tokenizer.as_dyn().encode("\n")?;
    let mut sampler = Sampler::new(model, &prompt, SamplingConfig { seed: 7, ..SamplingConfig::default() })?;
    for _ in 0..20 {
        sampler.next_token()?;
    }
    let mut sampled = Vec::with_capacity(tokens);
    let mut rounds = Vec::with_capacity(SAMPLE_ROUNDS);
    for round in 0..SAMPLE_ROUNDS {
        let t0 = Instant::now();
        for _ in 0..tokens {
            let token = sampler.next_token()?;
            if round == 0 {
                sampled.push(token);
            }
        }
        rounds.push(tokens as f64 / t0.elapsed().as_secs_f64());
    }
    let rounds = Percentiles::new(rounds);
    let tokens_per_s = rounds.median();
    let sample = tokenizer.as_dyn().decode(&sampled)?;
    say(&format!(
        "sampling: {tokens_per_s:.0} tokens/s with the cache, batch 1 (median of {SAMPLE_ROUNDS} rounds of {tokens}; \
         slowest {:.0}, fastest {:.0})",
        rounds.at(0.0),
        rounds.at(1.0)
    ));
    Ok(SamplingSpeed { tokens_per_s, rounds: rounds.into_sorted(), sample })
}

/// The larger configuration of [`bench`]: 6 layers, 6 heads, 384
/// dimensions, block 256, cpu-small's batch; `large_iters` steps are timed
/// after 5 untimed ones.
fn large_config(large_iters: u64, threads: usize) -> GptTrainConfig {
    GptTrainConfig {
        n_layer: 6,
        n_head: 6,
        n_embd: 384,
        block_size: 256,
        max_iters: large_iters + 5,
        warmup_iters: 5,
        threads,
        ..GptTrainConfig::cpu_small()
    }
}

/// Times [`large_config`]'s steps.
fn bench_large(
    config: GptTrainConfig,
    vocab: usize,
    ids: &[TokenId],
    say: &mut dyn FnMut(&str),
) -> Result<SpeedReport> {
    let steps = config.max_iters;
    let mut trainer = GptTrainer::new(config, vocab, ids)?;
    let r = speed("6 layers, 6 heads, 384 dims, block 256, batch 12", &mut trainer, steps, 5, |_| {})?;
    say(&format!(
        "{}: {:.1} ms per step, {:.0} tokens/s, {:.1} GFLOP/s",
        r.name, r.median_ms, r.tokens_per_s, r.gflops
    ));
    Ok(r)
}

/// The last line of [`bench`]: cpu-small's speed and final loss.
fn bench_summary(report: &BenchReport) -> String {
    let c = &report.cpu_small;
    format!(
        "cpu-small: median {:.1} ms per step (p10 {:.1}, p90 {:.1}), {:.0} tokens/s, {:.1} GFLOP/s ({:.0}% of the products' ceiling); final validation loss {:.4}; other processes used {:.0}% of the machine",
        c.median_ms,
        c.p10_ms,
        c.p90_ms,
        c.tokens_per_s,
        c.gflops,
        100.0 * c.gflops / report.gemm_ceiling.gflops,
        report.evals.iter().flatten().last().map_or(f64::NAN, |e| e.val_loss),
        100.0 * c.other_load
    )
}

/// Trains `cpu-small` on a text, timing every step and measuring validation
/// loss as it goes; then times sampling with the cache and a few steps of a
/// larger configuration (6 layers, 6 heads, 384 dimensions, block 256).
///
/// # Errors
/// A corpus, tokenizer or training error.
pub fn bench(options: &BenchOptions, mut say: impl FnMut(&str)) -> Result<BenchReport> {
    let corpus = corpus::load_or(options.data.as_deref(), &options.remote, &mut say)?;
    let tokenizer = TextTokenizer::train(TokenizerKind::Char, &corpus.text, 0)?;
    let ids = tokenizer.as_dyn().encode(&corpus.text)?;
    let vocab = tokenizer.as_dyn().vocab_size();
    // The larger configuration is only timed; check it first so that a
    // mistake in it shows before the long run, not after.
    let large_config = large_config(options.large_iters, options.threads);
    if options.large_iters > 0 {
        large_config.validate(vocab)?;
    }
    let cpu_small = bench_cpu_small(options, vocab, &ids, &mut say)?;
    let sampling = bench_sampling(cpu_small.trainer.model(), &tokenizer, options.sample_tokens, &mut say)?;
    let large = (options.large_iters > 0).then(|| bench_large(large_config, vocab, &ids, &mut say)).transpose()?;
    let ceiling = gemm_ceiling(cpu_small.trainer.threads(), 1024);
    say(&format!(
        "the products' ceiling: {:.1} GFLOP/s ({} products of {s} x {s} matrices at once)",
        ceiling.gflops,
        ceiling.threads,
        s = ceiling.size
    ));
    // Quality figures of the offline fallback are not recorded: they would
    // read as tinyshakespeare's.
    let quality = corpus.source != corpus::Source::Embedded;
    let report = BenchReport {
        date: crate::demos::utc_date(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        cpu: crate::demos::cpu_description(),
        corpus: format!("{:?}", corpus.source),
        corpus_sha256: corpus::sha256_hex(corpus.text.as_bytes()),
        corpus_bytes: corpus.text.len(),
        config: cpu_small.trainer.config().clone(),
        threads: cpu_small.trainer.threads(),
        cpu_small: cpu_small.speed,
        evals: quality.then_some(cpu_small.evals),
        sample_tokens_per_s: sampling.tokens_per_s,
        sample_rounds: sampling.rounds,
        sample: quality.then_some(sampling.sample),
        large,
        cpu_flags: cpu_flags(),
        gemm_ceiling: ceiling,
    };
    say(&bench_summary(&report));
    if !quality {
        say("the text was the offline fallback (the book's own text): the report records speed only, no losses \
             or sample; give --data a copy of tinyshakespeare for those");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_for_the_checkpoints_to_come_is_required() {
        assert_eq!(room_problem(300, 100, 3), None);
        let problem = room_problem(299, 100, 3).unwrap();
        assert!(problem.contains("needs room for 3 at once"), "{problem}");
        // Sizes near u64::MAX do not wrap around to a small need.
        assert!(room_problem(u64::MAX - 1, u64::MAX / 2, 3).is_some());
    }
}
