//! Training byte-level BPE and the SentencePiece-style models; the character
//! codes.

use addmul_tokenizer::{
    ArticleChars, Bpe, BpeTrainer, CharTokenizer, Error, META, Pattern, SentencePieceBpe, SentencePieceBpeTrainer,
    SpecialPolicy, Tokenizer, Unigram, UnigramTrainer, UnknownChars,
};
use proptest::prelude::*;

/// A small English corpus for the properties (the crate's tests must not read
/// files outside the repository).
const CORPUS: &str = "Humpty Dumpty sat on a wall, Humpty Dumpty had a great fall.\n\
All the king's horses and all the king's men couldn't put Humpty together again.\n\
The cat sat on the mat; the cats sat on the mats. Two cats, three cats, cats!\n\
Hey diddle diddle, the cat and the fiddle, the cow jumped over the moon.\n\
Baa, baa, black sheep, have you any wool? Yes sir, yes sir, three bags full.\n";

// ANCHOR: minbpe_example
#[test]
fn minbpe_example() {
    // Wikipedia's example as minbpe tests it: three merges, no pre-splitting.
    let bpe = BpeTrainer::new(256 + 3).pattern(None).train("aaabdaaabac").unwrap();
    let merges: Vec<(u32, u32, u32)> = bpe.merges().iter().map(|m| (m.left, m.right, m.token)).collect();
    // After "aa", the pairs (aa, a) and (a, b) both occur twice: the tie goes
    // to the smaller left id, so "ab" comes before "aaab" (minbpe, which breaks
    // ties by first appearance, learns "aaa" instead). The encoding is the same.
    assert_eq!(merges, [(97, 97, 256), (97, 98, 257), (256, 257, 258)]); // aa, ab, aaab
    assert_eq!(bpe.encode("aaabdaaabac").unwrap(), [258, 100, 258, 97, 99]);
    assert_eq!(bpe.decode(&[258, 100, 258, 97, 99]).unwrap(), "aaabdaaabac");
}
// ANCHOR_END: minbpe_example

fn trained() -> &'static Bpe {
    static B: std::sync::OnceLock<Bpe> = std::sync::OnceLock::new();
    B.get_or_init(|| BpeTrainer::new(400).special_tokens(["<|endoftext|>"]).min_frequency(1).train(CORPUS).unwrap())
}

#[test]
fn training_learns_the_corpus_words() {
    let bpe = trained();
    // The corpus runs out of pairs before 400.
    assert!(bpe.vocab_size() <= 400);
    assert_eq!(bpe.special_id("<|endoftext|>"), Some(bpe.vocab_size() as u32 - 1));
    let ids = bpe.encode(" Humpty Dumpty").unwrap();
    assert_eq!(ids.len(), 2, "{ids:?}");
    // The pattern keeps punctuation out of word tokens.
    assert!(bpe.merges().iter().all(|m| {
        let t = String::from_utf8_lossy(bpe.token_bytes(m.token).unwrap()).into_owned();
        !(t.chars().any(char::is_alphabetic) && t.chars().any(|c| c == ',' || c == '.'))
    }));
}

#[test]
fn vocabulary_below_256_is_an_error() {
    let e = BpeTrainer::new(255).train("abc").unwrap_err();
    assert!(matches!(e, Error::VocabTooSmall { requested: 255, minimum: 256, .. }), "{e}");
    let e = BpeTrainer::new(256).special_tokens(["<|endoftext|>"]).train("abc").unwrap_err();
    assert!(matches!(e, Error::VocabTooSmall { minimum: 257, .. }), "{e}");
    assert!(matches!(
        BpeTrainer::new(300).pattern(Some(Pattern::Custom("(".into()))).train("a"),
        Err(Error::Pattern { .. })
    ));
}

#[test]
fn training_stops_when_pairs_run_out() {
    let bpe = BpeTrainer::new(1000).train("ab ab").unwrap();
    assert!(bpe.vocab_size() < 1000);
    // "ab" occurs twice and is merged; " ab" once, below the minimum of 2.
    assert_eq!(bpe.encode("ab ab").unwrap().len(), 3);
}

#[test]
fn no_pre_splitting_handles_one_long_piece() {
    let text = CORPUS.repeat(20);
    let bpe = BpeTrainer::new(600).pattern(None).train(&text).unwrap();
    let ids = bpe.encode(&text).unwrap();
    assert!(ids.len() * 10 < text.len(), "{} tokens for {} bytes", ids.len(), text.len());
    assert_eq!(bpe.decode(&ids).unwrap(), text);
}

#[test]
fn trained_tokenizer_file_round_trip_and_errors() {
    let file = trained().to_file_string();
    let loaded = Bpe::from_file_string(&file).unwrap();
    assert_eq!(loaded.encode(CORPUS).unwrap(), trained().encode(CORPUS).unwrap());
    let truncated = &file[..file.len() - 20];
    assert!(matches!(Bpe::from_file_string(truncated), Err(Error::Parse { .. })));
    assert!(matches!(Bpe::from_file_string("addmul-bpe v9\n"), Err(Error::Parse { line: 1, .. })));
    let custom = BpeTrainer::new(270).pattern(Some(Pattern::Custom(r"\w+|\s+|[^\w\s]+".into()))).train(CORPUS).unwrap();
    let again = Bpe::from_file_string(&custom.to_file_string()).unwrap();
    assert_eq!(again.pattern(), custom.pattern());
    assert!(matches!(Bpe::load("/nonexistent/addmul.bpe"), Err(Error::Io { .. })));
}

#[test]
fn unigram_and_sentencepiece_bpe_learn_subwords() {
    let text = CORPUS.repeat(3);
    let uni = UnigramTrainer::new(256 + 120).train(&text).unwrap();
    assert!(uni.vocab_size() <= 376);
    let sp = SentencePieceBpeTrainer::new(256 + 120).train(&text).unwrap();
    assert!(sp.vocab_size() <= 376);
    for tok in [&uni as &dyn Tokenizer, &sp] {
        let ids = tok.encode("the cats sat").unwrap();
        let pieces: Vec<String> = ids.iter().map(|&i| tok.token_text(i).unwrap()).collect();
        assert!(pieces.iter().all(|p| !p[META.len_utf8()..].contains(META)), "{pieces:?}");
        assert!(pieces[0].starts_with(META), "{pieces:?}");
        assert_eq!(tok.decode(&ids).unwrap(), "the cats sat");
    }
    // Byte fallback: characters never seen become their UTF-8 bytes.
    let ids = uni.encode("€").unwrap();
    assert!(ids.contains(&0xE2) && ids.contains(&0x82) && ids.contains(&0xAC), "{ids:?}");
    assert!(matches!(UnigramTrainer::new(270).train(&text), Err(Error::VocabTooSmall { .. })));
    assert!(matches!(UnigramTrainer::new(400).character_coverage(1.5).train(&text), Err(Error::InvalidConfig { .. })));
    assert!(matches!(uni.decode(&[99_999]), Err(Error::UnknownId { id: 99_999, .. })));
    assert!(matches!(uni.decode(&[0xE2]), Err(Error::InvalidUtf8 { .. })));
}

#[test]
fn subword_models_save_and_load() {
    let text = CORPUS.repeat(3);
    let uni = UnigramTrainer::new(256 + 100).train(&text).unwrap();
    let again = Unigram::from_file_string(&uni.to_file_string()).unwrap();
    assert_eq!(again.to_file_string(), uni.to_file_string());
    assert_eq!(again.encode(&text).unwrap(), uni.encode(&text).unwrap());
    let sp = SentencePieceBpeTrainer::new(256 + 100).dummy_prefix(false).train(&text).unwrap();
    let path =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("addmul-spbpe-{}.txt", std::process::id()));
    sp.save(&path).unwrap();
    let again = SentencePieceBpe::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(again.encode(&text).unwrap(), sp.encode(&text).unwrap());
    // Truncated, corrupted, or the wrong kind of file: typed errors with the line.
    let file = uni.to_file_string();
    assert!(matches!(Unigram::from_file_string(&file[..file.len() / 2]), Err(Error::Parse { .. })));
    assert!(matches!(SentencePieceBpe::from_file_string(&file), Err(Error::Parse { line: 1, .. })));
    let bad = file.replacen("dummy_prefix true", "dummy_prefix maybe", 1);
    assert!(matches!(Unigram::from_file_string(&bad), Err(Error::Parse { line: 2, .. })));
    let line5 = file.lines().nth(4).unwrap();
    let bad = file.replacen(line5, &format!("NaN {}", line5.split_once(' ').unwrap().1), 1);
    assert!(matches!(Unigram::from_file_string(&bad), Err(Error::InconsistentVocab { .. })));
}

#[test]
fn article_code_and_corpus_characters() {
    let code = ArticleChars;
    assert_eq!(code.encode("abc xyz").unwrap(), [1, 2, 3, 27, 24, 25, 26]);
    assert!(matches!(code.encode("a5"), Err(Error::UnknownChar { ch: '5', offset: 1 })));
    assert!(matches!(code.decode(&[37]), Err(Error::UnknownId { id: 37, vocab_size: 37 })));
    assert_eq!(ArticleChars::normalize("Ab\u{2019}c\t5"), ("ab'c ".to_string(), 1));
    let chars = CharTokenizer::from_text(CORPUS);
    assert_eq!(chars.decode(&chars.encode(CORPUS).unwrap()).unwrap(), CORPUS);
    let lenient = chars.clone().unknown_chars(UnknownChars::Replace);
    assert_eq!(lenient.vocab_size(), chars.vocab_size() + 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_string_round_trips(text in any::<String>()) {
        let bpe = trained();
        let ids = bpe.encode_with(&text, &SpecialPolicy::ordinary()).unwrap();
        prop_assert!(ids.iter().all(|&id| (id as usize) < bpe.vocab_size()));
        prop_assert_eq!(bpe.decode(&ids).unwrap(), text.as_str());
        prop_assert_eq!(bpe.encode_with(&text, &SpecialPolicy::ordinary()).unwrap(), ids);
        for tok in subword_models() {
            let ids = tok.encode(&text).unwrap();
            prop_assert!(ids.iter().all(|&id| (id as usize) < tok.vocab_size()));
            prop_assert_eq!(tok.decode(&ids).unwrap(), text.as_str());
            prop_assert_eq!(tok.encode(&text).unwrap(), ids);
        }
    }

    #[test]
    fn every_byte_sequence_round_trips(data in prop::collection::vec(any::<u8>(), 0..100)) {
        let ids = trained().encode_bytes(&data).unwrap();
        prop_assert_eq!(trained().decode_bytes(&ids).unwrap(), data);
    }

    /// BPE training follows its rule: merge the most frequent neighbouring
    /// pair, ties to the smallest (left, right) ids, so the merges depend on
    /// neither hashing nor the order of the text. Checked against the rule
    /// written the slow, obvious way (`reference_merges`: every pair recounted
    /// in a `BTreeMap` after each merge), on one unsplit piece and on words
    /// split by GPT-2's pattern. Over the letters "abc" ties are everywhere,
    /// so a tie broken by hash order would disagree with the reference.
    #[test]
    fn bpe_training_follows_the_reference_rule(
        words in prop::collection::vec("[abc]{1,8}", 1..30), split: bool, size in 256usize..320, min in 1u64..3,
    ) {
        let pieces: Vec<String> = words.iter().map(|w| format!(" {w}")).collect();
        let text = pieces.concat();
        let (trainer, reference_words) = if split {
            (BpeTrainer::new(size), pieces.iter().map(|p| p.as_bytes().to_vec()).collect())
        } else {
            (BpeTrainer::new(size).pattern(None), vec![text.as_bytes().to_vec()])
        };
        let bpe = trainer.min_frequency(min).train(&text).unwrap();
        let merges: Vec<(u32, u32, u32)> = bpe.merges().iter().map(|m| (m.left, m.right, m.token)).collect();
        prop_assert_eq!(merges, reference_merges(&reference_words, size, min));
        prop_assert_eq!(bpe.decode(&bpe.encode(&text).unwrap()).unwrap(), text.as_str());
    }

    /// Every trainer learns from how often each word occurs, not from where:
    /// the same words in another order give the same tokenizer, byte for
    /// byte. (Training twice on the same text cannot show an order or
    /// hash-order dependence: with `FxHashMap` both runs hash alike.)
    #[test]
    fn training_does_not_depend_on_word_order(
        (words, shuffled) in prop::collection::vec("[abc]{1,8}", 1..30)
            .prop_flat_map(|w| (Just(w.clone()), Just(w).prop_shuffle())),
        size in 256usize..320,
    ) {
        let (text, other) = (words.join(" "), shuffled.join(" "));
        let bpe = |t: &str| BpeTrainer::new(size).min_frequency(1).train(&format!(" {t}")).unwrap().to_file_string();
        prop_assert_eq!(bpe(&text), bpe(&other));
        let unigram = |t: &str| UnigramTrainer::new(size + 20).train(t).map(|m| m.to_file_string()).ok();
        prop_assert_eq!(unigram(&text), unigram(&other));
        let sp = |t: &str| SentencePieceBpeTrainer::new(size + 20).train(t).map(|m| m.to_file_string()).ok();
        prop_assert_eq!(sp(&text), sp(&other));
    }
}

fn subword_models() -> &'static [Box<dyn Tokenizer + Send + Sync>] {
    static M: std::sync::OnceLock<Vec<Box<dyn Tokenizer + Send + Sync>>> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        let text = CORPUS.repeat(3);
        vec![
            Box::new(UnigramTrainer::new(256 + 100).train(&text).unwrap()),
            Box::new(UnigramTrainer::new(256 + 100).dummy_prefix(false).train(&text).unwrap()),
            Box::new(SentencePieceBpeTrainer::new(256 + 100).train(&text).unwrap()),
        ]
    })
}

/// BPE training written the slow, obvious way: count every neighbouring pair
/// of every word again after each merge, merge the most frequent (ties to the
/// smallest (left, right)) left to right, until `vocab_size` tokens or no
/// pair occurs `min_frequency` times. A merge whose bytes are already a token
/// reuses it and is not a new merge.
fn reference_merges(words: &[Vec<u8>], vocab_size: usize, min_frequency: u64) -> Vec<(u32, u32, u32)> {
    let mut words: Vec<Vec<u32>> = words.iter().map(|w| w.iter().map(|&b| u32::from(b)).collect()).collect();
    let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    let mut merges = Vec::new();
    while tokens.len() < vocab_size {
        let mut counts = std::collections::BTreeMap::new();
        for w in &words {
            for p in w.windows(2) {
                *counts.entry((p[0], p[1])).or_insert(0u64) += 1;
            }
        }
        // The largest count; among equal counts the smallest pair.
        let Some((&(a, b), &count)) = counts.iter().max_by(|x, y| x.1.cmp(y.1).then(y.0.cmp(x.0))) else { break };
        if count < min_frequency {
            break;
        }
        let bytes = [tokens[a as usize].as_slice(), tokens[b as usize].as_slice()].concat();
        let id = match tokens.iter().position(|t| *t == bytes) {
            Some(existing) => existing as u32,
            None => {
                tokens.push(bytes);
                let id = tokens.len() as u32 - 1;
                merges.push((a, b, id));
                id
            }
        };
        for w in &mut words {
            let mut merged = Vec::with_capacity(w.len());
            let mut i = 0;
            while i < w.len() {
                if i + 1 < w.len() && (w[i], w[i + 1]) == (a, b) {
                    merged.push(id);
                    i += 2;
                } else {
                    merged.push(w[i]);
                    i += 1;
                }
            }
            *w = merged;
        }
    }
    merges
}
