//! Multi-head attention forward + backward at a GPT-small-like size (d = 768,
//! 12 heads, T = 256) and at the cpu-small size (d = 128, 4 heads, T = 64,
//! batch 12).
//!
//! `cargo bench -p addmul-multihead`

use std::hint::black_box;

use addmul_core::{Init, Matrix, rng};
use addmul_multihead::MultiHeadConfig;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("multihead_f32");
    group.sample_size(20);
    for (name, d, heads, t, batch) in
        [("gpt-small d768 h12 T256", 768, 12, 256, 1), ("cpu-small d128 h4 T64 B12", 128, 4, 64, 12)]
    {
        let mut mha = MultiHeadConfig::self_attention(d, heads)
            .causal()
            .init::<f32>(Init::Normal { std: 0.02 }, &mut rng(0))
            .unwrap();
        let x: Matrix<f32> = Init::Normal { std: 1.0 }.matrix(d, t * batch, &mut rng(1));
        let dy: Matrix<f32> = Init::Normal { std: 1.0 }.matrix(d, t * batch, &mut rng(2));
        group.throughput(Throughput::Elements((t * batch) as u64));
        group.bench_function(format!("forward+backward {name}"), |b| {
            b.iter(|| {
                let (y, cache) = mha.forward_self(black_box(&x), t, None).unwrap();
                black_box(y);
                black_box(mha.backward(&cache, &dy).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
