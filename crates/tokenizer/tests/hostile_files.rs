//! Tokenizer files that lie about their counts: a typed error, never a
//! panic or an allocation of what the file claims.

use addmul_tokenizer::{Bpe, BpeTrainer, SentencePieceBpe, Unigram};

const HUGE: &str = "18446744073709551615"; // usize::MAX on 64-bit machines

#[test]
fn a_subword_file_claiming_usize_max_pieces_is_an_error() {
    for magic in ["addmul-unigram v1", "addmul-sentencepiece-bpe v1"] {
        let text = format!("{magic}\ndummy_prefix true\npieces {HUGE}\n0 YQ==\n");
        let err = if magic.contains("unigram") {
            Unigram::from_file_string(&text).unwrap_err().to_string()
        } else {
            SentencePieceBpe::from_file_string(&text).unwrap_err().to_string()
        };
        assert!(err.contains("ends before the last piece"), "{magic}: {err}");
    }
}

#[test]
fn a_bpe_file_claiming_usize_max_tokens_is_an_error() {
    let good = BpeTrainer::new(260).special_tokens(["<|endoftext|>"]).train("aaabdaaabac").unwrap().to_file_string();
    for key in ["specials", "tokens"] {
        let text: String = good
            .lines()
            .map(|l| if l.starts_with(&format!("{key} ")) { format!("{key} {HUGE}\n") } else { format!("{l}\n") })
            .collect();
        let err = Bpe::from_file_string(&text).unwrap_err().to_string();
        assert!(err.contains("ends before") || err.contains("line"), "{key}: {err}");
    }
}
