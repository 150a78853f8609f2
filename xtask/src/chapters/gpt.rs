//! Chapters 4 (what makes LLMs work) and 14 (the GPT architecture): the real
//! configuration's tensors, a GPT trained on this book's text while the book
//! builds, and the measured cpu-small run on tinyshakespeare.

use std::time::Instant;

use addmul::core::{Parameters, ParametersExt, rng};
use addmul::gpt::{Gpt, GptTrainConfig, GptTrainer, Observer, Sampler, SamplingConfig, StepReport};
use addmul::plot::{LineChart, Series};
use addmul::tokenizer::{ArticleChars, Tokenizer};
use anyhow::{Context, Result};

use super::Gen;

/// Steps of the GPT trained on the book's text (chapters 4 and 14); chapter
/// 5's network is given as many training examples.
pub const BOOK_GPT_STEPS: u64 = 1500;

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
    architecture(g)?;
    book_run(g)?;
    measured(g)
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
    let tokens = 12 * config.block_size;
    g.num("ch14.cpu_small.gflop_per_step", config.training_flops(tokens, config.block_size) / 1e9, 2);
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
        SamplingConfig { temperature: 0.8, seed: 1, ..SamplingConfig::default() },
    )?;
    let sample: Vec<u32> = (0..400).map(|_| sampler.next_token()).collect::<Result<_, _>>()?;
    g.text("ch14_book_sample.txt", &format!("the model {}", ArticleChars.decode(&sample)?))?;
    Ok(())
}

/// The numbers `addmul bench` measured on tinyshakespeare
/// (`book/measured/gpt.json`, written by that command).
fn measured(g: &mut Gen) -> Result<()> {
    let path = g.dir.join("../../measured/gpt.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let num = |p: &str| {
        v.pointer(p).and_then(serde_json::Value::as_f64).with_context(|| format!("{p} in {}", path.display()))
    };
    g.num("ch14.bench.median_ms", num("/cpu_small/median_ms")?, 1);
    g.num("ch14.bench.tokens_per_s", num("/cpu_small/tokens_per_s")?, 0);
    g.num("ch14.bench.gflops", num("/cpu_small/gflops")?, 1);
    g.num("ch14.bench.sample_tokens_per_s", num("/sample_tokens_per_s")?, 0);
    g.num("ch14.bench.large_ms", num("/large/median_ms")?, 0);
    g.num("ch14.bench.large_tokens_per_s", num("/large/tokens_per_s")?, 0);
    g.num("ch14.bench.large_gflops", num("/large/gflops")?, 1);
    let evals = v.pointer("/evals").and_then(|e| e.as_array()).context("evals")?;
    let val = |e: &serde_json::Value| e.get("val_loss").and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
    let step = |e: &serde_json::Value| e.get("step").and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
    let last = evals.last().context("at least one evaluation")?;
    g.num("ch14.bench.val_loss", val(last), 3);
    g.num("ch14.bench.steps", step(last), 0);
    LineChart::new("cpu-small on tinyshakespeare (measured by addmul bench)", "step", "validation loss")
        .series(Series::new("validation", evals.iter().map(|e| (step(e), val(e))).collect()))
        .save(g.figure("ch14_shakespeare_validation.svg"))?;
    let sample = v.pointer("/sample").and_then(|s| s.as_str()).unwrap_or("");
    g.text("ch14_shakespeare_sample.txt", sample)?;
    g.values.set("ch14.bench.date", v.pointer("/date").and_then(|d| d.as_str()).unwrap_or("unknown"));
    Ok(())
}
