//! A Hugging Face `tokenizer.json` (GPT-2's byte-level BPE), as `addmul
//! sample --model` reads it from a transformers folder; a tokenizer that
//! loads then encodes and decodes a text.
#![no_main]

use addmul::text::TextTokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(t) = TextTokenizer::from_hf_tokenizer_json(text)
        && let Ok(ids) = t.encode_text("Hello <|endoftext|> world")
    {
        let _ = t.as_dyn().decode_bytes(&ids);
    }
});
