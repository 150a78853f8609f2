//! `cargo xtask bench-record`: criterion's medians into
//! `book/measured/criterion.json`, so that the book quotes benchmark timings
//! from the benchmarks' own output rather than from someone's notes.
//!
//! Criterion leaves, for every benchmark it ran, `benchmark.json` (its id and
//! throughput) and `estimates.json` (point estimates in nanoseconds) under
//! `target/criterion/**/new/`. This command reads all of them and merges them
//! into the record, each entry with the date it was recorded; entries of
//! benchmarks not run this time are kept as they were.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// Where the record lives, relative to the repository root.
pub const RECORD: &str = "book/measured/criterion.json";

/// One benchmark's median, as the book reads it back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Median {
    /// Median time per iteration, in seconds.
    pub seconds: f64,
    /// Bytes or elements per iteration, if the benchmark declared them.
    pub per_iteration: Option<f64>,
}

impl Median {
    /// Throughput in units per second (bytes or elements).
    pub fn per_second(&self) -> Option<f64> {
        self.per_iteration.map(|n| n / self.seconds)
    }
}

/// Reads the median of benchmark `id` (criterion's full id, such as
/// `gpt2_encode/one_thread`) from the record.
pub fn median(root: &Path, id: &str) -> Result<Median> {
    let entry = entry(root, id)?;
    let seconds = entry.get("median_ns").and_then(Value::as_f64).context("median_ns")? * 1e-9;
    let per_iteration = entry.get("per_iteration").and_then(Value::as_f64);
    Ok(Median { seconds, per_iteration })
}

/// The date a benchmark was recorded.
pub fn recorded_on(root: &Path, id: &str) -> Result<String> {
    entry(root, id)?.get("date").and_then(Value::as_str).map(str::to_string).with_context(|| format!("{id}: date"))
}

/// The record, parsed.
fn read_record(root: &Path) -> Result<Value> {
    let path = root.join(RECORD);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Benchmark `id`'s entry in the record.
fn entry(root: &Path, id: &str) -> Result<Value> {
    match read_record(root)?.get_mut("benches").and_then(|b| b.get_mut(id)) {
        Some(entry) => Ok(entry.take()),
        None => bail!("{RECORD} has no benchmark {id:?}: run its bench, then `cargo xtask bench-record`"),
    }
}

/// Merges every criterion result under the target folder into the record.
pub fn record(root: &Path) -> Result<()> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let criterion = target.join("criterion");
    let mut found = BTreeMap::new();
    collect(&criterion, &mut found)?;
    if found.is_empty() {
        bail!("no criterion results under {}: run `cargo bench` first", criterion.display());
    }
    let path = root.join(RECORD);
    let mut file: Value = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
        Err(_) => json!({}),
    };
    file["about"] = json!(
        "Criterion medians (nanoseconds per iteration) of the workspace's benchmarks, merged in by \
         `cargo xtask bench-record` from target/criterion after `cargo bench`; each entry has the \
         date it was recorded. The machine: see `cpus`. The book reads its timings from here."
    );
    file["cpus"] = json!(std::thread::available_parallelism().map_or(1, |n| n.get()));
    let date = addmul::demos::utc_date();
    let benches = file.as_object_mut().expect("an object").entry("benches").or_insert_with(|| json!({}));
    let count = found.len();
    for (id, (median_ns, per_iteration)) in found {
        let mut entry = json!({ "median_ns": median_ns, "date": date });
        if let Some((n, unit)) = per_iteration {
            entry["per_iteration"] = json!(n);
            entry["unit"] = json!(unit);
        }
        benches[id] = entry;
    }
    let text = serde_json::to_string_pretty(&file)? + "\n";
    addmul::gpt::checkpoint::write_atomically(&path, text.as_bytes())?;
    eprintln!("recorded {count} criterion medians into {}", path.display());
    Ok(())
}

/// Benchmark id to median (ns) and, if declared, units per iteration.
type Found = BTreeMap<String, (f64, Option<(f64, &'static str)>)>;

/// Finds `new/benchmark.json` + `new/estimates.json` pairs below `dir`.
fn collect(dir: &Path, found: &mut Found) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let read = |name: &str| -> Result<Value> {
                let p = path.join(name);
                Ok(serde_json::from_str(
                    &std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?,
                )?)
            };
            let (Ok(benchmark), Ok(estimates)) = (read("benchmark.json"), read("estimates.json")) else { continue };
            let id = benchmark.get("full_id").and_then(Value::as_str).context("benchmark.json has no full_id")?;
            let median = estimates
                .pointer("/median/point_estimate")
                .and_then(Value::as_f64)
                .context("estimates.json has no median")?;
            let per_iteration = benchmark.get("throughput").and_then(|t| {
                [("Bytes", "bytes"), ("BytesDecimal", "bytes"), ("Elements", "elements")]
                    .iter()
                    .find_map(|(k, unit)| t.get(*k).and_then(Value::as_f64).map(|n| (n, *unit)))
            });
            found.insert(id.to_string(), (median, per_iteration));
        } else {
            collect(&path, found)?;
        }
    }
    Ok(())
}

/// Every recorded benchmark as a Markdown table: id, median, throughput, date.
pub fn table(root: &Path) -> Result<String> {
    let file = read_record(root)?;
    let Some(Value::Object(benches)) = file.get("benches") else { bail!("{RECORD} has no benches") };
    let mut out = String::from("| benchmark | median | throughput | recorded |\n|---|---:|---:|---|\n");
    for (id, entry) in benches {
        let ns = entry.get("median_ns").and_then(Value::as_f64).with_context(|| format!("{id}: median_ns"))?;
        let time = if ns >= 1e9 {
            format!("{:.2} s", ns * 1e-9)
        } else if ns >= 1e6 {
            format!("{:.2} ms", ns * 1e-6)
        } else {
            format!("{:.1} µs", ns * 1e-3)
        };
        // Criterion's style: 24.9 MB/s, 92.8 Gelem/s (elements are FLOPs or tokens).
        let unit = if entry.get("unit").and_then(Value::as_str) == Some("bytes") { "B" } else { "elem" };
        let rate = entry.get("per_iteration").and_then(Value::as_f64).map_or(String::new(), |n| {
            let per_s = n / (ns * 1e-9);
            let (scaled, prefix) = [(1e9, "G"), (1e6, "M"), (1e3, "k")]
                .iter()
                .find(|(scale, _)| per_s >= *scale)
                .map_or((per_s, ""), |&(scale, prefix)| (per_s / scale, prefix));
            format!("{scaled:.1} {prefix}{unit}/s")
        });
        let date = entry.get("date").and_then(Value::as_str).unwrap_or("");
        out.push_str(&format!("| `{id}` | {time} | {rate} | {date} |\n"));
    }
    Ok(out)
}
