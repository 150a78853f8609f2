//! Chapter 16 (from the book's GPT to the real GPT-2): GPT-2 small's sizes
//! beside cpu-small's, the book's GPT saved in Hugging Face's format and
//! loaded back through the path a `transformers` folder takes, its
//! perplexity by the documented sliding-window recipe, a full fine-tuning
//! run on the nursery rhymes, and what LoRA would train instead. Nothing is
//! downloaded.

use std::path::Path;
use std::time::Instant;

use addmul::adapters::{LoraOptions, attach_new};
use addmul::charlm::NURSERY_RHYMES;
use addmul::core::{ParametersExt, rng};
use addmul::gpt::checkpoint::{load_model, model_safetensors};
use addmul::gpt::{Gpt, GptTrainConfig, GptTrainer, perplexity};
use addmul::lora::{AdapterSet, BaseLayers, LoraConfig};
use addmul::plot::{LineChart, Series, SeriesLabelPosition};
use addmul::tokenizer::{ArticleChars, Tokenizer};
use anyhow::{Context, Result, ensure};

use super::gpt::gpt2_small;
use super::{Gen, thousands};

/// Fine-tuning steps on the rhymes.
const FINETUNE_STEPS: u64 = 300;

/// The rank and the layers of the LoRA example (PEFT's usual start for GPT-2).
const LORA_RANK: usize = 8;

pub fn generate(g: &mut Gen) -> Result<()> {
    sizes(g);
    let model = g.book_gpt.clone().context("chapter 14's generator trains the book's GPT first")?;
    let reloaded = round_trip(g, &model)?;
    book_perplexity(g, &reloaded)?;
    finetune(g, reloaded)?;
    lora(g)
}

/// GPT-2 small beside cpu-small.
fn sizes(g: &mut Gen) {
    let gpt2 = gpt2_small();
    let small = GptTrainConfig::cpu_small().model_config(ArticleChars::VOCAB_SIZE);
    g.values.set("ch16.gpt2.params", thousands(gpt2.num_params() as u64));
    g.values.set("ch16.gpt2.vocab", thousands(gpt2.vocab_size as u64));
    g.values.set("ch16.gpt2.context", thousands(gpt2.block_size as u64));
    g.num("ch16.gpt2.layers", gpt2.n_layer as f64, 0);
    g.num("ch16.gpt2.heads", gpt2.n_head as f64, 0);
    g.num("ch16.gpt2.embd", gpt2.n_embd as f64, 0);
    g.num("ch16.gpt2.times_cpu_small", gpt2.num_params() as f64 / small.num_params() as f64, 0);
    // The output head and the embeddings are one tied matrix.
    let embeddings = gpt2.vocab_size * gpt2.n_embd;
    g.percent("ch16.gpt2.embedding_share", embeddings as f64 / gpt2.num_params() as f64);
    g.num("ch16.gpt2.megabytes", gpt2.num_params() as f64 * 4.0 / 1e6, 0);
}

/// Saves the book's GPT as a Hugging Face folder and loads it back through
/// the same code that reads a `transformers` folder.
fn round_trip(g: &mut Gen, model: &Gpt<f32>) -> Result<Gpt<f32>> {
    let dir = crate::project_root().join("target/tmp/book-gpt-hf");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("config.json"), model.config().to_hf_json())?;
    std::fs::write(dir.join("model.safetensors"), model_safetensors(model, &dir)?)?;
    let reloaded = load_model::<f32>(&dir)?;
    let ids = ArticleChars.encode("the model ")?;
    let (a, b) = (model.logits(&ids, ids.len())?, reloaded.logits(&ids, ids.len())?);
    ensure!(a == b, "the reloaded model computes other logits");
    g.values.set("ch16.roundtrip.same", "the same, to the last bit");
    g.values.set("ch16.book.params", thousands(reloaded.num_params() as u64));
    Ok(reloaded)
}

/// The last tenth of `ids`: the part a trainer holds out for validation.
fn held_out(ids: &[u32]) -> &[u32] {
    &ids[ids.len() - ids.len() / 10..]
}

/// Perplexity of the book's GPT on its own held-out text, at two strides.
fn book_perplexity(g: &mut Gen, model: &Gpt<f32>) -> Result<()> {
    let (text, _) = ArticleChars::normalize(addmul::corpus::book_text());
    let ids = ArticleChars.encode(&text)?;
    let held = held_out(&ids);
    let context = model.config().block_size;
    let full = perplexity(model, held, context)?;
    let half = perplexity(model, held, context / 2)?;
    g.values.set("ch16.ppl.tokens", thousands(held.len() as u64));
    g.num("ch16.ppl.stride_full", context as f64, 0);
    g.num("ch16.ppl.stride_half", (context / 2) as f64, 0);
    g.num("ch16.ppl.full", full.perplexity, 2);
    g.num("ch16.ppl.half", half.perplexity, 2);
    g.num("ch16.ppl.full_nll", full.nll, 3);
    g.num("ch16.ppl.half_nll", half.nll, 3);
    g.num("ch16.ppl.vocab", ArticleChars::VOCAB_SIZE as f64, 0);
    // The perplexity by stride, from windows side by side down to a few
    // new tokens per window.
    let strides: Vec<usize> = [context / 16, context / 8, context / 4, context / 2, context].into();
    let mut curve = Vec::new();
    for &stride in &strides {
        curve.push((stride as f64, perplexity(model, held, stride)?.perplexity));
    }
    let (best_stride, best) = curve.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1)).context("measured")?;
    let last = curve[curve.len() - 1].1;
    // The prose: the best stride is shorter than a window, and the shortest
    // is not better than it.
    ensure!(best < last && best_stride < context as f64, "a shorter stride no longer lowers the perplexity: {curve:?}");
    g.num("ch16.ppl.stride_small", strides[0] as f64, 0);
    g.num("ch16.ppl.small", curve[0].1, 2);
    g.num("ch16.ppl.best_stride", best_stride, 0);
    g.num("ch16.ppl.best", best, 2);
    g.values.set("ch16.ppl.small_compared", if curve[0].1 > best { "higher again" } else { "no lower" }.to_string());
    LineChart::new("The book's GPT on the held-out tenth of the book, by stride", "stride (tokens)", "perplexity")
        .series(Series::new("perplexity", curve))
        .legend_at(SeriesLabelPosition::LowerRight)
        .save(g.figure("ch16_stride.svg"))?;
    Ok(())
}

/// Steps between two measurements of the held-out perplexity.
const MEASURE_EVERY: u64 = 25;

/// One fine-tuning run on the rhymes: the held-out perplexity every
/// `MEASURE_EVERY` steps, the seconds it took, and the parameters it trained.
struct Tuning {
    curve: Vec<(f64, f64)>,
    seconds: f64,
    trained: usize,
    total: usize,
}

impl Tuning {
    fn best(&self) -> (f64, f64) {
        self.curve.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1)).expect("measured at step 0")
    }
}

/// Trains `model` on the rhymes `ids` with `config`, measuring the perplexity
/// of `held` as it goes.
fn tune(model: Gpt<f32>, config: &GptTrainConfig, ids: &[u32], held: &[u32]) -> Result<Tuning> {
    let stride = model.config().block_size / 2;
    let (trained, total) = (model.num_trainable(), model.num_params());
    let mut curve = vec![(0.0, perplexity(&model, held, stride)?.perplexity)];
    let mut trainer = GptTrainer::from_model(model, config.clone(), ids).context("the rhymes")?;
    let start = Instant::now();
    for step in 1..=config.max_iters {
        trainer.train_step()?;
        if step % MEASURE_EVERY == 0 {
            curve.push((step as f64, perplexity(trainer.model(), held, stride)?.perplexity));
        }
    }
    Ok(Tuning { curve, seconds: start.elapsed().as_secs_f64(), trained, total })
}

/// Fine-tuning of the book's GPT on the nursery rhymes, once every weight
/// and once low-rank adapters alone, on the same budget, measuring the
/// perplexity of the held-out rhymes as they go.
fn finetune(g: &mut Gen, model: Gpt<f32>) -> Result<()> {
    let (text, _) = ArticleChars::normalize(NURSERY_RHYMES);
    let ids = ArticleChars.encode(&text)?;
    let held = held_out(&ids);
    let config = GptTrainConfig {
        max_iters: FINETUNE_STEPS,
        lr: 3e-4,
        min_lr: 3e-5,
        warmup_iters: 20,
        checkpoint_interval: 0,
        block_size: model.config().block_size,
        ..GptTrainConfig::preset("finetune")?
    };
    let mut adapted = model.clone();
    let full = tune(model, &config, &ids, held)?;
    let (best_step, best) = full.best();
    let before = full.curve[0].1;
    let after = full.curve.last().context("measured")?.1;
    // The chapter's prose says the perplexity fell, then rose again.
    ensure!(best < before && after > best, "the fine-tuning curve no longer falls then rises: {:?}", full.curve);
    g.values.set("ch16.finetune.chars", thousands(ids.len() as u64));
    g.values.set("ch16.finetune.held_chars", thousands(held.len() as u64));
    g.num("ch16.finetune.steps", FINETUNE_STEPS as f64, 0);
    g.num("ch16.finetune.every", MEASURE_EVERY as f64, 0);
    g.num("ch16.finetune.batch", config.batch_size as f64, 0);
    g.num("ch16.finetune.window", config.block_size as f64, 0);
    g.values.set("ch16.finetune.lr", config.lr);
    g.num("ch16.finetune.before", before, 2);
    g.num("ch16.finetune.best", best, 2);
    g.num("ch16.finetune.best_step", best_step, 0);
    g.num("ch16.finetune.after", after, 2);
    g.num("ch16.finetune.seconds", full.seconds, 1);
    let epochs =
        (FINETUNE_STEPS as usize * config.batch_size * config.block_size) as f64 / (ids.len() - held.len()) as f64;
    g.num("ch16.finetune.epochs", epochs, 0);

    // The same budget with adapters on every linear layer, the rest frozen,
    // at `addmul finetune --lora-rank`'s learning rate.
    let options = LoraOptions {
        rank: LORA_RANK,
        alpha: 2.0 * LORA_RANK as f64,
        targets: ["c_attn", "c_proj", "c_fc"].map(String::from).to_vec(),
    };
    attach_new(&mut adapted, &options, Path::new("book-gpt"), config.seed)?;
    let lora_config = GptTrainConfig { lr: 1e-3, min_lr: 1e-4, ..config };
    let lora = tune(adapted, &lora_config, &ids, held)?;
    let (lora_best_step, lora_best) = lora.best();
    let lora_after = lora.curve.last().context("measured")?.1;
    // The prose says LoRA lowered the perplexity and overfit less.
    ensure!(lora_best < before, "LoRA no longer lowers the held-out perplexity: {:?}", lora.curve);
    ensure!(lora_after < after, "LoRA no longer ends below full fine-tuning: {:?} vs {:?}", lora.curve, full.curve);
    g.num("ch16.lora_run.rank", LORA_RANK as f64, 0);
    g.values.set("ch16.lora_run.lr", lora_config.lr);
    g.values.set("ch16.lora_run.trained", thousands(lora.trained as u64));
    g.values.set("ch16.lora_run.total", thousands(lora.total as u64));
    g.values.set("ch16.lora_run.full_trained", thousands(full.trained as u64));
    g.percent("ch16.lora_run.share", lora.trained as f64 / lora.total as f64);
    // A gradient and AdamW's two moments per trained number, in f32.
    let kb = |numbers: usize| thousands((3.0 * 4.0 * numbers as f64 / 1e3).round() as u64);
    g.values.set("ch16.lora_run.state_kb", kb(lora.trained));
    g.values.set("ch16.lora_run.full_state_kb", kb(full.trained));
    g.num("ch16.lora_run.best", lora_best, 2);
    g.num("ch16.lora_run.best_step", lora_best_step, 0);
    g.num("ch16.lora_run.after", lora_after, 2);
    g.num("ch16.lora_run.seconds", lora.seconds, 1);
    g.values.set("ch16.lora_run.compared", if lora_best < best { "lower than" } else { "not as low as" }.to_string());
    LineChart::new("Fine-tuning the book's GPT on nursery rhymes", "step", "perplexity of the held-out rhymes")
        .series(Series::new("every weight", full.curve))
        .series(Series::new(format!("LoRA, rank {LORA_RANK}"), lora.curve))
        .legend_at(SeriesLabelPosition::LowerRight)
        .save(g.figure("ch16_finetune.svg"))?;
    Ok(())
}

/// What LoRA at rank 8 on GPT-2 small's attention would train.
fn lora(g: &mut Gen) -> Result<()> {
    let gpt2 = gpt2_small();
    let d = gpt2.n_embd;
    let mut layers = BaseLayers::new();
    for i in 0..gpt2.n_layer {
        layers.insert(format!("transformer.h.{i}.attn.c_attn"), (d, 3 * d));
        layers.insert(format!("transformer.h.{i}.attn.c_proj"), (d, d));
        layers.insert(format!("transformer.h.{i}.mlp.c_fc"), (d, 4 * d));
        layers.insert(format!("transformer.h.{i}.mlp.c_proj"), (4 * d, d));
    }
    let config = LoraConfig::new(LORA_RANK, 2.0 * LORA_RANK as f64, &["c_attn"]);
    let adapters = AdapterSet::<f32>::new(config, &layers, &mut rng(0))?;
    let trainable = adapters.num_params();
    let total = gpt2.num_params();
    g.num("ch16.lora.rank", LORA_RANK as f64, 0);
    g.values.set("ch16.lora.trainable", thousands(trainable as u64));
    g.num("ch16.lora.per_layer", (LORA_RANK * (d + 3 * d)) as f64, 0);
    g.values.set("ch16.lora.c_attn_weights", thousands((d * 3 * d) as u64));
    g.values.set("ch16.lora.percent", format!("{:.2}%", 100.0 * trainable as f64 / total as f64));
    // AdamW keeps two numbers per trained parameter (f32).
    g.num("ch16.lora.full_adam_mb", 2.0 * 4.0 * total as f64 / 1e6, 0);
    g.num("ch16.lora.lora_adam_mb", 2.0 * 4.0 * trainable as f64 / 1e6, 1);
    Ok(())
}
