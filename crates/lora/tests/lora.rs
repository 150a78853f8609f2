//! Gradient checks (f64, central differences) for the adapter, the frozen
//! base, merging, and the configuration's rules.

use addmul_core::gradcheck::{TIGHT, within};
use addmul_core::{Error, GradCheck, Init, Layer, Matrix, ParametersExt, RngState, dot, rng};
use addmul_dropout::Dropout;
use addmul_lora::{AdapterSet, BaseLayers, LoraAdapter, LoraConfig, LoraError, LoraLinear};
use addmul_nn::Linear;
use proptest::prelude::*;

fn uniform(rows: usize, cols: usize, bound: f64, seed: u64) -> Matrix<f64> {
    Init::Uniform { bound }.matrix(rows, cols, &mut rng(seed))
}

/// A random base (with a non-zero bias when it has one) and a random,
/// non-zero adapter of rank `r`.
fn layer(inp: usize, out: usize, r: usize, bias: bool, alpha: f64, dropout: f64, seed: u64) -> LoraLinear<f64> {
    let b = bias.then(|| uniform(out, 1, 1.0, seed ^ 7).as_slice().to_vec());
    let base = Linear::from_weights(uniform(out, inp, 1.0, seed), b).unwrap();
    let adapter = LoraAdapter::from_weights(
        uniform(r, inp, 1.0, seed ^ 3),
        uniform(out, r, 1.0, seed ^ 4),
        alpha / r as f64,
        dropout,
    )
    .unwrap();
    LoraLinear::with_adapter(base, adapter).unwrap()
}

/// The largest `|a - b|`, relative to the largest `|b|` (at least 1).
fn max_rel_diff(a: &Matrix<f64>, b: &Matrix<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    a.iter().zip(b.iter()).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// The base of `layer(...)` as a plain [`Linear`] with its weight and bias
/// frozen and the adapter attached as a side path.
fn frozen_with_side_path(lora: &LoraLinear<f64>) -> Linear<f64> {
    let mut linear = lora.base().clone();
    linear.freeze_all();
    linear.attach(Box::new(lora.adapter().clone())).unwrap();
    linear
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn an_adapter_attached_to_a_frozen_linear_checks_and_equals_lora_linear(
        inp in 1..7usize, out in 1..7usize, r_pick in 0..6usize, n in 1..5usize,
        bias: bool, alpha in 0.5..8.0f64, seed: u64,
    ) {
        let r = 1 + r_pick % inp.min(out);
        let lora = layer(inp, out, r, bias, alpha, 0.0, seed);
        let mut linear = frozen_with_side_path(&lora);
        let x = uniform(inp, n, 2.0, seed ^ 1);
        // The same operations in the same order as LoraLinear: bit for bit.
        prop_assert_eq!(linear.apply(&x).unwrap(), lora.forward(&x).unwrap().0);
        let probe = uniform(out, n, 1.0, seed ^ 2);
        let report = GradCheck::default().layer(&mut linear, &x, &probe).unwrap();
        // dA, dB and dx; the frozen weight and bias have no gradient at all.
        prop_assert_eq!(report.checked, r * inp + out * r + inp * n);
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
        let (_, cache) = linear.forward(&x).unwrap();
        linear.backward(&cache, &probe).unwrap();
        prop_assert!(linear.weight().grad().is_empty());
        prop_assert_eq!(linear.num_trainable(), r * (inp + out));
        let mut lora = lora;
        let (_, cache) = lora.forward(&x).unwrap();
        let dx = lora.backward(&cache, &probe).unwrap();
        prop_assert_eq!(linear.backward(&linear.forward(&x).unwrap().1, &probe).unwrap(), dx);
    }

    #[test]
    fn gradient_check_of_a_and_b_and_the_input(
        inp in 1..7usize, out in 1..7usize, r_pick in 0..6usize, n in 1..5usize,
        bias: bool, alpha in 0.5..8.0f64, seed: u64,
    ) {
        let r = 1 + r_pick % inp.min(out);
        let mut lora = layer(inp, out, r, bias, alpha, 0.0, seed);
        let x = uniform(inp, n, 2.0, seed ^ 1);
        let probe = uniform(out, n, 1.0, seed ^ 2);
        let report = GradCheck::default().layer(&mut lora, &x, &probe).unwrap();
        // dA, dB and dx: every entry, and nothing of the frozen base.
        prop_assert_eq!(report.checked, r * inp + out * r + inp * n);
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
    }

    #[test]
    fn gradient_check_through_the_dropout_mask(
        inp in 1..7usize, out in 1..7usize, r_pick in 0..6usize, n in 1..5usize,
        p in 0.1..0.8f64, seed: u64,
    ) {
        let r = 1 + r_pick % inp.min(out);
        let mut lora = layer(inp, out, r, true, 2.0, p, seed);
        let probe = uniform(out, n, 1.0, seed ^ 2);
        let mut inputs = [uniform(inp, n, 2.0, seed ^ 1)];
        // The same generator state on every call: the same mask.
        let report = GradCheck::default()
            .run(&mut lora, &mut inputs, |lora, xs| {
                let (y, cache) = lora.forward_with(&xs[0], Some(&mut rng(seed ^ 5)))?;
                let loss = dot(&y, &probe)?;
                let dx = lora.backward(&cache, &probe)?;
                Ok::<_, Error>((loss, vec![dx]))
            })
            .unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
    }

    #[test]
    fn the_base_is_frozen_and_never_visited(
        inp in 1..7usize, out in 1..7usize, n in 1..5usize, p in 0.0..0.8f64, seed: u64,
    ) {
        let mut lora = layer(inp, out, 1, true, 2.0, p, seed);
        let before = lora.base().clone();
        let x = uniform(inp, n, 2.0, seed ^ 1);
        let (_, cache) = lora.forward_with(&x, Some(&mut rng(seed ^ 5))).unwrap();
        lora.backward(&cache, &uniform(out, n, 1.0, seed ^ 2)).unwrap();
        prop_assert_eq!(lora.param_names(), ["lora_A.weight", "lora_B.weight"]);
        // The base's gradients are exactly zero: never computed, never added to.
        prop_assert!(lora.base().weight().grad().iter().all(|&g| g == 0.0));
        prop_assert!(lora.base().bias().unwrap().grad().iter().all(|&g| g == 0.0));
        // ...and an optimizer step (on what is visited) leaves it as it was.
        for p in lora.params_mut() {
            let (value, grad) = p.parts_mut();
            *value -= &*grad * 0.1;
        }
        prop_assert_eq!(lora.base(), &before);
    }

    #[test]
    fn merged_output_equals_adapted_output_and_unmerge_restores_the_weight(
        inp in 1..7usize, out in 1..7usize, r_pick in 0..6usize, n in 1..5usize,
        bias: bool, alpha in 0.5..8.0f64, seed: u64,
    ) {
        let r = 1 + r_pick % inp.min(out);
        let mut lora = layer(inp, out, r, bias, alpha, 0.0, seed);
        let w0 = lora.base().weight().value().clone();
        let x = uniform(inp, n, 2.0, seed ^ 1);
        let (adapted, _) = lora.forward(&x).unwrap();

        lora.merge().unwrap();
        prop_assert!(lora.is_merged());
        let (merged, _) = lora.forward(&x).unwrap();
        prop_assert!(max_rel_diff(&merged, &adapted) < 1e-13, "{}", max_rel_diff(&merged, &adapted));
        let delta = lora.base().weight().value() - &w0;
        prop_assert!(max_rel_diff(&delta, &lora.adapter().delta_weight().unwrap()) < 1e-13);
        lora.merge().unwrap(); // merging twice adds nothing
        prop_assert!(max_rel_diff(&lora.forward(&x).unwrap().0, &adapted) < 1e-13);

        lora.unmerge().unwrap();
        prop_assert!(!lora.is_merged());
        prop_assert!(max_rel_diff(lora.base().weight().value(), &w0) < 1e-14);
        prop_assert!(max_rel_diff(&lora.forward(&x).unwrap().0, &adapted) < 1e-13);

        let unloaded = lora.clone().merge_and_unload().unwrap();
        prop_assert!(max_rel_diff(&unloaded.apply(&x).unwrap(), &adapted) < 1e-13);
        prop_assert!(max_rel_diff(lora.unload().unwrap().weight().value(), &w0) < 1e-14);
    }
}

#[test]
fn a_fresh_adapter_starts_as_the_base_with_a_drawn_as_peft_does() {
    let (inp, out, r) = (64, 48, 8);
    let base = Linear::<f64>::new(inp, out, true, Init::Normal { std: 0.3 }, &mut rng(1));
    let lora = LoraLinear::new(base, &LoraConfig::new(r, 16.0, &["c_attn"]), &mut rng(2)).unwrap();
    let x = uniform(inp, 3, 2.0, 3);
    assert_eq!(lora.forward(&x).unwrap().0, lora.base().apply(&x).unwrap());
    assert_eq!(lora.adapter().scale(), 2.0);
    assert!(lora.adapter().b().value().iter().all(|&v| v == 0.0));
    // kaiming_uniform_(a = √5) on [r, in]: uniform on ±1/√in = ±0.125.
    let a = lora.adapter().a().value();
    assert_eq!(a.shape(), (r, inp));
    let largest = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(largest < 0.125 && largest > 0.12, "{largest}");
    let again = LoraAdapter::<f64>::new(inp, out, &LoraConfig::new(r, 16.0, &[]), &mut rng(2)).unwrap();
    assert_eq!(again.a().value(), a, "the same seed draws the same A");
}

#[test]
fn dropout_runs_in_training_only_and_draws_nothing_when_zero() {
    let lora = layer(5, 4, 2, true, 2.0, 0.5, 9);
    let x = uniform(5, 6, 2.0, 1);
    let (eval, _) = lora.forward(&x).unwrap();
    assert_eq!(lora.forward_with(&x, None).unwrap().0, eval);
    let (train, _) = lora.forward_with(&x, Some(&mut rng(3))).unwrap();
    assert_ne!(train, eval);
    // Only the side path's input is dropped (PEFT's lora_dropout): the same
    // generator gives the same mask, kept entries doubled.
    let (dropped, _) = Dropout::new(0.5).unwrap().train(&x, &mut rng(3));
    let adapter = lora.adapter();
    let expected =
        lora.base().apply(&x).unwrap() + adapter.b().value() * (adapter.a().value() * &dropped) * adapter.scale();
    assert!(max_rel_diff(&train, &expected) < 1e-14);

    let no_dropout = layer(5, 4, 2, true, 2.0, 0.0, 9);
    let mut generator = rng(3);
    let before = RngState::of(&generator);
    assert_eq!(no_dropout.forward_with(&x, Some(&mut generator)).unwrap().0, no_dropout.forward(&x).unwrap().0);
    assert_eq!(RngState::of(&generator), before, "p = 0 draws nothing");
}

#[test]
fn training_only_the_adapter_learns_a_low_rank_change() {
    // The target is the base plus a rank-1 change; plain gradient descent on
    // A and B (rank 1) finds it while W stays as it was.
    let (inp, out, n) = (6, 5, 40);
    let base = Linear::from_weights(uniform(out, inp, 1.0, 1), Some(vec![0.1; out])).unwrap();
    let u = uniform(out, 1, 1.0, 2);
    let v = uniform(1, inp, 1.0, 3);
    let target_layer = Linear::from_weights(base.weight().value() + &u * &v, Some(vec![0.1; out])).unwrap();
    let x = uniform(inp, n, 1.0, 4);
    let target = target_layer.apply(&x).unwrap();
    let mut lora = LoraLinear::new(base.clone(), &LoraConfig::new(1, 1.0, &["x"]), &mut rng(5)).unwrap();
    let loss = |lora: &LoraLinear<f64>| {
        let y = lora.forward(&x).unwrap().0;
        (&y - &target).norm_squared() / (2.0 * n as f64)
    };
    let first = loss(&lora);
    for _ in 0..3000 {
        lora.zero_grads();
        let (y, cache) = lora.forward(&x).unwrap();
        lora.backward(&cache, &((&y - &target) / n as f64)).unwrap();
        for p in lora.params_mut() {
            let (value, grad) = p.parts_mut();
            *value -= &*grad * 0.5;
        }
    }
    let last = loss(&lora);
    assert!(last < first * 1e-6, "loss {first} -> {last}");
    assert_eq!(lora.base(), &base);
}

#[test]
fn backward_after_a_merged_forward_is_a_typed_error() {
    let mut lora = layer(3, 3, 1, false, 1.0, 0.0, 1);
    lora.merge().unwrap();
    let (_, cache) = lora.forward(&uniform(3, 2, 1.0, 2)).unwrap();
    let err = lora.backward(&cache, &uniform(3, 2, 1.0, 3)).unwrap_err();
    assert!(matches!(err, Error::Unsupported { op: "LoraLinear::backward", .. }), "{err}");
    assert!(lora.adapter_mut().is_err());
    lora.unmerge().unwrap();
    assert!(lora.adapter_mut().is_ok());
}

#[test]
fn bad_configurations_are_typed_errors_naming_the_field() {
    let field_of = |config: LoraConfig| match config.validate().unwrap_err() {
        LoraError::Config { field, .. } => field,
        other => panic!("{other}"),
    };
    assert_eq!(field_of(LoraConfig::new(0, 1.0, &["c_attn"])), "rank");
    assert_eq!(field_of(LoraConfig::new(2, f64::INFINITY, &["c_attn"])), "alpha");
    assert_eq!(field_of(LoraConfig::new(2, f64::NAN, &["c_attn"])), "alpha");
    for dropout in [1.0, -0.1, f64::NAN] {
        assert_eq!(field_of(LoraConfig { dropout, ..LoraConfig::new(2, 1.0, &["c_attn"]) }), "dropout");
    }

    let base = Linear::<f64>::new(3, 5, false, Init::Zeros, &mut rng(0));
    let err = LoraLinear::new(base, &LoraConfig::new(4, 1.0, &[]), &mut rng(0)).unwrap_err();
    assert!(matches!(err, LoraError::RankTooLarge { rank: 4, in_features: 3, out_features: 5, .. }), "{err}");
    assert_eq!(err.to_string(), "rank 4 is too large for the layer: with 3 inputs and 5 outputs it can be at most 3");
    let err = LoraConfig::new(4, 1.0, &[]).check_layer("h.0.attn.c_proj", 3, 5).unwrap_err();
    assert!(err.to_string().contains("layer `h.0.attn.c_proj`"), "{err}");

    let err = LoraAdapter::from_weights(Matrix::<f64>::zeros(2, 4), Matrix::zeros(3, 3), 1.0, 0.0).unwrap_err();
    assert!(matches!(err, LoraError::Numeric(Error::ShapeMismatch { .. })), "{err}");
    let base = Linear::<f64>::new(4, 3, false, Init::Zeros, &mut rng(0));
    let adapter = LoraAdapter::from_weights(Matrix::zeros(1, 5), Matrix::zeros(3, 1), 1.0, 0.0).unwrap();
    assert!(LoraLinear::with_adapter(base, adapter).is_err());
}

#[test]
fn target_modules_match_as_peft_matches_them() {
    let config = LoraConfig::new(2, 4.0, &["c_attn", "mlp.c_proj"]);
    assert!(config.matches("transformer.h.0.attn.c_attn"));
    assert!(config.matches("c_attn"));
    assert!(config.matches("transformer.h.11.mlp.c_proj"));
    assert!(!config.matches("transformer.h.0.attn.c_proj"));
    assert!(!config.matches("transformer.h.0.attn.xc_attn"));
    assert!(!config.matches("transformer.h.0.attn.c_attn.lora_A"));
    let one_block = LoraConfig::new(2, 4.0, &["h.1.attn.c_attn"]);
    assert!(one_block.matches("transformer.h.1.attn.c_attn"));
    assert!(!one_block.matches("transformer.h.11.attn.c_attn"));
}

#[test]
fn the_configuration_reads_and_writes_as_json() {
    let config = LoraConfig { dropout: 0.05, ..LoraConfig::new(8, 16.0, &["c_attn", "c_proj", "c_fc"]) };
    let text = serde_json::to_string(&config).unwrap();
    assert_eq!(text, r#"{"rank":8,"alpha":16.0,"dropout":0.05,"target_modules":["c_attn","c_proj","c_fc"]}"#);
    assert_eq!(serde_json::from_str::<LoraConfig>(&text).unwrap(), config);
    let no_dropout: LoraConfig = serde_json::from_str(r#"{"rank":2,"alpha":4,"target_modules":["c_attn"]}"#).unwrap();
    assert_eq!(no_dropout.dropout, 0.0);
    assert!(serde_json::from_str::<LoraConfig>(r#"{"r":2,"alpha":4,"target_modules":[]}"#).is_err());
}

#[test]
fn f32_and_f64_agree() {
    let base64 = Linear::from_weights(uniform(4, 6, 1.0, 1), Some(vec![0.2; 4])).unwrap();
    let base32 =
        Linear::from_weights(addmul_core::convert::<f64, f32>(base64.weight().value()), Some(vec![0.2; 4])).unwrap();
    let (a, b) = (uniform(2, 6, 1.0, 2), uniform(4, 2, 1.0, 3));
    let lora64 =
        LoraLinear::with_adapter(base64, LoraAdapter::from_weights(a.clone(), b.clone(), 1.5, 0.0).unwrap()).unwrap();
    let adapter32 = LoraAdapter::from_weights(addmul_core::convert(&a), addmul_core::convert(&b), 1.5, 0.0).unwrap();
    let lora32 = LoraLinear::<f32>::with_adapter(base32, adapter32).unwrap();
    let x = uniform(6, 3, 2.0, 4);
    let y64 = lora64.forward(&x).unwrap().0;
    let y32 = lora32.forward(&addmul_core::convert(&x)).unwrap().0;
    assert!(max_rel_diff(&addmul_core::convert(&y32), &y64) < 1e-6);
}

#[test]
fn a_set_names_its_parameters_by_layer_and_adapts_only_targets() {
    let layers: BaseLayers = [("transformer.h.0.attn.c_attn", (4, 12)), ("transformer.h.0.mlp.c_fc", (4, 16))]
        .into_iter()
        .map(|(name, size)| (name.to_string(), size))
        .collect();
    let set = AdapterSet::<f32>::new(LoraConfig::new(2, 4.0, &["c_attn"]), &layers, &mut rng(0)).unwrap();
    assert_eq!(
        set.param_names(),
        ["transformer.h.0.attn.c_attn.lora_A.weight", "transformer.h.0.attn.c_attn.lora_B.weight"]
    );
    assert_eq!(set.num_params(), 2 * (4 + 12));
    let err = AdapterSet::<f32>::new(LoraConfig::new(2, 4.0, &["q_proj"]), &layers, &mut rng(0)).unwrap_err();
    assert!(matches!(err, LoraError::Config { field: "target_modules", .. }), "{err}");
    let err = AdapterSet::<f32>::new(LoraConfig::new(5, 4.0, &["c_fc"]), &layers, &mut rng(0)).unwrap_err();
    assert!(err.to_string().contains("layer `transformer.h.0.mlp.c_fc`"), "{err}");

    // Existing adapters must agree with the configuration they are saved under.
    let config = set.config().clone();
    let adapters = set.clone().into_adapters();
    assert_eq!(AdapterSet::from_adapters(config.clone(), adapters.clone()).unwrap(), set);
    let field_of = |config: LoraConfig, adapters| match AdapterSet::<f32>::from_adapters(config, adapters).unwrap_err()
    {
        LoraError::Config { field, .. } => field,
        other => panic!("{other}"),
    };
    assert_eq!(field_of(LoraConfig { rank: 1, ..config.clone() }, adapters.clone()), "rank");
    assert_eq!(field_of(LoraConfig { alpha: 2.0, ..config.clone() }, adapters.clone()), "alpha / rank");
    assert_eq!(field_of(LoraConfig { dropout: 0.1, ..config.clone() }, adapters.clone()), "dropout");
    assert_eq!(field_of(LoraConfig::new(2, 4.0, &["c_fc"]), adapters), "target_modules");
    assert_eq!(field_of(config, Default::default()), "adapters");
}

#[test]
fn a_set_attaches_to_named_layers_and_reads_their_trained_values_back() {
    let mut c_attn = Linear::<f32>::new(4, 12, true, Init::Normal { std: 0.5 }, &mut rng(1));
    let mut c_fc = Linear::<f32>::new(4, 16, true, Init::Normal { std: 0.5 }, &mut rng(2));
    let layers: BaseLayers = [("h.0.attn.c_attn", (4, 12)), ("h.0.mlp.c_fc", (4, 16))]
        .into_iter()
        .map(|(name, size)| (name.to_string(), size))
        .collect();
    let mut set = AdapterSet::<f32>::new(LoraConfig::new(2, 4.0, &["c_attn"]), &layers, &mut rng(0)).unwrap();

    // An adapter whose layer is not offered: nothing is attached.
    let err = set.attach_to(vec![("h.0.mlp.c_fc".to_string(), &mut c_fc)]).unwrap_err();
    assert!(matches!(&err, LoraError::NoSuchLayer { layer } if layer == "h.0.attn.c_attn"), "{err}");
    assert!(c_fc.side_path().is_none());
    // A layer of other sizes under the adapter's name.
    let err = set.attach_to(vec![("h.0.attn.c_attn".to_string(), &mut c_fc)]).unwrap_err();
    assert!(matches!(err, LoraError::Numeric(Error::ShapeMismatch { .. })), "{err}");

    set.attach_to(vec![("h.0.attn.c_attn".to_string(), &mut c_attn), ("h.0.mlp.c_fc".to_string(), &mut c_fc)]).unwrap();
    assert!(c_attn.side_path().is_some() && c_fc.side_path().is_none());
    assert_eq!(c_attn.param_names(), ["weight", "bias", "lora_A.weight", "lora_B.weight"]);

    // "Train" the attached copy, then read it back by name.
    struct Model<'a>(&'a mut Linear<f32>);
    impl addmul_core::Parameters<f32> for Model<'_> {
        fn visit<'b>(&'b self, f: &mut dyn FnMut(&str, &'b addmul_core::Param<f32>)) {
            addmul_core::visit_child("h.0.attn.c_attn", &*self.0, f);
        }
        fn visit_mut<'b>(&'b mut self, f: &mut dyn FnMut(&str, &'b mut addmul_core::Param<f32>)) {
            addmul_core::visit_child_mut("h.0.attn.c_attn", &mut *self.0, f);
        }
    }
    for p in c_attn.params_mut().into_iter().skip(2) {
        p.value_mut().add_scalar_mut(0.25);
    }
    let before = set.clone();
    set.read_from(&Model(&mut c_attn)).unwrap();
    assert_ne!(set, before);
    let adapter = set.get("h.0.attn.c_attn").unwrap();
    assert_eq!(adapter.b().value(), &Matrix::from_element(12, 2, 0.25));
    let mut detached = c_attn.clone();
    detached.detach().unwrap();
    assert_eq!(
        set.read_from(&Model(&mut detached)).unwrap_err().to_string(),
        LoraError::NoSuchLayer { layer: "h.0.attn.c_attn".into() }.to_string()
    );
}
