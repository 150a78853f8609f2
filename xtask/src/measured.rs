//! `cargo xtask bench-record`: criterion's medians into
//! `book/measured/criterion.json`, so that the book quotes benchmark timings
//! from the benchmarks' own output rather than from someone's notes.
//!
//! Criterion leaves, for every benchmark it ran, `benchmark.json` (its id and
//! throughput) and `estimates.json` (point estimates in nanoseconds) under
//! `target/criterion/**/new/`. This command reads all of them and merges them
//! into the record; entries of benchmarks not run this time are kept as they
//! were. Each entry records its provenance: the date, the CPU, the `cargo
//! bench` command that runs it (found from the benchmark group's name in the
//! bench sources), the commit of the code it measured and, for benchmarks
//! that read tinyshakespeare, the corpus's SHA-256. The readers refuse an
//! entry recorded since [`PROVENANCE_SINCE`] without them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// Where the record lives, relative to the repository root.
pub const RECORD: &str = "book/measured/criterion.json";

/// The folder of the measured files, relative to the repository root.
pub const MEASURED_DIR: &str = "book/measured";

/// Set to a folder, the measured files are read from (and the generators'
/// own measurements written to) there instead of `book/measured`: to try a
/// new record before it replaces the committed one.
pub const MEASURED_DIR_VAR: &str = "ADDMUL_MEASURED_DIR";

/// The first day on which `bench-record` wrote each entry's provenance.
/// Entries recorded before it (2026-11-29) have only a date; they are
/// tolerated until criterion.json is recorded again, and no later.
pub const PROVENANCE_SINCE: &str = "2026-12-05";

/// The measured file `name` (`gpt.json`): under `book/measured`, or under
/// `$ADDMUL_MEASURED_DIR` if set.
pub fn measured_path(root: &Path, name: &str) -> PathBuf {
    std::env::var_os(MEASURED_DIR_VAR).map_or_else(|| root.join(MEASURED_DIR), PathBuf::from).join(name)
}

/// The record's path.
fn record_path(root: &Path) -> PathBuf {
    measured_path(root, "criterion.json")
}

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
/// `gpt2_encode/one_thread`), a benchmark on tinyshakespeare, from the
/// record, refusing an entry without its provenance or on another corpus
/// (see [`check_provenance`]).
pub fn median_on_corpus(root: &Path, id: &str) -> Result<Median> {
    let entry = entry(root, id)?;
    check_provenance(id, &entry, Some(addmul::corpus::TINYSHAKESPEARE_SHA256))?;
    median_of(id, &entry)
}

/// The median in an entry.
fn median_of(id: &str, entry: &Value) -> Result<Median> {
    let seconds = entry.get("median_ns").and_then(Value::as_f64).with_context(|| format!("{id}: median_ns"))? * 1e-9;
    let per_iteration = entry.get("per_iteration").and_then(Value::as_f64);
    Ok(Median { seconds, per_iteration })
}

/// Checks an entry's provenance: an entry recorded on or after
/// [`PROVENANCE_SINCE`] must name its CPU, command and commit, and with
/// `corpus`, carry that corpus's SHA-256. Older entries were recorded before
/// `bench-record` wrote these fields: they pass without them (but a corpus
/// hash they do carry must match).
pub fn check_provenance(id: &str, entry: &Value, corpus: Option<&str>) -> Result<()> {
    let date = entry.get("date").and_then(Value::as_str).with_context(|| format!("{RECORD}: {id} has no date"))?;
    let recorded_hash = entry.get("corpus_sha256").and_then(Value::as_str);
    if let (Some(expected), Some(got)) = (corpus, recorded_hash)
        && got != expected
    {
        bail!("{RECORD}: {id} was measured on a corpus with SHA-256 {got}, not tinyshakespeare ({expected})");
    }
    if date < PROVENANCE_SINCE {
        return Ok(());
    }
    let mut required = vec!["cpu", "command", "commit"];
    if corpus.is_some() {
        required.push("corpus_sha256");
    }
    for field in required {
        if entry.get(field).and_then(Value::as_str).is_none() {
            bail!(
                "{RECORD}: {id} (recorded {date}) has no `{field}`; record it again with `cargo bench` and \
                 `cargo xtask bench-record`"
            );
        }
    }
    Ok(())
}

/// The date a benchmark was recorded.
pub fn recorded_on(root: &Path, id: &str) -> Result<String> {
    entry(root, id)?.get("date").and_then(Value::as_str).map(str::to_string).with_context(|| format!("{id}: date"))
}

/// The record, parsed.
fn read_record(root: &Path) -> Result<Value> {
    let path = record_path(root);
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
    let path = record_path(root);
    let mut file: Value = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
        Err(_) => json!({}),
    };
    file["about"] = json!(
        "Criterion medians (nanoseconds per iteration) of the workspace's benchmarks, merged in by \
         `cargo xtask bench-record` from target/criterion after `cargo bench`. Each entry has the date \
         it was recorded, the CPU, the `cargo bench` command that runs it, the commit of the code it \
         measured and, for benchmarks on tinyshakespeare, the corpus's SHA-256 (entries recorded \
         before 2026-12-05 have only the date). The book reads its timings from here."
    );
    file["cpus"] = json!(std::thread::available_parallelism().map_or(1, |n| n.get()));
    let provenance = Provenance::now(root);
    let benches = file.as_object_mut().context("the record is not a JSON object")?;
    let benches = benches.entry("benches").or_insert_with(|| json!({}));
    let count = found.len();
    for (id, (median_ns, per_iteration)) in found {
        let mut entry = provenance.entry(root, &id)?;
        entry["median_ns"] = json!(median_ns);
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

/// What every entry recorded now shares: the date, the CPU, the commit.
struct Provenance {
    date: String,
    cpu: String,
    commit: String,
}

impl Provenance {
    /// Today's.
    fn now(root: &Path) -> Self {
        Provenance { date: addmul::demos::utc_date(), cpu: addmul::demos::cpu_description(), commit: commit(root) }
    }

    /// The provenance of benchmark `id`: also the command that runs it and,
    /// if that bench reads tinyshakespeare, the corpus's SHA-256.
    fn entry(&self, root: &Path, id: &str) -> Result<Value> {
        let group = id.split('/').next().unwrap_or(id);
        let mut entry = json!({ "date": self.date, "cpu": self.cpu, "commit": self.commit });
        let Some(bench) = find_bench(root, group)? else {
            entry["command"] = json!("cargo bench (no bench source names this group)");
            return Ok(entry);
        };
        entry["command"] = json!(format!("cargo bench -p {} --bench {}", bench.package, bench.name));
        if bench.reads_corpus {
            let (path, bytes) = corpus_bytes(root).with_context(|| {
                format!("{id} ran on tinyshakespeare, which must be here to record its SHA-256 (set ADDMUL_CORPUS)")
            })?;
            let hash = addmul::corpus::sha256_hex(&bytes);
            if hash != addmul::corpus::TINYSHAKESPEARE_SHA256 {
                bail!(
                    "{} is not tinyshakespeare (SHA-256 {hash}); the book's timings are on tinyshakespeare",
                    path.display()
                );
            }
            entry["corpus_sha256"] = json!(hash);
        }
        Ok(entry)
    }
}

/// The commit the workspace is at (`+changes` if files differ from it), or
/// `unknown` without git.
fn commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match (git(&["rev-parse", "HEAD"]), git(&["status", "--porcelain", "--untracked-files=no"])) {
        (Some(head), Some(changes)) if changes.is_empty() => head,
        (Some(head), _) => format!("{head}+changes"),
        (None, _) => "unknown".to_string(),
    }
}

/// tinyshakespeare as the tokenizer benchmarks find it: `$ADDMUL_CORPUS`,
/// or `../shared/data/tinyshakespeare.txt` next to the repository.
fn corpus_bytes(root: &Path) -> Result<(PathBuf, Vec<u8>)> {
    let path = std::env::var_os("ADDMUL_CORPUS")
        .map_or_else(|| root.join("../shared/data/tinyshakespeare.txt"), PathBuf::from);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok((path, bytes))
}

/// A bench target: its package, name and whether it reads tinyshakespeare.
#[derive(Debug, Clone, PartialEq)]
struct Bench {
    package: String,
    name: String,
    reads_corpus: bool,
}

/// The bench target whose source opens benchmark group `group`
/// (`benchmark_group("group")`), among `benches/` and `crates/*/benches/`.
fn find_bench(root: &Path, group: &str) -> Result<Option<Bench>> {
    let needle = format!("benchmark_group(\"{group}\")");
    let mut folders = vec![(root.join("benches"), root.join("Cargo.toml"))];
    if let Ok(crates) = std::fs::read_dir(root.join("crates")) {
        for entry in crates {
            let dir = entry?.path();
            folders.push((dir.join("benches"), dir.join("Cargo.toml")));
        }
    }
    folders.sort();
    for (benches, manifest) in folders {
        let Ok(files) = std::fs::read_dir(&benches) else { continue };
        let mut files: Vec<PathBuf> = files.filter_map(|f| f.ok().map(|f| f.path())).collect();
        files.sort();
        for file in files.into_iter().filter(|f| f.extension().is_some_and(|e| e == "rs")) {
            let source = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            if source.contains(&needle) {
                let name = file.file_stem().unwrap_or_default().to_string_lossy().into_owned();
                let reads_corpus = source.contains("ADDMUL_CORPUS");
                return Ok(Some(Bench { package: package_name(&manifest)?, name, reads_corpus }));
            }
        }
    }
    Ok(None)
}

/// `[package] name` of a manifest.
fn package_name(manifest: &Path) -> Result<String> {
    let text = std::fs::read_to_string(manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let table: toml::Table = text.parse().with_context(|| format!("parsing {}", manifest.display()))?;
    table
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(toml::Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("{} has no [package] name", manifest.display()))
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

/// Every recorded benchmark as a Markdown table: id, median, throughput,
/// date and the command that runs it.
pub fn table(root: &Path) -> Result<String> {
    let file = read_record(root)?;
    let Some(Value::Object(benches)) = file.get("benches") else { bail!("{RECORD} has no benches") };
    let mut out = String::from("| benchmark | median | throughput | recorded | command |\n|---|---:|---:|---|---|\n");
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
        check_provenance(id, entry, None)?;
        let date = entry.get("date").and_then(Value::as_str).unwrap_or("");
        let command = entry.get("command").and_then(Value::as_str).map_or(String::new(), |c| format!("`{c}`"));
        out.push_str(&format!("| `{id}` | {time} | {rate} | {date} | {command} |\n"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_since_the_cutoff_need_their_provenance() {
        let old = json!({ "date": "2026-11-29", "median_ns": 1.0 });
        check_provenance("old", &old, Some("abc")).unwrap();
        let new = json!({ "date": PROVENANCE_SINCE, "median_ns": 1.0, "cpu": "c", "command": "cargo bench" });
        let err = check_provenance("new", &new, None).unwrap_err().to_string();
        assert!(err.contains("has no `commit`"), "{err}");
        let full =
            json!({ "date": PROVENANCE_SINCE, "cpu": "c", "command": "b", "commit": "d", "corpus_sha256": "abc" });
        check_provenance("full", &full, Some("abc")).unwrap();
        let err = check_provenance("full", &full, Some("xyz")).unwrap_err().to_string();
        assert!(err.contains("not tinyshakespeare"), "{err}");
    }

    #[test]
    fn a_group_is_found_in_its_bench_source() {
        let root = crate::project_root();
        let bench = find_bench(&root, "gpt2_encode").unwrap().unwrap();
        assert_eq!(bench, Bench { package: "addmul-tokenizer".into(), name: "tokenizer".into(), reads_corpus: true });
        let bench = find_bench(&root, "gpt_cpu_small").unwrap().unwrap();
        assert_eq!((bench.package.as_str(), bench.reads_corpus), ("addmul", false));
        assert_eq!(find_bench(&root, "no_such_group").unwrap(), None);
    }

    /// Every entry of the committed record passes the provenance check.
    #[test]
    fn the_record_has_its_provenance() {
        table(&crate::project_root()).unwrap();
    }
}
