//! `cargo xtask seeds N`: run every property test with N different
//! `PROPTEST_RNG_SEED`s and report each failure with its seed and proptest's
//! minimal failing input.
//!
//! A property test must hold for every seed, not just for the one CI fixes
//! (`.ci/run`) or the one a newcomer happens to draw. The targets are found
//! by looking for `proptest!` in each package's `tests/*.rs` (an integration
//! test) and `src/` (its unit tests); their packages' tests are built once
//! with `cargo test --no-run -p ...` and the binaries with property tests are
//! then run directly, from their package's directory as `cargo test` does,
//! once per seed.
//!
//! Failure persistence is off (`PROPTEST_DISABLE_FAILURE_PERSISTENCE`): a
//! sweep neither reads nor appends to the tracked `*.proptest-regressions`
//! files, so what it finds is reported here and nowhere else. (The committed
//! regression cases are replayed by every plain `cargo test`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// One test binary that contains property tests.
#[derive(Debug)]
struct Target {
    /// `package/test-name` or `package (unit tests)`.
    label: String,
    executable: PathBuf,
    /// The package's directory, the binary's working directory.
    dir: PathBuf,
}

/// One failing test under one seed.
#[derive(Debug)]
struct Failure {
    seed: u64,
    target: String,
    test: String,
    /// Proptest's reason and minimal failing input, or the panic message.
    detail: String,
}

/// Runs the property tests under seeds `first..first + count`.
///
/// # Errors
/// If the build fails, a binary cannot be run, or any test failed.
pub fn run(root: &Path, count: u64, first: u64) -> Result<()> {
    let targets = build(root)?;
    eprintln!("property-test binaries ({}):", targets.len());
    for t in &targets {
        eprintln!("  {}", t.label);
    }
    let mut failures = Vec::new();
    let started = Instant::now();
    for seed in first..first + count {
        let seed_started = Instant::now();
        let mut found = 0;
        for target in &targets {
            let output = Command::new(&target.executable)
                .current_dir(&target.dir)
                .env("PROPTEST_RNG_SEED", seed.to_string())
                .env("PROPTEST_DISABLE_FAILURE_PERSISTENCE", "1")
                .env_remove("PROPTEST_CASES")
                .output()
                .with_context(|| format!("running {}", target.executable.display()))?;
            if output.status.success() {
                continue;
            }
            let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
            let parsed = parse_failures(&text);
            if parsed.is_empty() {
                let detail = format!("exit status {}; no failing test found in the output", output.status);
                failures.push(Failure { seed, target: target.label.clone(), test: "?".into(), detail });
                found += 1;
            }
            for (test, detail) in parsed {
                failures.push(Failure { seed, target: target.label.clone(), test, detail });
                found += 1;
            }
        }
        let secs = seed_started.elapsed().as_secs_f64();
        if found == 0 {
            println!("PROPTEST_RNG_SEED={seed}: ok ({secs:.1} s)");
        } else {
            println!("PROPTEST_RNG_SEED={seed}: {found} failing test(s) ({secs:.1} s)");
            for f in &failures[failures.len() - found..] {
                println!("  {} {}: {}", f.target, f.test, f.detail);
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "\n{count} seeds ({first}..={}) in {secs:.0} s ({:.1} s per seed)",
        first + count - 1,
        secs / count as f64
    );
    if failures.is_empty() {
        println!("every property test passed under every seed");
        return Ok(());
    }
    // The same test often fails under many seeds: group them.
    let mut by_test: BTreeMap<(String, String), Vec<&Failure>> = BTreeMap::new();
    for f in &failures {
        by_test.entry((f.target.clone(), f.test.clone())).or_default().push(f);
    }
    println!("\nfailures, by test:");
    for ((target, test), fs) in &by_test {
        let seeds: Vec<String> = fs.iter().map(|f| f.seed.to_string()).collect();
        println!("{target} {test}: seeds {}", seeds.join(", "));
        for f in fs {
            println!("  seed {}: {}", f.seed, f.detail);
        }
    }
    println!("\nreproduce one with PROPTEST_RNG_SEED=<seed> cargo test -p <package> --test <name> <test>");
    bail!("{} failure(s) in {} test(s) over {count} seeds", failures.len(), by_test.len())
}

/// Finds the test targets with property tests and builds the workspace's
/// tests, returning their binaries.
fn build(root: &Path) -> Result<Vec<Target>> {
    let wanted = property_test_sources(root)?;
    if wanted.is_empty() {
        bail!("no proptest! found under {}", root.display());
    }
    let mut packages = Vec::new();
    for file in &wanted {
        let dir = file.ancestors().find(|d| d.join("Cargo.toml").is_file()).context("a source file has a package")?;
        let name = package_name(dir)?;
        if !packages.contains(&name) {
            packages.push(name);
        }
    }
    let mut args = vec!["test".to_string(), "--no-run".into(), "--message-format=json-render-diagnostics".into()];
    for p in &packages {
        args.extend(["-p".to_string(), p.clone()]);
    }
    eprintln!("building: cargo {}", args.join(" "));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args(&args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    if !output.status.success() {
        bail!("cargo test --no-run failed");
    }
    let mut targets = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if message["reason"] != "compiler-artifact" || message["profile"]["test"] != true {
            continue;
        }
        let (Some(executable), Some(src), Some(manifest)) =
            (message["executable"].as_str(), message["target"]["src_path"].as_str(), message["manifest_path"].as_str())
        else {
            continue;
        };
        let dir = Path::new(manifest).parent().context("manifest path has a parent")?.to_path_buf();
        let src = Path::new(src);
        let name = message["target"]["name"].as_str().unwrap_or("?");
        let kinds = message["target"]["kind"].as_array().cloned().unwrap_or_default();
        let label = if kinds.iter().any(|k| k == "test") {
            if !wanted.contains(&src.to_path_buf()) {
                continue;
            }
            format!("{} --test {name}", package_name(&dir)?)
        } else if kinds.iter().any(|k| k == "lib") {
            if !wanted.iter().any(|w| w.starts_with(dir.join("src"))) {
                continue;
            }
            format!("{} --lib", package_name(&dir)?)
        } else {
            continue;
        };
        targets.push(Target { label, executable: executable.into(), dir });
    }
    targets.sort_by(|a, b| a.label.cmp(&b.label));
    targets.dedup_by(|a, b| a.label == b.label);
    Ok(targets)
}

/// The `.rs` files, in the root package and `crates/*`, that contain
/// `proptest!`: integration tests (`tests/*.rs`) and library sources (`src/`).
fn property_test_sources(root: &Path) -> Result<Vec<PathBuf>> {
    let mut packages = vec![root.to_path_buf()];
    for entry in std::fs::read_dir(root.join("crates")).context("reading crates/")? {
        packages.push(entry?.path());
    }
    let mut found = Vec::new();
    for package in packages {
        let mut files = Vec::new();
        rust_files(&package.join("src"), true, &mut files)?;
        rust_files(&package.join("tests"), false, &mut files)?;
        for file in files {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            if text.contains("proptest!") {
                found.push(file);
            }
        }
    }
    Ok(found)
}

fn rust_files(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            if recursive {
                rust_files(&path, true, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

fn package_name(dir: &Path) -> Result<String> {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))?;
    let value: toml::Table = toml::from_str(&manifest).with_context(|| format!("parsing {}", dir.display()))?;
    Ok(value.get("package").and_then(|p| p.get("name")).and_then(|n| n.as_str()).unwrap_or("?").to_string())
}

/// Each failing test in libtest's output with proptest's reason and minimal
/// failing input (or, for a plain test, its panic message), on one line.
fn parse_failures(output: &str) -> Vec<(String, String)> {
    let mut failures = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    let mut flush = |current: &mut Option<(String, Vec<String>)>| {
        if let Some((test, lines)) = current.take() {
            failures.push((test, summarize(&lines)));
        }
    };
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("---- ") {
            flush(&mut current);
            let test = rest.trim_end_matches(" ----").trim_end_matches(" stdout").to_string();
            current = Some((test, Vec::new()));
        } else if line == "failures:" || line.starts_with("test result:") {
            flush(&mut current);
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line.to_string());
        }
    }
    flush(&mut current);
    failures
}

/// The lines from `Test failed:` / `Test aborted:` up to proptest's
/// statistics (which start with a tab), joined; else the panic message.
fn summarize(lines: &[String]) -> String {
    let start = lines.iter().position(|l| l.starts_with("Test failed:") || l.starts_with("Test aborted:"));
    let picked: Vec<&str> = match start {
        Some(i) => lines[i..].iter().take_while(|l| !l.starts_with('\t')).map(|l| l.trim()).collect(),
        None => {
            let i = lines.iter().position(|l| l.contains("panicked at")).map_or(0, |i| i + 1);
            lines[i..].iter().take_while(|l| !l.starts_with("note:")).map(|l| l.trim()).collect()
        }
    };
    let mut text = picked.into_iter().filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    // `{:#?}` spreads tuples and vectors over lines: close them up again.
    for (spread, close) in [("( ", "("), ("[ ", "["), (", )", ")"), (", ]", "]")] {
        text = text.replace(spread, close);
    }
    if text.is_empty() { "(no message)".into() } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proptest_failures_are_found_with_their_minimal_input() {
        let output = "running 2 tests\ntest a ... ok\ntest layer_norm_gradients ... FAILED\n\nfailures:\n\n\
             ---- layer_norm_gradients stdout ----\n\
             proptest: Saving this and future failures in /x\n\n\
             thread 'layer_norm_gradients' panicked at crates/layernorm/tests/layernorm.rs:24:1:\n\
             Test failed: gradient check failed (tolerance 1e-6); worst relative error 1.165e-6 at input 0[1, 0].\n\
             minimal failing input: d = 3, n = 1, seed = 7, dropout = Some(\n    (\n        0.5,\n        9,\n    ),\n)\n\
             \tsuccesses: 3\n\tlocal rejects: 0\n\n\
             ---- plain stdout ----\n\
             thread 'plain' panicked at tests/x.rs:1:1:\nassertion failed: x\n\
             note: run with `RUST_BACKTRACE=1`\n\n\
             failures:\n    layer_norm_gradients\n    plain\n\ntest result: FAILED. 1 passed; 2 failed\n";
        let found = parse_failures(output);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, "layer_norm_gradients");
        assert!(
            found[0].1.contains("minimal failing input: d = 3, n = 1, seed = 7, dropout = Some((0.5, 9))"),
            "{}",
            found[0].1
        );
        assert!(!found[0].1.contains("successes"));
        assert_eq!(found[1], ("plain".to_string(), "assertion failed: x".to_string()));
    }

    #[test]
    fn the_property_tests_are_found() {
        let sources = property_test_sources(&crate::project_root()).unwrap();
        let layernorm = crate::project_root().join("crates/layernorm/tests/layernorm.rs");
        assert!(sources.contains(&layernorm), "{sources:?}");
    }
}
