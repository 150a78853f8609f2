//! Optimizers, clipping, the epoch loop and the nudge trainer.

use addmul_core::{Error, Init, Layer, Matrix, Param, ParamKind, Parameters, ParametersExt, rng};
use addmul_nn::{Activation, Mlp};
use addmul_softmax::cross_entropy;
use addmul_train::*;

/// A weight matrix `w` (decayed) and a bias vector `b` (not decayed).
struct WeightAndBias {
    w: Param<f64>,
    b: Param<f64>,
}
impl Parameters<f64> for WeightAndBias {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<f64>)) {
        f("w", &self.w);
        f("b", &self.b);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<f64>)) {
        f("w", &mut self.w);
        f("b", &mut self.b);
    }
}

fn scalar_pair(w: f64, b: f64) -> WeightAndBias {
    WeightAndBias { w: Param::matrix(Matrix::from_element(1, 1, w)), b: Param::vector(vec![b]) }
}

#[test]
fn adamw_matches_a_hand_computed_two_step_trace() {
    // lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.01 on w only.
    // Step 1, w: decay 1 → 0.999; m = 0.05, v = 0.00025; m̂ = 0.5, v̂ = 0.25;
    //            0.999 - 0.1 · 0.5 / (0.5 + 1e-8) = 0.899000002.
    // Step 2, w: decay → 0.898101002; m = 0.02, v = 0.00031225;
    //            m̂ = 0.02/0.19, v̂ = 0.00031225/0.001999 → 0.8714672987058463.
    // b is never decayed: 2 → 2.099999999 → 2.1266337026290967.
    let mut p = scalar_pair(1.0, 2.0);
    let config = AdamWConfig { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 };
    let mut adam = AdamW::new(config).unwrap();
    let trace = [((0.5, -1.0), (0.899000002, 2.099999999)), ((-0.25, 0.5), (0.8714672987058463, 2.1266337026290967))];
    for ((gw, gb), (want_w, want_b)) in trace {
        p.w.grad_mut()[0] = gw;
        p.b.grad_mut()[0] = gb;
        adam.step(&mut p).unwrap();
        assert!((p.w.value()[0] - want_w).abs() < 1e-14, "w {} vs {want_w}", p.w.value()[0]);
        assert!((p.b.value()[0] - want_b).abs() < 1e-14, "b {} vs {want_b}", p.b.value()[0]);
    }
    assert_eq!(adam.steps_taken(), 2);
}

#[test]
fn adamw_on_threads_takes_the_same_step_bit_for_bit() {
    // An MLP has several matrices and vectors of different sizes, so the
    // threads get uneven groups; three steps with changing gradients.
    let make = || Mlp::<f32>::new(&[7, 33, 12, 5], Activation::Relu, Init::Normal { std: 0.3 }, &mut rng(3)).unwrap();
    let (mut serial, mut threaded) = (make(), make());
    let config = AdamWConfig { lr: 0.01, weight_decay: 0.1, ..AdamWConfig::default() };
    let (mut a, mut b) = (AdamW::new(config).unwrap(), AdamW::new(config).unwrap());
    let mut r = rng(9);
    for step in 0..3 {
        let grads: Vec<Matrix<f32>> = serial
            .params()
            .iter()
            .map(|p| Init::Normal { std: 1.0 }.matrix(p.value().nrows(), p.value().ncols(), &mut r))
            .collect();
        for model in [&mut serial, &mut threaded] {
            for (p, g) in model.params_mut().into_iter().zip(&grads) {
                p.grad_mut().copy_from(g);
            }
        }
        a.step(&mut serial).unwrap();
        b.step_parallel(&mut threaded, 2 + step).unwrap();
        for (x, y) in serial.params().iter().zip(threaded.params()) {
            assert_eq!(x.value(), y.value(), "step {step}");
        }
    }
    assert_eq!(a.moments(), b.moments());
    assert_eq!(b.steps_taken(), 3);

    // Scaling the gradients in place and then stepping equals reading them
    // scaled; `after` sees every parameter once, with its own extra.
    for p in serial.params_mut().into_iter().chain(threaded.params_mut()) {
        p.grad_mut().fill(0.75);
    }
    serial.scale_grads(0.3);
    a.step(&mut serial).unwrap();
    let count = threaded.params().len();
    let seen = std::sync::Mutex::new(Vec::new());
    b.step_parallel_with(&mut threaded, 2, Some(0.3), (0..count).collect(), |p, i| {
        seen.lock().unwrap().push((i, p.len()));
    })
    .unwrap();
    for (x, y) in serial.params().iter().zip(threaded.params()) {
        assert_eq!(x.value(), y.value());
    }
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    assert_eq!(seen, threaded.params().iter().map(|p| p.len()).enumerate().collect::<Vec<_>>());
    let err = b.step_parallel_with(&mut threaded, 2, None, vec![(); count - 1], |_, ()| {});
    assert!(matches!(err, Err(Error::ShapeMismatch { .. })), "{err:?}");
}

#[test]
fn optimizers_leave_frozen_parameters_alone_and_keep_no_state_for_them() {
    let make = || Mlp::<f32>::new(&[3, 4, 2], Activation::Relu, Init::Normal { std: 0.3 }, &mut rng(3)).unwrap();
    for threads in [1, 2] {
        let mut model = make();
        let frozen = model.params()[0].value().clone();
        model.params_mut()[0].freeze();
        for p in model.trainable_params_mut() {
            p.grad_mut().fill(0.5);
        }
        let mut adam = AdamW::new(AdamWConfig { weight_decay: 0.1, ..AdamWConfig::default() }).unwrap();
        let trained = model.trainable_params_mut().len();
        adam.step_parallel_with(&mut model, threads, None, vec![(); trained], |_, ()| {}).unwrap();
        adam.step(&mut model).unwrap();
        assert_eq!(model.params()[0].value(), &frozen, "weight decay and the update both skip it");
        assert_ne!(model.params()[1].value(), make().params()[1].value());
        assert_eq!(adam.moments().len(), 3, "moments for the 3 trained parameters only");
        let mut sgd = Sgd::with_momentum(0.1, 0.9).unwrap();
        sgd.step(&mut model).unwrap();
        assert_eq!(model.params()[0].value(), &frozen);
    }
}

#[test]
fn adamw_decay_rule_can_be_replaced() {
    let mut p = scalar_pair(1.0, 1.0);
    let config = AdamWConfig { lr: 0.1, weight_decay: 0.5, ..AdamWConfig::default() };
    let mut adam = AdamW::new(config).unwrap().decay_if(|name, kind| name == "b" && kind == ParamKind::Vector);
    adam.step(&mut p).unwrap(); // zero gradients: only decay moves anything
    assert_eq!(p.w.value()[0], 1.0);
    assert!((p.b.value()[0] - 0.95).abs() < 1e-15);
}

#[test]
fn sgd_with_momentum_trace() {
    // v1 = 1, w = 1 - 0.1 = 0.9; v2 = 0.5 + 1 = 1.5, w = 0.9 - 0.15 = 0.75.
    let mut p = scalar_pair(1.0, 0.0);
    let mut sgd = Sgd::with_momentum(0.1, 0.5).unwrap();
    for _ in 0..2 {
        p.w.grad_mut()[0] = 1.0;
        sgd.step(&mut p).unwrap();
    }
    assert!((p.w.value()[0] - 0.75).abs() < 1e-15);
}

#[test]
fn learning_rates_must_be_positive() {
    for lr in [0.0, -1e-3, f64::NAN, f64::INFINITY] {
        let err = Sgd::<f64>::new(lr).unwrap_err();
        assert!(matches!(err, Error::InvalidValue { what: "learning rate", .. }), "{err}");
        let err = AdamW::<f32>::new(AdamWConfig { lr, ..AdamWConfig::default() }).unwrap_err();
        assert!(err.to_string().starts_with("learning rate must be > 0"), "{err}");
    }
    assert!(Sgd::<f64>::with_momentum(0.1, 1.0).unwrap_err().to_string().contains("momentum"));
    assert!(AdamW::<f64>::new(AdamWConfig { beta2: 1.0, ..AdamWConfig::default() }).is_err());
}

#[test]
fn clipping_scales_to_the_maximum_norm() {
    let mut p = scalar_pair(0.0, 0.0);
    p.w.grad_mut()[0] = 3.0;
    p.b.grad_mut()[0] = 4.0;
    let norm = clip_grad_norm(&mut p, 1.0).unwrap();
    assert_eq!(norm, 5.0);
    assert!((p.grad_norm() - 1.0).abs() < 1e-6);
    // Below the maximum, nothing changes.
    let before = p.w.grad()[0];
    clip_grad_norm(&mut p, 10.0).unwrap();
    assert_eq!(p.w.grad()[0], before);
    p.w.grad_mut()[0] = f64::NAN;
    assert!(matches!(clip_grad_norm(&mut p, 1.0), Err(Error::NonFinite { .. })));
}

/// Two Gaussian blobs in 2-D, labelled 0 and 1.
fn blobs(n: usize, seed: u64) -> Vec<([f64; 2], usize)> {
    let noise: Matrix<f64> = Init::Normal { std: 0.7 }.matrix(2, n, &mut rng(seed));
    (0..n)
        .map(|i| {
            let label = i % 2;
            let centre = if label == 0 { -1.0 } else { 1.0 };
            ([centre + noise[(0, i)], centre + noise[(1, i)]], label)
        })
        .collect()
}

fn objective(net: &mut Mlp<f64>, examples: &[([f64; 2], usize)], mode: Mode) -> addmul_core::Result<f64> {
    let x = Matrix::from_fn(2, examples.len(), |i, j| examples[j].0[i]);
    let targets: Vec<usize> = examples.iter().map(|e| e.1).collect();
    let (scores, cache) = net.forward(&x)?;
    let (loss, ce) = cross_entropy(&scores, &targets)?;
    if mode == Mode::Train {
        net.backward(&cache, &ce.backward())?;
    }
    Ok(loss)
}

#[test]
fn fit_learns_and_early_stopping_restores_the_best_epoch() {
    let train = blobs(40, 1);
    let val = blobs(40, 2);
    let mut net = Mlp::new(&[2, 32, 32, 2], Activation::Relu, Init::HeNormal, &mut rng(3)).unwrap();
    let mut adam = AdamW::new(AdamWConfig { lr: 0.01, weight_decay: 0.0, ..AdamWConfig::default() }).unwrap();
    let config = FitConfig {
        epochs: 2000,
        batch_size: Some(8),
        early_stopping: Some(EarlyStopping { patience: 20, min_delta: 0.0 }),
        ..FitConfig::default()
    };
    let mut seen = 0;
    let history = fit(&mut net, &mut adam, &train, &val, &config, &mut objective, &mut |_| seen += 1).unwrap();
    assert_eq!(seen, history.epochs.len());
    assert!(history.stopped_early, "a 2-32-32-2 network on 40 noisy points overfits before 2000 epochs");
    let best = *history.best().unwrap();
    assert_eq!(history.epochs.len(), best.epoch + 20);
    // The restored weights give the best validation loss again.
    let restored = objective(&mut net, &val, Mode::Eval).unwrap();
    assert!((restored - best.val_loss.unwrap()).abs() < 1e-12);
    assert!(best.val_loss.unwrap() < history.epochs[0].val_loss.unwrap());
}

#[test]
fn fit_rejects_empty_data_and_non_finite_losses() {
    let mut net = Mlp::new(&[2, 2], Activation::Relu, Init::HeNormal, &mut rng(0)).unwrap();
    let mut sgd = Sgd::new(0.1).unwrap();
    let config = FitConfig { epochs: 1, ..FitConfig::default() };
    let err = fit(&mut net, &mut sgd, &[], &[], &config, &mut objective, &mut |_| {}).unwrap_err();
    assert_eq!(err.to_string(), "training set is empty");
    let early = FitConfig { early_stopping: Some(EarlyStopping { patience: 1, min_delta: 0.0 }), ..config.clone() };
    let err = fit(&mut net, &mut sgd, &blobs(4, 0), &[], &early, &mut objective, &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::Empty { .. }));
    let mut nan = |_: &mut Mlp<f64>, _: &[([f64; 2], usize)], _: Mode| Ok(f64::NAN);
    let err = fit(&mut net, &mut sgd, &blobs(4, 0), &[], &config, &mut nan, &mut |_| {}).unwrap_err();
    assert_eq!(err.to_string(), "training loss: non-finite value NaN at [0, 0]");
}

#[test]
fn nudging_each_weight_takes_the_same_step_as_backpropagation() {
    let data = blobs(6, 4);
    let mut by_backprop = Mlp::new(&[2, 4, 2], Activation::GeluTanh, Init::Normal { std: 0.8 }, &mut rng(5)).unwrap();
    let mut by_nudging = by_backprop.clone();

    by_backprop.zero_grads();
    objective(&mut by_backprop, &data, Mode::Train).unwrap();
    Sgd::new(0.5).unwrap().step(&mut by_backprop).unwrap();

    let trainer = NudgeTrainer::default();
    trainer
        .estimate_gradients(&mut by_nudging, &mut |net: &Mlp<f64>| {
            let mut net = net.clone();
            objective(&mut net, &data, Mode::Eval)
        })
        .unwrap();
    Sgd::new(0.5).unwrap().step(&mut by_nudging).unwrap();

    let (a, b) = (by_backprop.snapshot(), by_nudging.snapshot());
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs().max()).fold(0.0, f64::max);
    assert!(worst < 1e-9, "weights differ by {worst:e}");

    // The article's one-sided nudge is close, but only to first order.
    let one_sided = NudgeTrainer { nudge: 1e-4, central: false };
    let mut net = by_nudging.clone();
    one_sided.estimate_gradients(&mut net, &mut |n: &Mlp<f64>| objective(&mut n.clone(), &data, Mode::Eval)).unwrap();
    let mut exact = by_nudging.clone();
    exact.zero_grads();
    objective(&mut exact, &data, Mode::Train).unwrap();
    let mut grads = Vec::new();
    exact.visit(&mut |_, p| grads.push(p.grad().clone()));
    let mut diff = 0.0f64;
    let mut i = 0;
    net.visit(&mut |_, p| {
        diff = diff.max((p.grad() - &grads[i]).abs().max());
        i += 1;
    });
    assert!(diff < 1e-3 && diff > 1e-10, "one-sided error {diff:e}");
}
