//! Inference speed of a GPT-2-small-shaped model (12 layers, 12 heads, 768
//! dimensions, vocabulary 50,257; random weights, so nothing is downloaded):
//! prompt processing (a prompt read in one pass, filling the key/value
//! cache) and cached sampling at batch 1 (one token at a time, greedy).
//!
//! `cargo run --release --example gpt2_speed [-- --prompt P --new K --rounds R]`
//!
//! Each of a token's matrix-vector products is shared among the cores (one
//! core cannot draw all of the memory bandwidth the weights stream through);
//! `RAYON_NUM_THREADS=1` runs it on one. Compare with PyTorch at the same
//! number of threads.
//!
//! Each round reads a fresh prompt of P tokens, then generates K tokens; the
//! medians of the rounds are printed, after one untimed round. The PyTorch
//! yardstick, `transformers`' `generate` on the same shape and the same
//! counts, is `reference/hf_generate_speed.py`.

use std::time::Instant;

use addmul::gpt::{Gpt, GptConfig, Sampler, SamplingConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(args: &[String], name: &str, default: usize) -> Result<usize, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).ok_or_else(|| format!("{name} needs a whole number")),
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (prompt_len, new, rounds) =
        (arg(&args, "--prompt", 128)?, arg(&args, "--new", 128)?, arg(&args, "--rounds", 5)?);
    let config = GptConfig::new(50257, 1024, 12, 12, 768);
    let model = Gpt::<f32>::new(config, &mut addmul::core::rng(1))?;
    let greedy = SamplingConfig { temperature: 0.0, ..SamplingConfig::default() };
    let (mut prompt_rates, mut sample_rates) = (Vec::new(), Vec::new());
    for round in 0..=rounds {
        let prompt: Vec<u32> = (0..prompt_len).map(|i| ((i * 7919 + round * 104_729) % 50257) as u32).collect();
        let t = Instant::now();
        let mut sampler = Sampler::new(&model, &prompt, greedy)?;
        let prompt_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..new {
            sampler.next_token()?;
        }
        let sample_s = t.elapsed().as_secs_f64();
        if round > 0 {
            prompt_rates.push(prompt_len as f64 / prompt_s);
            sample_rates.push(new as f64 / sample_s);
            println!(
                "round {round}: prompt {:.0} tokens/s, sampling {:.1} tokens/s",
                prompt_len as f64 / prompt_s,
                new as f64 / sample_s
            );
        }
    }
    println!(
        "GPT-2 small shape, {} threads, prompt {prompt_len}, {new} new tokens: median of {rounds}: \
         prompt processing {:.0} tokens/s, cached sampling {:.1} tokens/s",
        addmul::core::parallel::pool_threads(),
        median(prompt_rates),
        median(sample_rates)
    );
    Ok(())
}
