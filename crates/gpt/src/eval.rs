//! Perplexity over a text longer than the model's context, by the
//! sliding-window recipe of the `transformers` documentation ("Perplexity of
//! fixed-length models").

use addmul_core::Float;

use crate::{Gpt, GptError, Result, TokenId};

/// What [`perplexity`] measured.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Perplexity {
    /// `exp(nll)`.
    pub perplexity: f64,
    /// The mean negative log-likelihood per token, in nats.
    pub nll: f64,
    /// The tokens the mean is over (as the recipe counts them).
    pub tokens: usize,
    /// Windows evaluated.
    pub windows: usize,
}

// ANCHOR: perplexity
/// The perplexity of `model` on `ids`, by `transformers`' documented recipe:
/// windows of up to `block_size` tokens start every `stride` tokens; each
/// window scores only the tokens the previous windows did not (its last
/// `end - previous end`), each predicted from everything before it in the
/// window; the score is `exp` of the weighted mean of the windows' mean
/// negative log-likelihoods.
///
/// Like the recipe, each window's mean is weighted by its count of scored
/// tokens minus one ("subtract batch_size due to internal label shift"),
/// which is exact for the first window (its first token has nothing before
/// it) but one short for the later ones, whose tokens are all predicted; so
/// that the figure equals what `transformers` users compute, addmul follows
/// it. With `stride = block_size` (no overlap) the two readings agree.
/// A window that scores no token (a last window of one token, where the
/// recipe gives NaN) is skipped.
///
/// # Errors
/// [`GptError::Config`] for a stride outside `1..=block_size` or fewer than
/// two tokens; [`GptError::TokenOutOfRange`] for an unknown id.
pub fn perplexity<T: Float>(model: &Gpt<T>, ids: &[TokenId], stride: usize) -> Result<Perplexity> {
    let max_len = model.config().block_size;
    if stride == 0 || stride > max_len {
        return Err(GptError::config("stride", stride, format!("must be in 1..={max_len} (n_positions)")));
    }
    if ids.len() < 2 {
        return Err(GptError::config("text", format!("{} tokens", ids.len()), "needs at least 2 tokens"));
    }
    let (mut nll_sum, mut tokens, mut windows, mut prev_end) = (0.0, 0usize, 0usize, 0usize);
    for begin in (0..ids.len()).step_by(stride) {
        let end = (begin + max_len).min(ids.len());
        let window = &ids[begin..end];
        let scored = end - prev_end;
        // Token p of the window is predicted by the logits of position p - 1.
        let first = (window.len() - scored).max(1);
        if first < window.len() {
            // One sequence at a time: its products are shared among the cores.
            let logits = addmul_core::parallel::share_products(|| model.logits(window, window.len()))?;
            let nll: f64 = (first..window.len())
                .map(|p| {
                    let column = logits.column(p - 1);
                    let max = column.iter().map(|v| v.as_f64()).fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = column.iter().map(|v| (v.as_f64() - max).exp()).sum();
                    max + sum.ln() - column[window[p] as usize].as_f64()
                })
                .sum();
            let mean = nll / (window.len() - first) as f64;
            let weight = scored - 1;
            nll_sum += mean * weight as f64;
            tokens += weight;
            windows += 1;
        }
        prev_end = end;
        if end == ids.len() {
            break;
        }
    }
    let nll = nll_sum / tokens as f64;
    Ok(Perplexity { perplexity: nll.exp(), nll, tokens, windows })
}
// ANCHOR_END: perplexity

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Batch, GptConfig};

    #[test]
    fn without_overlap_it_is_the_mean_loss_of_the_windows() {
        let model = Gpt::<f64>::new(GptConfig::new(11, 4, 1, 1, 4), &mut addmul_core::rng(3)).unwrap();
        let ids: Vec<u32> = (0..8).map(|i| (i * 7 % 11) as u32).collect();
        let p = perplexity(&model, &ids, 4).unwrap();
        // Two windows of 4 tokens, 3 predictions each.
        let loss =
            |w: &[u32]| model.loss(&Batch { inputs: &w[..3], targets: &w[1..], seq_len: 3, ignore: None }).unwrap();
        let want = (loss(&ids[..4]) + loss(&ids[4..])) / 2.0;
        assert!((p.nll - want).abs() < 1e-12, "{} vs {want}", p.nll);
        assert_eq!((p.tokens, p.windows), (6, 2));
        assert!(perplexity(&model, &ids, 5).is_err() && perplexity(&model, &ids, 0).is_err());
        assert!(perplexity(&model, &ids[..1], 2).is_err());
    }
}
