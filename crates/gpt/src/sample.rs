//! Sampling text from a model, one token at a time, with a key/value cache.

use addmul_core::{Float, Rng, rng};
use rand::RngExt;

use crate::{DecodeState, Gpt, GptError, Result, TokenId};

/// How to choose each next token from the model's scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingConfig {
    /// Divides the scores before softmax: below 1 sharper, above 1 flatter,
    /// 0 always takes the most likely token (greedy).
    pub temperature: f64,
    /// Keep only the `k` most likely tokens.
    pub top_k: Option<usize>,
    /// Keep only the most likely tokens whose probabilities add up to `p`
    /// (nucleus sampling).
    pub top_p: Option<f64>,
    /// Seed of the sampling generator.
    pub seed: u64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig { temperature: 1.0, top_k: None, top_p: None, seed: 0 }
    }
}

impl SamplingConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`GptError::Config`] for a negative or non-finite temperature, `top_k`
    /// 0, or `top_p` outside `(0, 1]`.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(GptError::config("temperature", self.temperature, "must be >= 0 and finite"));
        }
        if self.top_k == Some(0) {
            return Err(GptError::config("top_k", 0, "must be at least 1"));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(GptError::config("top_p", p, "must be in (0, 1]"));
        }
        Ok(())
    }
}

// ANCHOR: choose
/// Chooses a token from `logits` as `config` says, drawing from `rng`.
///
/// # Errors
/// As [`SamplingConfig::validate`]; [`GptError::Config`] for empty or
/// non-finite logits.
pub fn choose<T: Float>(logits: &[T], config: &SamplingConfig, rng: &mut Rng) -> Result<TokenId> {
    check(logits, config)?;
    if config.temperature == 0.0 {
        return Ok(greedy(logits));
    }
    let probs = ranked(logits, config);
    let mut u: f64 = rng.random();
    for &(id, p) in &probs {
        u -= p;
        if u < 0.0 {
            return Ok(id);
        }
    }
    Ok(probs[probs.len() - 1].0)
}

/// The tokens [`choose`] draws from and their probabilities, most likely
/// first (ties by smaller id): softmax of `logits / temperature` over the
/// `top_k` most likely, cut to the smallest set whose probabilities reach
/// `top_p`, renormalised. Temperature 0 (greedy) is the most likely token
/// with probability 1.
///
/// # Errors
/// As [`choose`].
pub fn distribution<T: Float>(logits: &[T], config: &SamplingConfig) -> Result<Vec<(TokenId, f64)>> {
    check(logits, config)?;
    Ok(if config.temperature == 0.0 { vec![(greedy(logits), 1.0)] } else { ranked(logits, config) })
}

fn check<T: Float>(logits: &[T], config: &SamplingConfig) -> Result<()> {
    config.validate()?;
    if logits.is_empty() || logits.iter().any(|l| !l.finite()) {
        return Err(GptError::config("logits", "non-finite or empty", "the model produced unusable scores"));
    }
    Ok(())
}

/// The most likely token, the smallest id among equals.
fn greedy<T: Float>(logits: &[T]) -> TokenId {
    (1..logits.len()).fold(0, |best, i| if logits[i] > logits[best] { i } else { best }) as TokenId
}

/// [`distribution`] at a positive temperature, for checked logits.
fn ranked<T: Float>(logits: &[T], config: &SamplingConfig) -> Vec<(TokenId, f64)> {
    // Most likely first; ties by smaller id, so that choices are reproducible.
    let first =
        |&a: &usize, &b: &usize| logits[b].partial_cmp(&logits[a]).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b));
    let mut order: Vec<usize> = (0..logits.len()).collect();
    if let Some(k) = config.top_k
        && k < order.len()
    {
        // Only the top k need an order (GPT-2's vocabulary is 50,257 long).
        order.select_nth_unstable_by(k - 1, first);
        order.truncate(k);
    }
    order.sort_by(first);
    let max = logits[order[0]].as_f64();
    let mut probs: Vec<f64> = order.iter().map(|&i| ((logits[i].as_f64() - max) / config.temperature).exp()).collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if let Some(top_p) = config.top_p {
        let mut cumulative = 0.0;
        let keep = probs.iter().take_while(|&&p| {
            let before = cumulative;
            cumulative += p;
            before < top_p
        });
        let n = keep.count().max(1);
        probs.truncate(n);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    order.into_iter().zip(probs).map(|(i, p)| (i as TokenId, p)).collect()
}
// ANCHOR_END: choose

/// Generates tokens one at a time after a prompt, feeding each new token
/// through the key/value caches so that it costs one position.
///
/// When the context reaches `block_size`, the model cannot see further back
/// (its positions are learned up to `block_size`): the sampler starts again
/// from the last `block_size / 2` tokens, re-reading them in one pass, and
/// continues with the cache. Within the first `block_size` tokens, cached and
/// uncached generation are the same computation.
#[derive(Debug)]
pub struct Sampler<'a, T: Float> {
    model: &'a Gpt<T>,
    state: DecodeState<T>,
    config: SamplingConfig,
    rng: Rng,
    context: Vec<TokenId>,
    logits: Vec<T>,
}

impl<'a, T: Float> Sampler<'a, T> {
    /// Reads the prompt (only its last `block_size` tokens, if longer).
    ///
    /// # Errors
    /// [`GptError::Config`] for an empty prompt or bad settings;
    /// [`GptError::TokenOutOfRange`] for an unknown id.
    pub fn new(model: &'a Gpt<T>, prompt: &[TokenId], config: SamplingConfig) -> Result<Self> {
        config.validate()?;
        if prompt.is_empty() {
            return Err(GptError::config("prompt", "empty", "needs at least one token"));
        }
        let block = model.config().block_size;
        let context = prompt[prompt.len().saturating_sub(block)..].to_vec();
        let mut state = model.decode_state();
        let logits = model.decode(&mut state, &context)?;
        Ok(Sampler { model, state, config, rng: rng(config.seed), context, logits })
    }

    /// The scores for the next token.
    pub fn logits(&self) -> &[T] {
        &self.logits
    }

    /// Chooses the next token and feeds it to the model.
    ///
    /// # Errors
    /// As [`choose`] and [`Gpt::decode`].
    pub fn next_token(&mut self) -> Result<TokenId> {
        let token = choose(&self.logits, &self.config, &mut self.rng)?;
        self.push(token)?;
        Ok(token)
    }

    /// Feeds a token of the caller's choice (e.g. forced text).
    ///
    /// # Errors
    /// As [`Gpt::decode`].
    pub fn push(&mut self, token: TokenId) -> Result<()> {
        // On the thread pool, where each large product of one token's
        // decoding shares the cores' memory bandwidth cheaply; a model without
        // such products stays on this thread (going to the pool costs a
        // hand-over per token).
        let c = self.model.config();
        let largest = (4 * c.n_embd * c.n_embd).max(c.vocab_size * c.n_embd);
        if largest >= addmul_core::parallel::PARALLEL_GEMV_ENTRIES {
            addmul_core::parallel::on_pool(|| self.push_here(token))
        } else {
            self.push_here(token)
        }
    }

    fn push_here(&mut self, token: TokenId) -> Result<()> {
        let block = self.model.config().block_size;
        self.context.push(token);
        if self.state.len() < block {
            self.logits = self.model.decode(&mut self.state, &[token])?;
        } else {
            let keep = (block / 2).max(1);
            let start = self.context.len() - keep;
            self.context.drain(..start);
            self.state.clear();
            self.logits = self.model.decode(&mut self.state, &self.context)?;
        }
        Ok(())
    }
}
