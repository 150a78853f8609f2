//! Tokenizer benchmarks on tinyshakespeare (1.1 MB): training a 4,096-token
//! byte-level BPE, GPT-2 encoding throughput on one thread and on parallel
//! chunks, and training a 4,096-piece unigram model.
//!
//! ```text
//! cargo bench -p addmul-tokenizer --bench tokenizer
//! ```
//!
//! The corpus is read from `$ADDMUL_CORPUS`, or else from
//! `../shared/data/tinyshakespeare.txt` next to the repository; without it
//! the benchmarks are skipped with a message.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use addmul_tokenizer::{Bpe, BpeTrainer, Pattern, UnigramTrainer};
use base64::Engine as _;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn corpus() -> Option<String> {
    let path = std::env::var_os("ADDMUL_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/tinyshakespeare.txt"));
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) => {
            eprintln!("skipping the tokenizer benchmarks: cannot read {} ({e}); set ADDMUL_CORPUS", path.display());
            None
        }
    }
}

/// GPT-2 from the data bundled in tiktoken-rs, loaded with this crate.
fn gpt2() -> Bpe {
    let tk = tiktoken_rs::r50k_base().expect("tiktoken-rs bundles GPT-2");
    let b64 = base64::engine::general_purpose::STANDARD;
    let ranks: String =
        (0..50256u32).map(|id| format!("{} {id}\n", b64.encode(tk.decode_bytes(&[id]).unwrap()))).collect();
    Bpe::gpt2_from_tiktoken(&ranks).expect("a valid rank file")
}

fn benches(c: &mut Criterion) {
    let Some(text) = corpus() else { return };

    let mut g = c.benchmark_group("train");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("bpe_4096_gpt2_split", |b| {
        b.iter(|| BpeTrainer::new(4096).pattern(Some(Pattern::Gpt2)).train(black_box(&text)).unwrap())
    });
    g.bench_function("bpe_4096_no_split", |b| {
        b.iter(|| BpeTrainer::new(4096).pattern(None).train(black_box(&text)).unwrap())
    });
    g.bench_function("unigram_4096", |b| b.iter(|| UnigramTrainer::new(4096).train(black_box(&text)).unwrap()));
    g.finish();

    let bpe = gpt2();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut g = c.benchmark_group("gpt2_encode");
    g.sample_size(20).throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("one_thread", |b| b.iter(|| bpe.encode_ordinary(black_box(&text)).unwrap()));
    g.bench_function(format!("parallel_{threads}_threads"), |b| {
        b.iter(|| bpe.encode_ordinary_parallel(black_box(&text), threads).unwrap())
    });
    let tiktoken = tiktoken_rs::r50k_base().expect("tiktoken-rs bundles GPT-2");
    g.bench_function("tiktoken_rs_one_thread", |b| b.iter(|| tiktoken.encode_ordinary(black_box(&text))));
    g.finish();
}

criterion_group!(tokenizer, benches);
criterion_main!(tokenizer);
