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

/// The kernels alone, causal, head size 32 (cpu-small's heads): the plain
/// one keeps the `[T, T]` weights; the tiled one never holds more than a
/// tile of them and skips most of the masked half.
fn kernels(c: &mut Criterion) {
    use addmul_attention::{Mask, attend, attend_backward, attend_tiled, attend_tiled_backward};
    let mut group = c.benchmark_group("attention_kernel_f32_head32");
    group.sample_size(10);
    for t in [64usize, 256, 1024, 2048] {
        let m = |seed| -> Matrix<f32> { Init::Normal { std: 1.0 }.matrix(32, t, &mut rng(seed)) };
        let (q, k, v, dout) = (m(1), m(2), m(3), m(4));
        let (mut dq, mut dk, mut dv) = (m(5), m(6), m(7));
        let mut out = Matrix::zeros(32, t);
        group.throughput(Throughput::Elements(t as u64));
        group.bench_with_input(BenchmarkId::new("plain forward+backward", t), &t, |b, &t| {
            let (mut w, mut scratch) = (vec![0.0; t * t], vec![0.0; t * t]);
            b.iter(|| {
                attend(&q, &k, &v, 0.18, &Mask::CAUSAL, &mut w, &mut out).unwrap();
                attend_backward(&q, &k, &v, 0.18, &w, &dout, &mut dq, &mut dk, &mut dv, &mut scratch).unwrap();
            })
        });
        group.bench_with_input(BenchmarkId::new("tiled forward+backward", t), &t, |b, _| {
            let mut scratch = Vec::new();
            b.iter(|| {
                attend_tiled(&q, &k, &v, 0.18, &Mask::CAUSAL, &mut out, &mut scratch).unwrap();
                attend_tiled_backward(&q, &k, &v, 0.18, &Mask::CAUSAL, &dout, &mut dq, &mut dk, &mut dv, &mut scratch)
                    .unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, kernels);
criterion_main!(benches);
