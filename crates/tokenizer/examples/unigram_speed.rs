//! How fast the unigram trainer is, and how short its model cuts held-out
//! text: the Rust side of `reference/unigram_speed.py` (SentencePiece).
//!
//! ```text
//! cargo run --release -p addmul-tokenizer --example unigram_speed -- [FILE] [--vocab N] [--runs N]
//!     [--coverage C] [--save PATH]
//! ```
//!
//! FILE defaults to `$ADDMUL_CORPUS`, then `../shared/data/tinyshakespeare.txt`
//! next to the repository. The first 90 % of its bytes (cut back to a
//! character boundary) is the training text, the rest the held-out text.
//! The trainer runs `--runs` times (3 by default) with `--vocab` ids (4096 by
//! default: 256 byte pieces and 3840 learned pieces) and character coverage
//! `--coverage` (1.0 by default, as the Python script asks SentencePiece
//! for); the example prints the median training time, checks that every run
//! gave the same model, and prints the held-out tokens per byte (fewer is
//! better). `--save` writes the model. The trainer uses every core the
//! process may run on (the example prints how many); `taskset -c 0 cargo run
//! ...` measures one.

use std::time::Instant;

use addmul_tokenizer::{Tokenizer, UnigramTrainer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut path, mut vocab, mut runs, mut coverage, mut save) = (None, 4096usize, 3usize, 1.0f64, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--vocab" => vocab = value()?.parse()?,
            "--runs" => runs = value()?.parse::<usize>()?.max(1),
            "--coverage" => coverage = value()?.parse()?,
            "--save" => save = Some(value()?),
            _ if a.starts_with("--") => return Err(format!("unknown option {a}").into()),
            _ => path = Some(std::path::PathBuf::from(a)),
        }
    }
    let path = path.unwrap_or_else(|| {
        std::env::var_os("ADDMUL_CORPUS").map(Into::into).unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/tinyshakespeare.txt")
        })
    });
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut cut = text.len() * 9 / 10;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let (train, held_out) = text.split_at(cut);
    println!(
        "{}: training on {} bytes, held out {} bytes; vocab {vocab}, coverage {coverage}, {} threads",
        path.display(),
        train.len(),
        held_out.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let trainer = UnigramTrainer::new(vocab).character_coverage(coverage);
    let mut seconds = Vec::new();
    let mut model = None;
    for run in 0..runs {
        let start = Instant::now();
        let m = trainer.train(train)?;
        let s = start.elapsed().as_secs_f64();
        println!("run {}: {s:.3} s", run + 1);
        seconds.push(s);
        let file = m.to_file_string();
        if let Some((_, first)) = &model {
            assert_eq!(&file, first, "training must give the same model every time");
        }
        model = Some((m, file));
    }
    let (model, file) = model.expect("at least one run");
    seconds.sort_by(f64::total_cmp);
    let ids = model.encode(held_out)?;
    assert_eq!(model.decode(&ids)?, held_out, "the model must round-trip");
    println!(
        "median training time {:.3} s of {runs} runs; {} ids; held-out {} tokens / {} bytes = {:.5} tokens per byte",
        seconds[seconds.len() / 2],
        model.vocab_size(),
        ids.len(),
        held_out.len(),
        ids.len() as f64 / held_out.len() as f64
    );
    if let Some(p) = save {
        std::fs::write(&p, file)?;
        println!("model written to {p}");
    }
    Ok(())
}
