//! A PEFT LoRA adapter (`adapter_config.json` and `adapter_model.safetensors`)
//! for a small GPT-2-shaped base, as `addmul-lora` loads it. The input is
//! split at its first zero byte: the config's text before, the weights'
//! bytes after.
#![no_main]

use std::path::Path;

use addmul::lora::{AdapterSet, BaseLayers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cut = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (config, weights) = (&data[..cut], data.get(cut + 1..).unwrap_or(&[]));
    let mut layers = BaseLayers::new();
    for i in 0..2 {
        layers.insert(format!("transformer.h.{i}.attn.c_attn"), (8, 24));
        layers.insert(format!("transformer.h.{i}.attn.c_proj"), (8, 8));
        layers.insert(format!("transformer.h.{i}.mlp.c_fc"), (8, 32));
        layers.insert(format!("transformer.h.{i}.mlp.c_proj"), (32, 8));
    }
    let _ = AdapterSet::<f32>::from_files(config, weights, &layers, Path::new("adapter"));
});
