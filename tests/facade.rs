//! Cross-crate checks through the `addmul` facade.

use addmul::core::{GradCheck, Init, Layer, Matrix, ParametersExt, gradcheck, rng};
use addmul::nn::{Activation, Mlp};
use addmul::softmax::cross_entropy;

/// The whole small network followed by cross-entropy: a gradient check that
/// spans `core`, `nn` and `softmax`.
#[test]
fn network_plus_cross_entropy_gradient_check() {
    let mut net = Mlp::<f64>::new(&[4, 6, 5, 3], Activation::GeluErf, Init::Normal { std: 0.7 }, &mut rng(11)).unwrap();
    let x: Matrix<f64> = Init::Uniform { bound: 2.0 }.matrix(4, 5, &mut rng(12));
    let targets = [0, 2, 1, 1, 0];
    let report = GradCheck::default()
        .run(&mut net, &mut [x], |net, xs| {
            let (scores, cache) = net.forward(&xs[0])?;
            let (loss, ce) = cross_entropy(&scores, &targets)?;
            let dx = net.backward(&cache, &ce.backward())?;
            Ok::<_, addmul::core::Error>((loss, vec![dx]))
        })
        .unwrap();
    assert_eq!(report.checked, net.num_params() + 20);
    gradcheck::within(&report, gradcheck::TIGHT).unwrap();
}

/// The demo behind `addmul leaf-flower` and `--example leaf_flower` runs end
/// to end and writes both figures.
#[test]
fn leaf_flower_demo_runs_and_draws() {
    let dir =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("addmul-test-figures-{}", std::process::id()));
    let options =
        addmul::demos::LeafFlowerOptions { figures: Some(dir.clone()), progress_every: 100, ..Default::default() };
    let mut out = Vec::new();
    addmul::demos::leaf_flower(&options, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("hidden [-26.598"), "{text}");
    assert!(text.contains("stopped early"), "{text}");
    for figure in ["leaf_flower_regions.svg", "leaf_flower_overfitting.svg"] {
        let svg = std::fs::read_to_string(dir.join(figure)).unwrap();
        assert!(svg.starts_with("<svg"), "{figure}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The chapter 15 demos behind `--example transformer_copy` and
/// `--example transformer_numbers` run end to end (at a tiny size): training,
/// greedy and beam decoding, the cross-attention figure, the GPT contrast.
#[test]
fn transformer_demos_run_and_draw() {
    use addmul::demos::{CopyOptions, ModelSize, NumbersOptions, copy_task, numbers_data_sha256, numbers_task};
    let mut out = Vec::new();
    let copy = CopyOptions { steps: 20, held_out: 5, threads: 2, progress_every: 10, ..Default::default() };
    let run = copy_task(&copy, &mut out).unwrap();
    assert_eq!((run.held_out, run.curve.len()), (5, 20));
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("addmul-test-transformer-{}", std::process::id()));
    let numbers = NumbersOptions {
        size: ModelSize { d_model: 16, n_head: 2, d_ff: 32, layers: 1 },
        steps: 10,
        batch_size: 8,
        warmup: 5,
        test_size: 10,
        threads: 2,
        progress_every: 5,
        figures: Some(dir.clone()),
        ..Default::default()
    };
    let run = numbers_task(&numbers, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for expected in
        ["held-out sequences copied exactly", "test exact match: greedy", "Decoder-only GPT", "cross-attention"]
    {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    let report = &run.report;
    assert_eq!((report.test_size, report.attention.layer), (10, 0));
    assert_eq!(report.attention.target.last().map(String::as_str), Some("</s>"));
    // The GPT contrast accounts for every test number: each is counted
    // correct or wrong, the first 10 wrong ones are listed, and the count
    // printed is the one reported. (Its accuracy after 10 steps is not a
    // property: any count from 0 to 10 is possible.)
    let gpt = report.gpt.as_ref().expect("the GPT contrast runs by default");
    let wrong = report.test_size.checked_sub(gpt.correct).expect("no more correct than test numbers");
    assert_eq!(gpt.errors.len(), wrong.min(10), "{:?}", gpt.errors);
    assert!(text.contains(&format!("test exact match (greedy): {}/{}", gpt.correct, report.test_size)), "{text}");
    assert_eq!(gpt.n_layer, 2, "as many blocks as the encoder and decoder together");
    // The data's hash, computed without training, is the one the run reports.
    assert_eq!(report.data_sha256, numbers_data_sha256(&numbers).unwrap());
    assert_ne!(report.data_sha256, numbers_data_sha256(&NumbersOptions { seed: 2, ..numbers.clone() }).unwrap());
    let svg = std::fs::read_to_string(dir.join("transformer_cross_attention.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `addmul transformer numbers` and the example share one set of arguments,
/// whose defaults are the task's; a test set of no numbers is refused.
#[test]
fn transformer_arguments_and_bad_input() {
    use addmul::demos::{CopyArgs, NumbersArgs, NumbersOptions, numbers_task};
    use clap::Parser;
    #[derive(Parser)]
    struct Numbers {
        #[command(flatten)]
        args: NumbersArgs,
    }
    #[derive(Parser)]
    struct Copy {
        #[command(flatten)]
        args: CopyArgs,
    }
    let defaults = Numbers::try_parse_from(["addmul"]).unwrap().args.options();
    assert_eq!(defaults, NumbersOptions::default());
    let chosen = Numbers::try_parse_from(["addmul", "--steps", "7", "--no-gpt", "--lr-factor", "0.25"]).unwrap();
    let chosen = chosen.args.options();
    assert_eq!((chosen.steps, chosen.gpt, chosen.lr_factor), (7, false, 0.25));
    assert_eq!(Copy::try_parse_from(["addmul"]).unwrap().args.options(), addmul::demos::CopyOptions::default());
    assert!(Numbers::try_parse_from(["addmul", "--steps", "many"]).is_err());
    let empty = NumbersOptions { test_size: 0, ..NumbersOptions::default() };
    let err = numbers_task(&empty, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, addmul::Error::Invalid { .. }), "{err}");
}
