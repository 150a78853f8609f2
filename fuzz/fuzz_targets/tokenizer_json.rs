//! A run's `tokenizer.json` (a character alphabet or a BPE), as `addmul
//! sample` reads it; a tokenizer that loads then encodes and decodes a text.
#![no_main]

use addmul::text::TextTokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(t) = TextTokenizer::from_json(text)
        && let Ok(ids) = t.as_dyn().encode("abc")
    {
        let _ = t.as_dyn().decode_bytes(&ids);
    }
});
