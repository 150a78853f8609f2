//! The cross-attention of the number translator: which English token each
//! German piece took most from, and the figure of it.

use addmul_plot::Heatmap;
use addmul_transformer::tasks::numbers;
use addmul_transformer::{Transformer, TransformerError};
use serde::Serialize;

use super::argmax;
use crate::Result;

/// The cross-attention weights of one translation: `weights[t][s]` is how
/// much the decoder position that wrote `target[t]` took from `source[s]`,
/// averaged over one layer's heads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttentionMap {
    /// The number translated.
    pub number: u32,
    /// The decoder layer (0-based).
    pub layer: usize,
    /// English tokens.
    pub source: Vec<String>,
    /// German pieces written, then `</s>`.
    pub target: Vec<String>,
    /// `[target][source]`, each row summing to 1 (to four decimals).
    pub weights: Vec<Vec<f64>>,
}

impl AttentionMap {
    /// The figure: one row per German piece, one column per English token.
    pub fn heatmap(&self, title: impl Into<String>) -> Heatmap {
        Heatmap::new(title, self.weights.clone())
            .labels(self.target.clone(), self.source.clone())
            .axes("English (source)", "German (written)")
            .range(0.0, 1.0)
            .annotate()
    }

    /// The source token each target token takes most from.
    pub fn alignment(&self) -> Vec<(String, String)> {
        self.weights.iter().zip(&self.target).map(|(row, t)| (t.clone(), self.source[argmax(row)].clone())).collect()
    }
}

/// The cross-attention of `model` translating `number` greedily, averaged
/// over the heads of decoder layer `layer`.
///
/// # Errors
/// A model error (e.g. `layer` out of range is [`addmul_core::Error::OutOfRange`]).
pub fn attention_map(model: &Transformer<f32>, number: u32, layer: usize) -> Result<AttentionMap> {
    let (en, de) = (numbers::english_vocabulary()?, numbers::german_vocabulary()?);
    model.check_vocabularies(&en, &de)?;
    let source = en.encode(&numbers::english_tokens(number)?)?;
    let mut output = model.greedy(&source)?.tokens;
    // The teacher-forced pass reads the start token and the output: a
    // decoding that never ended (it filled the context) loses its last
    // token, which the last column then predicts instead of the end.
    let room = model.config().max_len - 1;
    let last = match output.get(room) {
        Some(&next) => de.tokens(&[next])[0].to_string(),
        None => "</s>".to_string(),
    };
    output.truncate(room);
    let maps = model.cross_attention(&source, &output)?;
    let Some(heads) = maps.get(layer) else {
        let err = addmul_core::Error::OutOfRange { what: "decoder layer", index: layer, len: maps.len() };
        return Err(TransformerError::from(err).into());
    };
    let (s, t) = (source.len(), output.len() + 1);
    let weights = (0..t)
        .map(|j| {
            (0..s)
                .map(|i| {
                    let mean = heads.iter().map(|w| f64::from(w[(i, j)])).sum::<f64>() / heads.len() as f64;
                    (mean * 1e4).round() / 1e4 // four decimals are plenty for a figure
                })
                .collect()
        })
        .collect();
    let mut target: Vec<String> = de.tokens(&output).iter().map(|t| t.to_string()).collect();
    target.push(last);
    Ok(AttentionMap {
        number,
        layer,
        source: en.tokens(&source).iter().map(|t| t.to_string()).collect(),
        target,
        weights,
    })
}
