//! The text loader (`addmul train --data FILE`): any bytes in a file become
//! a text or a typed error; a text trains a character tokenizer that
//! round-trips it.
#![no_main]

use addmul::corpus::read_text;
use addmul::text::{TextTokenizer, TokenizerKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("addmul-fuzz-text-{}.txt", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let Ok(text) = read_text(&path) else { return };
    let tokenizer = TextTokenizer::train(TokenizerKind::Char, &text, 0).unwrap();
    let ids = tokenizer.as_dyn().encode(&text).unwrap();
    assert_eq!(tokenizer.as_dyn().decode(&ids).unwrap(), text);
});
