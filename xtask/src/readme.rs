//! The README's table of measured figures, generated from `book/measured`
//! so that the README never quotes a timing or a loss by hand.
//!
//! `cargo xtask book` writes the table between the README's
//! [`BEGIN`] and [`END`] markers; a test fails when the README's table
//! differs from what the measured files give (run `cargo xtask book`).
//! The table only reads the records: `cargo xtask book`'s generators, which
//! run first, refuse a record whose provenance does not match the book.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::chapters::thousands;
use crate::measured::measured_path;

/// The line that opens the generated table.
pub const BEGIN: &str =
    "<!-- begin generated: measured (cargo xtask book writes this table from book/measured; do not edit) -->";

/// The line that closes it.
pub const END: &str = "<!-- end generated: measured -->";

/// Reads a measured file.
fn record(root: &Path, name: &str) -> Result<Value> {
    let path = measured_path(root, name);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// A number at `pointer` in `v`.
fn num(v: &Value, pointer: &str, file: &str) -> Result<f64> {
    v.pointer(pointer).and_then(Value::as_f64).with_context(|| format!("{file}: {pointer} is not a number"))
}

/// A text at `pointer` in `v`.
fn text<'a>(v: &'a Value, pointer: &str, file: &str) -> Result<&'a str> {
    v.pointer(pointer).and_then(Value::as_str).with_context(|| format!("{file}: {pointer} is not text"))
}

/// `date, CPU` of a record ("CPU not recorded" for records older than the field).
fn when(v: &Value, file: &str) -> Result<String> {
    let cpu = v.get("cpu").and_then(Value::as_str).unwrap_or("CPU not recorded");
    Ok(format!("{}, {cpu}", text(v, "/date", file)?))
}

/// The last evaluation's `(step, validation loss)` of a record's `evals`.
fn last_eval(v: &Value, file: &str) -> Result<(f64, f64)> {
    let last = v.get("evals").and_then(Value::as_array).and_then(|e| e.last());
    let last = last.with_context(|| format!("{file}: no evaluations"))?;
    Ok((num(last, "/step", file)?, num(last, "/val_loss", file)?))
}

/// `n` rounded, with thousands separators.
fn round(n: f64) -> String {
    thousands(n.round().max(0.0) as u64)
}

/// The rows from `gpt.json` (`addmul bench`).
fn bench_rows(root: &Path) -> Result<Vec<[String; 4]>> {
    const FILE: &str = "gpt.json";
    let v = record(root, FILE)?;
    let (steps, loss) = last_eval(&v, FILE)?;
    let when = when(&v, FILE)?;
    let source = format!("`book/measured/{FILE}`");
    Ok(vec![
        [
            format!("`addmul bench`: `cpu-small` trained on tinyshakespeare for {} steps", round(steps)),
            format!(
                "validation loss {loss:.3}; median {:.1} ms per step ({} tokens/s)",
                num(&v, "/cpu_small/median_ms", FILE)?,
                round(num(&v, "/cpu_small/tokens_per_s", FILE)?)
            ),
            when.clone(),
            source.clone(),
        ],
        [
            "`addmul bench`: sampling from that model, one token at a time".into(),
            format!("{} tokens/s", round(num(&v, "/sample_tokens_per_s", FILE)?)),
            when.clone(),
            source.clone(),
        ],
        [
            format!("`addmul bench`: a larger model ({}), training", text(&v, "/large/name", FILE)?),
            format!(
                "median {} ms per step ({} tokens/s)",
                round(num(&v, "/large/median_ms", FILE)?),
                round(num(&v, "/large/tokens_per_s", FILE)?)
            ),
            when,
            source,
        ],
    ])
}

/// The row from `pytorch.json` (the PyTorch reference).
fn pytorch_row(root: &Path) -> Result<[String; 4]> {
    const FILE: &str = "pytorch.json";
    let v = record(root, FILE)?;
    let (steps, loss) = last_eval(&v, FILE)?;
    Ok([
        format!(
            "PyTorch {} (`reference/`): the same recipe, {} steps",
            text(&v, "/torch_version", FILE)?,
            round(steps)
        ),
        format!("validation loss {loss:.3}; median {:.1} ms per step", num(&v, "/median_ms", FILE)?),
        when(&v, FILE)?,
        format!("`book/measured/{FILE}`"),
    ])
}

/// The row from `transformer_numbers.json` (chapter 15's number words).
fn numbers_row(root: &Path) -> Result<[String; 4]> {
    const FILE: &str = "transformer_numbers.json";
    let v = record(root, FILE)?;
    let test = num(&v, "/report/test_size", FILE)?;
    let percent = |correct: f64| format!("{:.2}%", 100.0 * correct / test);
    Ok([
        "`addmul transformer numbers` (chapter 15): the Transformer, then the decoder-only GPT".into(),
        format!(
            "trained in {} s and {} s; exact on {} and {} of {} held-out numbers",
            round(num(&v, "/report/train_seconds", FILE)?),
            round(num(&v, "/report/gpt/train_seconds", FILE)?),
            percent(num(&v, "/report/greedy_correct", FILE)?),
            percent(num(&v, "/report/gpt/correct", FILE)?),
            round(test)
        ),
        when(&v, FILE)?,
        format!("`book/measured/{FILE}`"),
    ])
}

/// The rows from `gpt2_speed_addmul.json` and `gpt2_speed_transformers.json`
/// (a GPT-2-small-shaped model read and sampled at batch 1, beside
/// `transformers`' `generate`).
fn gpt2_speed_rows(root: &Path) -> Result<Vec<[String; 4]>> {
    let mut rows = Vec::new();
    for (file, who) in [
        ("gpt2_speed_addmul.json", "`cargo run --release --example gpt2_speed`".to_string()),
        ("gpt2_speed_transformers.json", String::new()),
    ] {
        let v = record(root, file)?;
        let who = if who.is_empty() {
            format!("`transformers` {} `generate` (`reference/hf_generate_speed.py`)", text(&v, "/transformers", file)?)
        } else {
            who
        };
        rows.push([
            format!(
                "{who}: GPT-2 small shape, prompt {} tokens, then {} tokens one at a time, {} threads",
                round(num(&v, "/prompt_tokens", file)?),
                round(num(&v, "/new_tokens", file)?),
                round(num(&v, "/threads", file)?)
            ),
            format!(
                "prompt {} tokens/s; sampling {:.1} tokens/s",
                round(num(&v, "/prompt_tokens_per_s", file)?),
                num(&v, "/sampling_tokens_per_s", file)?
            ),
            when(&v, file)?,
            format!("`book/measured/{file}`"),
        ]);
    }
    Ok(rows)
}

/// The rows from `gpt2_train_speed_addmul.json` and
/// `gpt2_train_speed_pytorch.json` (a training step at GPT-2 small's shape).
fn gpt2_train_rows(root: &Path) -> Result<Vec<[String; 4]>> {
    let mut rows = Vec::new();
    for file in ["gpt2_train_speed_addmul.json", "gpt2_train_speed_pytorch.json"] {
        let v = record(root, file)?;
        let who = match v.get("torch").and_then(Value::as_str) {
            Some(torch) => format!("PyTorch {torch} (`reference/gpt2_train_speed.py`)"),
            None => "`cargo run --release --example gpt2_train_speed`".to_string(),
        };
        rows.push([
            format!(
                "{who}: a training step at GPT-2 small's shape, {} windows of {} tokens, {} threads",
                round(num(&v, "/batch_size", file)?),
                round(num(&v, "/block_size", file)?),
                round(num(&v, "/threads", file)?)
            ),
            format!(
                "median {} ms per step ({} tokens/s)",
                round(num(&v, "/median_ms", file)?),
                round(num(&v, "/tokens_per_s", file)?)
            ),
            when(&v, file)?,
            format!("`book/measured/{file}`"),
        ]);
    }
    Ok(rows)
}

/// The table, from the measured files under `root`.
pub fn table(root: &Path) -> Result<String> {
    let mut rows = bench_rows(root)?;
    rows.push(pytorch_row(root)?);
    rows.push(numbers_row(root)?);
    rows.extend(gpt2_speed_rows(root)?);
    rows.extend(gpt2_train_rows(root)?);
    let mut out = String::from("| what was measured | result | when, on what | record |\n|---|---|---|---|\n");
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    Ok(out)
}

/// The README with its generated block replaced by `table`.
fn with_table(readme: &str, table: &str) -> Result<String> {
    let (Some(begin), Some(end)) = (readme.find(BEGIN), readme.find(END)) else {
        bail!("README.md has no generated table: it needs the lines\n{BEGIN}\n{END}");
    };
    if end < begin {
        bail!("README.md: the end of the generated table comes before its beginning");
    }
    Ok(format!("{}{BEGIN}\n{table}{}", &readme[..begin], &readme[end..]))
}

/// Writes the table into the README under `root` (only if it changed).
pub fn update(root: &Path) -> Result<()> {
    let path = root.join("README.md");
    let readme = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let updated = with_table(&readme, &table(root)?)?;
    if updated != readme {
        std::fs::write(&path, updated).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("note: README.md's measured table changed; commit it with the records");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_between_the_markers_is_replaced() {
        let readme = format!("# x\n\n{BEGIN}\n| old |\n{END}\n\nrest\n");
        assert_eq!(with_table(&readme, "| new |\n").unwrap(), format!("# x\n\n{BEGIN}\n| new |\n{END}\n\nrest\n"));
        assert!(with_table("# x\n", "| new |\n").unwrap_err().to_string().contains("no generated table"));
    }

    /// The README's figures are the measured files' (`cargo xtask book`
    /// rewrites the table; run it after recording a file again).
    #[test]
    fn the_readme_table_is_current() {
        let root = crate::project_root();
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let expected = with_table(&readme, &table(&root).unwrap()).unwrap();
        assert!(
            readme == expected,
            "README.md's measured table differs from what book/measured gives; run `cargo xtask book`"
        );
    }
}
