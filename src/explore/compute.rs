//! What the explorer's endpoints compute, as plain functions of the state
//! and a request (the benchmarks and tests call them without a server).
//! Every number comes from the concept crates' own code.

use std::path::{Path, PathBuf};
use std::time::Instant;

use addmul_core::{Matrix, ParametersExt};
use addmul_gpt::{Gpt, Sampler, SamplingConfig, distribution};
use addmul_leafflower::{ClassifierConfig, HIDDEN_WEIGHTS, OUTPUT_WEIGHTS, train_classifier};
use addmul_nn::Linear;
use addmul_tokenizer::{BpeTrainer, CharTokenizer, Pattern, Tokenizer, UnigramTrainer, UnknownChars};

use super::api::*;
use super::{ApiError, Explorer, MAX_TEXT_BYTES};
use crate::text::TextTokenizer;
use crate::{Error, Result};

type Answer<T> = std::result::Result<T, ApiError>;

// --- models ---------------------------------------------------------------------

/// A GPT and its tokenizer, loaded from a folder.
#[derive(Debug)]
pub struct LoadedModel {
    path: PathBuf,
    /// The model.
    pub model: Gpt<f32>,
    /// Its tokenizer.
    pub tokenizer: TextTokenizer,
}

impl LoadedModel {
    /// Loads a run, a checkpoint or a Hugging Face GPT-2 folder (as
    /// `addmul sample` does).
    ///
    /// # Errors
    /// As [`crate::app::load`].
    pub fn load(path: &Path) -> Result<Self> {
        let (model, tokenizer) = crate::app::load(path)?;
        Ok(LoadedModel { path: path.to_path_buf(), model, tokenizer })
    }

    /// A model already in memory (`path` names it on the pages).
    pub fn new(path: impl Into<PathBuf>, model: Gpt<f32>, tokenizer: TextTokenizer) -> Self {
        LoadedModel { path: path.into(), model, tokenizer }
    }

    /// What the status shows.
    pub fn info(&self) -> ModelInfo {
        let c = self.model.config();
        // Shown relative to the folder the explorer runs in, when inside it.
        let cwd = std::env::current_dir().ok().and_then(|d| d.canonicalize().ok());
        let shown = cwd.and_then(|d| self.path.strip_prefix(d).ok().map(Path::to_path_buf));
        ModelInfo {
            path: shown.unwrap_or_else(|| self.path.clone()).display().to_string(),
            parameters: self.model.num_params(),
            n_layer: c.n_layer,
            n_head: c.n_head,
            n_embd: c.n_embd,
            block_size: c.block_size,
            vocab_size: c.vocab_size,
            tokenizer: match self.tokenizer {
                TextTokenizer::Char(_) => "char".into(),
                TextTokenizer::Bpe(_) => "bpe".into(),
            },
        }
    }

    /// A token's text as the pages show it.
    pub fn piece(&self, id: u32) -> Piece {
        Piece { id, text: self.tokenizer.as_dyn().token_text(id).unwrap_or_else(|_| format!("<{id}>")) }
    }

    /// The prompt's ids: refused when empty, too long for the model's
    /// context (with `room` tokens still to come), or not encodable.
    ///
    /// # Errors
    /// A 400 that says which.
    pub fn prompt(&self, prompt: &str, room: usize) -> Answer<Vec<u32>> {
        if prompt.len() > MAX_TEXT_BYTES {
            return Err(ApiError::bad(format!("the prompt is longer than {MAX_TEXT_BYTES} bytes")));
        }
        let ids = self.tokenizer.encode_text(prompt)?;
        let block = self.model.config().block_size;
        if ids.is_empty() {
            return Err(ApiError::bad("the prompt is empty: type at least one character"));
        }
        if ids.len() + room > block {
            return Err(ApiError::bad(format!(
                "the prompt is {} tokens{}, longer than the model's context of {block}",
                ids.len(),
                if room > 0 { format!(" (+{room} to generate)") } else { String::new() },
            )));
        }
        Ok(ids)
    }
}

/// `POST /api/model`.
///
/// # Errors
/// A 403 for a folder outside the allowed ones, a 404 for one that does not
/// exist, a 400 for one that holds no model.
pub fn choose_model(state: &Explorer, request: ModelRequest) -> Answer<ModelInfo> {
    let path = state.allowed_path(&request.path)?;
    let loaded = LoadedModel::load(&path)?;
    let info = loaded.info();
    state.set_model(loaded);
    Ok(info)
}

// --- chapters 1-2: the leaf/flower network ---------------------------------------

/// The book's weights (chapter 1, no bias).
pub fn article_weights() -> NetworkWeights {
    NetworkWeights { hidden: HIDDEN_WEIGHTS, hidden_bias: [0.0; 3], output: OUTPUT_WEIGHTS }
}

fn sums(layer: &Linear<f64>, x: &[f64]) -> Result<Vec<NeuronSum>> {
    // The layer's own product for the sums; the products are shown beside.
    let out = layer.apply(&Matrix::from_column_slice(x.len(), 1, x))?;
    let w = layer.weight().value();
    Ok((0..w.nrows())
        .map(|i| NeuronSum {
            products: (0..w.ncols()).map(|j| w[(i, j)] * x[j]).collect(),
            bias: layer.bias().map_or(0.0, |b| b.value()[i]),
            sum: out[i],
        })
        .collect())
}

/// The article's network on one object, every product and sum.
///
/// # Errors
/// Non-finite numbers.
pub fn neuron(request: &NeuronRequest) -> Result<NeuronResponse> {
    let weights = request.weights.unwrap_or_else(article_weights);
    let all = request.inputs.iter().chain(weights.hidden.iter().flatten()).chain(&weights.hidden_bias);
    if all.chain(weights.output.iter().flatten()).any(|v| !v.is_finite()) {
        return Err(Error::Invalid { what: "the network's numbers".into(), problem: "must be finite".into() });
    }
    let hidden_layer =
        Linear::from_weights(Matrix::from_fn(3, 4, |i, j| weights.hidden[i][j]), Some(weights.hidden_bias.to_vec()))?;
    let output_layer = Linear::from_weights(Matrix::from_fn(2, 3, |i, j| weights.output[i][j]), None)?;
    let hidden = sums(&hidden_layer, &request.inputs)?;
    let h: Vec<f64> = hidden.iter().map(|n| n.sum).collect();
    let scores = sums(&output_layer, &h)?;
    let class = if scores[0].sum > scores[1].sum { "leaf" } else { "flower" };
    Ok(NeuronResponse { weights, hidden, scores, class: class.into() })
}

/// `POST /api/neuron`.
///
/// # Errors
/// As [`neuron`].
pub fn neuron_endpoint(_: &Explorer, request: NeuronRequest) -> Answer<NeuronResponse> {
    Ok(neuron(&request)?)
}

/// Trains a leaf/flower classifier as chapter 2 does.
///
/// # Errors
/// Settings out of range.
pub fn neuron_train(request: &NeuronTrainRequest) -> Answer<NeuronTrainResponse> {
    let epochs = request.epochs.unwrap_or(100);
    let hidden = request.hidden.unwrap_or(3);
    let lr = request.lr.unwrap_or(0.01);
    if !(1..=1000).contains(&epochs) {
        return Err(ApiError::bad(format!("epochs {epochs}: must be 1 to 1000")));
    }
    if !(1..=64).contains(&hidden) {
        return Err(ApiError::bad(format!("hidden {hidden}: must be 1 to 64 neurons")));
    }
    if !(lr > 0.0 && lr <= 1.0) {
        return Err(ApiError::bad(format!("lr {lr}: must be in (0, 1]")));
    }
    let config = ClassifierConfig {
        hidden: vec![hidden],
        epochs,
        lr,
        seed: request.seed.unwrap_or(ClassifierConfig::standard().seed),
        ..ClassifierConfig::standard()
    };
    let run = train_classifier(&config, &mut |_| {}).map_err(Error::from)?;
    let epochs = run
        .history
        .epochs
        .iter()
        .map(|e| EpochLoss { epoch: e.epoch, train: e.train_loss, val: e.val_loss.unwrap_or(f64::NAN) })
        .collect();
    let mean = |k: usize| run.train.iter().map(|e| e.features[k]).sum::<f64>() / run.train.len() as f64;
    let (red, blue) = (mean(0), mean(2));
    let xs: Vec<f64> = (0..32).map(|i| 255.0 * i as f64 / 31.0).collect();
    let ys: Vec<f64> = (0..32).map(|i| 2.0 + 78.0 * i as f64 / 31.0).collect();
    let flower = ys
        .iter()
        .map(|&v| xs.iter().map(|&g| run.classifier.probabilities([red, g, blue, v]).map(|p| p[1])).collect())
        .collect::<addmul_core::Result<Vec<Vec<f64>>>>()
        .map_err(Error::from)?;
    let points = run.val.iter().map(|e| [e.features[1], e.features[3], e.class.index() as f64]).collect();
    Ok(NeuronTrainResponse {
        epochs,
        best_epoch: run.history.best_epoch,
        train_accuracy: run.train_accuracy,
        val_accuracy: run.val_accuracy,
        decision: DecisionMap { xs, ys, flower },
        points,
    })
}

/// `POST /api/neuron/train`.
///
/// # Errors
/// As [`neuron_train`].
pub fn neuron_train_endpoint(_: &Explorer, request: NeuronTrainRequest) -> Answer<NeuronTrainResponse> {
    neuron_train(&request)
}

// --- chapters 3 and 6: tokens ------------------------------------------------------

/// The Tokens page's tokenizers: trained on this project's book (characters,
/// byte-level BPE with GPT-2's pre-splitting, SentencePiece-style unigram
/// subwords), chapter 6's BPE of the nursery rhymes, and GPT-2's own.
#[derive(Debug)]
pub struct CorpusTokenizers {
    chars: CharTokenizer,
    bpe: addmul_tokenizer::Bpe,
    unigram: addmul_tokenizer::Unigram,
    rhymes: addmul_tokenizer::Bpe,
    gpt2: addmul_tokenizer::Bpe,
}

/// The subword tokenizers' vocabulary size.
pub const CORPUS_VOCAB: usize = 1024;
/// Chapter 6's small BPE on the nursery rhymes: 50 merges, with which
/// " cats" is " cat" + "s".
pub const RHYMES_VOCAB: usize = 256 + 50;

impl CorpusTokenizers {
    /// Trains them on the book's text (a second or two, once).
    ///
    /// # Errors
    /// A trainer's error.
    pub fn train() -> Result<Self> {
        let text = crate::corpus::book_text();
        Ok(CorpusTokenizers {
            chars: CharTokenizer::from_text(text).unknown_chars(UnknownChars::Replace),
            bpe: BpeTrainer::new(CORPUS_VOCAB).pattern(Some(Pattern::Gpt2)).train(text)?,
            unigram: UnigramTrainer::new(CORPUS_VOCAB).train(text)?,
            rhymes: BpeTrainer::new(RHYMES_VOCAB).train(addmul_charlm::NURSERY_RHYMES)?,
            gpt2: crate::text::gpt2_bundled()?,
        })
    }
}

fn split(name: &str, about: String, tokenizer: &dyn Tokenizer, text: &str) -> Tokenization {
    let (pieces, error) = match tokenizer.encode(text) {
        Ok(ids) => (
            ids.iter()
                .map(|&id| Piece { id, text: tokenizer.token_text(id).unwrap_or_else(|_| format!("<{id}>")) })
                .collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    Tokenization { name: name.into(), about, vocab_size: tokenizer.vocab_size(), pieces, error }
}

/// A text split by every tokenizer: the book-trained three, and the model's
/// own (GPT-2's BPE when the model is GPT-2).
///
/// # Errors
/// A text over [`MAX_TEXT_BYTES`].
pub fn tokens(state: &Explorer, request: TokensRequest) -> Answer<TokensResponse> {
    let text = &request.text;
    if text.len() > MAX_TEXT_BYTES {
        return Err(ApiError::bad(format!("the text is longer than {MAX_TEXT_BYTES} bytes")));
    }
    let corpus = state.tokenizers()?;
    let mut tokenizers = vec![
        split(
            "characters",
            "one id per character of the book (chapter 3); others become �".into(),
            &corpus.chars,
            text,
        ),
        split(
            "BPE",
            format!("byte-level BPE with GPT-2's pre-splitting, {CORPUS_VOCAB} ids, trained on the book (chapter 6)"),
            &corpus.bpe,
            text,
        ),
        split(
            "BPE (rhymes)",
            format!("chapter 6's byte-level BPE: {} merges learned from the nursery rhymes", RHYMES_VOCAB - 256),
            &corpus.rhymes,
            text,
        ),
        split(
            "unigram",
            format!("SentencePiece-style unigram subwords, {CORPUS_VOCAB} ids, trained on the book (chapter 6)"),
            &corpus.unigram,
            text,
        ),
    ];
    tokenizers.push(split(
        "GPT-2",
        "GPT-2's byte-level BPE, 50,257 ids (chapters 6 and 16), from the vocabulary tiktoken-rs bundles".into(),
        &corpus.gpt2,
        text,
    ));
    if let Ok(model) = state.model() {
        tokenizers.push(split(
            "the model's",
            format!("the tokenizer of {}", model.info().path),
            model.tokenizer.as_dyn(),
            text,
        ));
    }
    Ok(TokensResponse { chars: text.chars().count(), tokenizers })
}

// --- chapter 5: embeddings ---------------------------------------------------------

/// The first two principal directions of `vectors` (all of one length):
/// each vector's coordinates along them, and the share of the variance each
/// explains. Power iteration on the covariance, from a fixed start, so the
/// picture is the same every time (up to the sign, which is fixed by making
/// each direction's largest entry positive).
pub fn principal_components(vectors: &[Vec<f64>]) -> (Vec<[f64; 2]>, [f64; 2]) {
    let n = vectors.len();
    let d = vectors.first().map_or(0, Vec::len);
    if n == 0 || d == 0 {
        return (vec![[0.0; 2]; n], [0.0; 2]);
    }
    let mean: Vec<f64> = (0..d).map(|j| vectors.iter().map(|v| v[j]).sum::<f64>() / n as f64).collect();
    let mut cov = vec![vec![0.0; d]; d];
    for v in vectors {
        for i in 0..d {
            let a = v[i] - mean[i];
            for j in 0..d {
                cov[i][j] += a * (v[j] - mean[j]);
            }
        }
    }
    cov.iter_mut().flatten().for_each(|c| *c /= n as f64);
    let trace: f64 = (0..d).map(|i| cov[i][i]).sum();
    let mut directions: Vec<Vec<f64>> = Vec::new();
    let mut explained = [0.0; 2];
    for k in 0..2.min(d) {
        let mut x: Vec<f64> = (0..d).map(|i| 1.0 + (i as f64 * 0.618).fract()).collect();
        let mut lambda = 0.0;
        for _ in 0..500 {
            // Deflate: keep x orthogonal to the directions found.
            for u in &directions {
                let dot: f64 = x.iter().zip(u).map(|(a, b)| a * b).sum();
                x.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
            }
            let y: Vec<f64> = cov.iter().map(|row| row.iter().zip(&x).map(|(a, b)| a * b).sum()).collect();
            let norm = y.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm == 0.0 {
                break;
            }
            lambda = norm / x.iter().map(|v| v * v).sum::<f64>().sqrt();
            x = y.into_iter().map(|v| v / norm).collect();
        }
        let largest = x.iter().copied().fold(0.0, |m: f64, v| if v.abs() > m.abs() { v } else { m });
        if largest < 0.0 {
            x.iter_mut().for_each(|v| *v = -*v);
        }
        explained[k] = if trace > 0.0 { lambda / trace } else { 0.0 };
        directions.push(x);
    }
    let coords = vectors
        .iter()
        .map(|v| {
            let mut c = [0.0; 2];
            for (k, u) in directions.iter().enumerate() {
                c[k] = v.iter().zip(&mean).zip(u).map(|((a, m), b)| (a - m) * b).sum();
            }
            c
        })
        .collect();
    (coords, explained)
}

/// The model's token embeddings in two dimensions, and a token's nearest
/// neighbours (chapter 5's cosine similarity).
///
/// # Errors
/// No model; a token that is not one token of the model's vocabulary.
pub fn embeddings(state: &Explorer, request: EmbeddingsRequest) -> Answer<EmbeddingsResponse> {
    let model = state.model()?;
    let k = request.k.unwrap_or(10);
    if !(1..=50).contains(&k) {
        return Err(ApiError::bad(format!("k {k}: must be 1 to 50")));
    }
    let wte = model.model.wte();
    let limit = request.limit.unwrap_or(2000).clamp(1, 2000).min(wte.vocab_size());
    let vectors: Vec<Vec<f64>> = (0..limit)
        .map(|id| wte.vector(id).map(|v| v.iter().map(|x| f64::from(*x)).collect()))
        .collect::<addmul_core::Result<_>>()
        .map_err(Error::from)?;
    let (coords, explained) = principal_components(&vectors);
    let points = coords
        .iter()
        .enumerate()
        .map(|(id, c)| EmbeddingPoint { id: id as u32, text: model.piece(id as u32).text, x: c[0], y: c[1] })
        .collect();
    let (token, neighbours) = match &request.token {
        None => (None, Vec::new()),
        Some(text) => {
            let ids = model.tokenizer.encode_text(text)?;
            let [id] = ids[..] else {
                return Err(ApiError::bad(format!(
                    "`{text}` is {} tokens for this model's tokenizer; choose one token",
                    ids.len()
                )));
            };
            let near = wte.nearest(id as usize, k).map_err(Error::from)?;
            let neighbours = near
                .into_iter()
                .map(|(n, similarity)| Neighbour { id: n as u32, text: model.piece(n as u32).text, similarity })
                .collect();
            (Some(model.piece(id)), neighbours)
        }
    };
    Ok(EmbeddingsResponse { points, explained, token, neighbours })
}

// --- chapters 7, 12, 13: attention ----------------------------------------------------

/// Every block's and head's attention weights for a prompt, and the learned
/// positions' similarities.
///
/// # Errors
/// No model; a prompt that is empty, too long or not encodable.
pub fn attention(state: &Explorer, request: AttentionRequest) -> Answer<AttentionResponse> {
    let model = state.model()?;
    let ids = model.prompt(&request.prompt, 0)?;
    let c = model.model.config();
    if let Some(layer) = request.layer.filter(|&l| l >= c.n_layer) {
        return Err(ApiError::bad(format!("layer {layer}: the model has blocks 0 to {}", c.n_layer - 1)));
    }
    let all = c.n_layer * c.n_head * ids.len() * ids.len() <= super::MAX_ATTENTION_NUMBERS;
    let (first_layer, count) = match request.layer {
        Some(layer) => (layer, 1),
        None if all => (0, c.n_layer),
        None => (0, 1),
    };
    let start = Instant::now();
    let maps = model.model.attention_maps(&ids).map_err(Error::from)?;
    let millis = start.elapsed().as_secs_f64() * 1e3;
    // Column j of a map holds query j's weights over the keys.
    let maps = maps[first_layer..first_layer + count]
        .iter()
        .map(|heads| {
            heads
                .iter()
                .map(|m| (0..m.ncols()).map(|q| (0..m.nrows()).map(|k| m[(k, q)]).collect()).collect())
                .collect()
        })
        .collect();
    let wpe = model.model.wpe().weight().value();
    let t = ids.len();
    let column = |j: usize| wpe.column(j).iter().copied().collect::<Vec<f32>>();
    let columns: Vec<Vec<f32>> = (0..t).map(column).collect();
    let positions = columns
        .iter()
        .map(|a| columns.iter().map(|b| addmul_embedding::cosine_similarity(a, b) as f32).collect())
        .collect();
    Ok(AttentionResponse {
        tokens: ids.iter().map(|&id| model.piece(id)).collect(),
        layers: c.n_layer,
        first_layer,
        maps,
        positions,
        millis,
    })
}

// --- chapters 3, 8, 14: the next token ------------------------------------------------

fn sampling(request: &NextRequest) -> Answer<SamplingConfig> {
    let config = SamplingConfig {
        temperature: request.temperature.unwrap_or(1.0),
        top_k: request.top_k,
        top_p: request.top_p,
        seed: 0,
    };
    config.validate().map_err(|e| ApiError::bad(e.to_string()))?;
    Ok(config)
}

/// The next token's probabilities for a prompt under the sampling settings.
///
/// # Errors
/// No model; a bad prompt or setting.
pub fn next(state: &Explorer, request: NextRequest) -> Answer<NextResponse> {
    let model = state.model()?;
    let config = sampling(&request)?;
    let show = request.show.unwrap_or(40);
    if !(1..=500).contains(&show) {
        return Err(ApiError::bad(format!("show {show}: must be 1 to 500")));
    }
    let ids = model.prompt(&request.prompt, 0)?;
    let start = Instant::now();
    let logits = model.model.logits(&ids, ids.len()).map_err(Error::from)?;
    let last: Vec<f32> = logits.column(ids.len() - 1).iter().copied().collect();
    let millis = start.elapsed().as_secs_f64() * 1e3;
    let plain = distribution(&last, &SamplingConfig::default()).map_err(Error::from)?;
    let kept = distribution(&last, &config).map_err(Error::from)?;
    let mut chosen = vec![0.0; last.len()];
    for &(id, p) in &kept {
        chosen[id as usize] = p;
    }
    let candidates = plain
        .iter()
        .take(show)
        .map(|&(id, p)| Candidate { id, text: model.piece(id).text, probability: chosen[id as usize], plain: p })
        .collect();
    Ok(NextResponse { prompt_tokens: ids.len(), candidates, kept: kept.len(), vocab_size: last.len(), millis })
}

/// Greedy generation with the key/value cache and without it, timed.
///
/// # Errors
/// No model; a bad prompt; more tokens than fit.
pub fn kv_cache(state: &Explorer, request: KvCacheRequest) -> Answer<KvCacheResponse> {
    let model = state.model()?;
    if !(1..=64).contains(&request.tokens) {
        return Err(ApiError::bad(format!("tokens {}: must be 1 to 64", request.tokens)));
    }
    let ids = model.prompt(&request.prompt, request.tokens)?;
    let greedy = SamplingConfig { temperature: 0.0, ..SamplingConfig::default() };
    let start = Instant::now();
    let mut sampler = Sampler::new(&model.model, &ids, greedy).map_err(Error::from)?;
    let mut cached = Vec::with_capacity(request.tokens);
    for _ in 0..request.tokens {
        cached.push(sampler.next_token().map_err(Error::from)?);
    }
    let cached_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let mut context = ids.clone();
    let mut uncached = Vec::with_capacity(request.tokens);
    for _ in 0..request.tokens {
        let logits = model.model.logits(&context, context.len()).map_err(Error::from)?;
        let last: Vec<f32> = logits.column(context.len() - 1).iter().copied().collect();
        let token = addmul_gpt::choose(&last, &greedy, &mut addmul_core::rng(0)).map_err(Error::from)?;
        uncached.push(token);
        context.push(token);
    }
    let uncached_ms = start.elapsed().as_secs_f64() * 1e3;
    let text =
        String::from_utf8_lossy(&model.tokenizer.as_dyn().decode_bytes(&cached).map_err(Error::from)?).into_owned();
    let n = request.tokens as f64;
    Ok(KvCacheResponse {
        text,
        cached_ms_per_token: cached_ms / n,
        uncached_ms_per_token: uncached_ms / n,
        same: cached == uncached,
    })
}

/// Samples a continuation of the prompt (the context slides past the
/// model's block size as `addmul sample` does).
///
/// # Errors
/// No model; a bad prompt or setting.
pub fn sample(state: &Explorer, request: SampleRequest) -> Answer<SampleResponse> {
    let model = state.model()?;
    if !(1..=1000).contains(&request.tokens) {
        return Err(ApiError::bad(format!("tokens {}: must be 1 to 1000", request.tokens)));
    }
    let ids = model.prompt(&request.prompt, 0)?;
    let config = SamplingConfig {
        temperature: request.temperature.unwrap_or(0.8),
        seed: request.seed.unwrap_or(0),
        ..SamplingConfig::default()
    };
    config.validate().map_err(|e| ApiError::bad(e.to_string()))?;
    let start = Instant::now();
    let mut sampler = Sampler::new(&model.model, &ids, config).map_err(Error::from)?;
    let mut out = Vec::with_capacity(request.tokens);
    for _ in 0..request.tokens {
        out.push(sampler.next_token().map_err(Error::from)?);
    }
    let seconds = start.elapsed().as_secs_f64();
    let bytes = model.tokenizer.as_dyn().decode_bytes(&out).map_err(Error::from)?;
    Ok(SampleResponse {
        text: String::from_utf8_lossy(&bytes).into_owned(),
        tokens_per_second: request.tokens as f64 / seconds.max(1e-9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_components_find_the_long_axis_first() {
        // Points along (1, 1, 0) with a little spread along (0, 0, 1), the
        // two uncorrelated.
        let vectors: Vec<Vec<f64>> =
            (0..20).map(|i| vec![(i / 2) as f64, (i / 2) as f64, if i % 2 == 0 { 0.5 } else { -0.5 }]).collect();
        let (coords, explained) = principal_components(&vectors);
        // Variances: 8.25 along each of x and y, 0.25 along z.
        assert!(
            (explained[0] - 16.5 / 16.75).abs() < 1e-9 && (explained[1] - 0.25 / 16.75).abs() < 1e-9,
            "{explained:?}"
        );
        // Along the first direction, consecutive points are sqrt(2) apart.
        assert!(((coords[2][0] - coords[0][0]).abs() - 2f64.sqrt()).abs() < 1e-9, "{coords:?}");
        assert!((coords[0][1].abs() - 0.5).abs() < 1e-9, "{coords:?}");
    }

    #[test]
    fn a_large_model_sends_one_blocks_attention_unless_asked_for_another() {
        let runs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp/explore-attention-limit");
        let state = Explorer::new(&runs, None).unwrap();
        let text = crate::corpus::book_text();
        let tokenizer = TextTokenizer::train(crate::text::TokenizerKind::Char, text, 0).unwrap();
        // 8 blocks of 8 heads over 150 tokens: 1.44 million weights.
        let config = addmul_gpt::GptConfig::new(tokenizer.as_dyn().vocab_size(), 160, 8, 8, 16);
        let model = Gpt::new(config, &mut addmul_core::rng(1)).unwrap();
        state.set_model(LoadedModel::new("wide", model, tokenizer));
        let prompt: String = text.chars().take(150).collect();
        const { assert!(8 * 8 * 150 * 150 > super::super::MAX_ATTENTION_NUMBERS) };
        let first = attention(&state, AttentionRequest { prompt: prompt.clone(), layer: None }).unwrap();
        assert_eq!((first.maps.len(), first.first_layer, first.layers), (1, 0, 8));
        let fifth = attention(&state, AttentionRequest { prompt: prompt.clone(), layer: Some(4) }).unwrap();
        assert_eq!((fifth.maps.len(), fifth.first_layer), (1, 4));
        assert_eq!(attention(&state, AttentionRequest { prompt, layer: Some(8) }).unwrap_err().code(), 400);
        // A short prompt fits: every block.
        let short = attention(&state, AttentionRequest { prompt: "the".into(), layer: None }).unwrap();
        assert_eq!(short.maps.len(), 8);
    }

    #[test]
    fn the_neuron_sums_are_the_products_and_the_bias() {
        let answer = neuron(&NeuronRequest { inputs: addmul_leafflower::ARTICLE_LEAF, weights: None }).unwrap();
        let expected =
            addmul_leafflower::ArticleNetwork::new([0.0; 3]).evaluate(addmul_leafflower::ARTICLE_LEAF).unwrap();
        for (n, h) in answer.hidden.iter().zip(expected.hidden) {
            assert!((n.products.iter().sum::<f64>() + n.bias - n.sum).abs() < 1e-12);
            assert_eq!(n.sum, h);
        }
        assert_eq!(answer.scores[0].sum, expected.scores[0]);
        assert_eq!(answer.class, expected.class.name());
        let bad = NeuronRequest { inputs: [f64::NAN, 0.0, 0.0, 0.0], weights: None };
        assert!(neuron(&bad).is_err());
    }
}
