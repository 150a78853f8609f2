//! A checkpoint's `config.json` and `model.safetensors`, as load_model reads
//! them. The input is split at its first NUL byte: config, then weights.
#![no_main]

use std::path::Path;

use addmul::gpt::checkpoint::model_from_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cut = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let Ok(config) = std::str::from_utf8(&data[..cut]) else { return };
    let weights = data.get(cut + 1..).unwrap_or(&[]);
    let _ = model_from_bytes::<f32>(config, weights, Path::new("config.json"), Path::new("model.safetensors"));
});
