//! How fast the explorer answers (issue 13's targets, for this bench and not
//! for a timed test): the attention maps and the next-token distribution
//! for a 64-token prompt on `cpu-small` (target: under 50 ms), tokenizing
//! 10 KB of text with every tokenizer of the Tokens page (under 20 ms), and
//! the leaf/flower page's sums (under 10 ms). The numbers are the
//! endpoints' own functions, without HTTP; a request to 127.0.0.1 adds a
//! fraction of a millisecond.
//!
//! The model is `cpu-small` with random weights: its speed does not depend
//! on what it learned.
//!
//! `cargo bench --bench explore`

use std::hint::black_box;

use addmul::explore::api::{AttentionRequest, NeuronRequest, NextRequest, TokensRequest};
use addmul::explore::{Explorer, LoadedModel, compute};
use addmul::gpt::{Gpt, GptTrainConfig};
use addmul::text::{TextTokenizer, TokenizerKind};
use criterion::{Criterion, criterion_group, criterion_main};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn explorer() -> (Explorer, String) {
    let runs = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("explore-bench-runs");
    let state = Explorer::new(&runs, None).expect("a runs folder");
    let text = addmul::corpus::book_text();
    let tokenizer = TextTokenizer::train(TokenizerKind::Char, text, 0).expect("characters");
    let vocab = tokenizer.as_dyn().vocab_size();
    let config = GptTrainConfig::cpu_small().model_config(vocab);
    let model = Gpt::new(config, &mut addmul::core::rng(1)).expect("cpu-small");
    state.set_model(LoadedModel::new("cpu-small (random weights)", model, tokenizer));
    // 64 characters of the book: 64 tokens for a character model.
    let prompt: String = text.chars().skip(1000).take(64).collect();
    (state, prompt)
}

fn bench_explore(c: &mut Criterion) {
    let (state, prompt) = explorer();
    let mut group = c.benchmark_group("explore");
    group.bench_function("attention maps + next-token distribution, 64 tokens, cpu-small", |b| {
        b.iter(|| {
            let maps =
                compute::attention(&state, AttentionRequest { prompt: prompt.clone(), layer: None }).expect("maps");
            let next = compute::next(
                &state,
                NextRequest { prompt: prompt.clone(), temperature: Some(0.8), top_k: None, top_p: None, show: None },
            )
            .expect("next");
            black_box((maps, next))
        })
    });
    let ten_kb: String = addmul::corpus::book_text().chars().take(10_000).collect();
    state.tokenizers().expect("the tokens page's tokenizers");
    group.bench_function("tokens page, 10 KB of text", |b| {
        b.iter(|| black_box(compute::tokens(&state, TokensRequest { text: ten_kb.clone() }).expect("tokens")))
    });
    group.bench_function("leaf/flower sums", |b| {
        b.iter(|| {
            black_box(compute::neuron(&NeuronRequest { inputs: addmul::leafflower::ARTICLE_LEAF, weights: None }))
        })
    });
    group.finish();
}

criterion_group!(benches, bench_explore);
criterion_main!(benches);
