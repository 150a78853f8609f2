//! Chapter 5: the character model of chapter 3 with a learned embedding.

use addmul::charlm::{self, CharModelConfig, NURSERY_RHYMES, Sampling};
use addmul::core::{ParametersExt, rng};
use addmul::embedding::cosine_similarity;
use addmul::plot::{BarChart, Heatmap, SeriesLabelPosition};
use addmul::tokenizer::ArticleChars;
use anyhow::{Result, ensure};

use super::Gen;

/// The temperature of the second sample.
const TEMPERATURE: f64 = 0.8;

fn shown(c: char) -> String {
    match c {
        ' ' => "␣".to_string(),
        '\n' => "⏎".to_string(),
        c => c.to_string(),
    }
}

/// The mean cosine similarity between two vowels' vectors, and between a
/// vowel's and a common consonant's.
fn vowel_similarity(table: &addmul::embedding::Embedding<f32>) -> Result<(f64, f64)> {
    let vowels = ['a', 'e', 'i', 'o', 'u'];
    let vec_of = |c: char| table.vector(ArticleChars::id(c).expect("in the alphabet") as usize);
    let mut within = Vec::new();
    let mut across = Vec::new();
    for (i, &a) in vowels.iter().enumerate() {
        for &b in &vowels[i + 1..] {
            within.push(cosine_similarity(&vec_of(a)?, &vec_of(b)?));
        }
        for b in "bcdfghklmnprst".chars() {
            across.push(cosine_similarity(&vec_of(a)?, &vec_of(b)?));
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Ok((mean(&within), mean(&across)))
}

pub fn generate(g: &mut Gen) -> Result<()> {
    let config = CharModelConfig::article_embedding();
    let run = charlm::train(&config, NURSERY_RHYMES, &mut |_| {})?;
    let table = run.model.embedding().expect("the embedding configuration has a table");
    let dim = table.dim();
    g.num("ch05.dim", dim as f64, 0);
    g.num("ch05.inputs", (dim * config.context) as f64, 0);
    g.num("ch05.table_params", table.weight().len() as f64, 0);
    g.num("ch05.params", run.model.num_params() as f64, 0);
    g.num("ch05.epochs", config.epochs as f64, 0);
    g.values.set("ch05.hidden", config.hidden.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and "));

    let epochs = &run.history.epochs;
    let last = epochs.last().expect("trained");
    let best = epochs
        .iter()
        .min_by(|a, b| a.val_loss.unwrap_or(f64::MAX).total_cmp(&b.val_loss.unwrap_or(f64::MAX)))
        .expect("validated");
    g.num("ch05.last_train_loss", last.train_loss, 2);
    g.num("ch05.best_val_loss", best.val_loss.unwrap_or(f64::NAN), 2);
    g.num("ch05.best_val_epoch", best.epoch as f64, 0);
    g.num("ch05.last_val_loss", last.val_loss.unwrap_or(f64::NAN), 2);

    let p = run.model.probabilities("humpty dumpt")?;
    ensure!(p[0].0 == 'y', "the embedding model no longer answers 'y' after \"humpty dumpt\": update chapter 5");
    g.percent("ch05.p_y", p[0].1);
    let greedy = run.model.generate("humpty dumpt", 80, Sampling::Greedy, &mut rng(0))?;
    g.text("ch05_sample_greedy.txt", &format!("humpty dumpt{greedy}"))?;
    let warm = run.model.generate("mary had a ", 160, Sampling::Temperature(TEMPERATURE), &mut rng(1))?;
    g.num("ch05.temperature", TEMPERATURE, 1);
    g.text("ch05_sample_temperature.txt", &format!("mary had a {warm}"))?;

    // On the rhymes the vectors learn little that can be seen; on the
    // book's own text (tens of thousands of characters) they do.
    let rhyme_vowels = vowel_similarity(table)?;
    g.num("ch05.rhymes.vowel_vowel", rhyme_vowels.0, 2);
    g.num("ch05.rhymes.vowel_consonant", rhyme_vowels.1, 2);
    // As many training examples as chapter 4's GPT gets on the same text.
    let book = addmul::corpus::book_text();
    let (normalized, _) = ArticleChars::normalize(book);
    let n_train = (normalized.chars().count() as f64 * (1.0 - CharModelConfig::article().val_fraction)) as usize;
    let epochs = super::gpt::book_gpt_tokens().div_ceil(n_train.max(1));
    let book_config = CharModelConfig { epochs, ..CharModelConfig::article_embedding() };
    let book_run = charlm::train(&book_config, book, &mut |_| {})?;
    g.book_mlp = Some(book_run.model.clone());
    let table = book_run.model.embedding().expect("the embedding configuration has a table");
    g.num("ch05.book.chars", book.chars().count() as f64, 0);
    g.num("ch05.book.epochs", book_config.epochs as f64, 0);
    let last = book_run.history.epochs.last().expect("trained");
    let best = book_run.history.epochs.iter().filter_map(|e| e.val_loss).fold(f64::INFINITY, f64::min);
    g.num("ch05.book.val_loss", last.val_loss.unwrap_or(f64::NAN), 2);
    g.num("ch05.book.best_val_loss", best, 2);
    g.num("ch05.book.tokens_seen", (book_run.n_train * book_config.epochs) as f64, 0);
    g.num("ch05.book.params", book_run.model.num_params() as f64, 0);
    g.book_mlp_curve = book_run
        .history
        .epochs
        .iter()
        .enumerate()
        .filter_map(|(i, e)| Some((((i + 1) * book_run.n_train) as f64, e.val_loss?)))
        .collect();

    // What the letters' vectors learned: nearest neighbours and similarities.
    let ids: Vec<(char, usize)> = "abcdefghijklmnopqrstuvwxyz .,"
        .chars()
        .map(|c| (c, ArticleChars::id(c).expect("in the alphabet") as usize))
        .collect();
    let mut rows = String::from("| character | nearest, by cosine similarity |\n|---|---|\n");
    for c in ['a', 'e', 'o', 't', 'n', 's', ' ', '.'] {
        let id = ArticleChars::id(c).expect("in the alphabet") as usize;
        let near: Vec<String> = table
            .nearest(id, 4)?
            .into_iter()
            .map(|(other, sim)| {
                let ch = ArticleChars::char(other as u32).map_or_else(|| "pad".to_string(), shown);
                format!("`{ch}` {sim:.2}")
            })
            .collect();
        rows.push_str(&format!("| `{}` | {} |\n", shown(c), near.join(", ")));
    }
    g.text("ch05_neighbours.md", &rows)?;
    let (vowel_vowel, vowel_consonant) = vowel_similarity(table)?;
    g.num("ch05.book.vowel_vowel", vowel_vowel, 2);
    g.num("ch05.book.vowel_consonant", vowel_consonant, 2);
    // The prose: on the book, vowels are more alike than a vowel and a consonant.
    ensure!(vowel_vowel > vowel_consonant, "vowels no longer alike on the book: {vowel_vowel} vs {vowel_consonant}");
    let pairs = vec!["two vowels".to_string(), "a vowel and a consonant".to_string()];
    BarChart::new("Mean cosine similarity of the learned character vectors", "pair", "cosine similarity", pairs)
        .group("trained on the rhymes", vec![rhyme_vowels.0, rhyme_vowels.1])
        .group("trained on the book", vec![vowel_vowel, vowel_consonant])
        .legend_at(SeriesLabelPosition::UpperRight)
        .save(g.figure("ch05_vowels.svg"))?;

    let mut sims = Vec::new();
    for &(_, a) in &ids {
        let va = table.vector(a)?;
        sims.push(
            ids.iter()
                .map(|&(_, b)| table.vector(b).map(|vb| cosine_similarity(&va, &vb)))
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    let labels: Vec<String> = ids.iter().map(|&(c, _)| shown(c)).collect();
    Heatmap::new("Cosine similarity of the learned character vectors (trained on the book)", sims)
        .labels(labels.clone(), labels)
        .range(-1.0, 1.0)
        .diverging()
        .save(g.figure("ch05_similarity.svg"))?;
    Ok(())
}
