//! The book's runnable examples, shared by `cargo run --example` and the
//! `addmul` command.

mod leaf_flower;

pub use leaf_flower::{LeafFlowerOptions, LeafFlowerRuns, decision_regions, leaf_flower, loss_curves};
