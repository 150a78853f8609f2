//! Inference speed of a GPT-2-small-shaped model (12 layers, 12 heads, 768
//! dimensions, vocabulary 50,257; random weights, so nothing is downloaded):
//! prompt processing (a prompt read in one pass, filling the key/value
//! cache) and cached sampling at batch 1 (one token at a time, greedy).
//!
//! `cargo run --release --example gpt2_speed [-- --prompt P --new K --rounds R --record FILE]`
//!
//! `--record FILE` writes the medians as JSON with the date, the command and
//! the CPU (book/measured/gpt2_speed_addmul.json is such a record; the
//! yardstick's `--record` writes book/measured/gpt2_speed_transformers.json).
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
    addmul::alloc::keep_freed_memory();
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
    let threads = addmul::core::parallel::pool_threads();
    let (prompt_rate, sample_rate) = (median(prompt_rates.clone()), median(sample_rates.clone()));
    println!(
        "GPT-2 small shape, {threads} threads, prompt {prompt_len}, {new} new tokens: median of {rounds}: \
         prompt processing {prompt_rate:.0} tokens/s, cached sampling {sample_rate:.1} tokens/s",
    );
    // How close reading the prompt comes to the products' ceiling: its
    // multiply-adds (every block's products for every token, the causal
    // attention's scores and sums, the head for the last token only) against
    // the same gemm kernels on large square matrices, one per thread.
    let (c, t, l) = (768.0, prompt_len as f64, 12.0);
    let prompt_flops = 2.0 * l * 12.0 * c * c * t + 2.0 * 2.0 * l * c * t * (t + 1.0) / 2.0 + 2.0 * 50257.0 * c;
    let prompt_gflops = prompt_flops * prompt_rate / t / 1e9;
    let ceiling = addmul::app::gemm_ceiling(threads, 1024);
    println!(
        "prompt processing: {prompt_gflops:.1} GFLOP/s; the products' ceiling: {:.1} GFLOP/s ({:.0}%)",
        ceiling.gflops,
        100.0 * prompt_gflops / ceiling.gflops
    );
    if let Some(i) = args.iter().position(|a| a == "--record") {
        let path = args.get(i + 1).ok_or("--record needs a file name")?;
        let record = serde_json::json!({
            "about": "GPT-2-small-shaped model (random weights), batch 1, greedy: examples/gpt2_speed.rs",
            "date": addmul::demos::utc_date(),
            "command": args.join(" "),
            "cpu": addmul::demos::cpu_description(),
            "threads": threads,
            "prompt_tokens": prompt_len,
            "new_tokens": new,
            "rounds": rounds,
            "prompt_tokens_per_s": prompt_rate,
            "sampling_tokens_per_s": sample_rate,
            "prompt_gflops": prompt_gflops,
            "ceiling_gflops": ceiling.gflops,
            "prompt_tokens_per_s_by_round": prompt_rates,
            "sampling_tokens_per_s_by_round": sample_rates,
        });
        std::fs::write(path, serde_json::to_string_pretty(&record)? + "\n")?;
        println!("recorded in {path}");
    }
    Ok(())
}
