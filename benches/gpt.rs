//! The GPT's hot paths end to end: one `cpu-small` training step (forward,
//! backward and the AdamW update over 12 windows of 64 tokens, split across
//! the cores as `addmul train` does) and one token of cached decoding.
//!
//! The data are random token ids, so the bench needs no corpus; the speed of
//! a step does not depend on what the tokens say. The measurement on
//! tinyshakespeare with its losses is `addmul bench`.
//!
//! `cargo bench --bench gpt`

use std::hint::black_box;

use addmul::gpt::{GptTrainConfig, GptTrainer};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::RngExt;

/// As in `addmul`: training frees and allocates the same large buffers
/// every step, which glibc's malloc returns to the system and faults back in.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const VOCAB: usize = 65; // tinyshakespeare's characters

fn tokens() -> Vec<u32> {
    let mut r = addmul::core::rng(1);
    (0..200_000).map(|_| r.random_range(0..VOCAB as u32)).collect()
}

fn bench_train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("gpt_cpu_small");
    group.sample_size(30);
    let config = GptTrainConfig::cpu_small();
    group.throughput(Throughput::Elements((config.batch_size * config.block_size) as u64));
    let mut trainer = GptTrainer::new(config, VOCAB, &tokens()).expect("cpu-small is a valid configuration");
    group.bench_function("train step (tokens/s)", |b| b.iter(|| black_box(trainer.train_step().expect("a step"))));
    group.finish();
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("gpt_cpu_small");
    let trainer =
        GptTrainer::new(GptTrainConfig::cpu_small(), VOCAB, &tokens()).expect("cpu-small is a valid configuration");
    let model = trainer.model();
    let block = model.config().block_size;
    // Decode positions 0..block over and over: the mean cost of a token
    // across a full context, as sampling at batch 1 sees it.
    group.throughput(Throughput::Elements(block as u64));
    group.bench_function("decode a full context, cached (tokens/s)", |b| {
        b.iter(|| {
            let mut state = model.decode_state();
            for i in 0..block {
                black_box(model.decode(&mut state, &[(i % VOCAB) as u32]).expect("in range"));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_train_step, bench_decode);
criterion_main!(benches);
