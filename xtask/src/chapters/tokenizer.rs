//! Chapters 3 and 6: text as numbers, the article's character model, and
//! subword tokenizers.
//!
//! Everything here runs on data inside the repository (the nursery rhymes,
//! GPT-2's vocabulary as bundled by `tiktoken-rs`), except the numbers about
//! tinyshakespeare: those come from `book/measured/tokenizers.json`, which
//! this generator rewrites whenever the corpus is present (`$ADDMUL_CORPUS`,
//! or `../shared/data/tinyshakespeare.txt` next to the repository).

use std::path::{Path, PathBuf};
use std::time::Instant;

use addmul::charlm::{self, CharModelConfig, NURSERY_RHYMES, examples};
use addmul::corpus::TINYSHAKESPEARE_SHA256;
use addmul::demos::{CharModelOptions, char_model};
use addmul::plot::{BarChart, LineChart, Piece, Series, TokenRows};
use addmul::tokenizer::{
    ArticleChars, Bpe, BpeTrainer, CharTokenizer, Pattern, SentencePieceBpeTrainer, SpecialPolicy, Tokenizer,
    UnigramTrainer, bytes,
};
use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use super::Gen;

pub fn generate(g: &mut Gen) -> Result<()> {
    chapter3(g).context("chapter 3")?;
    chapter6(g).context("chapter 6")?;
    vocabulary_sizes(g).context("chapter 6's vocabulary sizes")?;
    Ok(())
}

/// How long the book's own text is in tokens as the BPE vocabulary grows:
/// every merge makes the text shorter, by less and less.
fn vocabulary_sizes(g: &mut Gen) -> Result<()> {
    let text = addmul::corpus::book_text();
    let sizes = [256usize, 320, 384, 512, 768, 1024, 1536, 2048, 3072, 4096];
    let mut points = Vec::new();
    let mut learned = 0;
    for &size in &sizes {
        let bpe = BpeTrainer::new(size).pattern(Some(Pattern::Gpt2)).train(text)?;
        let tokens = bpe.encode_ordinary(text)?.len();
        points.push((size as f64, tokens as f64 / text.len() as f64));
        learned = bpe.vocab_size();
    }
    // Merges never cross the pieces GPT-2's pre-splitting makes: the fewest
    // tokens a text can take is one per piece.
    let pieces = addmul::tokenizer::split(&Pattern::Gpt2, text)?.len();
    g.values.set("ch06.sizes.learned", super::thousands(learned as u64));
    g.num("ch06.sizes.pieces_per_byte", pieces as f64 / text.len() as f64, 3);
    LineChart::new("This book's text in BPE tokens, by vocabulary size", "vocabulary size", "tokens per byte")
        .log_x()
        .series(Series::new("byte-level BPE, GPT-2 pre-splitting", points.clone()))
        .save(g.figure("ch06_vocabulary_sizes.svg"))?;
    let (small, large) = (3, sizes.len() - 1);
    g.values.set("ch06.sizes.bytes", super::thousands(text.len() as u64));
    g.num("ch06.sizes.small", sizes[small] as f64, 0);
    g.num("ch06.sizes.at_small", points[small].1, 3);
    g.num("ch06.sizes.large", sizes[large] as f64, 0);
    g.num("ch06.sizes.at_large", points[large].1, 3);
    Ok(())
}

/// `[1, 2, 3]` as the book prints lists.
fn list(ids: &[u32]) -> String {
    format!("{ids:?}")
}

/// A token as inline code, spaces shown as `␣`.
fn code(token: &str) -> String {
    format!("`{}`", token.replace(' ', "␣").replace('\n', "\\n"))
}

/// Tokens as inline code: `` `▁the` `▁cat` `s` ``.
fn pieces(tok: &dyn Tokenizer, ids: &[u32]) -> Result<String> {
    let texts: Vec<String> = ids.iter().map(|&i| tok.token_text(i).map(|t| code(&t))).collect::<Result<_, _>>()?;
    Ok(texts.join(" "))
}

fn chapter3(g: &mut Gen) -> Result<()> {
    // The article's code.
    let code = ArticleChars;
    let mut table = String::from(
        "| character | a | b | c | ... | y | z | space | newline | `.` | `,` | `'` | `!` | `?` | `;` | `:` | `-` |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n| number |",
    );
    for c in ['a', 'b', 'c'] {
        table.push_str(&format!(" {} |", ArticleChars::id(c).expect("a letter")));
    }
    table.push_str(" ... |");
    for c in "yz \n.,'!?;:-".chars() {
        table.push_str(&format!(" {} |", ArticleChars::id(c).expect("in the alphabet")));
    }
    g.text("ch03_alphabet.md", &format!("{table}\n"))?;
    g.num("ch03.vocab", (ArticleChars::VOCAB_SIZE - 1) as f64, 0);
    let prompt = "humpty dumpt";
    g.values.set("ch03.humpty_ids", list(&code.encode(prompt)?));
    g.num("ch03.y_id", f64::from(ArticleChars::id('y').expect("a letter")), 0);
    g.num("ch03.context", charlm::ARTICLE_CONTEXT as f64, 0);

    // The first windows of the rhymes.
    let first_line = "humpty dumpty sat";
    let ids = code.encode(first_line)?;
    let mut windows = String::from("| the model reads (12 numbers) | as text | it should answer |\n|---|---|---|\n");
    for e in examples(&ids, charlm::ARTICLE_CONTEXT).iter().skip(11).take(5) {
        let text: String = code.decode(&e.window)?;
        windows.push_str(&format!(
            "| `{}` | `{}` | `{}` ({}) |\n",
            list(&e.window),
            text.replace(' ', "␣"),
            code.decode(&[e.next])?.replace(' ', "␣"),
            e.next
        ));
    }
    g.text("ch03_windows.md", &windows)?;
    window_figure(g, first_line)?;

    // The demo itself: training, prediction, generation.
    let options = CharModelOptions { progress_every: 20, ..Default::default() };
    let mut transcript = Vec::new();
    let demo = char_model(&options, &mut transcript)?;
    g.text("char_model_output.txt", &String::from_utf8(transcript)?)?;
    let run = &demo.run;
    let config = CharModelConfig::article();
    g.num("ch03.params", addmul::core::ParametersExt::num_params(&run.model) as f64, 0);
    g.values.set("ch03.hidden", config.hidden.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and "));
    g.num("ch03.epochs", config.epochs as f64, 0);
    g.num("ch03.rhymes_chars", NURSERY_RHYMES.chars().count() as f64, 0);
    g.num("ch03.n_train", run.n_train as f64, 0);
    g.num("ch03.n_val", run.n_val as f64, 0);
    let epochs = &run.history.epochs;
    let (first, last) = (&epochs[0], epochs.last().expect("trained"));
    g.num("ch03.first_train_loss", first.train_loss, 2);
    g.num("ch03.last_train_loss", last.train_loss, 2);
    g.num("ch03.uniform_loss", (charlm::NUM_CHARS as f64).ln(), 2);
    let best_val =
        epochs.iter().min_by(|a, b| a.val_loss.unwrap_or(f64::MAX).total_cmp(&b.val_loss.unwrap_or(f64::MAX)));
    let best_val = best_val.expect("validated");
    g.num("ch03.best_val_loss", best_val.val_loss.unwrap_or(f64::NAN), 2);
    g.num("ch03.best_val_epoch", best_val.epoch as f64, 0);
    g.num("ch03.last_val_loss", last.val_loss.unwrap_or(f64::NAN), 2);
    let (c, p) = demo.next[0];
    ensure!(c == 'y', "the trained model no longer answers 'y' after {prompt:?} but {c:?}: update chapter 3");
    g.percent("ch03.p_y", p);
    // After "humpty dumpty ", the two verses differ: the window cannot know which.
    let after = run.model.probabilities("humpty dumpty ")?;
    let p_of = |c: char| after.iter().find(|x| x.0 == c).map_or(0.0, |x| x.1);
    g.percent("ch03.p_sat", p_of('s'));
    g.percent("ch03.p_had", p_of('h'));
    let mut ranked = after.clone();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(8);
    BarChart::new(
        "The character model after \"humpty dumpty \": the 8 likeliest next characters",
        "next character",
        "probability",
        ranked.iter().map(|(c, _)| if *c == ' ' { "space".to_string() } else { c.to_string() }).collect(),
    )
    .group("probability", ranked.iter().map(|(_, p)| *p).collect())
    .save(g.figure("ch03_next_after_humpty.svg"))?;
    LineChart::new("The character model: training and validation loss", "epoch", "cross-entropy")
        .series(Series::new("training", epochs.iter().map(|r| (r.epoch as f64, r.train_loss)).collect()))
        .series(Series::new(
            "validation",
            epochs.iter().map(|r| (r.epoch as f64, r.val_loss.unwrap_or(f64::NAN))).collect(),
        ))
        .save(g.figure("ch03_char_model_loss.svg"))?;
    Ok(())
}

/// The sentence chapter 6 splits with every tokenizer.
const SPLIT_SENTENCE: &str = "the kittens sat on the wall, then jumped down";

/// One sentence as characters and as each tokenizer splits it, a box per
/// token, neighbouring tokens in different colours.
fn splits_figure(g: &mut Gen, tokenizers: &[(&str, &dyn Tokenizer)]) -> Result<()> {
    let shown = |t: &str| t.replace(' ', "␣");
    let row = |texts: Vec<String>| -> Vec<Piece> {
        texts.iter().enumerate().map(|(i, t)| Piece::coloured(shown(t), i % 3)).collect()
    };
    let chars: Vec<String> = SPLIT_SENTENCE.chars().map(String::from).collect();
    let mut figure = TokenRows::new(format!("\"{SPLIT_SENTENCE}\", token by token"))
        .row(format!("characters ({})", chars.len()), row(chars));
    for (name, tok) in tokenizers {
        let ids = tok.encode(SPLIT_SENTENCE)?;
        let texts: Vec<String> = ids.iter().map(|&i| tok.token_text(i)).collect::<Result<_, _>>()?;
        ensure!(texts.concat().replace('▁', " ").trim() == SPLIT_SENTENCE, "{name} does not give the sentence back");
        g.num(&format!("ch06.split.{}", name.to_lowercase().replace([' ', '-'], "_")), ids.len() as f64, 0);
        figure = figure.row(format!("{name} ({})", ids.len()), row(texts));
    }
    // What chapter 6 says about the figure.
    let split = |name: &str| -> Result<Vec<String>> {
        let (_, tok) = tokenizers.iter().find(|(n, _)| *n == name).context("a tokenizer of the figure")?;
        let ids = tok.encode(SPLIT_SENTENCE)?;
        Ok(ids.iter().map(|&i| tok.token_text(i).map(|t| t.replace('▁', " "))).collect::<Result<_, _>>()?)
    };
    let (bpe, spbpe, uni, gpt2) = (split("BPE")?, split("SentencePiece BPE")?, split("unigram")?, split("GPT-2")?);
    for (name, pieces) in [("BPE", &bpe), ("SentencePiece BPE", &spbpe), ("unigram", &uni)] {
        ensure!(pieces.iter().any(|p| p == " the"), "{name} no longer keeps \" the\" whole: update chapter 6");
    }
    ensure!(
        !bpe.iter().any(|p| p == " kittens") && uni.iter().any(|p| p == " kittens"),
        "BPE/unigram no longer split \"kittens\" as chapter 6 says: {bpe:?} {uni:?}"
    );
    ensure!(!uni.iter().any(|p| p == " wall"), "unigram now keeps \"wall\" whole: update chapter 6");
    ensure!(gpt2.len() < bpe.len(), "GPT-2 no longer needs fewer tokens than the rhymes' BPE");
    g.values.set("ch06.split.sentence", SPLIT_SENTENCE);
    figure.save(g.figure("ch06_splits.svg"))?;
    Ok(())
}

/// The first merges BPE learns from `text` with how often each pair occurred
/// when it was merged, as a table.
fn merge_table(g: &mut Gen, text: &str, vocab: usize) -> Result<()> {
    let mut counts = Vec::new();
    let bpe = BpeTrainer::new(vocab).train_with_progress(text, &mut |merge, count| {
        if counts.len() < 10 {
            counts.push((merge, count));
        }
    })?;
    let mut table =
        String::from("| merge | left | right | new token | times the pair occurred |\n|---|---|---|---|---|\n");
    for (i, (m, count)) in counts.iter().enumerate() {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {count} |\n",
            i + 1,
            code(&bpe.token_text(m.left)?),
            code(&bpe.token_text(m.right)?),
            code(&bpe.token_text(m.token)?)
        ));
    }
    ensure!(counts.windows(2).all(|w| w[0].1 >= w[1].1), "BPE's merges should come in order of their counts");
    g.text("ch06_first_merges.md", &table)?;
    Ok(())
}

/// The context window sliding over the first line, one row per example: the
/// window's characters in blue, the character it should predict in orange.
/// A padding cell (`·`) stands before the text, as the model's input does.
fn window_figure(g: &mut Gen, line: &str) -> Result<()> {
    let context = charlm::ARTICLE_CONTEXT;
    let cells: Vec<String> = std::iter::once("·".to_string())
        .chain(line.chars().map(|c| if c == ' ' { "␣".into() } else { c.into() }))
        .collect();
    let mut figure =
        TokenRows::new(format!("A window of {context} characters slides along; the next one is the answer"));
    // Cell `t` holds the text's character `t - 1`; its window is the `context` cells before it.
    for target in context..(context + 5).min(cells.len()) {
        let pieces = cells
            .iter()
            .enumerate()
            .map(|(i, c)| match i {
                _ if i == target => Piece::coloured(c.clone(), 1),
                _ if i + context >= target && i < target => Piece::coloured(c.clone(), 0),
                _ => Piece::plain(c.clone()),
            })
            .collect();
        figure = figure.row(format!("example {}: answer {}", target - context + 1, cells[target]), pieces);
    }
    figure.save(g.figure("ch03_window.svg"))?;
    Ok(())
}

/// GPT-2 from the vocabulary bundled in `tiktoken-rs`, loaded by our loader.
fn gpt2() -> Result<Bpe> {
    Ok(addmul::text::gpt2_bundled()?)
}

/// The merges' tokens as quoted strings.
fn first_merges(bpe: &Bpe, n: usize) -> Result<String> {
    let tokens: Vec<String> = bpe.merges().iter().take(n).map(|m| bpe.token_text(m.token)).collect::<Result<_, _>>()?;
    Ok(tokens.iter().map(|t| code(t)).collect::<Vec<_>>().join(" "))
}

fn chapter6(g: &mut Gen) -> Result<()> {
    // minbpe's example.
    let bpe = BpeTrainer::new(256 + 3).pattern(None).train("aaabdaaabac")?;
    let merges: Vec<String> = bpe
        .merges()
        .iter()
        .map(|m| {
            format!("({}, {}) → {} {}", m.left, m.right, m.token, code(&bpe.token_text(m.token).unwrap_or_default()))
        })
        .collect();
    g.values.set("ch06.minbpe_merges", merges.join(", "));
    g.values.set("ch06.minbpe_ids", list(&bpe.encode("aaabdaaabac")?));

    // Subwords learned from the nursery rhymes.
    let rhymes = NURSERY_RHYMES;
    // With 50 merges " cats" is " cat" + "s"; with 100 the rhymes' many cats
    // have earned a token of their own.
    let (small, large) = (256 + 50, 256 + 100);
    g.num("ch06.rhymes.small", small as f64, 0);
    g.num("ch06.rhymes.small_merges", (small - 256) as f64, 0);
    g.num("ch06.rhymes.large", large as f64, 0);
    g.num("ch06.rhymes.large_merges", (large - 256) as f64, 0);
    let bpe = BpeTrainer::new(small).train(rhymes)?;
    let bpe_large = BpeTrainer::new(large).train(rhymes)?;
    let uni = UnigramTrainer::new(large).train(rhymes)?;
    let spbpe = SentencePieceBpeTrainer::new(large).train(rhymes)?;
    let sentence = "the cats sat";
    for (key, tok) in [("bpe", &bpe as &dyn Tokenizer), ("bpe_large", &bpe_large), ("unigram", &uni), ("spbpe", &spbpe)]
    {
        let ids = tok.encode(sentence)?;
        g.values.set(&format!("ch06.rhymes.{key}.pieces"), pieces(tok, &ids)?);
        g.values.set(&format!("ch06.rhymes.{key}.ids"), list(&ids));
    }
    let split_of = |bpe: &Bpe| -> Result<Vec<String>> {
        Ok(bpe.encode(" cats")?.iter().map(|&i| bpe.token_text(i)).collect::<Result<_, _>>()?)
    };
    ensure!(split_of(&bpe)? == [" cat", "s"], "\" cats\" now splits as {:?}: update chapter 6", split_of(&bpe)?);
    ensure!(
        split_of(&bpe_large)? == [" cats"],
        "\" cats\" now splits as {:?}: update chapter 6",
        split_of(&bpe_large)?
    );
    merge_table(g, rhymes, small)?;
    g.num("ch06.rhymes.chars", rhymes.chars().count() as f64, 0);
    g.num("ch06.rhymes.bpe_tokens", bpe.encode(rhymes)?.len() as f64, 0);
    g.num("ch06.rhymes.bpe_large_tokens", bpe_large.encode(rhymes)?.len() as f64, 0);

    // Byte fallback in the SentencePiece convention.
    let ids = uni.encode("zebra €")?;
    g.values.set("ch06.fallback.pieces", pieces(&uni, &ids)?);

    // GPT-2.
    let gpt2 = gpt2()?;
    g.num("ch06.gpt2.vocab", gpt2.vocab_size() as f64, 0);
    g.num("ch06.gpt2.merges", (gpt2.num_mergeable() - 256) as f64, 0);
    g.values.set("ch06.gpt2.hello", list(&gpt2.encode("Hello world")?));
    for (key, text) in [("cats", " cats"), ("tokenizers", " tokenizers"), ("emoji", "🤖"), ("humpty", "Humpty Dumpty")]
    {
        let ids = gpt2.encode(text)?;
        g.values.set(&format!("ch06.gpt2.{key}.ids"), list(&ids));
        g.values.set(&format!("ch06.gpt2.{key}.pieces"), pieces(&gpt2, &ids)?);
        g.num(&format!("ch06.gpt2.{key}.count"), ids.len() as f64, 0);
    }
    let emoji = gpt2.encode("🤖")?;
    let hex: Vec<String> = emoji
        .iter()
        .map(|&id| {
            let b = gpt2.token_bytes(id).unwrap_or_default();
            b.iter().map(|x| format!("{x:02X}")).collect::<Vec<_>>().join(" ")
        })
        .collect();
    g.values.set("ch06.gpt2.emoji.bytes", hex.join(", "));
    g.values.set("ch06.gpt2.emoji.utf8", "🤖".bytes().map(|x| format!("{x:02X}")).collect::<Vec<_>>().join(" "));
    g.values.set("ch06.gpt2.space", bytes::byte_to_char(b' '));
    g.values.set("ch06.gpt2.newline", bytes::byte_to_char(b'\n'));
    let eot = gpt2.encode_with("a<|endoftext|>b", &SpecialPolicy::allow_all())?;
    g.values.set("ch06.gpt2.eot", list(&eot));
    let split = addmul::tokenizer::split(&Pattern::Gpt2, "I'm  here, aren't I?")?;
    g.values.set("ch06.gpt2.split", split.iter().map(|p| code(p)).collect::<Vec<_>>().join(" "));
    splits_figure(g, &[("BPE", &bpe_large), ("SentencePiece BPE", &spbpe), ("unigram", &uni), ("GPT-2", &gpt2)])?;
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(
        crate::project_root().join("crates/tokenizer/tests/data/gpt2_reference.json"),
    )?)?;
    g.num("ch06.gpt2.reference_cases", reference["cases"].as_array().map_or(0, Vec::len) as f64, 0);

    // tinyshakespeare: measured when the corpus is here, read back otherwise.
    let measured = measured_path();
    if let Some((path, text)) = corpus() {
        let hash = addmul::corpus::sha256_hex(text.as_bytes());
        ensure!(
            hash == TINYSHAKESPEARE_SHA256,
            "{} is not tinyshakespeare (SHA-256 {hash}): chapter 6's numbers are about tinyshakespeare",
            path.display()
        );
        let start = Instant::now();
        let values = measure_corpus(&text, &gpt2).with_context(|| format!("measuring {}", path.display()))?;
        update_measured(&measured, values, &hash)?;
        eprintln!("measured {} in {:.1}s into {}", path.display(), start.elapsed().as_secs_f64(), measured.display());
    }
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(&measured).with_context(|| format!("reading {}", measured.display()))?,
    )?;
    check_measured_corpus(&file).with_context(|| format!("refusing {}", measured.display()))?;
    let Some(Value::Object(map)) = file.get("corpus") else { bail!("{} has no \"corpus\"", measured.display()) };
    let tokenizers = [
        ("characters", "chars_tokens"),
        ("GPT-2", "gpt2_tokens"),
        ("BPE", "bpe_tokens"),
        ("BPE, no pre-split", "bpe_nosplit_tokens"),
        ("SentencePiece BPE", "spbpe_tokens"),
        ("unigram", "unigram_tokens"),
    ];
    let counts = tokenizers
        .iter()
        .map(|(_, key)| map.get(*key).and_then(Value::as_u64).map(|n| n as f64 / 1e3))
        .collect::<Option<Vec<f64>>>()
        .with_context(|| format!("{} lacks a token count", measured.display()))?;
    BarChart::new(
        "tinyshakespeare in tokens, by tokenizer",
        "tokenizer",
        "thousands of tokens",
        tokenizers.iter().map(|(name, _)| name.to_string()).collect(),
    )
    .group("tokens", counts)
    .save(g.figure("ch06_tokens_by_tokenizer.svg"))?;
    for (k, v) in map {
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) if n.is_u64() => super::thousands(n.as_u64().unwrap_or_default()),
            other => other.to_string(),
        };
        g.values.set(&format!("ch06.shakespeare.{k}"), v);
    }
    timings(g)
}

/// Training times and encoding speeds on tinyshakespeare: criterion medians of
/// `cargo bench -p addmul-tokenizer --bench tokenizer`, as recorded by
/// `cargo xtask bench-record`.
fn timings(g: &mut Gen) -> Result<()> {
    let root = crate::project_root();
    let seconds = |id: &str| -> Result<f64> { Ok(crate::measured::median_on_corpus(&root, id)?.seconds) };
    let mb_per_s = |id: &str| -> Result<f64> {
        let m = crate::measured::median_on_corpus(&root, id)?;
        Ok(m.per_second().with_context(|| format!("{id} declares no throughput"))? / 1e6)
    };
    g.num("ch06.shakespeare.bpe_train_s", seconds("train/bpe_4096_gpt2_split")?, 3);
    g.num("ch06.shakespeare.bpe_nosplit_train_s", seconds("train/bpe_4096_no_split")?, 2);
    g.num("ch06.shakespeare.unigram_train_s", seconds("train/unigram_4096")?, 1);
    g.num("ch06.shakespeare.gpt2_mb_s", mb_per_s("gpt2_encode/one_thread")?, 1);
    g.num("ch06.shakespeare.tiktoken_mb_s", mb_per_s("gpt2_encode/tiktoken_rs_one_thread")?, 1);
    g.num("ch06.shakespeare.gpt2_parallel_mb_s", mb_per_s("gpt2_encode/parallel_2_threads")?, 1);
    g.values.set(
        "ch06.shakespeare.timings_source",
        format!(
            "criterion medians of `cargo bench -p addmul-tokenizer --bench tokenizer`, recorded on {} by `cargo xtask \
             bench-record` on a two-core virtual machine whose speed drifts from minute to minute by tens of percent",
            crate::measured::recorded_on(&root, "gpt2_encode/one_thread")?
        ),
    );
    Ok(())
}

fn measured_path() -> PathBuf {
    crate::measured::measured_path(&crate::project_root(), "tokenizers.json")
}

/// Checks that the measured numbers are about tinyshakespeare (the file's
/// `corpus_sha256`, written with them).
fn check_measured_corpus(file: &Value) -> Result<()> {
    match file.get("corpus_sha256").and_then(Value::as_str) {
        Some(TINYSHAKESPEARE_SHA256) => Ok(()),
        Some(other) => bail!("its numbers were measured on a text with SHA-256 {other}, not tinyshakespeare"),
        None => bail!(
            "it has no `corpus_sha256`; run `cargo xtask book` with tinyshakespeare present ($ADDMUL_CORPUS or \
             ../shared/data/tinyshakespeare.txt) to measure it again"
        ),
    }
}

/// tinyshakespeare, if it is here.
fn corpus() -> Option<(PathBuf, String)> {
    let path = std::env::var_os("ADDMUL_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::project_root().join("../shared/data/tinyshakespeare.txt"));
    std::fs::read_to_string(&path).ok().map(|t| (path, t))
}

/// The numbers of chapter 6 that need tinyshakespeare. Deterministic: they
/// depend only on the text and the code.
fn measure_corpus(text: &str, gpt2: &Bpe) -> Result<Value> {
    let vocab = 4096;
    let chars = CharTokenizer::from_text(text);
    let gpt2_ids = gpt2.encode_ordinary(text)?;
    let bpe = BpeTrainer::new(vocab).train(text)?;
    let raw = BpeTrainer::new(vocab).pattern(None).train(text)?;
    let spbpe = SentencePieceBpeTrainer::new(vocab).train(text)?;
    let uni = UnigramTrainer::new(vocab).train(text)?;
    let count = |tok: &dyn Tokenizer| -> Result<u64> {
        let ids = tok.encode(text)?;
        ensure!(tok.decode(&ids)? == text, "a tokenizer failed to round-trip the corpus");
        Ok(ids.len() as u64)
    };
    let cats = |tok: &dyn Tokenizer| pieces(tok, &tok.encode("the cats")?);
    Ok(json!({
        "bytes": text.len() as u64,
        "chars_vocab": chars.vocab_size() as u64,
        "chars_tokens": chars.encode(text)?.len() as u64,
        "gpt2_tokens": gpt2_ids.len() as u64,
        "bpe_tokens": count(&bpe)?,
        "bpe_nosplit_tokens": count(&raw)?,
        "spbpe_tokens": count(&spbpe)?,
        "unigram_tokens": count(&uni)?,
        "vocab": vocab as u64,
        "merges": (vocab - 256) as u64,
        "bpe_first_merges": first_merges(&bpe, 12)?,
        "bpe_nosplit_first_merges": first_merges(&raw, 12)?,
        "bpe_cats": cats(&bpe)?,
        "spbpe_cats": cats(&spbpe)?,
        "unigram_cats": cats(&uni)?,
        "gpt2_cats": cats(gpt2)?,
    }))
}

/// Replaces the `corpus` section of the measured file, and records the
/// SHA-256 of the text it was measured on.
fn update_measured(path: &Path, corpus: Value, sha256: &str) -> Result<()> {
    let mut file: Value = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)?,
        Err(_) => json!({}),
    };
    let old = file.get("corpus").cloned();
    if old.as_ref() != Some(&corpus) && old.is_some() {
        eprintln!("note: {} changed; commit it with the code that changed it", path.display());
    }
    file["corpus"] = corpus;
    file["corpus_sha256"] = json!(sha256);
    if let Some(map) = file.as_object_mut() {
        map.remove("timings"); // once copied by hand; now in criterion.json
    }
    file["about"] = json!(
        "Numbers about tinyshakespeare for chapter 6. `corpus` is rewritten by `cargo xtask book` whenever the corpus \
         is present ($ADDMUL_CORPUS or ../shared/data/tinyshakespeare.txt), and `corpus_sha256` with it; the book \
         refuses numbers about another text. They depend only on the text and the code (no timings: those come \
         from criterion.json)."
    );
    std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
    std::fs::write(path, serde_json::to_string_pretty(&file)? + "\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_about_another_text_are_refused() {
        check_measured_corpus(&json!({ "corpus_sha256": TINYSHAKESPEARE_SHA256 })).unwrap();
        let err = check_measured_corpus(&json!({ "corpus_sha256": "abc" })).unwrap_err().to_string();
        assert!(err.contains("SHA-256 abc, not tinyshakespeare"), "{err}");
        assert!(check_measured_corpus(&json!({})).unwrap_err().to_string().contains("no `corpus_sha256`"));
    }
}
