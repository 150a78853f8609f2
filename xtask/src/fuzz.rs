//! `cargo xtask fuzz`: runs every libFuzzer target in `fuzz/` (cargo fuzz,
//! nightly toolchain) for a time or a number of executions, with a 2 GB
//! memory limit, and reports per target the executions, crashes,
//! out-of-memory and time-outs. Any finding fails the command; its input is
//! in `fuzz/artifacts/<target>/`, to be turned into a regression test.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// What one target's run found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FuzzReport {
    /// The target's name.
    pub target: String,
    /// Inputs run.
    pub runs: u64,
    /// Seconds it ran.
    pub seconds: u64,
    /// Panics, aborts and sanitizer reports.
    pub crashes: u32,
    /// Inputs that needed more than the memory limit.
    pub ooms: u32,
    /// Inputs that ran longer than the time-out.
    pub timeouts: u32,
}

/// The targets, as `fuzz/Cargo.toml` lists them.
fn targets(fuzz: &Path) -> Result<Vec<String>> {
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).context("reading fuzz/Cargo.toml")?;
    let table: toml::Table = manifest.parse().context("parsing fuzz/Cargo.toml")?;
    let bins = table.get("bin").and_then(|b| b.as_array()).context("fuzz/Cargo.toml lists no [[bin]] targets")?;
    Ok(bins.iter().filter_map(|b| b.get("name")?.as_str().map(str::to_string)).collect())
}

/// Reads libFuzzer's output: the last `#N` status line or the closing
/// `Done N runs in S second(s)`, and what it found.
pub fn parse_output(target: &str, output: &str) -> FuzzReport {
    let mut report = FuzzReport { target: target.to_string(), ..FuzzReport::default() };
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("Done ") {
            let mut words = rest.split_whitespace();
            report.runs = words.next().and_then(|n| n.parse().ok()).unwrap_or(report.runs);
            report.seconds = words.nth(2).and_then(|n| n.parse().ok()).unwrap_or(report.seconds);
        } else if let Some(rest) = line.strip_prefix('#')
            && let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok())
        {
            report.runs = report.runs.max(n);
        }
        if line.contains("ERROR: libFuzzer: out-of-memory") {
            report.ooms += 1;
        } else if line.contains("ERROR: libFuzzer: timeout") {
            report.timeouts += 1;
        } else if line.contains("ERROR: libFuzzer: deadly signal")
            || line.contains("ERROR: AddressSanitizer")
            || line.contains("ERROR: libFuzzer: fuzz target exited")
        {
            report.crashes += 1;
        }
    }
    report
}

/// Runs every target (or those named) for `seconds` each, stopping early
/// after `runs` executions when given.
///
/// # Errors
/// If cargo fuzz cannot be run, or any target found a crash, an
/// out-of-memory input or a time-out.
pub fn run(root: &Path, seconds: u64, runs: Option<u64>, only: &[String]) -> Result<Vec<FuzzReport>> {
    let fuzz = root.join("fuzz");
    let mut reports = Vec::new();
    for target in targets(&fuzz)? {
        if !only.is_empty() && !only.contains(&target) {
            continue;
        }
        let corpus = fuzz.join("corpus").join(&target);
        std::fs::create_dir_all(&corpus)?;
        let mut args = vec![
            "+nightly".to_string(),
            "fuzz".into(),
            "run".into(),
            "-O".into(),
            target.clone(),
            "--".into(),
            format!("-max_total_time={seconds}"),
            "-rss_limit_mb=2048".into(),
            "-timeout=10".into(),
            "-print_final_stats=1".into(),
        ];
        if let Some(runs) = runs {
            args.push(format!("-runs={runs}"));
        }
        eprintln!("fuzz: {target} for up to {seconds} s");
        let out = Command::new("cargo")
            .args(&args)
            .current_dir(&fuzz)
            .output()
            .context("running cargo +nightly fuzz (install it with `cargo install cargo-fuzz`)")?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let mut report = parse_output(&target, &text);
        if !out.status.success() && report.crashes + report.ooms + report.timeouts == 0 {
            if report.runs == 0 {
                bail!("{target} did not run:\n{text}");
            }
            report.crashes = 1;
        }
        eprintln!(
            "fuzz: {target}: {} runs in {} s, {} crashes, {} out-of-memory, {} time-outs",
            report.runs, report.seconds, report.crashes, report.ooms, report.timeouts
        );
        reports.push(report);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_output() {
        let clean = "#2\tINITED cov: 10\n#1048576\tpulse  cov: 200 exec/s: 17476\nDone 1048576 runs in 60 second(s)\n";
        let r = parse_output("t", clean);
        assert_eq!((r.runs, r.seconds, r.crashes, r.ooms, r.timeouts), (1_048_576, 60, 0, 0, 0));
        let crash = "#512\tNEW cov: 12\n==1== ERROR: libFuzzer: deadly signal\nartifact_prefix='x'\n";
        let r = parse_output("t", crash);
        assert_eq!((r.runs, r.crashes), (512, 1));
        assert_eq!(parse_output("t", "==2== ERROR: libFuzzer: out-of-memory (used: 2100Mb)").ooms, 1);
        assert_eq!(parse_output("t", "==3== ERROR: libFuzzer: timeout after 10 seconds").timeouts, 1);
    }

    #[test]
    fn every_target_in_the_manifest_has_a_source_file() {
        let fuzz = crate::project_root().join("fuzz");
        let targets = targets(&fuzz).unwrap();
        assert!(targets.len() >= 9, "{targets:?}");
        for t in targets {
            assert!(fuzz.join("fuzz_targets").join(format!("{t}.rs")).is_file(), "{t}");
        }
    }
}
