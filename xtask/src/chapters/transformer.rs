//! Chapter 15: the encoder-decoder Transformer.
//!
//! The copy task is trained here, in a few seconds. The number-translation
//! model takes about a minute on two cores and its GPT contrast a minute and
//! a half, too long for every book build: their measurements come from
//! `book/measured/transformer_numbers.json`, written by
//! `cargo run --release --example transformer_numbers -- --threads 2 --json book/measured/transformer_numbers.json`
//! (the file records the command, the date, the CPU, the configuration and
//! the SHA-256 of the data), and the cross-attention figure is drawn from the
//! weights recorded there. The record is refused unless its configuration
//! and data are what the example would use now.

use addmul::core::Matrix;
use addmul::demos::{CopyOptions, NumbersOptions, copy_task, numbers_config, numbers_data_sha256};
use addmul::plot::{Heatmap, LineChart, Series};
use addmul::train::Schedule;
use addmul::transformer::tasks::{copy, numbers};
use addmul::transformer::{BeamConfig, Side, TransformerConfig, TransformerTrainConfig, length_penalty};
use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{Gen, thousands};

/// Where the measured run is kept, relative to the repository root.
const MEASURED: &str = "book/measured/transformer_numbers.json";

pub fn generate(g: &mut Gen) -> Result<()> {
    recipe(g)?;
    number_words(g)?;
    copy_task_run(g)?;
    measured(g)
}

fn rows_of(m: &Matrix<f32>) -> Vec<Vec<f64>> {
    (0..m.nrows()).map(|i| m.row(i).iter().map(|&v| f64::from(v)).collect()).collect()
}

fn recipe(g: &mut Gen) -> Result<()> {
    let vocab = 37_000;
    let base = TransformerConfig::base(vocab, vocab);
    g.values.set("ch15.base.params", thousands(base.num_params() as u64));
    g.values.set("ch15.base.vocab", thousands(vocab as u64));
    g.num("ch15.base.d_model", base.d_model as f64, 0);
    g.num("ch15.base.layers", base.n_encoder_layers as f64, 0);
    let paper = TransformerTrainConfig::paper();
    let schedule = paper.schedule(base.d_model);
    g.values.set("ch15.schedule.paper_peak", format!("{:.1e}", schedule.lr(paper.warmup - 1)));
    g.num("ch15.schedule.paper_warmup", paper.warmup as f64, 0);
    let ours = NumbersOptions::default();
    let numbers_schedule =
        Schedule::InverseSqrt { d_model: ours.size.d_model, warmup: ours.warmup, factor: ours.lr_factor };
    g.values.set("ch15.schedule.numbers_peak", format!("{:.1e}", numbers_schedule.lr(ours.warmup - 1)));
    g.num("ch15.schedule.numbers_warmup", ours.warmup as f64, 0);
    g.num("ch15.schedule.numbers_factor", ours.lr_factor, 1);
    g.values.set("ch15.schedule.numbers_last", format!("{:.1e}", numbers_schedule.lr(ours.steps - 1)));
    let curve = (0..ours.steps).step_by(10).map(|s| (s as f64, 1e3 * numbers_schedule.lr(s))).collect();
    LineChart::new("The paper's learning-rate schedule (number-words model)", "step", "learning rate (x 1e-3)")
        .series(Series::new(
            format!("d_model {}, warmup {}, factor {}", ours.size.d_model, ours.warmup, ours.lr_factor),
            curve,
        ))
        .save(g.figure("ch15_schedule.svg"))?;
    // Label smoothing: the best the model can do is put 1 - ε + ε/V on the
    // right token, so the cross-entropy cannot fall below -log of that.
    let v = numbers::german_vocabulary()?.len() as f64;
    let eps = ours.label_smoothing;
    g.num("ch15.smoothing.eps", eps, 1);
    g.num("ch15.smoothing.vocab", v, 0);
    g.num("ch15.smoothing.best_p", 1.0 - eps + eps / v, 4);
    g.num("ch15.smoothing.floor", -(1.0 - eps + eps / v).ln(), 3);
    let alpha = BeamConfig::PAPER.length_penalty;
    g.num("ch15.beam.alpha", alpha, 1);
    g.num("ch15.beam.width", BeamConfig::PAPER.width as f64, 0);
    g.num("ch15.beam.penalty_3", length_penalty(3, alpha), 3);
    g.num("ch15.beam.penalty_12", length_penalty(12, alpha), 3);
    Ok(())
}

fn number_words(g: &mut Gen) -> Result<()> {
    let mut table =
        String::from("| number | English | German | German pieces (the model's tokens) |\n|---:|---|---|---|\n");
    for n in [1, 21, 100, 101, 1001, 16_017, 21_354, 101_000, 777_777] {
        table += &format!(
            "| {} | {} | {} | `{}` |\n",
            thousands(u64::from(n)),
            numbers::english(n)?,
            numbers::german(n)?,
            numbers::german_tokens(n)?.join(" ")
        );
    }
    g.text("ch15_number_words.md", &table)?;
    g.num("ch15.vocab.english", numbers::english_vocabulary()?.len() as f64, 0);
    g.num("ch15.vocab.german", numbers::german_vocabulary()?.len() as f64, 0);
    g.values.set("ch15.numbers.max", thousands(u64::from(numbers::LIMIT - 1)));
    Ok(())
}

fn copy_task_run(g: &mut Gen) -> Result<()> {
    let options = CopyOptions { threads: 2, progress_every: 0, ..CopyOptions::default() };
    let run = copy_task(&options, &mut std::io::sink())?;
    g.num("ch15.copy.d_model", options.size.d_model as f64, 0);
    g.num("ch15.copy.layers", options.size.layers as f64, 0);
    g.num("ch15.copy.heads", options.size.n_head as f64, 0);
    g.values.set("ch15.copy.params", thousands(run.params as u64));
    g.num("ch15.copy.steps", options.steps as f64, 0);
    g.num("ch15.copy.batch", options.batch_size as f64, 0);
    g.num("ch15.copy.min_len", options.min_len as f64, 0);
    g.num("ch15.copy.max_len", options.max_len as f64, 0);
    g.num("ch15.copy.symbols", f64::from(copy::SYMBOLS), 0);
    g.num("ch15.copy.held_out", run.held_out as f64, 0);
    g.percent("ch15.copy.accuracy", run.correct as f64 / run.held_out as f64);
    let window = 100;
    let last: Vec<f64> = run.curve.iter().rev().take(window).map(|&(_, l)| l).collect();
    g.num("ch15.copy.window", window as f64, 0);
    g.num("ch15.copy.final_nll", last.iter().sum::<f64>() / last.len() as f64, 3);
    let vocab = copy::vocabulary(Side::Target)?;
    let (eps, v) = (TransformerTrainConfig::paper().label_smoothing, vocab.len() as f64);
    g.num("ch15.copy.vocab", v, 0);
    g.num("ch15.copy.floor", -(1.0 - eps + eps / v).ln(), 3);
    let (source, output) = &run.example;
    g.values.set("ch15.copy.example_in", vocab.tokens(source).join(" "));
    g.values.set("ch15.copy.example_out", vocab.tokens(output).join(" "));
    let curve = run.curve.iter().map(|&(s, l)| (s as f64, l)).collect();
    LineChart::new("Copy task: cross-entropy of each training batch", "step", "cross-entropy per target token")
        .series(Series::new("training batch (fresh random sequences every step)", curve))
        .save(g.figure("ch15_copy_loss.svg"))?;
    // The copy model's cross-attention is a diagonal: position t reads source token t.
    let maps = run.model.cross_attention(source, output)?;
    let last_layer = maps.last().context("the model has decoder layers")?;
    let mut mean = last_layer[0].clone();
    for w in &last_layer[1..] {
        mean += w;
    }
    mean /= last_layer.len() as f32;
    let mut rows_labels: Vec<String> = vocab.tokens(output).iter().map(|t| t.to_string()).collect();
    rows_labels.push("</s>".into());
    let cols_labels: Vec<String> = vocab.tokens(source).iter().map(|t| t.to_string()).collect();
    Heatmap::new("Copy task: cross-attention of the last decoder layer", rows_of(&mean.transpose()))
        .labels(rows_labels, cols_labels)
        .axes("source token", "token written")
        .range(0.0, 1.0)
        .annotate()
        .save(g.figure("ch15_copy_attention.svg"))?;
    Ok(())
}

fn field<'a>(v: &'a Value, path: &str) -> Result<&'a Value> {
    path.split('.').try_fold(v, |v, key| v.get(key).with_context(|| format!("{MEASURED}: missing `{path}`")))
}

fn number(v: &Value, path: &str) -> Result<f64> {
    field(v, path)?.as_f64().with_context(|| format!("{MEASURED}: `{path}` is not a number"))
}

fn strings(v: &Value, path: &str) -> Result<Vec<String>> {
    let items = field(v, path)?.as_array().with_context(|| format!("{MEASURED}: `{path}` is not a list"))?;
    Ok(items.iter().map(|s| s.as_str().unwrap_or("?").to_string()).collect())
}

/// Checks that the record was made with the configuration and data the
/// example uses now (its defaults; the threads may differ).
fn check_record(record: &Value, expected_config: &Value, expected_data: &str) -> Result<()> {
    let rerun = "run it again: cargo run --release --example transformer_numbers -- --threads 2 --json \
                 book/measured/transformer_numbers.json";
    let config = record.get("config").with_context(|| format!("{MEASURED} records no `config`; {rerun}"))?;
    if config != expected_config {
        let differences = super::gpt::config_differences(config, expected_config);
        bail!(
            "{MEASURED} was measured with another configuration than the example's ({}); {rerun}",
            differences.join(", ")
        );
    }
    let data = field(record, "report.data_sha256")?.as_str().context("`report.data_sha256` is not text")?;
    if data != expected_data {
        bail!(
            "{MEASURED} was trained on other data (SHA-256 {data}) than the example draws now ({expected_data}); {rerun}"
        );
    }
    Ok(())
}

fn measured(g: &mut Gen) -> Result<()> {
    let path = crate::measured::measured_path(&crate::project_root(), "transformer_numbers.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let record: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let defaults = NumbersOptions::default();
    check_record(&record, &numbers_config(&defaults)?, &numbers_data_sha256(&defaults)?)?;
    for key in ["command", "date", "cpu"] {
        let value = field(&record, key)?.as_str().with_context(|| format!("{MEASURED}: `{key}` is not text"))?;
        g.values.set(&format!("ch15.measured.{key}"), value);
    }
    let r = field(&record, "report")?;
    g.num("ch15.measured.cpus", number(&record, "cpus")?, 0);
    g.num("ch15.measured.load", number(&record, "load_average")?, 1);
    g.num("ch15.measured.threads", number(r, "threads")?, 0);
    for key in ["d_model", "n_head", "d_ff", "layers"] {
        g.num(&format!("ch15.numbers.{key}"), number(r, &format!("size.{key}"))?, 0);
    }
    g.values.set("ch15.numbers.params", thousands(number(r, "params")? as u64));
    g.values.set("ch15.numbers.steps", thousands(number(r, "steps")? as u64));
    g.num("ch15.numbers.batch", number(r, "batch_size")?, 0);
    g.values.set("ch15.numbers.distinct", thousands(number(r, "distinct_train_numbers")? as u64));
    g.num("ch15.numbers.train_seconds", number(r, "train_seconds")?, 0);
    g.num("ch15.numbers.train_tflop", number(r, "train_flops")? / 1e12, 1);
    let test = number(r, "test_size")?;
    g.values.set("ch15.numbers.test_size", thousands(test as u64));
    // Two decimals: 1,999 of 2,000 is 99.95%, not "100.0%".
    let percent = |k: f64| format!("{:.2}%", 100.0 * k / test);
    g.values.set("ch15.numbers.greedy", percent(number(r, "greedy_correct")?));
    g.values.set("ch15.numbers.beam", percent(number(r, "beam_correct")?));
    g.num("ch15.numbers.greedy_seconds", number(r, "greedy_seconds")?, 1);
    g.num("ch15.numbers.beam_seconds", number(r, "beam_seconds")?, 1);
    let gpt = field(r, "gpt")?;
    g.num("ch15.gpt.layers", number(gpt, "n_layer")?, 0);
    g.values.set("ch15.gpt.params", thousands(number(gpt, "params")? as u64));
    g.num("ch15.gpt.train_seconds", number(gpt, "train_seconds")?, 0);
    g.num("ch15.gpt.train_tflop", number(gpt, "train_flops")? / 1e12, 1);
    let gpt_correct = number(gpt, "correct")?;
    g.values.set("ch15.gpt.accuracy", percent(gpt_correct));
    g.num("ch15.gpt.wrong", test - gpt_correct, 0);
    g.num("ch15.gpt.flop_ratio", number(gpt, "train_flops")? / number(r, "train_flops")?, 2);

    // The cross-attention figure of the measured model.
    let n = number(r, "attention.number")? as u32;
    let source = strings(r, "attention.source")?;
    let target = strings(r, "attention.target")?;
    let weights: Vec<Vec<f64>> = field(r, "attention.weights")?
        .as_array()
        .context("attention weights are a list")?
        .iter()
        .map(|row| row.as_array().map_or(Vec::new(), |r| r.iter().filter_map(Value::as_f64).collect()))
        .collect();
    if weights.len() != target.len() || weights.iter().any(|row| row.len() != source.len()) {
        bail!("{MEASURED}: the attention weights do not match the tokens");
    }
    g.values.set("ch15.figure.number", thousands(u64::from(n)));
    g.values.set("ch15.figure.english", numbers::english(n)?);
    g.values.set("ch15.figure.german", numbers::german(n)?);
    g.num("ch15.figure.layer", number(r, "attention.layer")? + 1.0, 0);
    // The weight "ein"/"fünf"... puts on the units word, read from the figure's data.
    let und = target.iter().position(|t| t == "und").context("the figure's number has an `und`")?;
    let (units, tens) = (und - 1, und + 1);
    let column = |word: &str| source.iter().position(|s| s == word);
    let units_word =
        &source[(0..source.len()).fold(0, |b, s| if weights[units][s] > weights[units][b] { s } else { b })];
    g.values.set("ch15.figure.units_piece", &target[units]);
    g.values.set("ch15.figure.units_word", units_word);
    g.values.set("ch15.figure.tens_piece", &target[tens]);
    let tens_word = &source[(0..source.len()).fold(0, |b, s| if weights[tens][s] > weights[tens][b] { s } else { b })];
    g.values.set("ch15.figure.tens_word", tens_word);
    let hyphen = column("-").context("the figure's number has a hyphen")?;
    g.num("ch15.figure.und_on_hyphen", weights[und][hyphen], 2);
    Heatmap::new(format!("Cross-attention translating {}", thousands(u64::from(n))), weights)
        .labels(target, source)
        .axes("English (source)", "German piece written")
        .range(0.0, 1.0)
        .annotate()
        .save(g.figure("ch15_cross_attention.svg"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_of_other_settings_or_data_is_refused() {
        let config =
            serde_json::json!({ "options": { "steps": 2000 }, "transformer": "TransformerConfig { d_model: 64 }" });
        let record = serde_json::json!({ "config": config, "report": { "data_sha256": "ab" } });
        check_record(&record, &config, "ab").unwrap();
        let err = check_record(&record, &config, "cd").unwrap_err().to_string();
        assert!(err.contains("trained on other data (SHA-256 ab)"), "{err}");
        let other =
            serde_json::json!({ "options": { "steps": 1000 }, "transformer": "TransformerConfig { d_model: 64 }" });
        let err = check_record(&record, &other, "ab").unwrap_err().to_string();
        assert!(err.contains("`options` (recorded"), "{err}");
        let err = check_record(&serde_json::json!({ "report": {} }), &config, "ab").unwrap_err().to_string();
        assert!(err.contains("records no `config`"), "{err}");
    }
}
