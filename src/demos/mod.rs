//! The book's runnable examples, shared by `cargo run --example` and the
//! `addmul` command.

mod char_model;
mod leaf_flower;
mod residual_depth;
mod transformer;

pub use char_model::{CharModelDemo, CharModelOptions, char_model};
pub use leaf_flower::{LeafFlowerOptions, LeafFlowerRuns, decision_regions, leaf_flower, loss_curves};
pub use residual_depth::{DepthConfig, DepthRun, Wiring, layer_norm_depth, residual_depth};
pub use transformer::{
    AttentionMap, CopyArgs, CopyOptions, CopyRun, GptRun, ModelSize, NumbersArgs, NumbersOptions, NumbersReport,
    NumbersRun, attention_map, copy_task, cpu_description, numbers_config, numbers_data_sha256, numbers_task, utc_date,
    write_numbers_record,
};
