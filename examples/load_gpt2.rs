//! How fast a GPT-2-small-shaped Hugging Face folder loads, and how much
//! memory loading takes: `cargo run --release --example load_gpt2 [-- ROUNDS]`.
//!
//! The first run writes a random GPT-2 small (12 layers, 12 heads, 768
//! dimensions, vocabulary 50,257, 1,024 positions; 124M parameters, a 498 MB
//! `model.safetensors`) to `target/tmp/gpt2-small-random/`, so nothing is
//! downloaded. Each round then loads it in a fresh process (so the peak
//! resident memory, Linux's `VmHWM`, is loading's own) and prints the
//! seconds and the peak against the file's size; the medians come last.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use addmul::gpt::checkpoint::{load_model, model_safetensors};
use addmul::gpt::{Gpt, GptConfig};

// The allocator of the `addmul` binary, so that the peak is what it sees.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp/gpt2-small-random")
}

/// Peak resident memory of this process so far, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: 0 kB");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).unwrap_or(0) * 1024
}

fn make(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let config = GptConfig::new(50257, 1024, 12, 12, 768);
    let model = Gpt::<f32>::new(config, &mut addmul::core::rng(1))?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("config.json"), config.to_hf_json())?;
    std::fs::write(dir.join("model.safetensors"), model_safetensors(&model, dir)?)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--load-once") {
        let base = peak_rss();
        let t = Instant::now();
        let model = load_model::<f32>(Path::new(&args[2]))?;
        let seconds = t.elapsed().as_secs_f64();
        println!("{seconds} {} {}", peak_rss(), base);
        drop(model);
        return Ok(());
    }
    let rounds: usize = args.get(1).map(|r| r.parse()).transpose()?.unwrap_or(5);
    let dir = folder();
    if !dir.join("model.safetensors").is_file() {
        eprintln!("writing a random GPT-2 small to {} ...", dir.display());
        make(&dir)?;
    }
    let file = std::fs::metadata(dir.join("model.safetensors"))?.len() as f64;
    let (mut secs, mut peaks) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let out = Command::new(std::env::current_exe()?).arg("--load-once").arg(&dir).output()?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
        }
        let text = String::from_utf8(out.stdout)?;
        let v: Vec<f64> = text.split_whitespace().map(|x| x.parse()).collect::<Result<_, _>>()?;
        println!(
            "round {round}: loaded in {:.3} s; peak memory {:.0} MB ({:.2}x the {:.0} MB file; {:.0} MB before loading)",
            v[0],
            v[1] / 1e6,
            v[1] / file,
            file / 1e6,
            v[2] / 1e6
        );
        secs.push(v[0]);
        peaks.push(v[1]);
    }
    let median = |mut xs: Vec<f64>| {
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    };
    let (s, p) = (median(secs), median(peaks));
    println!("median of {rounds}: {s:.3} s, peak {:.0} MB = {:.2}x the file", p / 1e6, p / file);
    Ok(())
}
