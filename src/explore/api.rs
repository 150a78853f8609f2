//! The explorer's JSON API: one Rust type per request and per response.
//!
//! Every endpoint takes a JSON body (`POST`) or nothing (`GET`) and answers
//! JSON; an error is `{"error": "..."}` with a 4xx status (5xx only for a
//! fault of ours). Requests refuse unknown fields, so that a misspelt
//! setting is named instead of ignored.
//!
//! | endpoint | request | response |
//! |---|---|---|
//! | `GET /api/status` | | [`Status`] |
//! | `POST /api/model` | [`ModelRequest`] | [`ModelInfo`] |
//! | `POST /api/neuron` | [`NeuronRequest`] | [`NeuronResponse`] |
//! | `POST /api/neuron/train` | [`NeuronTrainRequest`] | [`NeuronTrainResponse`] |
//! | `POST /api/tokens` | [`TokensRequest`] | [`TokensResponse`] |
//! | `POST /api/embeddings` | [`EmbeddingsRequest`] | [`EmbeddingsResponse`] |
//! | `POST /api/attention` | [`AttentionRequest`] | [`AttentionResponse`] |
//! | `POST /api/next` | [`NextRequest`] | [`NextResponse`] |
//! | `POST /api/kv-cache` | [`KvCacheRequest`] | [`KvCacheResponse`] |
//! | `POST /api/sample` | [`SampleRequest`] | [`SampleResponse`] |
//! | `POST /api/train` | [`TrainRequest`] | [`TrainStatus`] |
//! | `POST /api/train/stop` | | [`TrainStatus`] |
//! | `POST /api/translate/train` | [`TranslatorTrainRequest`] | [`TranslatorStatus`] |
//! | `GET /api/translate/status` | | [`TranslatorStatus`] |
//! | `POST /api/translate` | [`TranslateRequest`] | [`TranslateResponse`] |
//! | `GET /api/train/events` | | server-sent events: `step` ([`StepEvent`]), `eval` ([`EvalEvent`]), `status` ([`TrainStatus`]) |

use serde::{Deserialize, Serialize};

/// Every error: what went wrong, in a sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The message.
    pub error: String,
}

/// `GET /api/status`: the model in use, the models that may be chosen and
/// the training job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The model the model pages use, if any.
    pub model: Option<ModelInfo>,
    /// Folders that `POST /api/model` accepts: the runs under the runs
    /// folder, and the model given with `--model`.
    pub models: Vec<String>,
    /// The training job, running or last finished.
    pub training: Option<TrainStatus>,
}

/// `POST /api/model`: use the model in this folder (one of
/// [`Status::models`], or a folder inside one of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRequest {
    /// A run folder, a checkpoint folder or a Hugging Face GPT-2 folder.
    pub path: String,
}

/// A loaded model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Where it was loaded from.
    pub path: String,
    /// Parameters.
    pub parameters: usize,
    /// Blocks.
    pub n_layer: usize,
    /// Heads per block.
    pub n_head: usize,
    /// Width of every token's vector.
    pub n_embd: usize,
    /// The context length.
    pub block_size: usize,
    /// Token ids.
    pub vocab_size: usize,
    /// `char` or `bpe`.
    pub tokenizer: String,
}

/// `POST /api/neuron`: the article's leaf/flower network on one object,
/// with any weight changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeuronRequest {
    /// `(R, G, B, volume)`.
    pub inputs: [f64; 4],
    /// The network's weights (default: the book's, chapter 1).
    #[serde(default)]
    pub weights: Option<NetworkWeights>,
}

/// The article network's numbers: 4 inputs, 3 hidden neurons (with biases),
/// 2 outputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkWeights {
    /// `hidden[i][j]`: hidden neuron `i`'s weight on input `j`.
    pub hidden: [[f64; 4]; 3],
    /// The hidden neurons' biases.
    pub hidden_bias: [f64; 3],
    /// `output[k][i]`: score `k`'s weight on hidden neuron `i`.
    pub output: [[f64; 3]; 2],
}

/// One neuron's sum: every product, the bias, and the total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeuronSum {
    /// `weight × input`, input by input.
    pub products: Vec<f64>,
    /// The bias added (0 without one).
    pub bias: f64,
    /// The neuron's value: the products and the bias added up.
    pub sum: f64,
}

/// `POST /api/neuron`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeuronResponse {
    /// The weights used.
    pub weights: NetworkWeights,
    /// The three hidden neurons.
    pub hidden: Vec<NeuronSum>,
    /// The two scores: leaf, flower.
    pub scores: Vec<NeuronSum>,
    /// `leaf` or `flower`: the larger score.
    pub class: String,
}

/// `POST /api/neuron/train`: train a leaf/flower classifier on generated
/// data (chapter 2's recipe: AdamW, mini-batches, early stopping).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeuronTrainRequest {
    /// Seed for the data and the initial weights.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Epochs at most (1 to 1000; default 100).
    #[serde(default)]
    pub epochs: Option<usize>,
    /// Hidden neurons (1 to 64; default 3, the article's).
    #[serde(default)]
    pub hidden: Option<usize>,
    /// AdamW's learning rate (default 0.01).
    #[serde(default)]
    pub lr: Option<f64>,
}

/// One epoch's losses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLoss {
    /// 1-based.
    pub epoch: usize,
    /// Mean cross-entropy on the training set.
    pub train: f64,
    /// Mean cross-entropy on the validation set.
    pub val: f64,
}

/// `POST /api/neuron/train`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeuronTrainResponse {
    /// Losses, epoch by epoch.
    pub epochs: Vec<EpochLoss>,
    /// The epoch whose weights were kept.
    pub best_epoch: Option<usize>,
    /// Accuracy on the training set.
    pub train_accuracy: f64,
    /// Accuracy on the validation set.
    pub val_accuracy: f64,
    /// The decision over green (x) and volume (y), red and blue held at the
    /// data's means.
    pub decision: DecisionMap,
    /// The validation objects: `[G, volume, 0 leaf / 1 flower]`.
    pub points: Vec<[f64; 3]>,
}

/// P(flower) on a grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionMap {
    /// Green values, left to right.
    pub xs: Vec<f64>,
    /// Volumes, bottom to top.
    pub ys: Vec<f64>,
    /// `flower[row][col]`: P(flower) at `(xs[col], ys[row])`.
    pub flower: Vec<Vec<f64>>,
}

/// `POST /api/tokens`: a text to split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensRequest {
    /// The text (at most [`crate::explore::MAX_TEXT_BYTES`] bytes).
    pub text: String,
}

/// One token of a text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Piece {
    /// Its id.
    pub id: u32,
    /// What it stands for (bytes that are not whole characters are shown as
    /// `\xNN`).
    pub text: String,
}

/// A text as one tokenizer splits it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tokenization {
    /// The tokenizer's name.
    pub name: String,
    /// What it is and what it was trained on.
    pub about: String,
    /// Its vocabulary size.
    pub vocab_size: usize,
    /// The tokens (empty if it cannot encode the text).
    pub pieces: Vec<Piece>,
    /// Why it could not encode the text, if it could not.
    pub error: Option<String>,
}

/// `POST /api/tokens`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokensResponse {
    /// Characters in the text.
    pub chars: usize,
    /// One entry per tokenizer.
    pub tokenizers: Vec<Tokenization>,
}

/// `POST /api/embeddings`: the model's token embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsRequest {
    /// A token (its text) whose nearest neighbours to list.
    #[serde(default)]
    pub token: Option<String>,
    /// How many neighbours (1 to 50; default 10).
    #[serde(default)]
    pub k: Option<usize>,
    /// At most this many tokens in the picture (the first ids; default and
    /// at most 2000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A token in the embeddings' 2-D picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingPoint {
    /// The token.
    pub id: u32,
    /// Its text.
    pub text: String,
    /// Along the first principal component.
    pub x: f64,
    /// Along the second.
    pub y: f64,
}

/// A nearest neighbour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    /// The token.
    pub id: u32,
    /// Its text.
    pub text: String,
    /// Cosine similarity to the chosen token.
    pub similarity: f64,
}

/// `POST /api/embeddings`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsResponse {
    /// The tokens, projected on the embeddings' two main directions (PCA).
    pub points: Vec<EmbeddingPoint>,
    /// The share of the embeddings' variance along each direction.
    pub explained: [f64; 2],
    /// The chosen token, if any.
    pub token: Option<Piece>,
    /// Its nearest neighbours, most similar first.
    pub neighbours: Vec<Neighbour>,
}

/// `POST /api/attention`: a prompt, and which block's maps to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttentionRequest {
    /// The text (at most the model's context, in tokens).
    pub prompt: String,
    /// Send only this block's maps. Without it, every block's, unless they
    /// are more than [`crate::explore::MAX_ATTENTION_NUMBERS`] numbers
    /// (then block 0's).
    #[serde(default)]
    pub layer: Option<usize>,
}

/// `POST /api/attention`'s answer: every head's weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionResponse {
    /// The prompt's tokens.
    pub tokens: Vec<Piece>,
    /// The model's blocks.
    pub layers: usize,
    /// The block `maps[0]` belongs to.
    pub first_layer: usize,
    /// `maps[layer - first_layer][head][query][key]`: how much the query
    /// token takes from the key token (0 on the future: the causal mask).
    pub maps: Vec<Vec<Vec<Vec<f32>>>>,
    /// The learned position vectors' cosine similarity, `[i][j]` for the
    /// prompt's positions.
    pub positions: Vec<Vec<f32>>,
    /// Time to compute the maps, milliseconds.
    pub millis: f64,
}

/// `POST /api/next`: the next token's probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextRequest {
    /// The text so far.
    pub prompt: String,
    /// Divides the scores before softmax (0: greedy; default 1).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Keep only the k most likely tokens.
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Keep the most likely tokens whose probabilities add up to p.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// List at most this many tokens (default 40, at most 500).
    #[serde(default)]
    pub show: Option<usize>,
}

/// A possible next token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The token.
    pub id: u32,
    /// Its text.
    pub text: String,
    /// Its probability under the settings (0 if the settings cut it).
    pub probability: f64,
    /// Its probability at temperature 1 with nothing cut.
    pub plain: f64,
}

/// `POST /api/next`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextResponse {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// The most likely tokens (by the plain probability), most likely first.
    pub candidates: Vec<Candidate>,
    /// Tokens that may be drawn under the settings.
    pub kept: usize,
    /// The vocabulary size.
    pub vocab_size: usize,
    /// Time for the model's pass over the prompt, milliseconds.
    pub millis: f64,
}

/// `POST /api/kv-cache`: generate greedily with and without the key/value
/// cache and time both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvCacheRequest {
    /// The text to continue.
    pub prompt: String,
    /// Tokens to generate (1 to 64; at most what fits in the context).
    pub tokens: usize,
}

/// `POST /api/kv-cache`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvCacheResponse {
    /// The continuation (the same both ways).
    pub text: String,
    /// Milliseconds per token with the cache: one position per token.
    pub cached_ms_per_token: f64,
    /// Milliseconds per token re-reading the whole context every time.
    pub uncached_ms_per_token: f64,
    /// Whether both ways chose the same tokens (they must).
    pub same: bool,
}

/// `POST /api/train`: start training a GPT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainRequest {
    /// `tiny` or `cpu-small`.
    pub preset: String,
    /// `book` (this project's book), `tinyshakespeare` (downloaded once,
    /// else the book) or `pasted`.
    pub text: String,
    /// The text, for `pasted` (at most [`crate::explore::MAX_TRAIN_TEXT_BYTES`]).
    #[serde(default)]
    pub pasted: Option<String>,
    /// Steps (default the preset's; 1 to 100,000).
    #[serde(default)]
    pub max_iters: Option<u64>,
}

/// The training job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainStatus {
    /// The preset.
    pub preset: String,
    /// `running`, `done`, `stopped` or `failed`.
    pub state: String,
    /// The run folder.
    pub run: String,
    /// Steps planned.
    pub max_iters: u64,
    /// What the run said last (or why it failed).
    pub message: String,
}

/// A training step, streamed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepEvent {
    /// The step.
    pub step: u64,
    /// Its training loss.
    pub loss: f64,
}

/// A measurement of the losses, streamed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalEvent {
    /// The step.
    pub step: u64,
    /// Training loss.
    pub train: f64,
    /// Validation loss.
    pub val: f64,
}

/// `POST /api/sample`: continue a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleRequest {
    /// The text to continue.
    pub prompt: String,
    /// Tokens to generate (1 to 1000).
    pub tokens: usize,
    /// Sampling temperature (default 0.8).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Seed (default 0).
    #[serde(default)]
    pub seed: Option<u64>,
}

/// `POST /api/sample`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleResponse {
    /// The continuation.
    pub text: String,
    /// Tokens per second.
    pub tokens_per_second: f64,
}

/// `POST /api/translate/train`: train chapter 15's number translator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranslatorTrainRequest {
    /// Optimizer steps (100 to 5000; default 2000, the chapter's).
    #[serde(default)]
    pub steps: Option<u64>,
}

/// The translator: `none`, `training`, `ready` or `failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranslatorStatus {
    /// The state.
    pub state: String,
    /// Steps it trains (or trained) for.
    pub steps: u64,
    /// Parameters of the Transformer.
    pub parameters: usize,
    /// Seconds training took.
    pub seconds: f64,
    /// Greedy accuracy on held-out numbers it never saw, once ready.
    pub accuracy: f64,
    /// Why it failed, if it did.
    pub message: String,
}

/// `POST /api/translate`: a number in English words (or digits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranslateRequest {
    /// "three hundred forty-two", or "342".
    pub text: String,
    /// Beam width (1 to 8; default 4, the chapter's).
    #[serde(default)]
    pub beam: Option<usize>,
}

/// One finished beam hypothesis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeamCandidate {
    /// Its German.
    pub german: String,
    /// Its log-probability.
    pub log_prob: f64,
    /// Its length-penalised score (the beam keeps the highest).
    pub score: f64,
}

/// `POST /api/translate`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranslateResponse {
    /// The number.
    pub number: u32,
    /// The English tokens the encoder read.
    pub english: Vec<String>,
    /// The right German.
    pub reference: String,
    /// Greedy decoding's German.
    pub greedy: String,
    /// The beam's finished hypotheses, best score first.
    pub beams: Vec<BeamCandidate>,
    /// The last decoder layer's cross-attention (heads averaged): which
    /// English token each German piece took from.
    pub attention: CrossAttention,
}

/// `weights[t][s]`: how much the German piece `target[t]` took from the
/// English token `source[s]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossAttention {
    /// English tokens.
    pub source: Vec<String>,
    /// German pieces written, then `</s>`.
    pub target: Vec<String>,
    /// Rows sum to 1.
    pub weights: Vec<Vec<f64>>,
}
