//! Chapters 7 (self-attention), 8 (softmax) and 13 (positional embeddings).

use addmul::attention::Attention;
use addmul::core::{Init, Matrix, rng};
use addmul::nn::Linear;
use addmul::plot::{BarChart, Heatmap, LineChart, Series, SeriesLabelPosition};
use addmul::posenc::{Rope, sinusoidal};
use addmul::softmax::{cross_entropy, softmax};
use anyhow::{Result, ensure};

use super::Gen;

const WORDS: [&str; 6] = ["Your", "journey", "starts", "with", "one", "step"];
const INPUTS: [f64; 18] =
    [0.43, 0.15, 0.89, 0.55, 0.87, 0.66, 0.57, 0.85, 0.64, 0.22, 0.58, 0.33, 0.77, 0.25, 0.10, 0.05, 0.80, 0.55];

fn fmt_list(values: impl IntoIterator<Item = f64>, decimals: usize) -> String {
    let items: Vec<String> = values.into_iter().map(|v| format!("{v:.decimals$}")).collect();
    format!("[{}]", items.join(", "))
}

fn rows_of(m: &Matrix<f64>) -> Vec<Vec<f64>> {
    (0..m.nrows()).map(|i| m.row(i).iter().copied().collect()).collect()
}

pub fn generate(g: &mut Gen) -> Result<()> {
    self_attention(g)?;
    softmax_chapter(g)?;
    positions(g)
}

fn self_attention(g: &mut Gen) -> Result<()> {
    let x = Matrix::from_column_slice(3, 6, &INPUTS);
    let identity = || Linear::from_weights(Matrix::<f64>::identity(3, 3), None);
    let plain = Attention::from_projections(identity()?, identity()?, identity()?, false, false)?;
    let (y, cache) = plain.forward_self(&x, 6, None)?;
    let w = cache.weights();
    g.values.set("ch07.journey.weights", fmt_list(w.column(1).iter().copied(), 4));
    g.values.set("ch07.journey.output", fmt_list(y.column(1).iter().copied(), 4));
    g.num("ch07.journey.score_starts", x.column(1).dot(&x.column(2)), 4);
    g.num("ch07.journey.score_your", x.column(1).dot(&x.column(0)), 4);
    let labels: Vec<String> = WORDS.iter().map(|s| s.to_string()).collect();
    // Rows: keys; columns: queries. Transposed for reading "row = query".
    Heatmap::new("Attention weights: row = query, column = key (no mask)", rows_of(&w.transpose()))
        .labels(labels.clone(), labels.clone())
        .axes("key", "query")
        .annotate()
        .save(g.figure("ch07_weights.svg"))?;

    let causal = Attention::from_projections(identity()?, identity()?, identity()?, false, true)?;
    let (yc, cache) = causal.forward_self(&x, 6, None)?;
    let wc = cache.weights();
    Heatmap::new("With the causal mask: each word sees only itself and the words before", rows_of(&wc.transpose()))
        .labels(labels.clone(), labels)
        .axes("key", "query")
        .range(0.0, 1.0)
        .annotate()
        .save(g.figure("ch07_weights_causal.svg"))?;
    g.values.set("ch07.journey.causal_weights", fmt_list(wc.column(1).iter().copied(), 4));
    g.values.set("ch07.journey.causal_output", fmt_list(yc.column(1).iter().copied(), 4));

    // Why scale: with 64-dimensional random queries and keys, unscaled scores
    // have a spread of 8 and softmax puts almost everything on one key.
    let (d, n) = (64, 16);
    let q: Matrix<f64> = Init::Normal { std: 1.0 }.matrix(d, 200, &mut rng(5));
    let k: Matrix<f64> = Init::Normal { std: 1.0 }.matrix(d, n, &mut rng(6));
    let mean_max = |scale: f64| {
        let scores = addmul::core::matmul(&k, addmul::core::Op::T, &q, addmul::core::Op::N).map(|s| s * scale);
        let p = softmax(&scores?);
        Ok::<f64, addmul::core::Error>(p.column_iter().map(|c| c.max()).sum::<f64>() / p.ncols() as f64)
    };
    g.num("ch07.scaling.d", d as f64, 0);
    g.num("ch07.scaling.keys", n as f64, 0);
    g.num("ch07.scaling.unscaled_max", mean_max(1.0)?, 3);
    g.num("ch07.scaling.scaled_max", mean_max(1.0 / (d as f64).sqrt())?, 3);
    Ok(())
}

/// Softmax of the two scores `[s, s - 1]` in single precision as `s` grows:
/// the answer should never change (shifting both scores changes nothing);
/// the naive formula gives it until `e^s` overflows, the crate's always.
fn overflow_figure(g: &mut Gen) -> Result<()> {
    let naive = |s: f32| {
        let (a, b) = (s.exp(), (s - 1.0).exp());
        a / (a + b)
    };
    let stable = |s: f32| softmax(&Matrix::from_column_slice(2, 1, &[s, s - 1.0]))[0];
    let exact = 1.0 / (1.0 + (-1.0f64).exp());
    let scores: Vec<f32> = (0..=240).map(|i| i as f32 * 0.5).collect();
    let limit = f64::from(f32::MAX.ln());
    for &s in &scores {
        ensure!((f64::from(stable(s)) - exact).abs() < 1e-6, "the crate's softmax drifts at {s}");
        ensure!(naive(s).is_finite() == (f64::from(s) < limit), "the naive formula's overflow moved: {s}");
    }
    // Just below the limit the sum overflows first: the naive answer is 0.
    let sum_limit = limit - (1.0 + (-1.0f64).exp()).ln();
    ensure!(
        scores.iter().any(|&s| naive(s) == 0.0 && f64::from(s) > sum_limit),
        "the naive formula no longer drops to 0 before it fails"
    );
    let points = |f: &dyn Fn(f32) -> f32| -> Vec<(f64, f64)> {
        scores.iter().map(|&s| (f64::from(s), f64::from(f(s)))).filter(|(_, p)| p.is_finite()).collect()
    };
    LineChart::new(
        "Softmax of [s, s - 1] in single precision: the first probability",
        "s",
        "probability of the first score",
    )
    .series(Series::new("the crate's softmax (largest subtracted first)", points(&stable)))
    .series(Series::new("exp(x) / sum exp(x), as written", points(&naive)))
    .marker(limit, format!("e^s overflows f32 beyond s = {limit:.1}"))
    .legend_at(SeriesLabelPosition::LowerLeft)
    .save(g.figure("ch08_overflow.svg"))?;
    g.num("ch08.overflow.limit", limit, 1);
    g.num("ch08.overflow.sum_limit", sum_limit, 1);
    g.num("ch08.overflow.p", exact, 4);
    g.num("ch08.overflow.largest_s", f64::from(*scores.last().expect("scores")), 0);
    Ok(())
}

fn softmax_chapter(g: &mut Gen) -> Result<()> {
    let big = Matrix::from_column_slice(2, 1, &[1234.0f64, 0.0]);
    let p = softmax(&big);
    g.values.set("ch08.big.softmax", fmt_list(p.iter().copied(), 1));
    // The naive formula, exp(x) / Σ exp(x), on the same input.
    let naive: Vec<f64> = {
        let e: Vec<f64> = big.iter().map(|v| v.exp()).collect();
        let sum: f64 = e.iter().sum();
        e.iter().map(|v| v / sum).collect()
    };
    g.values.set("ch08.big.naive", fmt_list(naive, 1));
    g.values.set("ch08.exp_1234", format!("{}", 1234f64.exp()));
    overflow_figure(g)?;
    let scores = Matrix::from_column_slice(3, 1, &[2.0f64, 1.0, 0.1]);
    let p = softmax(&scores);
    g.values.set("ch08.example.softmax", fmt_list(p.iter().copied(), 4));
    let shifted = softmax(&scores.map(|v| v + 100.0));
    g.values.set("ch08.example.shifted", fmt_list(shifted.iter().copied(), 4));
    let (loss, cache) = cross_entropy(&scores, &[0])?;
    g.num("ch08.example.ce", loss, 4);
    g.values.set("ch08.example.grad", fmt_list(cache.backward().iter().copied(), 4));
    for (key, t) in [("ch08.temperature.cold", 0.5), ("ch08.temperature.hot", 2.0)] {
        g.values.set(key, fmt_list(softmax(&scores.map(|v| v / t)).iter().copied(), 4));
        g.values.set(&format!("{key}_t"), t);
    }
    // The three probabilities as the temperature goes from a tenth to ten.
    let temperatures: Vec<f64> = (0..=40).map(|i| 10f64.powf(-1.0 + i as f64 / 20.0)).collect();
    let mut chart =
        LineChart::new("Softmax of the scores [2, 1, 0.1] at every temperature", "temperature", "probability")
            .log_x()
            .legend_at(SeriesLabelPosition::MiddleRight);
    for (i, score) in scores.iter().enumerate() {
        let points = temperatures.iter().map(|&t| (t, softmax(&scores.map(|v| v / t))[i])).collect();
        chart = chart.series(Series::new(format!("score {score}"), points));
    }
    chart.save(g.figure("ch08_temperature.svg"))?;
    g.num("ch08.temperature.uniform", 1.0 / scores.len() as f64, 3);
    // The same three scores as bars at three temperatures.
    let names: Vec<String> = scores.iter().map(|s| format!("score {s}")).collect();
    let mut bars = BarChart::new("Softmax of [2, 1, 0.1] at three temperatures", "score", "probability", names);
    for t in [0.5, 1.0, 2.0] {
        bars = bars.group(format!("temperature {t}"), softmax(&scores.map(|v| v / t)).iter().copied().collect());
    }
    bars.save(g.figure("ch08_temperature_bars.svg"))?;
    Ok(())
}

fn positions(g: &mut Gen) -> Result<()> {
    let pe = sinusoidal::<f64>(4, 3);
    for p in 0..3 {
        g.values.set(&format!("ch13.pe4.p{p}"), fmt_list(pe.column(p).iter().copied(), 4));
    }
    let (d, len) = (64, 100);
    let table = sinusoidal::<f64>(d, len);
    g.num("ch13.image.d", d as f64, 0);
    g.num("ch13.image.len", len as f64, 0);
    Heatmap::new(format!("Sinusoidal encoding, d = {d}"), rows_of(&table.transpose()))
        .axes("feature", "position")
        .range(-1.0, 1.0)
        .diverging()
        .save(g.figure("ch13_sinusoidal.svg"))?;
    g.num("ch13.min", table.min(), 4);
    g.num("ch13.max", table.max(), 4);
    // The article's variant divides by the context length instead of d.
    // With the article's context and d = 64, the features repeat after a
    // few pairs. A row is flat if it moves less than FLAT over the positions.
    const FLAT: f64 = 1e-3;
    let context = addmul::charlm::ARTICLE_CONTEXT as f64;
    let article = Matrix::from_fn(d, len, |row, p| {
        let i = row / 2;
        let angle = p as f64 / 10000f64.powf(2.0 * i as f64 / context);
        if row % 2 == 0 { angle.sin() } else { angle.cos() }
    });
    g.values.set("ch13.flat_threshold", FLAT);
    // The exponent 2i / context reaches 1 at pair i = context / 2.
    g.num("ch13.article.pairs", context / 2.0, 0);
    let flat_rows = (0..d).filter(|&r| (article.row(r).max() - article.row(r).min()) < FLAT).count();
    g.num("ch13.article.flat_rows", flat_rows as f64, 0);
    let paper_flat = (0..d).filter(|&r| (table.row(r).max() - table.row(r).min()) < FLAT).count();
    g.num("ch13.paper.flat_rows", paper_flat as f64, 0);

    // RoPE: q · k at distance 3, at two different absolute positions.
    let rope = Rope::<f64>::new(8, 64, 10000.0)?;
    let q: Matrix<f64> = Init::Normal { std: 1.0 }.matrix(8, 1, &mut rng(1));
    let k: Matrix<f64> = Init::Normal { std: 1.0 }.matrix(8, 1, &mut rng(2));
    let dot_at = |a: usize, b: usize| -> Result<f64> {
        let (mut q, mut k) = (q.clone(), k.clone());
        rope.rotate(&mut q, a)?;
        rope.rotate(&mut k, b)?;
        Ok(q.dot(&k))
    };
    g.num("ch13.rope.dot_5_2", dot_at(5, 2)?, 6);
    g.num("ch13.rope.dot_40_37", dot_at(40, 37)?, 6);
    g.num("ch13.rope.dot_5_1", dot_at(5, 1)?, 6);
    Ok(())
}
