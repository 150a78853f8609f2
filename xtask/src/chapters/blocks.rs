//! Chapters 9-12: residual connections, layer normalization, dropout and
//! multi-head attention.

use addmul::core::{Init, Layer, Matrix, ParametersExt, rng};
use addmul::demos::{DepthConfig, layer_norm_depth, residual_depth};
use addmul::dropout::Dropout;
use addmul::layernorm::LayerNorm;
use addmul::multihead::{KvCache, MultiHeadConfig};
use addmul::plot::{BarChart, Heatmap, LineChart, Series, SeriesLabelPosition};
use anyhow::{Context, Result, ensure};

use super::Gen;

fn fmt_list(values: impl IntoIterator<Item = f64>, decimals: usize) -> String {
    let items: Vec<String> = values.into_iter().map(|v| format!("{v:.decimals$}")).collect();
    format!("[{}]", items.join(", "))
}

pub fn generate(g: &mut Gen) -> Result<()> {
    residual(g)?;
    layer_norm(g)?;
    positions_of_the_book_gpt(g)?;
    dropout(g)?;
    multihead(g)
}

fn residual(g: &mut Gen) -> Result<()> {
    let config = DepthConfig::default();
    let [plain, res] = residual_depth(&config)?;
    g.num("ch09.depth", config.depth as f64, 0);
    g.num("ch09.width", config.width as f64, 0);
    g.num("ch09.epochs", config.epochs as f64, 0);
    g.num("ch09.lr", config.lr, 2);
    g.values.set("ch09.momentum", config.momentum);
    for (name, run) in [("plain", &plain), ("residual", &res)] {
        g.values.set(&format!("ch09.{name}.first_grad"), format!("{:.1e}", run.grad_norm_by_layer[0]));
        g.num(&format!("ch09.{name}.final_loss"), *run.train_loss.last().expect("trained"), 3);
    }
    g.num("ch09.residual.first_epoch_loss", res.train_loss[0], 3);
    let by_layer = |r: &addmul::demos::DepthRun| {
        r.grad_norm_by_layer.iter().enumerate().map(|(i, n)| ((i + 1) as f64, n.max(1e-300).log10())).collect()
    };
    LineChart::new("Gradient reaching each layer at the start of training", "layer (1 = first)", "log10 gradient norm")
        .series(Series::new("without residual connections", by_layer(&plain)))
        .series(Series::new("with residual connections", by_layer(&res)))
        .legend_at(SeriesLabelPosition::MiddleRight)
        .save(g.figure("ch09_gradient_by_layer.svg"))?;
    without_layer_norm(g, &config)?;
    let curve =
        |r: &addmul::demos::DepthRun| r.train_loss.iter().enumerate().map(|(i, l)| ((i + 1) as f64, *l)).collect();
    LineChart::new(format!("Training a {}-layer stack", config.depth), "epoch", "training loss (cross-entropy)")
        .series(Series::new("without residual connections", curve(&plain)))
        .series(Series::new("with residual connections", curve(&res)))
        .save(g.figure("ch09_training.svg"))?;
    Ok(())
}

/// Chapter 10: chapter 9's residual stack, deeper, without and with a layer
/// norm at the entrance of every block.
fn without_layer_norm(g: &mut Gen, chapter9: &DepthConfig) -> Result<()> {
    let config = DepthConfig { depth: 50, ..*chapter9 };
    let [plain, norm] = layer_norm_depth(&config)?;
    let by_block = |r: &addmul::demos::DepthRun| -> Vec<(f64, f64)> {
        r.stream_rms.iter().enumerate().map(|(i, v)| ((i + 1) as f64, v.log10())).collect()
    };
    LineChart::new(
        format!("The stream of a {}-block residual stack at initialisation", config.depth),
        "block",
        "log10 root mean square of the stream",
    )
    .series(Series::new("without layer norm", by_block(&plain)))
    .series(Series::new("with layer norm (pre-norm)", by_block(&norm)))
    .legend_at(SeriesLabelPosition::UpperLeft)
    .save(g.figure("ch10_stream.svg"))?;
    let diverged = plain.diverged_at.context("the stack without layer norm no longer diverges: update chapter 10")?;
    ensure!(norm.diverged_at.is_none(), "the stack with layer norm diverges: update chapter 10");
    let first = |r: &addmul::demos::DepthRun| r.stream_rms[0];
    let last = |r: &addmul::demos::DepthRun| *r.stream_rms.last().expect("a stack has blocks");
    ensure!(last(&plain) > 5.0 * last(&norm), "the stream without layer norm no longer outgrows the one with it");
    g.num("ch10.ablation.depth", config.depth as f64, 0);
    g.num("ch10.ablation.epochs", config.epochs as f64, 0);
    g.num("ch10.ablation.plain.first", first(&plain), 2);
    g.num("ch10.ablation.plain.last", last(&plain), 1);
    g.num("ch10.ablation.norm.first", first(&norm), 2);
    g.num("ch10.ablation.norm.last", last(&norm), 2);
    g.num("ch10.ablation.plain.diverged", diverged as f64, 0);
    g.num("ch10.ablation.norm.final", *norm.train_loss.last().context("trained")?, 3);
    Ok(())
}

/// The features of a few tokens of the book's GPT before and after a layer
/// norm (without its gain and bias): a histogram of each.
fn layer_norm_of_the_book_gpt(g: &mut Gen) -> Result<()> {
    use addmul::tokenizer::{ArticleChars, Tokenizer};
    let model = g.book_gpt.as_ref().context("chapter 14's generator trains the book's GPT first")?;
    let word = "layer";
    let ids: Vec<usize> = ArticleChars.encode(word)?.into_iter().map(|i| i as usize).collect();
    let x = model.wte().forward(&ids)?.map(f64::from);
    let (y, _) = LayerNorm::new(x.nrows()).forward(&x)?;
    // Counts in bins a quarter wide, as lines (one point per bin centre).
    let histogram = |m: &Matrix<f64>, scale: f64| -> Vec<(f64, f64)> {
        let width = 0.25;
        (-16..16)
            .map(|b| {
                let (lo, hi) = (b as f64 * width, (b + 1) as f64 * width);
                let n = m.iter().filter(|v| (lo..hi).contains(&(*v * scale))).count();
                (lo + width / 2.0, n as f64)
            })
            .collect()
    };
    let std = |m: &Matrix<f64>| {
        let mean = m.mean();
        (m.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m.len() as f64).sqrt()
    };
    // The embeddings are small numbers: draw them 1/std larger, on the same axis.
    let (sx, sy) = (std(&x), std(&y));
    LineChart::new(
        format!("The features of \"{word}\": embeddings (scaled by 1/{sx:.3}) and after layer norm"),
        "feature value",
        "features in the bin",
    )
    .series(Series::new(format!("embeddings × {:.0}", 1.0 / sx), histogram(&x, 1.0 / sx)))
    .series(Series::new("after layer norm", histogram(&y, 1.0)))
    .save(g.figure("ch10_features.svg"))?;
    g.values.set("ch10.book.word", word);
    g.num("ch10.book.features", (x.nrows() * x.ncols()) as f64, 0);
    g.num("ch10.book.dim", x.nrows() as f64, 0);
    g.num("ch10.book.mean_before", x.mean(), 4);
    g.num("ch10.book.std_before", sx, 4);
    g.num("ch10.book.std_after", sy, 4);
    g.num("ch10.book.scale", 1.0 / sx, 0);
    let column_means: Vec<f64> = (0..y.ncols()).map(|c| y.column(c).mean()).collect();
    g.values
        .set("ch10.book.max_mean_after", format!("{:.0e}", column_means.iter().map(|m| m.abs()).fold(0.0, f64::max)));
    Ok(())
}

/// Chapter 13: the learned position table of the book's GPT, as the cosine
/// similarity of every pair of positions.
fn positions_of_the_book_gpt(g: &mut Gen) -> Result<()> {
    let model = g.book_gpt.as_ref().context("chapter 14's generator trains the book's GPT first")?;
    let table = model.wpe().weight().value().map(f64::from);
    let n = table.ncols();
    let unit: Vec<Vec<f64>> = (0..n)
        .map(|p| {
            let c = table.column(p);
            let norm = c.norm();
            c.iter().map(|v| v / norm).collect()
        })
        .collect();
    let cos = |a: usize, b: usize| unit[a].iter().zip(&unit[b]).map(|(x, y)| x * y).sum::<f64>();
    let similarity: Vec<Vec<f64>> = (0..n).map(|a| (0..n).map(|b| cos(a, b)).collect()).collect();
    let mean_where = |keep: &dyn Fn(usize, usize) -> bool| {
        let pairs: Vec<f64> = (0..n)
            .flat_map(|a| (0..n).map(move |b| (a, b)))
            .filter(|&(a, b)| keep(a, b))
            .map(|(a, b)| cos(a, b))
            .collect();
        pairs.iter().sum::<f64>() / pairs.len() as f64
    };
    let near = mean_where(&|a, b| a.abs_diff(b) == 1);
    let far = mean_where(&|a, b| a.abs_diff(b) >= n / 2);
    // The chapter says neighbours learned similar columns and distant ones did not.
    ensure!(near > far + 0.1, "neighbouring positions no longer more alike ({near:.3}) than distant ones ({far:.3})");
    let labels: Vec<String> = (0..n).map(|p| if p % 8 == 0 { p.to_string() } else { String::new() }).collect();
    Heatmap::new("The book's GPT: cosine similarity of its learned positions", similarity)
        .labels(labels.clone(), labels)
        .axes("position", "position")
        .diverging()
        .range(-1.0, 1.0)
        .save(g.figure("ch13_learned_similarity.svg"))?;
    // The table itself, drawn as chapter 13 draws the sinusoid: a row per position.
    let largest = table.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let by_position: Vec<Vec<f64>> = (0..n).map(|p| table.column(p).iter().copied().collect()).collect();
    Heatmap::new(format!("The book's GPT: its learned position table, d = {}", table.nrows()), by_position)
        .axes("feature", "position")
        .range(-largest, largest)
        .diverging()
        .save(g.figure("ch13_learned_table.svg"))?;
    g.num("ch13.learned.largest", largest, 2);
    g.num("ch13.learned.positions", n as f64, 0);
    g.num("ch13.learned.dim", table.nrows() as f64, 0);
    g.num("ch13.learned.near", near, 2);
    g.num("ch13.learned.far", far, 2);
    Ok(())
}

fn layer_norm(g: &mut Gen) -> Result<()> {
    layer_norm_of_the_book_gpt(g)?;
    let x = Matrix::from_column_slice(4, 1, &[1.0f64, 2.0, 3.0, 4.0]);
    let (y, _) = LayerNorm::new(4).forward(&x)?;
    g.values.set("ch10.example.output", fmt_list(y.iter().copied(), 4));
    let features: Vec<String> = (1..=4).map(|i| format!("feature {i}")).collect();
    BarChart::new("One token of four features, before and after layer norm", "feature", "value", features)
        .group("the token [1, 2, 3, 4]", x.iter().copied().collect())
        .group("after layer norm", y.iter().copied().collect())
        .legend_at(SeriesLabelPosition::UpperLeft)
        .save(g.figure("ch10_example.svg"))?;
    g.values.set("ch10.example.output_7", fmt_list(y.iter().copied(), 7));
    let (y0, _) = LayerNorm::new(4).with_eps(0.0)?.forward(&x)?;
    g.values.set("ch10.example.output_no_eps", fmt_list(y0.iter().copied(), 7));
    let constant = Matrix::from_element(4, 1, 5.0f64);
    let (c, _) = LayerNorm::new(4).forward(&constant)?;
    g.values.set("ch10.constant.output", fmt_list(c.iter().copied(), 1));
    let (c0, _) = LayerNorm::new(4).with_eps(0.0)?.forward(&constant)?;
    g.values.set("ch10.constant.output_no_eps", fmt_list(c0.iter().copied(), 1));
    let (factor, shift) = (1000.0, 7.0);
    g.values.set("ch10.scaled.factor", factor);
    g.values.set("ch10.scaled.shift", shift);
    let scaled = x.map(|v| factor * v + shift);
    let (ys, _) = LayerNorm::new(4).forward(&scaled)?;
    g.values.set("ch10.scaled.output", fmt_list(ys.iter().copied(), 4));
    Ok(())
}

fn dropout(g: &mut Gen) -> Result<()> {
    let x = Matrix::from_element(1, 10, 1.0f64);
    let d = Dropout::new(0.5)?;
    let (y, _) = d.train(&x, &mut rng(7));
    g.values.set("ch11.example.train", fmt_list(y.iter().copied(), 0));
    let c = Dropout::classic(0.5)?;
    let (yc, _) = c.train(&x, &mut rng(7));
    g.values.set("ch11.example.classic_train", fmt_list(yc.iter().copied(), 0));
    g.values.set("ch11.example.classic_eval", fmt_list(c.eval(&x).iter().copied(), 1));
    let n = 100_000;
    let ones = Matrix::from_element(1, n, 1.0f64);
    let mean = |dropout: &Dropout| dropout.train(&ones, &mut rng(11)).0.sum() / n as f64;
    g.num("ch11.samples", n as f64, 0);
    g.num("ch11.mean.inverted", mean(&Dropout::new(0.3)?), 4);
    let classic = Dropout::classic(0.3)?;
    g.num("ch11.mean.classic", mean(&classic), 4);
    g.num("ch11.mean.classic_eval", classic.eval(&ones).sum() / n as f64, 1);
    dropout_masks(g)?;
    without_dropout(g)
}

/// What breaks without dropout: the same small GPT trained on a short text
/// (the book's first characters) for many steps, without dropout and with
/// it; training and validation losses along the way.
fn without_dropout(g: &mut Gen) -> Result<()> {
    use addmul::gpt::{Gpt, GptTrainConfig, GptTrainer};
    use addmul::text::{TextTokenizer, TokenizerKind};
    const CHARS: usize = 8000;
    const STEPS: u64 = 3000;
    const P: f64 = 0.2;
    let text: String = addmul::corpus::book_text().chars().take(CHARS).collect();
    let tokenizer = TextTokenizer::train(TokenizerKind::Char, &text, 0)?;
    let ids = tokenizer.encode_text(&text)?;
    let base = GptTrainConfig {
        n_layer: 2,
        n_head: 4,
        n_embd: 64,
        block_size: 64,
        batch_size: 16,
        max_iters: STEPS,
        warmup_iters: 30,
        eval_interval: STEPS,
        eval_iters: 20,
        checkpoint_interval: 0,
        ..GptTrainConfig::preset("tiny")?
    };
    let mut chart = LineChart::new(
        format!("The same GPT on {CHARS} characters, with and without dropout"),
        "step",
        "cross-entropy (nats per character)",
    );
    let mut finals = Vec::new();
    for (name, p) in [("without dropout", 0.0), ("with dropout", P)] {
        let config = GptTrainConfig { dropout: p, ..base.clone() };
        let model = Gpt::new(config.model_config(tokenizer.as_dyn().vocab_size()), &mut rng(config.seed))?;
        let mut trainer = GptTrainer::from_model(model, config, &ids)?;
        let (mut train, mut val) = (Vec::new(), Vec::new());
        for step in 1..=STEPS {
            trainer.train_step()?;
            if step % 250 == 0 {
                let e = trainer.evaluate()?;
                train.push((step as f64, e.train_loss));
                val.push((step as f64, e.val_loss));
            }
        }
        let last = (train.last().context("evaluated")?.1, val.last().context("evaluated")?.1);
        let best = val.iter().map(|v| v.1).fold(f64::INFINITY, f64::min);
        chart = chart
            .series(Series::new(format!("{name}: training"), train))
            .series(Series::new(format!("{name}: validation"), val));
        finals.push((last, best));
    }
    chart.legend_at(SeriesLabelPosition::MiddleRight).save(g.figure("ch11_without_dropout.svg"))?;
    let [((train0, val0), best0), ((train1, val1), _)] = finals[..] else { unreachable!("two runs") };
    // What the chapter says of the runs.
    ensure!(val0 > best0 + 0.3, "without dropout the validation loss no longer climbs back up: update chapter 11");
    ensure!(
        val1 < val0 && train1 > train0,
        "dropout no longer trades training loss for validation loss: update chapter 11"
    );
    g.num("ch11.ablation.chars", CHARS as f64, 0);
    g.num("ch11.ablation.steps", STEPS as f64, 0);
    g.num("ch11.ablation.p", P, 1);
    g.num("ch11.ablation.none.train", train0, 2);
    g.num("ch11.ablation.none.val", val0, 2);
    g.num("ch11.ablation.none.best", best0, 2);
    g.num("ch11.ablation.with.train", train1, 2);
    g.num("ch11.ablation.with.val", val1, 2);
    Ok(())
}

/// One layer's outputs for a batch (features x tokens) through inverted
/// dropout at two training steps: each step draws its own mask.
fn dropout_masks(g: &mut Gen) -> Result<()> {
    let (features, tokens, p) = (16, 12, 0.5);
    let x = Init::Uniform { bound: 1.0 }.matrix::<f64>(features, tokens, &mut rng(3)).map(|v| (v + 1.0) / 2.0);
    let d = Dropout::new(p)?;
    let rows =
        |m: &Matrix<f64>| -> Vec<Vec<f64>> { (0..m.nrows()).map(|r| m.row(r).iter().copied().collect()).collect() };
    let hi = 1.0 / (1.0 - p);
    Heatmap::new("A layer's outputs (features x tokens), as the next layer would get them", rows(&x))
        .axes("token", "feature")
        .range(0.0, hi)
        .save(g.figure("ch11_outputs.svg"))?;
    let mut step_rng = rng(5);
    for step in 1..=2 {
        let (y, _) = d.train(&x, &mut step_rng);
        Heatmap::new(format!("Training step {step}: inverted dropout, p = {p}"), rows(&y))
            .axes("token", "feature")
            .range(0.0, hi)
            .save(g.figure(&format!("ch11_step_{step}.svg")))?;
        let dropped = y.iter().filter(|v| **v == 0.0).count();
        g.num(&format!("ch11.mask.step{step}.dropped"), dropped as f64, 0);
    }
    // One token's first features through both kinds, one mask for both, in
    // training and at inference.
    let shown = 8;
    let token = x.view((0, 0), (shown, 1)).into_owned();
    let (inverted, classic) = (Dropout::new(p)?, Dropout::classic(p)?);
    let (inverted_train, _) = inverted.train(&token, &mut rng(9));
    let (classic_train, _) = classic.train(&token, &mut rng(9));
    let values = |m: &Matrix<f64>| m.iter().copied().collect::<Vec<f64>>();
    let zeros = |m: &Matrix<f64>| m.iter().map(|v| *v == 0.0).collect::<Vec<bool>>();
    ensure!(zeros(&inverted_train) == zeros(&classic_train), "the figure needs one mask for both kinds");
    ensure!(zeros(&inverted_train).contains(&true), "the figure's mask switches nothing off: pick another seed");
    ensure!(values(&inverted.eval(&token)) == values(&token), "inverted dropout must pass inference unchanged");
    BarChart::new(
        format!("One token's outputs through dropout, p = {p}: the same mask, two ways to scale"),
        "feature",
        "value",
        (1..=shown).map(|i| i.to_string()).collect(),
    )
    .group("the layer's output (= inverted, inference)", values(&token))
    .group(format!("inverted, training: survivors x {}", 1.0 / (1.0 - p)), values(&inverted_train))
    .group("classic, training: survivors as they are", values(&classic_train))
    .group(format!("classic, inference: all x {}", 1.0 - p), values(&classic.eval(&token)))
    .save(g.figure("ch11_two_ways.svg"))?;
    g.num("ch11.two_ways.features", shown as f64, 0);
    g.num("ch11.two_ways.keep", 1.0 - p, 1);
    g.num("ch11.mask.cells", (features * tokens) as f64, 0);
    g.num("ch11.mask.p", p, 1);
    g.num("ch11.mask.scale", hi, 0);
    Ok(())
}

fn multihead(g: &mut Gen) -> Result<()> {
    let (d, heads, t) = (128, 4, 64);
    let mha =
        MultiHeadConfig::self_attention(d, heads).causal().init::<f32>(Init::Normal { std: 0.02 }, &mut rng(1))?;
    g.num("ch12.d", d as f64, 0);
    g.num("ch12.heads", heads as f64, 0);
    g.num("ch12.head_dim", mha.head_dim() as f64, 0);
    g.num("ch12.params", mha.num_params() as f64, 0);
    g.num("ch12.params_c_attn", (3 * d * d + 3 * d) as f64, 0);
    g.num("ch12.params_c_proj", (d * d + d) as f64, 0);
    // Decoding t tokens: without a cache, step s recomputes s queries
    // against s keys; with one, step s computes 1 query against s keys.
    let without: usize = (1..=t).map(|s| s * s).sum();
    let with: usize = (1..=t).sum();
    g.num("ch12.decode.t", t as f64, 0);
    g.num("ch12.decode.scores_without", without as f64, 0);
    g.num("ch12.decode.scores_with", with as f64, 0);
    // And the two give the same numbers.
    let x: Matrix<f32> = Init::Normal { std: 1.0 }.matrix(d, t, &mut rng(2));
    let (full, _) = mha.forward_self(&x, t, None)?;
    let mut cache = KvCache::new(d, t);
    let mut worst = 0.0f64;
    for s in 0..t {
        let y = mha.forward_cached(&x.columns(s, 1).into_owned(), &mut cache)?;
        let err = (y - full.column(s)).abs().max() / full.column(s).abs().max();
        worst = worst.max(f64::from(err));
    }
    g.values.set("ch12.decode.worst_rel_error", format!("{worst:.1e}"));
    heads_of_the_book_gpt(g)
}

/// Every head of the book's GPT (chapter 14) reading one sentence: the last
/// block's heads, side by side, each its own heatmap.
fn heads_of_the_book_gpt(g: &mut Gen) -> Result<()> {
    use addmul::tokenizer::{ArticleChars, Tokenizer};
    let model = g.book_gpt.as_ref().context("chapter 14's generator trains the book's GPT first")?;
    let sentence = "the cat sat on the mat";
    let ids = ArticleChars.encode(sentence)?;
    let maps = model.attention_maps(&ids)?;
    let last = maps.len() - 1;
    let labels: Vec<String> =
        sentence.chars().map(|c| if c == ' ' { "␣".to_string() } else { c.to_string() }).collect();
    for (head, w) in maps[last].iter().enumerate() {
        // Rows = queries, columns = keys, as chapter 7's figures.
        let rows: Vec<Vec<f64>> =
            (0..w.ncols()).map(|q| (0..w.nrows()).map(|k| f64::from(w[(k, q)])).collect()).collect();
        Heatmap::new(format!("Block {}, head {}", last + 1, head + 1), rows)
            .labels(labels.clone(), labels.clone())
            .axes("key (the character looked at)", "query (the character looking)")
            .range(0.0, 1.0)
            .save(g.figure(&format!("ch12_head_{}.svg", head + 1)))?;
    }
    // How far back each head looks, on average: the weighted distance.
    let reach: Vec<f64> = maps[last]
        .iter()
        .map(|w| {
            let n = w.ncols();
            let total: f64 = (0..n).map(|q| (0..=q).map(|k| f64::from(w[(k, q)]) * (q - k) as f64).sum::<f64>()).sum();
            total / n as f64
        })
        .collect();
    g.values.set("ch12.book.sentence", sentence);
    g.num("ch12.book.block", (last + 1) as f64, 0);
    g.num("ch12.book.heads", maps[last].len() as f64, 0);
    g.values.set("ch12.book.reach", fmt_list(reach.iter().copied(), 1));
    Ok(())
}
