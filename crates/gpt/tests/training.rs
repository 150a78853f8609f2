//! Training, checkpoints and resuming, sampling, and bad input.

use std::path::PathBuf;

use addmul_core::{Parameters, rng};
use addmul_gpt::checkpoint::{load_model, model_safetensors};
use addmul_gpt::{
    Batch, CheckpointPlan, Gpt, GptConfig, GptError, GptTrainConfig, GptTrainer, Sampler, SamplingConfig, choose,
};

/// A folder under the system temp dir, removed when dropped.
struct TempDir(PathBuf);
impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("addmul-gpt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A text with structure to learn: counting in base 7, as digit tokens
/// separated by a space token (7).
fn corpus(n: usize) -> Vec<u32> {
    let mut out = Vec::new();
    let mut i = 0u32;
    while out.len() < n {
        let mut digits = Vec::new();
        let mut k = i;
        loop {
            digits.push(k % 7);
            k /= 7;
            if k == 0 {
                break;
            }
        }
        out.extend(digits.iter().rev());
        out.push(7);
        i += 1;
    }
    out.truncate(n);
    out
}

fn tiny(threads: usize) -> GptTrainConfig {
    GptTrainConfig {
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        block_size: 16,
        batch_size: 4,
        max_iters: 12,
        warmup_iters: 2,
        eval_interval: 4,
        eval_iters: 2,
        checkpoint_interval: 0,
        threads,
        ..GptTrainConfig::cpu_small()
    }
}

#[test]
fn training_learns_a_predictable_text() {
    // Two phrases, 0 1 2 3 and 4 5 6 7 3, in a pseudo-random order: after a
    // phrase starts the rest is certain, so the loss can fall far below the
    // uniform guess's ln 8 = 2.08.
    let mut order = rng(9);
    let mut tokens = Vec::new();
    while tokens.len() < 4000 {
        let phrase: &[u32] = if rand::RngExt::random::<bool>(&mut order) { &[0, 1, 2, 3] } else { &[4, 5, 6, 7, 3] };
        tokens.extend_from_slice(phrase);
    }
    let config = GptTrainConfig { max_iters: 150, lr: 3e-3, eval_interval: 150, ..tiny(2) };
    let mut trainer = GptTrainer::new(config, 8, &tokens).unwrap();
    trainer.run(&mut (), None).unwrap();
    let evals = trainer.evals();
    let (first, last) = (evals[0], evals[evals.len() - 1]);
    assert!((first.val_loss - 8f64.ln()).abs() < 0.1, "an untrained model guesses: {}", first.val_loss);
    assert!(last.val_loss < 0.5, "after 150 steps the validation loss is {}", last.val_loss);
}

#[test]
fn stopping_and_resuming_gives_bitwise_the_same_run() {
    let tokens = corpus(3000);
    let dir = TempDir::new("resume");
    let plan = CheckpointPlan {
        dir: dir.0.clone(),
        extra_files: vec![("tokenizer.json".into(), b"{}".to_vec())],
        ..Default::default()
    };

    let mut straight = GptTrainer::new(tiny(2), 8, &tokens).unwrap();
    let losses: Vec<f64> = (0..12).map(|_| straight.train_step().unwrap().loss).collect();

    let mut first = GptTrainer::new(tiny(2), 8, &tokens).unwrap();
    let mut resumed_losses: Vec<f64> = (0..6).map(|_| first.train_step().unwrap().loss).collect();
    first.evaluate().unwrap();
    let saved = first.save(&plan).unwrap();
    assert!(saved.join("tokenizer.json").is_file());
    drop(first);
    let mut second = GptTrainer::resume(&dir.0, &tokens).unwrap();
    assert_eq!(second.steps_taken(), 6);
    resumed_losses.extend((0..6).map(|_| second.train_step().unwrap().loss));

    assert_eq!(losses, resumed_losses, "losses differ after resuming");
    let (a, b) = (straight.model(), second.model());
    let mut wa = Vec::new();
    a.visit(&mut |_, p| wa.push(p.value().clone()));
    let mut i = 0;
    b.visit(&mut |name, p| {
        assert_eq!(&wa[i], p.value(), "{name} differs");
        i += 1;
    });
    // Resuming on another corpus is refused.
    let err = GptTrainer::resume(&dir.0, &corpus(2999)).unwrap_err();
    assert!(matches!(err, GptError::CorpusMismatch { trained: 3000, given: 2999, .. }), "{err}");
}

#[test]
fn weights_round_trip_and_bad_files_are_typed_errors() {
    let dir = TempDir::new("files");
    for bias in [true, false] {
        let config = GptConfig { bias, ..GptConfig::new(12, 8, 2, 2, 8) };
        let model = Gpt::<f32>::new(config, &mut rng(3)).unwrap();
        let ckpt = dir.0.join(format!("bias-{bias}"));
        std::fs::create_dir_all(&ckpt).unwrap();
        std::fs::write(ckpt.join("config.json"), config.to_hf_json()).unwrap();
        let bytes = model_safetensors(&model, &ckpt).unwrap();
        std::fs::write(ckpt.join("model.safetensors"), &bytes).unwrap();
        assert_eq!(load_model::<f32>(&ckpt).unwrap(), model);

        // Truncated.
        std::fs::write(ckpt.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
        let err = load_model::<f32>(&ckpt).unwrap_err();
        assert!(matches!(err, GptError::Checkpoint { .. }), "{err}");
        // Garbage.
        std::fs::write(ckpt.join("model.safetensors"), b"not a safetensors file at all").unwrap();
        assert!(load_model::<f32>(&ckpt).unwrap_err().to_string().contains("not a valid safetensors file"));
        // Shapes that do not match the config.
        std::fs::write(ckpt.join("model.safetensors"), &bytes).unwrap();
        let smaller = GptConfig { n_embd: 4, ..config };
        std::fs::write(ckpt.join("config.json"), smaller.to_hf_json()).unwrap();
        let err = load_model::<f32>(&ckpt).unwrap_err().to_string();
        assert!(err.contains("has shape") && err.contains("the model's config needs"), "{err}");
        // A config the file cannot fill is refused before the model is built.
        let bigger = GptConfig { n_embd: 16, ..config };
        std::fs::write(ckpt.join("config.json"), bigger.to_hf_json()).unwrap();
        let err = load_model::<f32>(&ckpt).unwrap_err().to_string();
        assert!(err.contains("holds") && err.contains("describes a model of"), "{err}");
    }
    assert!(matches!(load_model::<f32>(&dir.0.join("nowhere")), Err(GptError::Io { .. })));
}

#[test]
fn cached_and_uncached_generation_give_the_same_logits() {
    let config = GptConfig::new(20, 12, 2, 2, 16);
    let model = Gpt::<f32>::new(config, &mut rng(4)).unwrap();
    let ids: Vec<u32> = (0..12).map(|i| (i * 7 % 20) as u32).collect();
    let mut state = model.decode_state();
    for t in 0..12 {
        let cached = model.decode(&mut state, &ids[t..t + 1]).unwrap();
        let full = model.logits(&ids[..t + 1], t + 1).unwrap();
        let want = full.column(t);
        let err = cached.iter().zip(want.iter()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let scale = want.abs().max();
        assert!(err <= 1e-6 * scale.max(1e-3), "position {t}: {err:e}");
    }
    assert!(model.decode(&mut state, &[1]).is_err(), "beyond block_size is a typed error");
}

#[test]
fn sampling_settings_behave() {
    let logits = [0.1f32, 3.0, 2.9, -1.0];
    let greedy = SamplingConfig { temperature: 0.0, ..SamplingConfig::default() };
    assert_eq!(choose(&logits, &greedy, &mut rng(0)).unwrap(), 1);
    let top1 = SamplingConfig { top_k: Some(1), ..SamplingConfig::default() };
    assert!((0..50).all(|s| choose(&logits, &top1, &mut rng(s)).unwrap() == 1));
    let top2 = SamplingConfig { top_k: Some(2), ..SamplingConfig::default() };
    assert!((0..200).all(|s| matches!(choose(&logits, &top2, &mut rng(s)).unwrap(), 1 | 2)));
    let nucleus = SamplingConfig { top_p: Some(0.5), ..SamplingConfig::default() };
    assert!((0..200).all(|s| choose(&logits, &nucleus, &mut rng(s)).unwrap() == 1));
    for bad in [
        SamplingConfig { temperature: -1.0, ..SamplingConfig::default() },
        SamplingConfig { top_k: Some(0), ..SamplingConfig::default() },
        SamplingConfig { top_p: Some(1.5), ..SamplingConfig::default() },
    ] {
        assert!(matches!(choose(&logits, &bad, &mut rng(0)), Err(GptError::Config { .. })));
    }
    assert!(choose(&[f32::NAN], &SamplingConfig::default(), &mut rng(0)).is_err());
}

#[test]
fn long_prompts_are_cropped_and_generation_runs_past_block_size() {
    let model = Gpt::<f32>::new(GptConfig::new(10, 8, 1, 2, 8), &mut rng(5)).unwrap();
    let prompt: Vec<u32> = (0..30).map(|i| i % 10).collect();
    let mut sampler = Sampler::new(&model, &prompt, SamplingConfig { seed: 3, ..SamplingConfig::default() }).unwrap();
    // The logits after a cropped prompt are those of its last 8 tokens.
    let direct = model.logits(&prompt[22..], 8).unwrap();
    let err = sampler.logits().iter().zip(direct.column(7).iter()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(err < 1e-5);
    let out: Vec<u32> = (0..40).map(|_| sampler.next_token().unwrap()).collect();
    assert!(out.iter().all(|&t| t < 10));
    // The same seed gives the same text.
    let mut again = Sampler::new(&model, &prompt, SamplingConfig { seed: 3, ..SamplingConfig::default() }).unwrap();
    assert_eq!(out, (0..40).map(|_| again.next_token().unwrap()).collect::<Vec<_>>());
}

#[test]
fn bad_configurations_and_data_are_typed_errors() {
    let err = GptTrainConfig { n_embd: 30, n_head: 4, ..tiny(1) }.validate(10).unwrap_err();
    assert!(err.to_string().contains("n_embd = 30: must be divisible by n_head = 4"), "{err}");
    let err = GptTrainConfig { block_size: 0, ..tiny(1) }.validate(10).unwrap_err();
    assert!(err.to_string().contains("block_size = 0"), "{err}");
    let err = GptTrainConfig::preset("gpu-huge").unwrap_err();
    assert_eq!(err.to_string(), "unknown preset `gpu-huge` (known: cpu-small, shakespeare-char, tiny, finetune)");
    let err = GptTrainer::new(tiny(1), 8, &corpus(100)).unwrap_err();
    assert!(matches!(err, GptError::CorpusTooShort { split: "validation", .. }), "{err}");
    let err = GptTrainer::new(tiny(1), 5, &corpus(1000)).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary of 5"), "{err}");
    let model = Gpt::<f32>::new(GptConfig::new(10, 8, 1, 2, 8), &mut rng(0)).unwrap();
    let err = model.loss(&Batch { inputs: &[1, 2, 30], targets: &[2, 3, 4], seq_len: 3, ignore: None }).unwrap_err();
    assert!(err.to_string().contains("token id 30 at position 2"), "{err}");
    assert!(model.logits(&[1; 9], 9).is_err(), "longer than block_size");
}

#[test]
fn a_diverging_run_stops_with_a_clear_error() {
    let config = GptTrainConfig { lr: 1e30, min_lr: 1e29, grad_clip: 0.0, warmup_iters: 0, ..tiny(1) };
    let mut trainer = GptTrainer::new(config, 8, &corpus(3000)).unwrap();
    let err = (0..20).find_map(|_| trainer.train_step().err()).expect("the loss diverges");
    assert!(matches!(err, GptError::NonFiniteLoss { .. }), "{err}");
    assert!(err.to_string().contains("stopped"), "{err}");
}

#[test]
fn parameter_and_flop_counts() {
    let config = GptConfig::new(65, 64, 4, 4, 128);
    let model = Gpt::<f32>::new(config, &mut rng(0)).unwrap();
    use addmul_core::ParametersExt;
    assert_eq!(model.num_params(), config.num_params());
    assert_eq!(config.num_params(), 809_856);
    // The PyTorch reference counts 794,752 matmul parameters and 3.964 GFLOP
    // per cpu-small step (12 x 64 tokens; 3.964 to four figures).
    assert_eq!(config.matmul_params(), 794_752);
    assert!((config.training_flops(12 * 64, 64) / 1e9 - 3.964_207).abs() < 1e-6);
    let no_bias = GptConfig { bias: false, ..config };
    assert_eq!(Gpt::<f32>::new(no_bias, &mut rng(0)).unwrap().num_params(), no_bias.num_params());
}

#[test]
fn two_threads_compute_what_one_thread_computes() {
    // The same steps split across two workers: only the order of summation
    // differs, so the losses agree to rounding (and the gradients are not
    // accumulated across steps: the norms stay alike).
    let tokens = corpus(3000);
    let mut one = GptTrainer::new(tiny(1), 8, &tokens).unwrap();
    let mut two = GptTrainer::new(tiny(2), 8, &tokens).unwrap();
    for _ in 0..10 {
        let (a, b) = (one.train_step().unwrap(), two.train_step().unwrap());
        assert!((a.loss - b.loss).abs() < 1e-5 * a.loss, "{} vs {}", a.loss, b.loss);
        assert!((a.grad_norm - b.grad_norm).abs() < 1e-3 * a.grad_norm, "{} vs {}", a.grad_norm, b.grad_norm);
    }
}

#[test]
fn ignored_targets_are_left_out_of_the_loss() {
    let config = GptConfig::new(12, 8, 1, 2, 8);
    let model = Gpt::<f64>::new(config, &mut rng(6)).unwrap();
    let inputs = [1, 2, 3, 4, 5, 6];
    let targets = [0, 0, 7, 8, 0, 9]; // 0 is the ignored id
    let batch = Batch { inputs: &inputs, targets: &targets, seq_len: 6, ignore: Some(0) };
    // The mean of -log p(target) over the three kept positions.
    let logits = model.logits(&inputs, 6).unwrap();
    let want = [(2, 7), (3, 8), (5, 9)]
        .iter()
        .map(|&(col, t)| {
            let c = logits.column(col);
            let max = c.max();
            let lse = max + c.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            lse - c[t]
        })
        .sum::<f64>()
        / 3.0;
    assert!((model.loss(&batch).unwrap() - want).abs() < 1e-12);
    // Training reports the same loss.
    let mut m = model.clone();
    assert!((m.forward_backward(&batch, None, 1.0).unwrap() - want).abs() < 1e-12);
    let plain = Batch { ignore: None, ..batch };
    assert!((model.loss(&plain).unwrap() - want).abs() > 1e-6, "ignoring changes the loss");
    // Nothing left to predict is a typed error.
    let none = Batch { targets: &[0; 6], ..batch };
    assert!(model.loss(&none).is_err());
}

#[test]
fn training_from_a_model_keeps_its_architecture_and_its_weights_to_start() {
    // A model with settings a preset cannot make (exact GELU, no attention
    // scaling, a wide ε) and a longer context than the training windows.
    let config = GptConfig {
        gelu_tanh: false,
        scale_attn_weights: false,
        layer_norm_eps: 1e-3,
        ..GptConfig::new(8, 32, 2, 2, 16)
    };
    let model = Gpt::<f32>::new(config, &mut rng(9)).unwrap();
    // The training configuration's architecture is replaced by the model's.
    let recipe = GptTrainConfig { n_layer: 5, n_embd: 64, dropout: 0.1, ..tiny(1) };
    let trainer = GptTrainer::from_model(model.clone(), recipe.clone(), &corpus(2000)).unwrap();
    assert_eq!((trainer.config().n_layer, trainer.config().n_embd), (2, 16));
    assert_eq!(*trainer.model().config(), GptConfig { dropout: 0.1, ..config });
    let mut weights_equal = true;
    let mut start = std::collections::BTreeMap::new();
    model.visit(&mut |n, p| {
        start.insert(n.to_string(), p.value().clone());
    });
    trainer.model().visit(&mut |n, p| weights_equal &= p.value() == &start[n]);
    assert!(weights_equal);
    // Windows longer than the model's context are refused, by name.
    let err = GptTrainer::from_model(model, GptTrainConfig { block_size: 33, ..recipe }, &corpus(2000)).unwrap_err();
    assert!(err.to_string().contains("block_size = 33") && err.to_string().contains("context, 32"), "{err}");
}

#[test]
fn attention_maps_are_causal_distributions_for_every_head() {
    let model = Gpt::<f64>::new(GptConfig::new(10, 8, 2, 2, 8), &mut rng(4)).unwrap();
    let maps = model.attention_maps(&[1, 2, 3, 4, 5]).unwrap();
    assert_eq!((maps.len(), maps[0].len()), (2, 2));
    for w in maps.iter().flatten() {
        assert_eq!(w.shape(), (5, 5));
        for q in 0..5 {
            assert!((w.column(q).sum() - 1.0).abs() < 1e-12, "query {q} sums to {}", w.column(q).sum());
            assert!((q + 1..5).all(|k| w[(k, q)] == 0.0), "query {q} sees the future");
        }
    }
}
