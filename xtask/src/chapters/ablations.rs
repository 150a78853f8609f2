//! What breaks without a piece: measured runs for chapter 8 (attention
//! without the `1/√d` scale) and chapter 12 (one head instead of several).
//! Each trains small GPTs with `addmul-gpt`'s trainer, draws the curves and
//! fails the build if the runs stop saying what the chapter says of them.

use addmul::core::{Init, Parameters, rng};
use addmul::gpt::{Gpt, GptConfig, GptTrainConfig, GptTrainer};
use addmul::plot::{Heatmap, LineChart, Series};
use anyhow::{Context, Result, ensure};

use super::Gen;

pub fn generate(g: &mut Gen) -> Result<()> {
    without_scaling(g)?;
    one_head_or_many(g)
}

/// Trains `trainer` for `steps`, measuring the validation loss `points`
/// times along the way: `(step, loss)`.
fn curve(trainer: &mut GptTrainer, steps: u64, points: u64) -> Result<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    for step in 1..=steps {
        trainer.train_step()?;
        if step % (steps / points) == 0 {
            out.push((step as f64, trainer.evaluate()?.val_loss));
        }
    }
    Ok(out)
}

fn last(curve: &[(f64, f64)]) -> Result<f64> {
    Ok(curve.last().context("a measured curve")?.1)
}

/// Chapter 8: the same one-head GPT on this book, with and without the
/// `1/√d` on the scores, from two initialisations: GPT-2's (weights of
/// standard deviation 0.02, so queries and keys start tiny) and one that
/// gives queries and keys of variance about 1 (standard deviation `1/√d` in
/// `c_attn`), the case the scale is for.
fn without_scaling(g: &mut Gen) -> Result<()> {
    use addmul::text::{TextTokenizer, TokenizerKind};
    const CHARS: usize = 200_000;
    const STEPS: u64 = 1600;
    const WIDTH: usize = 64;
    let text: String = addmul::corpus::book_text().chars().take(CHARS).collect();
    let tokenizer = TextTokenizer::train(TokenizerKind::Char, &text, 0)?;
    let ids = tokenizer.encode_text(&text)?;
    let config = GptTrainConfig {
        n_layer: 2,
        n_head: 1,
        n_embd: WIDTH,
        block_size: 64,
        batch_size: 16,
        dropout: 0.0,
        max_iters: STEPS,
        warmup_iters: 20,
        eval_interval: STEPS,
        eval_iters: 20,
        checkpoint_interval: 0,
        ..GptTrainConfig::preset("tiny")?
    };
    let unit_std = 1.0 / (WIDTH as f64).sqrt();
    let mut chart = LineChart::new(
        "One head of width 64 on this book, with and without the 1/√d scale",
        "step",
        "validation cross-entropy (nats per character)",
    );
    let mut finals = Vec::new();
    for (init, std) in [("GPT-2's initialisation", None), ("unit-variance queries and keys", Some(unit_std))] {
        for scaled in [true, false] {
            let model_config =
                GptConfig { scale_attn_weights: scaled, ..config.model_config(tokenizer.as_dyn().vocab_size()) };
            let mut model = Gpt::new(model_config, &mut rng(config.seed))?;
            if std.is_none() && scaled {
                // GPT-2's initial spread, as the model was built with it.
                let mut w = Vec::new();
                model.visit(&mut |name, p| {
                    if name.ends_with("attn.c_attn.weight") {
                        w.extend(p.value().iter().map(|&v| f64::from(v)));
                    }
                });
                let mean = w.iter().sum::<f64>() / w.len() as f64;
                let sd = (w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
                g.num("ch08.ablation.gpt2_std", sd, 2);
            }
            if let Some(std) = std {
                let mut r = rng(3);
                model.visit_mut(&mut |name, p| {
                    if name.ends_with("attn.c_attn.weight") {
                        let (rows, cols) = p.value().shape();
                        *p.value_mut() = Init::Normal { std }.matrix(rows, cols, &mut r);
                    }
                });
            }
            let mut trainer = GptTrainer::from_model(model, config.clone(), &ids)?;
            let points = curve(&mut trainer, STEPS, 16)?;
            finals.push(last(&points)?);
            let scale = if scaled { "scaled" } else { "unscaled" };
            chart = chart.series(Series::new(format!("{init}, {scale}"), points));
        }
    }
    chart.save(g.figure("ch08_without_scaling.svg"))?;
    let [small_scaled, small_unscaled, unit_scaled, unit_unscaled] = finals[..] else { unreachable!("four runs") };
    ensure!(
        (small_scaled - small_unscaled).abs() < 0.1,
        "with GPT-2's initialisation the scale now matters ({small_scaled:.3} vs {small_unscaled:.3}): update chapter 8"
    );
    ensure!(
        unit_unscaled > unit_scaled + 0.3,
        "without the scale, unit-variance queries no longer learn far slower \
         ({unit_unscaled:.3} vs {unit_scaled:.3}): update chapter 8"
    );
    g.num("ch08.ablation.steps", STEPS as f64, 0);
    g.num("ch08.ablation.width", WIDTH as f64, 0);
    g.num("ch08.ablation.unit_std", unit_std, 3);
    g.num("ch08.ablation.small.scaled", small_scaled, 2);
    g.num("ch08.ablation.small.unscaled", small_unscaled, 2);
    g.num("ch08.ablation.unit.scaled", unit_scaled, 2);
    g.num("ch08.ablation.unit.unscaled", unit_unscaled, 2);
    Ok(())
}

/// The symbols of chapter 12's task: digits `0..16`, answers `16..32`, then
/// a start mark and `=`.
const DIGITS: u32 = 16;
const START: u32 = 2 * DIGITS;
const EQUALS: u32 = START + 1;

/// Chapter 12's task: `[start, a, b, =, answer]` again and again, with `a`
/// and `b` random digits and the answer `(a - b + 15) / 2` (rounded down):
/// predicting the answer at `=` needs two tokens, two and one places back,
/// and which is which (the answer is not symmetric in `a` and `b`).
fn two_lookups(groups: usize) -> Vec<u32> {
    // Uniform numbers in [-1, 1] from the crates' seeded initialiser, as digits.
    let coins = Init::Uniform { bound: 1.0 }.matrix::<f64>(2, groups, &mut rng(7));
    let digit = |v: f64| (((v + 1.0) / 2.0 * f64::from(DIGITS)) as u32).min(DIGITS - 1);
    let mut out = Vec::with_capacity(5 * groups);
    for pair in coins.column_iter() {
        let (a, b) = (digit(pair[0]), digit(pair[1]));
        out.extend([START, a, b, EQUALS, DIGITS + (a + DIGITS - 1 - b) / 2]);
    }
    out
}

/// Chapter 12: one layer of width 32, with one head of width 32 or four of
/// width 8 (the same parameters), on [`two_lookups`].
fn one_head_or_many(g: &mut Gen) -> Result<()> {
    const STEPS: u64 = 12_000;
    const MID: f64 = 6_000.0;
    let ids = two_lookups(40_000);
    let config = GptTrainConfig {
        n_layer: 1,
        n_embd: 32,
        block_size: 20,
        batch_size: 16,
        dropout: 0.0,
        lr: 3e-3,
        max_iters: STEPS,
        warmup_iters: 20,
        eval_interval: STEPS,
        eval_iters: 20,
        checkpoint_interval: 0,
        ..GptTrainConfig::preset("tiny")?
    };
    // The best possible loss: a and b cannot be guessed (ln 16 each), the
    // rest can, one group of five predictions at a time.
    let floor = 2.0 * f64::from(DIGITS).ln() / 5.0;
    let guessed = 3.0 * f64::from(DIGITS).ln() / 5.0;
    let mut chart = LineChart::new(
        "One layer on [start, a, b, =, answer]: one head or four",
        "step",
        "validation cross-entropy (nats per token)",
    );
    const EXAMPLE: [u32; 4] = [START, 3, 11, EQUALS];
    let (mut runs, mut lookups) = (Vec::new(), Vec::new());
    for heads in [1usize, 4] {
        let config = GptTrainConfig { n_head: heads, ..config.clone() };
        let model = Gpt::new(config.model_config(EQUALS as usize + 1), &mut rng(config.seed))?;
        let mut trainer = GptTrainer::from_model(model, config, &ids)?;
        let points = curve(&mut trainer, STEPS, 24)?;
        let mid = points.iter().find(|p| p.0 >= MID).context("the middle of the run")?.1;
        runs.push((mid, last(&points)?));
        let name = if heads == 1 { "one head of width 32".to_string() } else { format!("{heads} heads of width 8") };
        chart = chart.series(Series::new(name, points));
        // Where each head of the trained model looks from `=`: its weights
        // over [start, a, b, =].
        let maps = trainer.model().attention_maps(&EXAMPLE)?;
        for (h, w) in maps[0].iter().enumerate() {
            let name = if heads == 1 { "one head".to_string() } else { format!("head {}/{heads}", h + 1) };
            lookups.push((name, (0..4).map(|k| f64::from(w[(k, 3)])).collect::<Vec<f64>>()));
        }
    }
    chart.save(g.figure("ch12_one_head_or_many.svg"))?;
    let (names, rows): (Vec<String>, Vec<Vec<f64>>) = lookups.into_iter().unzip();
    let keys = ["start", "a = 3", "b = 11", "="].map(String::from).to_vec();
    Heatmap::new("Where \"=\" looks: one head (top), then each of four", rows.clone())
        .labels(names, keys)
        .axes("key (the token looked at)", "")
        .range(0.0, 1.0)
        .save(g.figure("ch12_lookups.svg"))?;
    // The division of labour: the head that weighs `b` most and the one
    // that weighs `a` most, among the four.
    let most = |key: usize| -> (usize, f64) {
        (1..rows.len()).map(|r| (r, rows[r][key])).fold((0, f64::NEG_INFINITY), |b, x| if x.1 > b.1 { x } else { b })
    };
    let ((a_head, a_max), (b_head, b_max)) = (most(1), most(2));
    ensure!(a_head != b_head, "one of the four heads now weighs both digits most: update chapter 12");
    g.num("ch12.ablation.one.a", rows[0][1], 2);
    g.num("ch12.ablation.one.b", rows[0][2], 2);
    g.num("ch12.ablation.four.a_head", a_head as f64, 0);
    g.num("ch12.ablation.four.a", a_max, 2);
    g.num("ch12.ablation.four.b_head", b_head as f64, 0);
    g.num("ch12.ablation.four.b", b_max, 2);
    let [(one_mid, one_end), (four_mid, four_end)] = runs[..] else { unreachable!("two runs") };
    ensure!(
        one_mid > four_mid + 0.1,
        "one head no longer lags four at step {MID} ({one_mid:.3} vs {four_mid:.3}): update chapter 12"
    );
    ensure!(
        one_end < guessed && four_end < guessed,
        "a model no longer learns the answers ({one_end:.3}, {four_end:.3} vs {guessed:.3}): update chapter 12"
    );
    g.num("ch12.ablation.steps", STEPS as f64, 0);
    g.num("ch12.ablation.mid", MID, 0);
    g.num("ch12.ablation.floor", floor, 3);
    g.num("ch12.ablation.guessed", guessed, 3);
    g.num("ch12.ablation.one.mid", one_mid, 3);
    g.num("ch12.ablation.four.mid", four_mid, 3);
    g.num("ch12.ablation.one.end", one_end, 3);
    g.num("ch12.ablation.four.end", four_end, 3);
    Ok(())
}
