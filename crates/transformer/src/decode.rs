//! Turning a trained model into translations: greedy decoding and beam
//! search, both stopping at the end token.

use std::cmp::Ordering;

use addmul_core::Float;

use crate::{DecoderState, Encoded, Result, Specials, TokenId, Transformer, TransformerError};

/// Settings of [`Transformer::beam_search`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeamConfig {
    /// Hypotheses kept at every step, `k`.
    pub width: usize,
    /// `α` of the length penalty `((5 + length) / 6)^α` that finished
    /// hypotheses' log-probabilities are divided by; 0 compares plain
    /// log-probabilities (which favours short outputs).
    pub length_penalty: f64,
}

impl BeamConfig {
    /// The paper's setting: width 4, `α = 0.6`.
    pub const PAPER: BeamConfig = BeamConfig { width: 4, length_penalty: 0.6 };

    /// Checks the settings.
    ///
    /// # Errors
    /// [`TransformerError::Config`] for a width of 0 or a negative or
    /// non-finite `α`.
    pub fn validate(&self) -> Result<()> {
        if self.width == 0 {
            return Err(TransformerError::config("beam width", 0, "must be at least 1"));
        }
        if !(self.length_penalty >= 0.0 && self.length_penalty.is_finite()) {
            return Err(TransformerError::config("length penalty", self.length_penalty, "must be >= 0 and finite"));
        }
        Ok(())
    }
}

impl Default for BeamConfig {
    fn default() -> Self {
        BeamConfig::PAPER
    }
}

/// A decoded target sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// The tokens, without the start and end tokens.
    pub tokens: Vec<TokenId>,
    /// `log p(tokens, end | source)`: the sum of every chosen token's
    /// log-probability (the end token's included when `finished`).
    pub log_prob: f64,
    /// What beam search ranks by: `log_prob / ((5 + length) / 6)^α`, the
    /// length counting the end token (greedy decoding has no `α`: its score
    /// is `log_prob`).
    pub score: f64,
    /// `false` if the decoder reached `max_len` before choosing the end token.
    pub finished: bool,
}

// ANCHOR: length_penalty
/// The length penalty of Wu et al. (2016), which the paper's beam search
/// uses: `((5 + length) / 6)^α`. A log-probability only falls as tokens are
/// added, so dividing it by a factor that grows with the length keeps beam
/// search from preferring translations that stop too early.
pub fn length_penalty(length: usize, alpha: f64) -> f64 {
    ((5 + length) as f64 / 6.0).powf(alpha)
}
// ANCHOR_END: length_penalty

/// `log softmax(logits)` in f64, with the padding and start tokens ruled out
/// (`-inf`): the model was never trained to output them, but an untrained or
/// confused one may score them highly. (The others keep the model's own
/// log-probabilities: nothing is renormalised.)
fn log_probs<T: Float>(logits: &[T], specials: Specials) -> Vec<f64> {
    let max = logits.iter().map(|l| l.as_f64()).fold(f64::NEG_INFINITY, f64::max);
    let lse = max + logits.iter().map(|l| (l.as_f64() - max).exp()).sum::<f64>().ln();
    let mut out: Vec<f64> = logits.iter().map(|l| l.as_f64() - lse).collect();
    for id in [specials.pad, specials.start] {
        out[id as usize] = f64::NEG_INFINITY;
    }
    out
}

/// The `k` most likely ids that are allowed at all, most likely first, ties
/// by smaller id.
fn top_k(log_probs: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..log_probs.len()).filter(|&i| log_probs[i] > f64::NEG_INFINITY).collect();
    order.sort_by(|&a, &b| log_probs[b].total_cmp(&log_probs[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// A hypothesis still being extended.
struct Live<T: Float> {
    tokens: Vec<TokenId>,
    log_prob: f64,
    state: DecoderState<T>,
    /// Log-probabilities of the next token.
    next: Vec<f64>,
}

impl<T: Float> Transformer<T> {
    fn start(&self, encoded: &Encoded<T>) -> Result<Live<T>> {
        let mut state = self.decoder_state();
        let logits = self.decode_step(encoded, &mut state, self.config().specials.start)?;
        Ok(Live { tokens: Vec::new(), log_prob: 0.0, state, next: log_probs(&logits, self.config().specials) })
    }

    // ANCHOR: greedy
    /// Greedy decoding: at every step, feed the most likely token (ties by
    /// smaller id; never padding or the start token) until the end token or
    /// `max_len`. The hypothesis's score is its log-probability.
    ///
    /// # Errors
    /// As [`Transformer::encode`].
    pub fn greedy(&self, source: &[TokenId]) -> Result<Hypothesis> {
        let encoded = self.encode(source)?;
        let Live { mut tokens, mut log_prob, mut state, mut next } = self.start(&encoded)?;
        let end = self.config().specials.end;
        loop {
            let best = top_k(&next, 1)[0];
            log_prob += next[best];
            if best as TokenId == end {
                return Ok(Hypothesis { tokens, log_prob, score: log_prob, finished: true });
            }
            tokens.push(best as TokenId);
            if state.len() == self.config().max_len {
                return Ok(Hypothesis { tokens, log_prob, score: log_prob, finished: false });
            }
            next = log_probs(&self.decode_step(&encoded, &mut state, best as TokenId)?, self.config().specials);
        }
    }
    // ANCHOR_END: greedy

    // ANCHOR: beam_search
    /// Beam search: keep the `width` most likely partial translations. At
    /// every step, extend each by its most likely next tokens and keep the
    /// `width` best extensions of all; those that chose the end token are
    /// finished, the others go on. Return the finished hypothesis with the
    /// best length-penalised score.
    ///
    /// A log-probability only falls as tokens are added, so a live
    /// hypothesis with log-probability `L` can at best score
    /// `L / penalty(max_len)`; hypotheses that cannot beat the best finished
    /// one are dropped, which ends the search without changing its result.
    /// Every hypothesis carries its own key/value caches, so each step costs
    /// one position per hypothesis; the source is encoded once. With width 1
    /// this is exactly [`Transformer::greedy`].
    ///
    /// # Errors
    /// As [`Transformer::encode`], and [`TransformerError::Config`] for bad
    /// settings.
    pub fn beam_search(&self, source: &[TokenId], config: &BeamConfig) -> Result<Hypothesis> {
        let finished = self.beam_candidates(source, config)?;
        // The best finished hypothesis; the first found wins a tie.
        let best = finished
            .into_iter()
            .reduce(|best, h| if h.score.total_cmp(&best.score) == Ordering::Greater { h } else { best });
        Ok(best.expect("every hypothesis ends finished or cut off"))
    }

    /// Every hypothesis [`Transformer::beam_search`] finished (or cut off at
    /// the maximum length), in the order they finished; the search returns
    /// the one with the best score.
    ///
    /// # Errors
    /// As [`Transformer::beam_search`].
    pub fn beam_candidates(&self, source: &[TokenId], config: &BeamConfig) -> Result<Vec<Hypothesis>> {
        config.validate()?;
        let (width, alpha) = (config.width, config.length_penalty);
        let (end, max_len) = (self.config().specials.end, self.config().max_len);
        let encoded = self.encode(source)?;
        let mut live = vec![self.start(&encoded)?];
        let mut finished: Vec<Hypothesis> = Vec::new();
        while !live.is_empty() {
            // The `width` best one-token extensions of all live hypotheses.
            let mut candidates = Vec::new();
            for (b, hyp) in live.iter().enumerate() {
                for token in top_k(&hyp.next, width) {
                    candidates.push((hyp.log_prob + hyp.next[token], b, token as TokenId));
                }
            }
            candidates.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
            candidates.truncate(width);
            let mut extend = Vec::with_capacity(width);
            for (log_prob, b, token) in candidates {
                let parent = &live[b];
                if token == end {
                    let score = log_prob / length_penalty(parent.tokens.len() + 1, alpha);
                    finished.push(Hypothesis { tokens: parent.tokens.clone(), log_prob, score, finished: true });
                    continue;
                }
                let mut tokens = parent.tokens.clone();
                tokens.push(token);
                if parent.state.len() == max_len {
                    // No room for another decoder input: cut off here.
                    let score = log_prob / length_penalty(tokens.len(), alpha);
                    finished.push(Hypothesis { tokens, log_prob, score, finished: false });
                    continue;
                }
                extend.push((b, tokens, log_prob));
            }
            let best = finished.iter().map(|h| h.score).fold(f64::NEG_INFINITY, f64::max);
            extend.retain(|&(_, _, log_prob)| log_prob / length_penalty(max_len, alpha) > best);
            let mut next_live = Vec::with_capacity(extend.len());
            for (b, tokens, log_prob) in extend {
                let mut state = live[b].state.clone();
                let token = *tokens.last().expect("an extension adds a token");
                let logits = self.decode_step(&encoded, &mut state, token)?;
                next_live.push(Live { tokens, log_prob, state, next: log_probs(&logits, self.config().specials) });
            }
            live = next_live;
        }
        Ok(finished)
    }
    // ANCHOR_END: beam_search
}
