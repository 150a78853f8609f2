//! The answers to the chapters' exercises, computed by the crates (the
//! chapters print them with `{{#value exNN.*}}`). `tests/exercises.rs`
//! checks each answer against a formula worked independently of the crates.

use addmul::core::{Init, Layer, Matrix, ParametersExt, rng};
use addmul::dropout::Dropout;
use addmul::gpt::{GptConfig, GptTrainConfig};
use addmul::layernorm::LayerNorm;
use addmul::leafflower::{ARTICLE_LEAF, ArticleNetwork, HIDDEN_WEIGHTS, SUNFLOWER};
use addmul::multihead::MultiHeadConfig;
use addmul::nn::Linear;
use addmul::tokenizer::{BpeTrainer, Tokenizer};
use anyhow::{Result, ensure};

use super::{Gen, thousands};

/// Numbers as a list: `(0.659, 0.242, 0.099)`.
fn tuple(values: &[f64], decimals: usize) -> String {
    format!("({})", values.iter().map(|v| format!("{v:.decimals$}")).collect::<Vec<_>>().join(", "))
}

pub fn generate(g: &mut Gen) -> Result<()> {
    // Chapter 1: the top neuron with a volume weight of 0.5; the sunflower.
    let mut hidden = HIDDEN_WEIGHTS;
    hidden[0][3] = 0.5;
    let layer = Linear::from_weights(Matrix::from_fn(3, 4, |i, j| hidden[i][j]), Some(vec![0.0; 3]))?;
    let sums = layer.apply(&Matrix::from_column_slice(4, 1, &ARTICLE_LEAF))?;
    g.num("ex01.volume_sum", sums[0], 3);
    let sunflower = ArticleNetwork::new([0.0; 3]).evaluate(SUNFLOWER)?;
    g.values.set("ex01.sunflower_class", sunflower.class.name());
    g.num("ex01.sunflower_leaf", sunflower.scores[0], 3);
    g.num("ex01.sunflower_flower", sunflower.scores[1], 3);

    // Chapter 2: cross-entropy of scores (2, 1) when the answer is flower,
    // and the gradient on the flower score.
    let scores = Matrix::from_column_slice(2, 1, &[2.0f64, 1.0]);
    let (loss, cache) = addmul::softmax::cross_entropy(&scores, &[1])?;
    g.num("ex02.loss", loss, 4);
    let grad = cache.backward();
    g.num("ex02.grad_flower", grad[1], 4);
    g.num("ex02.step_flower", 1.0 - 0.1 * grad[1], 4);

    // Chapter 3: the examples of "hello" with a 3-character context; the
    // rhymes' alphabet.
    use addmul::tokenizer::ArticleChars;
    let ids: Vec<u32> = "hello".chars().filter_map(ArticleChars::id).collect();
    let examples = addmul::charlm::examples(&ids, 3);
    g.values.set("ex03.hello_examples", examples.len());
    let window: Vec<String> = examples[2]
        .window
        .iter()
        .map(|&id| match ArticleChars::char(id) {
            Some(c) if id != ArticleChars::PAD => format!("`{c}`"),
            _ => "(padding)".into(),
        })
        .collect();
    g.values.set("ex03.window", window.join(", "));
    let rhymes = addmul::tokenizer::CharTokenizer::from_text(addmul::charlm::NURSERY_RHYMES);
    g.values.set("ex03.rhymes_chars", rhymes.vocab_size());

    // Chapter 4: one cpu-small step's predictions.
    let config = GptTrainConfig::cpu_small();
    g.values.set("ex04.window", config.block_size);
    g.values.set("ex04.step_predictions", config.batch_size * config.block_size);

    // Chapter 9: a residual block around W = 0.5·I.
    let half = Linear::from_weights(Matrix::from_fn(2, 2, |i, j| if i == j { 0.5 } else { 0.0 }), None)?;
    let block = addmul::residual::Residual::new(half);
    let (y, cache) = block.forward(&Matrix::from_column_slice(2, 1, &[1.0f64, 2.0]))?;
    g.values.set("ex09.forward", tuple(&[y[0], y[1]], 2));
    let mut block = block;
    let dx = block.backward(&cache, &Matrix::from_column_slice(2, 1, &[1.0f64, 1.0]))?;
    g.values.set("ex09.backward", tuple(&[dx[0], dx[1]], 2));

    // Chapter 5: cosine similarity.
    let cos = addmul::embedding::cosine_similarity(&[1.0f64, 2.0, 3.0], &[2.0, 4.0, 6.5]);
    g.num("ex05.cosine", cos, 4);
    let opposite = addmul::embedding::cosine_similarity(&[1.0f64, 0.0], &[-1.0, 0.0]);
    g.num("ex05.opposite", opposite, 1);

    // Chapter 6: minbpe's example after two merges; GPT-2's id for " cats".
    let bpe = BpeTrainer::new(256 + 2).pattern(None).train("aaabdaaabac")?;
    let ids = bpe.encode("aaabdaaabac")?;
    g.values.set("ex06.two_merges", format!("{ids:?}"));
    g.values.set("ex06.two_merges_count", ids.len());
    let gpt2 = addmul::text::gpt2_bundled()?;
    g.values.set("ex06.gpt2_cats", format!("{:?}", gpt2.encode_ordinary(" cats")?));
    g.values.set("ex06.gpt2_cat_s", format!("{:?}", gpt2.encode_ordinary(" cat s")?));

    // Chapter 7: one query over two keys, scaled by 1/sqrt(2).
    let q = Matrix::from_column_slice(2, 1, &[1.0f64, 0.0]);
    let k = Matrix::from_column_slice(2, 2, &[1.0, 0.0, 0.0, 1.0]);
    let v = Matrix::from_column_slice(1, 2, &[10.0, 20.0]);
    let mut weights = vec![0.0; 2];
    let mut out = Matrix::zeros(1, 1);
    addmul::attention::attend(&q, &k, &v, 0.5f64.sqrt(), &addmul::attention::Mask::NONE, &mut weights, &mut out)?;
    g.values.set("ex07.weights", tuple(&weights, 3));
    g.num("ex07.output", out[0], 2);
    let n = 5;
    let hidden_future =
        (0..n).map(|j| (0..n).filter(|&i| !addmul::attention::Mask::CAUSAL.allows(i, j)).count()).sum::<usize>();
    g.values.set("ex07.masked", hidden_future);

    // Chapter 8: softmax of (2, 1, 0.1) at temperature 1 and 0.5.
    let mut p = [2.0f64, 1.0, 0.1];
    addmul::softmax::softmax_in_place(&mut p);
    g.values.set("ex08.t1", tuple(&p, 3));
    let mut p2 = [4.0f64, 2.0, 0.2];
    addmul::softmax::softmax_in_place(&mut p2);
    g.values.set("ex08.t05", tuple(&p2, 3));

    // Chapter 10: layer norm of (1, 2, 3, 4).
    let norm = LayerNorm::<f64>::new(4);
    let (y, _) = norm.forward(&Matrix::from_column_slice(4, 1, &[1.0, 2.0, 3.0, 4.0]))?;
    let y: Vec<f64> = y.iter().copied().collect();
    g.values.set("ex10.normalized", tuple(&y, 3));
    let var = y.iter().map(|v| v * v).sum::<f64>() / 4.0;
    g.num("ex10.variance", var, 6);

    // Chapter 11: a kept 3.0 under inverted dropout p = 0.2; classic
    // dropout's evaluation.
    let inverted = Dropout::new(0.2)?;
    let x = Matrix::from_element(1, 64, 3.0f64);
    let (dropped, _) = inverted.train(&x, &mut rng(11));
    let kept = dropped.iter().copied().find(|&v| v != 0.0).unwrap_or(0.0);
    g.num("ex11.kept", kept, 2);
    let classic = Dropout::classic(0.2)?.eval(&Matrix::from_element(1, 1, 3.0f64));
    g.num("ex11.classic_eval", classic[0], 2);

    // Chapter 12: multi-head attention's parameters at d_model 6, 2 heads.
    let mha = MultiHeadConfig::self_attention(6, 2).init::<f64>(Init::Normal { std: 0.02 }, &mut rng(12))?;
    g.values.set("ex12.params", mha.num_params());
    let wide = MultiHeadConfig::self_attention(6, 3).init::<f64>(Init::Normal { std: 0.02 }, &mut rng(12))?;
    ensure!(wide.num_params() == mha.num_params(), "the number of heads changed the parameter count");

    // Chapter 13: the sinusoid at position 1, d = 4.
    let table = addmul::posenc::sinusoidal::<f64>(4, 2);
    let column: Vec<f64> = table.column(1).iter().copied().collect();
    g.values.set("ex13.position1", tuple(&column, 4));

    // Chapter 14: cpu-small's parameters on 65 characters, and what an
    // untied output layer would add.
    let cpu_small = GptTrainConfig::cpu_small().model_config(65);
    g.values.set("ex14.params", thousands(cpu_small.num_params() as u64));
    g.values.set("ex14.untied", thousands((cpu_small.vocab_size * cpu_small.n_embd) as u64));
    let small = GptConfig::new(50257, 1024, 12, 12, 768);
    g.values.set("ex14.gpt2_small", thousands(small.num_params() as u64));

    // Chapter 15: the length penalty; 777,777 in German pieces.
    g.num("ex15.penalty", addmul::transformer::length_penalty(3, 0.6), 4);
    let pieces = addmul::transformer::tasks::numbers::german_tokens(777_777)?;
    g.values.set("ex15.pieces", pieces.len());

    // Chapter 16: perplexity is e to the loss.
    g.num("ex16.perplexity", 3.0f64.exp(), 2);
    g.num("ex16.loss_of_ppl_50", 50f64.ln(), 3);
    Ok(())
}
