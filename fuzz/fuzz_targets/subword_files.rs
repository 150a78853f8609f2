//! The SentencePiece-style unigram and BPE model files; a tokenizer that
//! loads then encodes and decodes a text.
#![no_main]

use addmul::tokenizer::{SentencePieceBpe, Tokenizer, Unigram};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(t) = Unigram::from_file_string(text) {
        exercise(&t);
    }
    if let Ok(t) = SentencePieceBpe::from_file_string(text) {
        exercise(&t);
    }
});

fn exercise(t: &dyn Tokenizer) {
    if let Ok(ids) = t.encode("the cats sat, héllo\n") {
        let _ = t.decode_bytes(&ids);
    }
}
