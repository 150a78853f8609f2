//! The answers to the book's exercises ("Exercises" at the end of chapters),
//! each computed by the crate the chapter teaches and checked against the
//! formula worked by hand, independently of the crates. The book prints
//! the crate's answers (`xtask/src/chapters/exercises.rs`); these tests are
//! why they can be trusted. Run one chapter's: `cargo test --test exercises ch08`.

use addmul::core::{Init, Layer, Matrix, ParametersExt, rng};
use addmul::leafflower::{ARTICLE_LEAF, ArticleNetwork, HIDDEN_WEIGHTS, OUTPUT_WEIGHTS, SUNFLOWER};
use addmul::tokenizer::{BpeTrainer, Tokenizer};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn ch01_the_top_neurons_sum_with_a_volume_weight_of_a_half() {
    let mut hidden = HIDDEN_WEIGHTS;
    hidden[0][3] = 0.5;
    let layer = addmul::nn::Linear::from_weights(Matrix::from_fn(3, 4, |i, j| hidden[i][j]), None).unwrap();
    let sum = layer.apply(&Matrix::from_column_slice(4, 1, &ARTICLE_LEAF)).unwrap()[0];
    // By hand: 0.10·32 − 0.29·107 − 0.07·56 + 0.5·11.2.
    assert!(close(sum, 3.2 - 31.03 - 3.92 + 5.6, 1e-12), "{sum}");
}

#[test]
fn ch01_the_sunflower_is_a_flower_by_its_scores() {
    let eval = ArticleNetwork::new([0.0; 3]).evaluate(SUNFLOWER).unwrap();
    let h: Vec<f64> = HIDDEN_WEIGHTS.iter().map(|w| w.iter().zip(SUNFLOWER).map(|(w, x)| w * x).sum()).collect();
    let s: Vec<f64> = OUTPUT_WEIGHTS.iter().map(|w| w.iter().zip(&h).map(|(w, x)| w * x).sum()).collect();
    assert!(close(eval.scores[0], s[0], 1e-12) && close(eval.scores[1], s[1], 1e-12));
    assert_eq!(eval.class.name(), if s[0] > s[1] { "leaf" } else { "flower" });
}

#[test]
fn ch02_cross_entropy_of_two_scores_and_its_gradient() {
    let scores = Matrix::from_column_slice(2, 1, &[2.0f64, 1.0]);
    let (loss, cache) = addmul::softmax::cross_entropy(&scores, &[1]).unwrap();
    let e = std::f64::consts::E;
    // −ln(e¹ / (e² + e¹)) = ln(1 + e).
    assert!(close(loss, (1.0 + e).ln(), 1e-12), "{loss}");
    // ∂L/∂s_flower = p_flower − 1 = 1/(1 + e) − 1.
    assert!(close(cache.backward()[1], 1.0 / (1.0 + e) - 1.0, 1e-12));
}

#[test]
fn ch05_cosine_similarity() {
    let cos = addmul::embedding::cosine_similarity(&[1.0f64, 2.0, 3.0], &[2.0, 4.0, 6.5]);
    let dot = 2.0 + 8.0 + 19.5;
    let expected = dot / (14f64.sqrt() * (4.0f64 + 16.0 + 42.25).sqrt());
    assert!(close(cos, expected, 1e-12), "{cos}");
    assert!(close(addmul::embedding::cosine_similarity(&[1.0f64, 0.0], &[-1.0, 0.0]), -1.0, 1e-12));
}

#[test]
fn ch06_two_merges_of_minbpes_example() {
    let bpe = BpeTrainer::new(256 + 2).pattern(None).train("aaabdaaabac").unwrap();
    // By hand: "aa" is the most frequent pair (256), then "a" "b" (257).
    assert_eq!(bpe.encode("aaabdaaabac").unwrap(), [256, 257, 100, 256, 257, 97, 99]);
}

#[test]
fn ch06_gpt2_ids_agree_with_tiktoken() {
    let gpt2 = addmul::text::gpt2_bundled().unwrap();
    let tiktoken = tiktoken_rs::r50k_base().unwrap();
    for text in [" cats", " cat s"] {
        let theirs: Vec<u32> = tiktoken.encode_ordinary(text).into_iter().collect();
        assert_eq!(gpt2.encode_ordinary(text).unwrap(), theirs, "{text:?}");
    }
}

#[test]
fn ch07_one_query_over_two_keys() {
    let q = Matrix::from_column_slice(2, 1, &[1.0f64, 0.0]);
    let k = Matrix::from_column_slice(2, 2, &[1.0, 0.0, 0.0, 1.0]);
    let v = Matrix::from_column_slice(1, 2, &[10.0, 20.0]);
    let (mut w, mut out) = (vec![0.0; 2], Matrix::zeros(1, 1));
    let mask = addmul::attention::Mask::NONE;
    addmul::attention::attend(&q, &k, &v, 0.5f64.sqrt(), &mask, &mut w, &mut out).unwrap();
    // Scores (1/√2, 0): softmax by hand.
    let a = (0.5f64.sqrt()).exp();
    assert!(close(w[0], a / (a + 1.0), 1e-12) && close(w[1], 1.0 / (a + 1.0), 1e-12), "{w:?}");
    assert!(close(out[0], 10.0 * w[0] + 20.0 * w[1], 1e-12));
    // A causal map of 5 tokens hides the 10 cells above its diagonal.
    let masked =
        (0..5).map(|j| (0..5).filter(|&i| !addmul::attention::Mask::CAUSAL.allows(i, j)).count()).sum::<usize>();
    assert_eq!(masked, 5 * 4 / 2);
}

#[test]
fn ch08_softmax_at_two_temperatures() {
    for (x, t) in [([2.0f64, 1.0, 0.1], 1.0), ([2.0, 1.0, 0.1], 0.5)] {
        let mut p = x.map(|v| v / t);
        addmul::softmax::softmax_in_place(&mut p);
        let total: f64 = x.iter().map(|v| (v / t).exp()).sum();
        for (pi, xi) in p.iter().zip(x) {
            assert!(close(*pi, (xi / t).exp() / total, 1e-12));
        }
    }
}

#[test]
fn ch10_layer_norm_of_four_numbers() {
    let norm = addmul::layernorm::LayerNorm::<f64>::new(4);
    let (y, _) = norm.forward(&Matrix::from_column_slice(4, 1, &[1.0, 2.0, 3.0, 4.0])).unwrap();
    // Mean 2.5, variance 1.25 (divided by 4, not 3), ε = 1e-5.
    let sd = (1.25f64 + norm.eps()).sqrt();
    for (yi, xi) in y.iter().zip([1.0, 2.0, 3.0, 4.0]) {
        assert!(close(*yi, (xi - 2.5) / sd, 1e-12));
    }
    let var = y.iter().map(|v| v * v).sum::<f64>() / 4.0;
    assert!(close(var, 1.25 / (1.25 + norm.eps()), 1e-12));
}

#[test]
fn ch11_dropout_scaling() {
    let (kept, _) =
        addmul::dropout::Dropout::new(0.2).unwrap().train(&Matrix::from_element(1, 64, 3.0f64), &mut rng(11));
    assert!(kept.iter().all(|&v| v == 0.0 || close(v, 3.0 / (1.0 - 0.2), 1e-12)));
    assert!(kept.iter().any(|&v| v != 0.0) && kept.iter().any(|&v| v == 0.0));
    let classic = addmul::dropout::Dropout::classic(0.2).unwrap().eval(&Matrix::from_element(1, 1, 3.0f64));
    assert!(close(classic[0], 3.0 * 0.8, 1e-12));
}

#[test]
fn ch12_multi_head_parameters_do_not_depend_on_the_heads() {
    for heads in [1, 2, 3, 6] {
        let mha = addmul::multihead::MultiHeadConfig::self_attention(6, heads)
            .init::<f64>(Init::Normal { std: 0.02 }, &mut rng(12))
            .unwrap();
        // Q, K, V and the output projection: four 6×6 matrices and biases.
        assert_eq!(mha.num_params(), 4 * (6 * 6 + 6), "{heads} heads");
    }
}

#[test]
fn ch13_the_sinusoid_at_position_one() {
    let table = addmul::posenc::sinusoidal::<f64>(4, 2);
    // PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(...), d = 4.
    let expected = [1f64.sin(), 1f64.cos(), 0.01f64.sin(), 0.01f64.cos()];
    for (i, e) in expected.iter().enumerate() {
        assert!(close(table[(i, 1)], *e, 1e-12), "dim {i}: {}", table[(i, 1)]);
    }
}

#[test]
fn ch14_parameter_counts_by_hand() {
    let count = |v: usize, t: usize, l: usize, c: usize| {
        let block = 2 * 2 * c + (3 * c * c + 3 * c) + (c * c + c) + (4 * c * c + 4 * c) + (4 * c * c + c);
        v * c + t * c + l * block + 2 * c
    };
    let cpu_small = addmul::gpt::GptTrainConfig::cpu_small().model_config(65);
    assert_eq!(cpu_small.num_params(), count(65, 64, 4, 128));
    assert_eq!(addmul::gpt::GptConfig::new(50257, 1024, 12, 12, 768).num_params(), 124_439_808);
    let model = addmul::gpt::Gpt::<f32>::new(cpu_small, &mut rng(14)).unwrap();
    assert_eq!(model.num_params(), cpu_small.num_params(), "the model has what the configuration counts");
}

#[test]
fn ch15_length_penalty_and_the_longest_german() {
    let penalty = addmul::transformer::length_penalty(3, 0.6);
    assert!(close(penalty, (8.0f64 / 6.0).powf(0.6), 1e-12));
    // sieben hundert sieben und siebzig tausend sieben hundert sieben und siebzig
    let pieces = addmul::transformer::tasks::numbers::german_tokens(777_777).unwrap();
    assert_eq!(pieces.len(), 2 * 5 + 1, "{pieces:?}");
    assert_eq!(pieces.concat(), "siebenhundertsiebenundsiebzigtausendsiebenhundertsiebenundsiebzig");
}

#[test]
fn ch16_perplexity_is_e_to_the_mean_loss() {
    // One window of a small random model: perplexity = exp(its mean loss).
    let config = addmul::gpt::GptConfig::new(20, 16, 1, 2, 8);
    let model = addmul::gpt::Gpt::<f64>::new(config, &mut rng(16)).unwrap();
    let ids: Vec<u32> = (0..16).map(|i| (i * 7 % 20) as u32).collect();
    let ppl = addmul::gpt::perplexity(&model, &ids, 16).unwrap();
    let batch = addmul::gpt::Batch { inputs: &ids[..15], targets: &ids[1..], seq_len: 15, ignore: None };
    let loss = model.loss(&batch).unwrap();
    assert!(close(ppl.nll, loss, 1e-9), "{} vs {loss}", ppl.nll);
    assert!(close(ppl.perplexity, loss.exp(), 1e-9));
    assert!(close(3.0f64.exp().ln(), 3.0, 1e-12) && close(50f64.ln().exp(), 50.0, 1e-9));
}

#[test]
fn ch03_every_position_is_an_example() {
    use addmul::tokenizer::ArticleChars;
    let ids: Vec<u32> = "hello".chars().map(|c| ArticleChars::id(c).unwrap()).collect();
    assert!(!ids.contains(&ArticleChars::PAD), "padding is an id of its own");
    let examples = addmul::charlm::examples(&ids, 3);
    assert_eq!(examples.len(), 5);
    // Position 2 (the first l) sees one padding, then h and e.
    assert_eq!(examples[2].window, [ArticleChars::PAD, ArticleChars::id('h').unwrap(), ArticleChars::id('e').unwrap()]);
    assert_eq!(examples[2].next, ArticleChars::id('l').unwrap());
    let distinct: std::collections::BTreeSet<char> = addmul::charlm::NURSERY_RHYMES.chars().collect();
    assert_eq!(
        addmul::tokenizer::CharTokenizer::from_text(addmul::charlm::NURSERY_RHYMES).vocab_size(),
        distinct.len()
    );
}

#[test]
fn ch04_a_step_predicts_every_position_of_every_window() {
    let config = addmul::gpt::GptTrainConfig::cpu_small();
    let tokens: Vec<u32> = (0..5000).map(|i| (i * 31 % 65) as u32).collect();
    let mut trainer = addmul::gpt::GptTrainer::new(config.clone(), 65, &tokens).unwrap();
    let report = trainer.train_step().unwrap();
    assert_eq!(report.tokens, config.batch_size * config.block_size);
    let logits = trainer.model().logits(&tokens[..config.block_size], config.block_size).unwrap();
    assert_eq!(logits.ncols(), config.block_size, "one prediction per position of the window");
}

#[test]
fn ch09_a_residual_block_adds_its_input_forward_and_its_gradient_backward() {
    let half =
        addmul::nn::Linear::from_weights(Matrix::from_fn(2, 2, |i, j| if i == j { 0.5 } else { 0.0 }), None).unwrap();
    let mut block = addmul::residual::Residual::new(half);
    let (y, cache) = block.forward(&Matrix::from_column_slice(2, 1, &[1.0f64, 2.0])).unwrap();
    // y = x + 0.5 x.
    assert_eq!((y[0], y[1]), (1.5, 3.0));
    // dx = dy + Wᵀ dy.
    let dx = block.backward(&cache, &Matrix::from_column_slice(2, 1, &[1.0f64, 1.0])).unwrap();
    assert_eq!((dx[0], dx[1]), (1.5, 1.5));
}
