//! Trains every kind of tokenizer on a text file and compares them.
//!
//! ```text
//! cargo run --release -p addmul-tokenizer --example compare_tokenizers -- [FILE] [VOCAB_SIZE]
//! ```
//!
//! FILE defaults to `$ADDMUL_CORPUS`, then `../shared/data/tinyshakespeare.txt`
//! (relative to the repository) where those exist; without them, give any
//! UTF-8 text file (the book's chapters will do: `book/src/ch06-subword-tokenizers.md`).
//! VOCAB_SIZE defaults to 4096 (smaller texts want smaller vocabularies).

use std::time::Instant;

use addmul_tokenizer::{
    ArticleChars, BpeTrainer, CharTokenizer, Pattern, SentencePieceBpeTrainer, Tokenizer, UnigramTrainer,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("ADDMUL_CORPUS").map(Into::into).unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/tinyshakespeare.txt")
        })
    });
    let vocab: usize = args.next().map(|v| v.parse()).transpose()?.unwrap_or(4096);
    if !path.exists() {
        return Err(format!(
            "{} does not exist: give a text file, e.g. `cargo run --release -p addmul-tokenizer --example \
             compare_tokenizers -- book/src/ch06-subword-tokenizers.md 512`, or set $ADDMUL_CORPUS",
            path.display()
        )
        .into());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("{}: {} bytes, {} characters", path.display(), text.len(), text.chars().count());

    let chars = CharTokenizer::from_text(&text);
    println!("{:<34} vocab {:>6}  tokens {:>9}", "characters", chars.vocab_size(), chars.encode(&text)?.len());
    let (article, dropped) = ArticleChars::normalize(&text);
    println!(
        "{:<34} vocab {:>6}  tokens {:>9}  ({dropped} characters dropped)",
        "article code (a = 1)",
        ArticleChars::VOCAB_SIZE,
        ArticleChars.encode(&article)?.len()
    );

    let report = |name: &str, tok: &dyn Tokenizer, seconds: f64| -> Result<(), Box<dyn std::error::Error>> {
        let start = Instant::now();
        let ids = tok.encode(&text)?;
        let enc = start.elapsed().as_secs_f64();
        assert_eq!(tok.decode(&ids)?, text, "{name} must round-trip");
        let cats: Vec<String> = tok.encode("the cats")?.iter().map(|&i| tok.token_text(i)).collect::<Result<_, _>>()?;
        println!(
            "{name:<34} vocab {:>6}  tokens {:>9}  trained in {seconds:>6.2} s, encoded in {enc:.2} s; \"the cats\" = {cats:?}",
            tok.vocab_size(),
            ids.len()
        );
        Ok(())
    };

    for (name, pattern) in
        [("byte-level BPE, GPT-2 pre-split", Some(Pattern::Gpt2)), ("byte-level BPE, no pre-split", None)]
    {
        let start = Instant::now();
        let bpe = BpeTrainer::new(vocab).pattern(pattern).train(&text)?;
        let secs = start.elapsed().as_secs_f64();
        report(name, &bpe, secs)?;
        let first: Vec<String> =
            bpe.merges().iter().take(8).map(|m| bpe.token_text(m.token)).collect::<Result<_, _>>()?;
        println!("{:<34} first merges: {first:?}", "");
    }
    let start = Instant::now();
    let sp = SentencePieceBpeTrainer::new(vocab).train(&text)?;
    report("SentencePiece-style BPE", &sp, start.elapsed().as_secs_f64())?;
    let start = Instant::now();
    let uni = UnigramTrainer::new(vocab).train(&text)?;
    report("unigram LM", &uni, start.elapsed().as_secs_f64())?;
    Ok(())
}
