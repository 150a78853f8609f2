//! Attention forward + backward at T = 64, 256 and 1024 with head size 64:
//! how time grows with the sequence length (quadratically in the scores).
//!
//! `cargo bench -p addmul-attention`

use std::hint::black_box;

use addmul_attention::AttentionConfig;
use addmul_core::{Init, Matrix, rng};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention_f32_head64");
    group.sample_size(20);
    for t in [64usize, 256, 1024] {
        let mut att =
            AttentionConfig::new(64, 64).causal().init::<f32>(Init::Normal { std: 0.02 }, &mut rng(0)).unwrap();
        let x: Matrix<f32> = Init::Normal { std: 1.0 }.matrix(64, t, &mut rng(1));
        let dy: Matrix<f32> = Init::Normal { std: 1.0 }.matrix(64, t, &mut rng(2));
        group.throughput(Throughput::Elements(t as u64));
        group.bench_with_input(BenchmarkId::new("forward+backward", t), &t, |b, &t| {
            b.iter(|| {
                let (y, cache) = att.forward_self(black_box(&x), t, None).unwrap();
                black_box(y);
                black_box(att.backward(&cache, &dy).unwrap())
            })
        });
        group.bench_with_input(BenchmarkId::new("forward", t), &t, |b, &t| {
            b.iter(|| black_box(att.forward_self(black_box(&x), t, None).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
