//! OpenAI's GPT-2 files, `encoder.json` and `vocab.bpe` (split at the first
//! NUL byte); a tokenizer that loads then encodes and decodes a text.
#![no_main]

use addmul::tokenizer::{Bpe, Tokenizer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cut = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (Ok(encoder), Ok(merges)) =
        (std::str::from_utf8(&data[..cut]), std::str::from_utf8(data.get(cut + 1..).unwrap_or(&[])))
    else {
        return;
    };
    if let Ok(bpe) = Bpe::gpt2_from_encoder_json(encoder, merges) {
        exercise(&bpe);
    }
});

fn exercise(t: &dyn Tokenizer) {
    if let Ok(ids) = t.encode("Hello, world! 123 héllo\n") {
        let _ = t.decode_bytes(&ids);
    }
}
