//! A training configuration file (TOML) on top of each preset, as
//! `addmul train --config FILE` reads it, then validated.
#![no_main]

use addmul::app::train_config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("addmul-fuzz-config-{}.toml", std::process::id()));
    std::fs::write(&path, data).unwrap();
    for preset in ["cpu-small", "tiny"] {
        if let Ok(config) = train_config(preset, Some(&path), &[]) {
            let _ = config.validate(65);
        }
    }
});
