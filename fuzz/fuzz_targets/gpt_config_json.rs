//! A Hugging Face `config.json`: read, validated, and (if it is small) a
//! model built from it. Any input: a typed error or a model, never a panic.
#![no_main]

use addmul::gpt::{Gpt, GptConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = GptConfig::from_hf_json(text) else { return };
    if config.validate().is_ok() && config.num_params() < 1 << 16 {
        let _ = Gpt::<f32>::new(config, &mut addmul::core::rng(0));
    }
});
