//! Chapter 15: the encoder-decoder Transformer on the copy task and on
//! English-to-German number words, and the article's contrast, a
//! decoder-only GPT given `source <SEP> target` on the same data.
//!
//! One file a task or concern: `copy` (copy random sequences), `numbers`
//! (translate number words), `gpt_contrast` (the decoder-only GPT on the
//! same numbers), `attention_map` (the cross-attention figure) and `record`
//! (the JSON record of a measured run). This file holds what they share.

mod attention_map;
mod copy;
mod gpt_contrast;
mod numbers;
mod record;

pub use attention_map::{AttentionMap, attention_map};
pub use copy::{CopyArgs, CopyOptions, CopyRun, copy_task};
pub use gpt_contrast::GptRun;
pub use numbers::{
    NumbersArgs, NumbersOptions, NumbersReport, NumbersRun, numbers_config, numbers_data_sha256, numbers_task,
};
pub use record::{cpu_description, utc_date, write_numbers_record};

use addmul_core::parallel::{run_each, threads};
use addmul_transformer::{TransformerConfig, Vocab};
use serde::Serialize;

use crate::{Error, Result};

/// The error of a failed write of progress lines.
fn io(e: std::io::Error) -> Error {
    Error::Io { context: "writing progress".into(), source: e }
}

/// The size of a Transformer: the paper's base model is
/// `{ d_model: 512, n_head: 8, d_ff: 2048, layers: 6 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelSize {
    /// Width of every token's vector.
    pub d_model: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Hidden width of the feed-forward networks.
    pub d_ff: usize,
    /// Encoder layers, and as many decoder layers.
    pub layers: usize,
}

impl ModelSize {
    fn config(&self, src: &Vocab, tgt: &Vocab, max_len: usize) -> Result<TransformerConfig> {
        let config = TransformerConfig::for_vocabularies(src, tgt, self.d_model, self.n_head, self.layers)?;
        Ok(TransformerConfig { d_ff: self.d_ff, max_len, ..config })
    }
}

/// Counts the items `f` accepts, in `threads` consecutive chunks run on the
/// shared pool; returns the count and the rejected items, in order. The
/// first error, in item order, is returned.
fn count_parallel<F>(items: &[u32], threads: usize, f: F) -> Result<(usize, Vec<u32>)>
where
    F: Fn(u32) -> Result<bool> + Sync,
{
    let threads = threads.clamp(1, items.len().max(1));
    let chunks: Vec<&[u32]> = items.chunks(items.len().div_ceil(threads).max(1)).collect();
    let parts = run_each(chunks, |part| -> Result<Vec<u32>> {
        let mut wrong = Vec::new();
        for &n in part {
            if !f(n)? {
                wrong.push(n);
            }
        }
        Ok(wrong)
    });
    let wrong = parts.into_iter().collect::<Result<Vec<_>>>()?.concat();
    Ok((items.len() - wrong.len(), wrong))
}

/// Whether step `step` of `steps` prints progress: every `every`-th step and
/// the last (never if `every` is 0).
fn progress_due(every: u64, step: u64, steps: u64) -> bool {
    every > 0 && (step.is_multiple_of(every) || step == steps)
}

/// The index of the first largest value (0 for an empty slice).
fn argmax<T: PartialOrd>(values: &[T]) -> usize {
    (0..values.len()).fold(0, |b, i| if values[i] > values[b] { i } else { b })
}
