//! Layer norm forward + backward at GPT-small width (768 features x 256
//! tokens) and at the cpu-small size (128 features x 12·64 tokens).
//!
//! `cargo bench -p addmul-layernorm`

use std::hint::black_box;

use addmul_core::{Init, Layer, Matrix, rng};
use addmul_layernorm::LayerNorm;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("layernorm_f32");
    for (name, d, n) in [("gpt-small d768 T256", 768, 256), ("cpu-small d128 B12xT64", 128, 768)] {
        let mut ln = LayerNorm::<f32>::new(d);
        let x: Matrix<f32> = Init::Normal { std: 1.0 }.matrix(d, n, &mut rng(1));
        let dy: Matrix<f32> = Init::Normal { std: 1.0 }.matrix(d, n, &mut rng(2));
        group.throughput(Throughput::Elements((d * n) as u64));
        group.bench_function(format!("forward+backward {name}"), |b| {
            b.iter(|| {
                let (y, cache) = ln.forward(black_box(&x)).unwrap();
                black_box(y);
                black_box(ln.backward(&cache, &dy).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
