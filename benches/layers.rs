//! Hot paths of the foundation crates: the matrix product in the shapes a
//! small GPT uses, a linear layer's forward and backward, softmax and
//! cross-entropy.
//!
//! `cargo bench --bench layers`

use std::hint::black_box;

use addmul::core::{Init, Layer, Matrix, Op, gemm, rng};
use addmul::nn::{Activation, Linear};
use addmul::softmax::{cross_entropy, softmax};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn random(rows: usize, cols: usize, seed: u64) -> Matrix<f32> {
    Init::Normal { std: 1.0 }.matrix(rows, cols, &mut rng(seed))
}

/// `[out, in] x [in, tokens]` at cpu-small shapes (768 tokens), all three
/// products of a linear layer's forward and backward.
fn bench_gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm_f32");
    let tokens = 768;
    for (out, inp) in [(384, 128), (512, 128), (128, 512)] {
        let w = random(out, inp, 1);
        let x = random(inp, tokens, 2);
        let dy = random(out, tokens, 3);
        let flops = 2 * out * inp * tokens;
        group.throughput(Throughput::Elements(flops as u64));
        let mut y = Matrix::zeros(out, tokens);
        group.bench_function(BenchmarkId::new("W·x", format!("{out}x{inp}x{tokens}")), |b| {
            b.iter(|| gemm(1.0, black_box(&w), Op::N, black_box(&x), Op::N, 0.0, &mut y).unwrap())
        });
        let mut dx = Matrix::zeros(inp, tokens);
        group.bench_function(BenchmarkId::new("Wᵀ·dy", format!("{out}x{inp}x{tokens}")), |b| {
            b.iter(|| gemm(1.0, black_box(&w), Op::T, black_box(&dy), Op::N, 0.0, &mut dx).unwrap())
        });
        let mut dw = Matrix::zeros(out, inp);
        group.bench_function(BenchmarkId::new("dy·xᵀ", format!("{out}x{inp}x{tokens}")), |b| {
            b.iter(|| gemm(1.0, black_box(&dy), Op::N, black_box(&x), Op::T, 1.0, &mut dw).unwrap())
        });
    }
    group.finish();
}

fn bench_linear(c: &mut Criterion) {
    let mut group = c.benchmark_group("linear_f32");
    let (inp, out, tokens) = (128, 512, 768);
    let mut layer = Linear::<f32>::new(inp, out, true, Init::Normal { std: 0.02 }, &mut rng(0));
    let x = random(inp, tokens, 1);
    let dy = random(out, tokens, 2);
    group.throughput(Throughput::Elements((3 * 2 * inp * out * tokens) as u64));
    group.bench_function("forward+backward 128->512 x768", |b| {
        b.iter(|| {
            let (y, cache) = layer.forward(black_box(&x)).unwrap();
            black_box(y);
            black_box(layer.backward(&cache, &dy).unwrap())
        })
    });
    group.finish();
}

fn bench_elementwise(c: &mut Criterion) {
    let mut group = c.benchmark_group("elementwise_f32");
    let x = random(512, 768, 4);
    group.throughput(Throughput::Elements(x.len() as u64));
    for act in [Activation::GeluTanh, Activation::GeluErf, Activation::Relu] {
        group.bench_function(format!("{act:?} 512x768"), |b| b.iter(|| black_box(act.map(black_box(&x)))));
    }
    let logits = random(65, 768, 5);
    let targets: Vec<usize> = (0..768).map(|i| i % 65).collect();
    group.throughput(Throughput::Elements(logits.len() as u64));
    group.bench_function("softmax 65x768", |b| b.iter(|| black_box(softmax(black_box(&logits)))));
    group.bench_function("cross_entropy+backward 65x768", |b| {
        b.iter(|| {
            let (loss, cache) = cross_entropy(black_box(&logits), &targets).unwrap();
            black_box((loss, cache.backward()))
        })
    });
    group.finish();
}

criterion_group!(benches, bench_gemm, bench_linear, bench_elementwise);
criterion_main!(benches);
