//! Chapters 4 (what makes LLMs work) and 14 (the GPT architecture): the real
//! configuration's tensors, a GPT trained on this book's text while the book
//! builds, the measured cpu-small run on tinyshakespeare (`gpt.json`, written
//! by `addmul bench`) and the PyTorch reference's run of the same recipe
//! (`pytorch.json`, written by `reference/record_pytorch.py`). Both records
//! are refused unless they say they ran on tinyshakespeare with cpu-small's
//! configuration.

use std::path::Path;
use std::time::Instant;

use addmul::core::{Parameters, ParametersExt, rng};
use addmul::corpus::TINYSHAKESPEARE_SHA256;
use addmul::gpt::{Gpt, GptConfig, GptTrainConfig, GptTrainer, Observer, Sampler, SamplingConfig, StepReport};
use addmul::plot::{BarChart, LineChart, Series};
use addmul::tokenizer::{ArticleChars, Tokenizer};
use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use super::Gen;

/// Steps of the GPT trained on the book's text (chapters 4 and 14); chapter
/// 5's network is given as many training examples.
pub const BOOK_GPT_STEPS: u64 = 1500;

/// The temperature of the book GPT's sample.
const BOOK_SAMPLE_TEMPERATURE: f64 = 0.8;

/// A measured file: its name, its path and how to record it again.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// In the measured folder.
    name: &'static str,
    /// Relative to the repository root.
    file: &'static str,
    /// What to run to record it again.
    again: &'static str,
}

/// `addmul bench`'s record.
const GPT: Record = Record {
    name: "gpt.json",
    file: "book/measured/gpt.json",
    again: "`cargo run --release -- bench --data ../shared/data/tinyshakespeare.txt --out book/measured/gpt.json`",
};

/// The PyTorch reference's record.
const PYTORCH: Record =
    Record { name: "pytorch.json", file: "book/measured/pytorch.json", again: "the commands in reference/README.md" };

/// GPT-2 small as OpenAI published it (Hugging Face's `gpt2` `config.json`):
/// a vocabulary of 50,257, a context of 1024, 12 layers, 12 heads, 768
/// dimensions. Chapters 2, 4 and 13 cite its size.
pub fn gpt2_small() -> GptConfig {
    GptConfig::new(50_257, 1024, 12, 12, 768)
}

/// Training examples (next-character predictions) the book GPT sees.
pub fn book_gpt_tokens() -> usize {
    let c = GptTrainConfig::cpu_small();
    BOOK_GPT_STEPS as usize * c.batch_size * c.block_size
}

/// Collects the step losses of a run.
#[derive(Default)]
struct Steps(Vec<StepReport>);

impl Observer for Steps {
    fn step(&mut self, r: &StepReport) {
        self.0.push(*r);
    }
}

pub fn generate(g: &mut Gen) -> Result<()> {
    // The records first: a refused one fails the build before minutes of training.
    let root = crate::project_root();
    let bench = measured(g, &root)?;
    pytorch(g, &root, &bench)?;
    architecture(g)?;
    book_run(g)
}

/// Every tensor of the cpu-small model, as `transformers` names and shapes it.
fn architecture(g: &mut Gen) -> Result<()> {
    let config = GptTrainConfig::cpu_small().model_config(65);
    let model = Gpt::<f32>::new(config, &mut rng(0))?;
    let mut rows = String::from("| tensor | shape | numbers |\n|---|---|---|\n");
    let mut block = 0usize;
    model.visit(&mut |name, p| {
        let shown = !name.starts_with("transformer.h.") || name.starts_with("transformer.h.0.");
        if name.starts_with("transformer.h.0.") {
            block += p.len();
        }
        if shown {
            rows.push_str(&format!("| `{name}` | {:?} | {} |\n", p.row_major_shape(), p.len()));
        }
        if name == "transformer.h.0.mlp.c_proj.bias" {
            rows.push_str(&format!(
                "| `transformer.h.1.*` … `transformer.h.{}.*` | the same | … |\n",
                config.n_layer - 1
            ));
        }
    });
    g.text("ch14_parameters.md", &rows)?;
    g.num("ch14.cpu_small.params", model.num_params() as f64, 0);
    g.num("ch14.cpu_small.block_params", block as f64, 0);
    g.num("ch14.cpu_small.layers", config.n_layer as f64, 0);
    g.num("ch14.cpu_small.heads", config.n_head as f64, 0);
    g.num("ch14.cpu_small.embd", config.n_embd as f64, 0);
    g.num("ch14.cpu_small.block", config.block_size as f64, 0);
    g.num("ch14.cpu_small.head_dim", (config.n_embd / config.n_head) as f64, 0);
    g.num("ch14.cpu_small.inner", (4 * config.n_embd) as f64, 0);
    let train = GptTrainConfig::cpu_small();
    let tokens = train.batch_size * config.block_size;
    g.num("ch14.cpu_small.gflop_per_step", config.training_flops(tokens, config.block_size) / 1e9, 2);
    g.num("ch14.cpu_small.batch", train.batch_size as f64, 0);
    g.num("ch14.cpu_small.max_iters", train.max_iters as f64, 0);
    g.num("ch14.cpu_small.warmup", train.warmup_iters as f64, 0);
    g.values.set("ch14.cpu_small.grad_clip", train.grad_clip);
    let gpt2 = gpt2_small();
    g.num("ch04.gpt2.million_params", gpt2.num_params() as f64 / 1e6, 0);
    g.num("ch13.gpt2.context", gpt2.block_size as f64, 0);
    Ok(())
}

/// A cpu-small GPT trained for a few hundred steps on the book's own prose,
/// in the article's alphabet, so that chapter 4 can compare it with the
/// 12-character network of chapter 5 on the same text.
fn book_run(g: &mut Gen) -> Result<()> {
    let (text, _) = ArticleChars::normalize(addmul::corpus::book_text());
    let ids = ArticleChars.encode(&text)?;
    let config = GptTrainConfig {
        max_iters: BOOK_GPT_STEPS,
        eval_interval: 250,
        eval_iters: 10,
        checkpoint_interval: 0,
        ..GptTrainConfig::cpu_small()
    };
    let mut trainer = GptTrainer::new(config.clone(), ArticleChars::VOCAB_SIZE, &ids).context("the book's text")?;
    let start = Instant::now();
    let mut steps = Steps::default();
    trainer.run(&mut steps, None)?;
    let seconds = start.elapsed().as_secs_f64();
    let evals = trainer.evals();
    let last = evals.last().context("evaluated")?;
    g.num("ch04.gpt.steps", config.max_iters as f64, 0);
    g.num("ch04.gpt.val_loss", last.val_loss, 2);
    g.num("ch04.gpt.start_val_loss", evals[0].val_loss, 2);
    g.num("ch04.gpt.params", trainer.model().num_params() as f64, 0);
    g.num("ch04.gpt.minutes", seconds / 60.0, 1);
    g.num("ch04.gpt.tokens_seen", book_gpt_tokens() as f64, 0);
    g.num("ch04.gpt.chars", ids.len() as f64, 0);
    LineChart::new("A GPT learning this book's text", "step", "cross-entropy (nats per character)")
        .series(Series::new("training batches", steps.0.iter().map(|s| (s.step as f64, s.loss)).collect()))
        .series(Series::new("validation", evals.iter().map(|e| (e.step as f64, e.val_loss)).collect()))
        .save(g.figure("ch14_book_training.svg"))?;
    let prompt = ArticleChars.encode("the model ")?;
    let mut sampler = Sampler::new(
        trainer.model(),
        &prompt,
        SamplingConfig { temperature: BOOK_SAMPLE_TEMPERATURE, seed: 1, ..SamplingConfig::default() },
    )?;
    g.num("ch14.book.temperature", BOOK_SAMPLE_TEMPERATURE, 1);
    let sample: Vec<u32> = (0..400).map(|_| sampler.next_token()).collect::<Result<_, _>>()?;
    g.text("ch14_book_sample.txt", &format!("the model {}", ArticleChars.decode(&sample)?))?;
    g.book_gpt = Some(trainer.model().clone());
    // Chapter 4: both models on the same text, by training examples seen.
    let per_step = (config.batch_size * config.block_size) as f64;
    LineChart::new(
        "Two models learning this book's text",
        "training examples seen",
        "validation loss (nats per character)",
    )
    .series(Series::new("the 12-character network (chapters 3 and 5)", g.book_mlp_curve.clone()))
    .series(Series::new(
        "the GPT (cpu-small, chapter 14)",
        evals.iter().filter(|e| e.step > 0).map(|e| (e.step as f64 * per_step, e.val_loss)).collect(),
    ))
    .save(g.figure("ch04_two_models.svg"))?;
    next_character(g, trainer.model())
}

/// Chapter 4: both models asked for the next character all along the
/// held-out tenth of the book, and the place where they disagree most.
fn next_character(g: &mut Gen, gpt: &Gpt<f32>) -> Result<()> {
    let mlp = g.book_mlp.clone().context("chapter 5's generator trains the 12-character network first")?;
    let (text, _) = ArticleChars::normalize(addmul::corpus::book_text());
    let ids = ArticleChars.encode(&text)?;
    let held = &ids[ids.len() - ids.len() / 10..];
    let block = gpt.config().block_size;
    let softmax_of = |column: Vec<f32>| -> Vec<f64> {
        let m = addmul::core::Matrix::from_iterator(column.len(), 1, column.into_iter().map(f64::from));
        addmul::softmax::softmax(&m).iter().copied().collect()
    };
    // Windows of a whole block, side by side; the second half of each is
    // scored (every scored character has at least half a block before it).
    let (mut gpt_better, mut scored) = (0usize, 0usize);
    let (mut nll_gpt, mut nll_mlp) = (0.0f64, 0.0f64);
    let mut widest: Option<(usize, f64, f64)> = None; // (position in held, p_mlp, p_gpt)
    for start in (0..held.len().saturating_sub(block + 1)).step_by(block) {
        let window = &held[start..start + block];
        let logits = gpt.logits(window, block)?;
        for t in block / 2..block {
            let answer = held[start + t + 1] as usize;
            let p_gpt = softmax_of(logits.column(t).iter().copied().collect())[answer];
            let prefix = ArticleChars.decode(&held[start..=start + t])?;
            let from_mlp = mlp.probabilities(&prefix)?;
            let answer_char = ArticleChars::char(answer as u32).context("a character")?;
            let p_mlp = from_mlp.iter().find(|x| x.0 == answer_char).map_or(0.0, |x| x.1);
            scored += 1;
            gpt_better += usize::from(p_gpt > p_mlp);
            (nll_gpt, nll_mlp) = (nll_gpt - p_gpt.ln(), nll_mlp - p_mlp.max(1e-300).ln());
            if widest.is_none_or(|(_, m, g)| p_gpt - p_mlp > g - m) {
                widest = Some((start + t, p_mlp, p_gpt));
            }
        }
    }
    let (at, _, _) = widest.context("scored the held-out text")?;
    let (nll_gpt, nll_mlp) = (nll_gpt / scored as f64, nll_mlp / scored as f64);
    // The prose: the GPT wins on fewer than half of the characters yet loses
    // less on average, so its wins are the larger.
    ensure!(
        2 * gpt_better < scored && nll_gpt < nll_mlp,
        "chapter 4's comparison changed: the GPT better at {gpt_better} of {scored}, mean losses {nll_gpt} vs {nll_mlp}"
    );
    g.num("ch04.next.nll_gpt", nll_gpt, 2);
    g.num("ch04.next.nll_mlp", nll_mlp, 2);
    let from = at + 1 - block / 2;
    let prompt = ArticleChars.decode(&held[from..=at])?;
    let answer = ArticleChars::char(held[at + 1]).context("a character")?;
    let from_mlp: Vec<(char, f64)> = mlp.probabilities(&ArticleChars.decode(&held[at + 1 - block..=at])?)?;
    let context_ids = &held[at + 1 - block..=at];
    let logits = gpt.logits(context_ids, context_ids.len())?;
    let p = softmax_of(logits.column(context_ids.len() - 1).iter().copied().collect());
    let from_gpt: Vec<(char, f64)> =
        p.iter().enumerate().filter_map(|(id, &p)| Some((ArticleChars::char(id as u32)?, p))).collect();
    let p_of = |list: &[(char, f64)], c: char| list.iter().find(|x| x.0 == c).map_or(0.0, |x| x.1);
    // The four likeliest characters of either model, and the right one.
    let mut chars: Vec<char> = vec![answer];
    for list in [&from_mlp, &from_gpt] {
        let mut ranked = list.clone();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        chars.extend(ranked.iter().take(4).map(|x| x.0).filter(|c| !chars.contains(c)).collect::<Vec<_>>());
    }
    let shown = |c: &char| if *c == ' ' { "space".to_string() } else { c.to_string() };
    BarChart::new(
        "The next character, by both models",
        "next character",
        "probability",
        chars.iter().map(shown).collect(),
    )
    .group("the 12-character network", chars.iter().map(|&c| p_of(&from_mlp, c)).collect())
    .group("the GPT", chars.iter().map(|&c| p_of(&from_gpt, c)).collect())
    .save(g.figure("ch04_next_character.svg"))?;
    let answer = shown(&answer);
    g.values.set("ch04.next.scored", super::thousands(scored as u64));
    g.percent("ch04.next.gpt_better", gpt_better as f64 / scored as f64);
    g.num("ch04.next.context", (block / 2) as f64, 0);
    // Shown as one line, runs of spaces and line breaks as one space.
    g.values.set("ch04.next.prompt", format!("…{}", prompt.split_whitespace().collect::<Vec<_>>().join(" ")));
    g.values.set("ch04.next.answer", answer.clone());
    let answer_char = if answer == "space" { ' ' } else { answer.chars().next().context("a character")? };
    g.percent("ch04.next.mlp", p_of(&from_mlp, answer_char));
    g.percent("ch04.next.gpt", p_of(&from_gpt, answer_char));
    Ok(())
}

/// Reads a measured file as JSON.
fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The numbers `addmul bench` measured on tinyshakespeare
/// (`book/measured/gpt.json`, written by that command), once
/// [`check_gpt_record`] accepts the record; returns its configuration.
fn measured(g: &mut Gen, root: &Path) -> Result<GptTrainConfig> {
    let path = crate::measured::measured_path(root, GPT.name);
    let v = read_json(&path)?;
    let config = check_gpt_record(&v).with_context(|| format!("refusing {}", path.display()))?;
    let num = |p: &str| v.pointer(p).and_then(Value::as_f64).with_context(|| format!("{p} in {}", path.display()));
    g.num("ch14.bench.median_ms", num("/cpu_small/median_ms")?, 1);
    g.num("ch14.bench.tokens_per_s", num("/cpu_small/tokens_per_s")?, 0);
    g.num("ch14.bench.gflops", num("/cpu_small/gflops")?, 1);
    g.num("ch14.bench.sample_tokens_per_s", num("/sample_tokens_per_s")?, 0);
    g.num("ch14.bench.large_ms", num("/large/median_ms")?, 0);
    g.num("ch14.bench.large_tokens_per_s", num("/large/tokens_per_s")?, 0);
    g.num("ch14.bench.large_gflops", num("/large/gflops")?, 1);
    let text = |p: &str| v.pointer(p).and_then(Value::as_str).with_context(|| format!("{p} in {}", path.display()));
    g.values.set("ch14.bench.large_name", text("/large/name")?);
    g.values.set("ch14.bench.cpu", text("/cpu")?);
    let evals = evals(&v).with_context(|| format!("the evaluations in {}", path.display()))?;
    let &(last_step, last_loss) = evals.last().context("at least one evaluation")?;
    g.num("ch14.bench.val_loss", last_loss, 3);
    g.num("ch14.bench.steps", last_step as f64, 0);
    LineChart::new("cpu-small on tinyshakespeare (measured by addmul bench)", "step", "validation loss")
        .series(Series::new("validation", evals.iter().map(|&(s, l)| (s as f64, l)).collect()))
        .save(g.figure("ch14_shakespeare_validation.svg"))?;
    g.text("ch14_shakespeare_sample.txt", text("/sample")?)?;
    g.values.set("ch14.bench.date", text("/date")?);
    Ok(config)
}

/// `(step, validation loss)` of every evaluation in a record's `evals`.
fn evals(v: &Value) -> Result<Vec<(u64, f64)>> {
    let evals = v.get("evals").and_then(Value::as_array).context("`evals` is missing or not a list")?;
    evals
        .iter()
        .map(|e| {
            let step = e.get("step").and_then(Value::as_u64).context("an evaluation without a `step`")?;
            let loss = e.get("val_loss").and_then(Value::as_f64).context("an evaluation without a `val_loss`")?;
            Ok((step, loss))
        })
        .collect()
}

/// A string field of a record, or an error naming it.
fn text_field<'a>(v: &'a Value, field: &str, record: Record) -> Result<&'a str> {
    v.get(field).and_then(Value::as_str).with_context(|| {
        format!(
            "{} has no `{field}` (text): it was recorded before its provenance was; record it again with {}",
            record.file, record.again
        )
    })
}

/// Checks that a record's text is tinyshakespeare.
fn check_corpus(v: &Value, record: Record) -> Result<()> {
    let file = record.file;
    let hash = text_field(v, "corpus_sha256", record)?;
    if hash != TINYSHAKESPEARE_SHA256 {
        bail!(
            "{file}: `corpus_sha256` is {hash}, not tinyshakespeare's {TINYSHAKESPEARE_SHA256}: chapter 14 \
             describes a run on tinyshakespeare (an offline fallback or another --data does not count)"
        );
    }
    if v.get("corpus_bytes").and_then(Value::as_u64).is_none() {
        bail!("{file} has no `corpus_bytes` (a number): record it again with {}", record.again);
    }
    Ok(())
}

/// Checks `addmul bench`'s record: it names its CPU, its text is
/// tinyshakespeare, and its `config` is cpu-small's except for the steps
/// (`max_iters`, which must be the last evaluation's step: the one chapter
/// 14 cites), the warmup and the threads. Returns the configuration.
fn check_gpt_record(v: &Value) -> Result<GptTrainConfig> {
    const FILE: &str = GPT.file;
    text_field(v, "cpu", GPT)?;
    check_corpus(v, GPT)?;
    let recorded = v.get("config").with_context(|| {
        format!(
            "{FILE} has no `config` (cpu-small's GptTrainConfig as addmul bench ran it): record it again with {}",
            GPT.again
        )
    })?;
    let config: GptTrainConfig = serde_json::from_value(recorded.clone())
        .with_context(|| format!("{FILE}: `config` is not a GptTrainConfig"))?;
    let expected = GptTrainConfig {
        max_iters: config.max_iters,
        threads: config.threads,
        warmup_iters: config.warmup_iters,
        ..GptTrainConfig::cpu_small()
    };
    let differences = config_differences(recorded, &serde_json::to_value(&expected)?);
    if !differences.is_empty() {
        bail!(
            "{FILE}: `config` differs from GptTrainConfig::cpu_small(), which chapter 14 describes, in {}",
            differences.join(", ")
        );
    }
    let last = evals(v).with_context(|| format!("{FILE}: `evals`"))?.last().map(|&(step, _)| step);
    if last != Some(config.max_iters) {
        let last = last.map_or_else(|| "nowhere (there is none)".to_string(), |s| format!("at step {s}"));
        bail!(
            "{FILE}: `config.max_iters` is {} but the last evaluation is {last}; chapter 14 cites the loss after \
             max_iters steps",
            config.max_iters
        );
    }
    Ok(config)
}

/// The fields in which two configurations (JSON objects) differ, as
/// `name (recorded R, expected E)`; a field missing from either counts.
pub(super) fn config_differences(recorded: &Value, expected: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (r, e) = (recorded.as_object().unwrap_or(&empty), expected.as_object().unwrap_or(&empty));
    let mut keys: Vec<&String> = r.keys().chain(e.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| r.get(*k) != e.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| v.map_or_else(|| "nothing".to_string(), Value::to_string);
            format!("`{k}` (recorded {}, expected {})", show(r.get(k)), show(e.get(k)))
        })
        .collect()
}

/// The PyTorch reference's run of the same recipe
/// (`book/measured/pytorch.json`), once [`check_pytorch_record`] accepts it.
fn pytorch(g: &mut Gen, root: &Path, bench: &GptTrainConfig) -> Result<()> {
    let path = crate::measured::measured_path(root, PYTORCH.name);
    let v = read_json(&path)?;
    check_pytorch_record(&v, bench).with_context(|| format!("refusing {}", path.display()))?;
    let evals = evals(&v)?;
    let &(_, loss) = evals.last().context("at least one evaluation")?;
    g.num("ch14.pytorch.val_loss", loss, 3);
    for (key, field) in [("date", "date"), ("torch", "torch_version"), ("cpu", "cpu")] {
        g.values.set(&format!("ch14.pytorch.{key}"), text_field(&v, field, PYTORCH)?);
    }
    g.values.set("ch14.pytorch.gelu", v.pointer("/config/gelu").and_then(Value::as_str).unwrap_or("unknown"));
    Ok(())
}

/// Checks the PyTorch record: it names its CPU and torch's version, ran on
/// tinyshakespeare to the end, and its recipe is cpu-small's with the steps
/// of `bench` (so that chapter 14 compares like with like). Its seed drives
/// PyTorch's generator, not addmul's, and its GELU form is cited with it.
fn check_pytorch_record(v: &Value, bench: &GptTrainConfig) -> Result<()> {
    const FILE: &str = PYTORCH.file;
    text_field(v, "cpu", PYTORCH)?;
    text_field(v, "torch_version", PYTORCH)?;
    text_field(v, "command", PYTORCH)?;
    check_corpus(v, PYTORCH)?;
    let c = GptTrainConfig { max_iters: bench.max_iters, ..GptTrainConfig::cpu_small() };
    let decay = c.lr_decay_iters.unwrap_or(0);
    let expected = serde_json::json!({
        "block_size": c.block_size, "batch_size": c.batch_size, "n_layer": c.n_layer, "n_head": c.n_head,
        "n_embd": c.n_embd, "max_iters": c.max_iters, "lr": c.lr, "min_lr": c.min_lr,
        "warmup_iters": c.warmup_iters, "lr_decay_iters": decay, "beta1": c.beta1, "beta2": c.beta2,
        "weight_decay": c.weight_decay, "grad_clip": c.grad_clip, "eval_iters": c.eval_iters,
    });
    let recorded = v.get("config").with_context(|| format!("{FILE} has no `config`"))?;
    let compared: serde_json::Map<String, Value> = recorded
        .as_object()
        .with_context(|| format!("{FILE}: `config` is not an object"))?
        .iter()
        .filter(|(k, _)| expected.get(k.as_str()).is_some())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let differences = config_differences(&Value::Object(compared), &expected);
    if !differences.is_empty() {
        bail!("{FILE}: the recipe differs from cpu-small's in {}", differences.join(", "));
    }
    let iters = v.get("iters_run").and_then(Value::as_u64);
    if iters != Some(c.max_iters) || v.get("stopped_early") != Some(&Value::Bool(false)) {
        bail!("{FILE}: the run stopped after {iters:?} of {} steps", c.max_iters);
    }
    if evals(v)?.last().map(|&(step, _)| step) != Some(c.max_iters) {
        bail!("{FILE}: the last evaluation is not at step {}", c.max_iters);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gpt.json as `addmul bench` writes it, with the fields the check reads.
    fn gpt_record() -> Value {
        let config = GptTrainConfig { threads: 2, ..GptTrainConfig::cpu_small() };
        serde_json::json!({
            "cpu": "AMD EPYC, 2 cores",
            "corpus_sha256": TINYSHAKESPEARE_SHA256,
            "corpus_bytes": 1_115_394,
            "config": config,
            "evals": [{ "step": 0, "val_loss": 4.2 }, { "step": config.max_iters, "val_loss": 1.88 }],
        })
    }

    fn error(result: Result<impl std::fmt::Debug>) -> String {
        format!("{:#}", result.unwrap_err())
    }

    #[test]
    fn a_cpu_small_record_on_tinyshakespeare_is_accepted() {
        let config = check_gpt_record(&gpt_record()).unwrap();
        assert_eq!(config.threads, 2);
        // Fewer steps, with the last evaluation there, are fine too.
        let mut v = gpt_record();
        v["config"]["max_iters"] = 500.into();
        v["config"]["warmup_iters"] = 10.into();
        v["evals"][1]["step"] = 500.into();
        check_gpt_record(&v).unwrap();
    }

    #[test]
    fn another_corpus_or_none_is_refused() {
        let mut v = gpt_record();
        v["corpus_sha256"] = "00ff".into();
        assert!(error(check_gpt_record(&v)).contains("`corpus_sha256` is 00ff, not tinyshakespeare's"));
        v.as_object_mut().unwrap().remove("corpus_sha256");
        let err = error(check_gpt_record(&v));
        assert!(err.contains("book/measured/gpt.json has no `corpus_sha256`"), "{err}");
    }

    #[test]
    fn another_configuration_or_none_is_refused() {
        let mut v = gpt_record();
        v["config"]["n_embd"] = 64.into();
        let err = error(check_gpt_record(&v));
        assert!(err.contains("`n_embd` (recorded 64, expected 128)"), "{err}");
        v["config"] = serde_json::json!({ "n_layer": 4 });
        let err = error(check_gpt_record(&v));
        assert!(err.contains("`n_head` (recorded nothing, expected 4)"), "{err}");
        v.as_object_mut().unwrap().remove("config");
        assert!(error(check_gpt_record(&v)).contains("has no `config`"));
        let mut v = gpt_record();
        v["config"]["max_iters"] = 3000.into();
        assert!(error(check_gpt_record(&v)).contains("the last evaluation is at step 2000"));
        let mut v = gpt_record();
        v.as_object_mut().unwrap().remove("cpu");
        assert!(error(check_gpt_record(&v)).contains("has no `cpu`"));
    }

    fn pytorch_record() -> Value {
        let c = GptTrainConfig::cpu_small();
        serde_json::json!({
            "cpu": "AMD EPYC, 2 cores", "torch_version": "2.15.0", "command": "python reference/torch_gpt.py train",
            "corpus_sha256": TINYSHAKESPEARE_SHA256, "corpus_bytes": 1_115_394,
            "config": {
                "block_size": 64, "batch_size": 12, "n_layer": 4, "n_head": 4, "n_embd": 128, "gelu": "erf",
                "max_iters": c.max_iters, "lr": 0.001, "min_lr": 0.0001, "warmup_iters": 100, "lr_decay_iters": 0,
                "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.1, "grad_clip": 1.0, "eval_iters": 20, "seed": 7,
            },
            "iters_run": c.max_iters, "stopped_early": false,
            "evals": [{ "step": c.max_iters, "val_loss": 1.896 }],
        })
    }

    #[test]
    fn the_pytorch_record_must_follow_the_recipe_to_the_end() {
        let bench = GptTrainConfig::cpu_small();
        check_pytorch_record(&pytorch_record(), &bench).unwrap();
        let mut v = pytorch_record();
        v["config"]["lr"] = 0.002.into();
        assert!(error(check_pytorch_record(&v, &bench)).contains("`lr` (recorded 0.002, expected 0.001)"));
        let mut v = pytorch_record();
        v["stopped_early"] = true.into();
        assert!(error(check_pytorch_record(&v, &bench)).contains("the run stopped"));
        let shorter = GptTrainConfig { max_iters: 500, ..bench };
        assert!(error(check_pytorch_record(&pytorch_record(), &shorter)).contains("`max_iters`"));
    }
}
