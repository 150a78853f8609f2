//! A tiktoken rank file (`<base64 token> <rank>` lines); a tokenizer that
//! loads then encodes and decodes a text.
#![no_main]

use addmul::tokenizer::{Bpe, Tokenizer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(bpe) = Bpe::gpt2_from_tiktoken(text)
        && let Ok(ids) = bpe.encode("Hello, world! 123 héllo\n")
    {
        let _ = bpe.decode_bytes(&ids);
    }
});
