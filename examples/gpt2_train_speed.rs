//! Training speed at GPT-2 small's shape (12 layers, 12 heads, 768
//! dimensions, vocabulary 50,257; windows of 256 tokens, batch 4): median
//! milliseconds per optimizer step, tokens/s and GFLOP/s (counted as
//! [`GptConfig::training_flops`] counts them) beside the products' ceiling.
//!
//! `cargo run --release --example gpt2_train_speed [-- --steps N --record FILE]`
//!
//! The data are random token ids (nothing is downloaded; a step's speed does
//! not depend on what the tokens say). Everything else is `addmul train`'s
//! step: forward, backward, clipping and AdamW over the batch split among the
//! cores. The PyTorch yardstick on the same shape and recipe is
//! `reference/gpt2_train_speed.py`; run the two one after the other.
//!
//! [`GptConfig::training_flops`]: addmul::gpt::GptConfig::training_flops

use std::time::Instant;

use addmul::gpt::{GptTrainConfig, GptTrainer};
use rand::RngExt;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const VOCAB: usize = 50257;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    addmul::alloc::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let steps: usize = value("--steps").map(|s| s.parse()).transpose()?.unwrap_or(12);
    let config = GptTrainConfig {
        n_layer: 12,
        n_head: 12,
        n_embd: 768,
        block_size: 256,
        batch_size: 4,
        max_iters: steps as u64 + 2,
        warmup_iters: 2,
        ..GptTrainConfig::cpu_small()
    };
    let mut r = addmul::core::rng(1);
    let ids: Vec<u32> = (0..200_000).map(|_| r.random_range(0..VOCAB as u32)).collect();
    let mut trainer = GptTrainer::new(config.clone(), VOCAB, &ids)?;
    let mut times = Vec::new();
    for step in 0..steps + 2 {
        let t = Instant::now();
        trainer.train_step()?;
        if step >= 2 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let tokens = config.batch_size * config.block_size;
    let flops = trainer.model().config().training_flops(tokens, config.block_size);
    let gflops = flops / median / 1e9;
    let ceiling = addmul::app::gemm_ceiling(trainer.threads(), 1024);
    println!(
        "GPT-2 small shape, T {}, B {}, {} threads: median of {steps} steps {:.1} ms per step, {:.0} tokens/s, \
         {gflops:.1} GFLOP/s (products' ceiling {:.1} GFLOP/s: {:.0}%)",
        config.block_size,
        config.batch_size,
        trainer.threads(),
        median * 1e3,
        tokens as f64 / median,
        ceiling.gflops,
        100.0 * gflops / ceiling.gflops
    );
    if let Some(path) = value("--record") {
        let record = serde_json::json!({
            "about": "a training step at GPT-2 small's shape on random ids: examples/gpt2_train_speed.rs",
            "date": addmul::demos::utc_date(),
            "command": args.join(" "),
            "cpu": addmul::demos::cpu_description(),
            "threads": trainer.threads(),
            "block_size": config.block_size,
            "batch_size": config.batch_size,
            "steps": steps,
            "median_ms": median * 1e3,
            "tokens_per_s": tokens as f64 / median,
            "gflops": gflops,
            "ceiling_gflops": ceiling.gflops,
        });
        std::fs::write(path, serde_json::to_string_pretty(&record)? + "\n")?;
        println!("recorded in {path}");
    }
    Ok(())
}
