//! The whole encoder-decoder's gradient against central finite differences,
//! in f64, on tiny random configurations: post- and pre-norm, sinusoidal and
//! learned positions, tied and untied output, label smoothing, dropout (its
//! masks held fixed by reseeding them for every evaluation), and batches of
//! pairs of different lengths (so padding is masked everywhere).
//!
//! As in the GPT's check (`crates/gpt/tests/gradients.rs`), widths start at 4
//! and the layer norms use ε = 1e-3: a layer norm over very few features has
//! so much curvature where its inputs are nearly equal that central
//! differences are off by their h² truncation error; the check extrapolates
//! (Richardson, `GradCheck::richardson`) at the default step h = 1e-5, which
//! cancels the h² terms and keeps rounding near 1e-10 (see the GPT's check).

use addmul_core::gradcheck::{TIGHT, within};
use addmul_core::{GradCheck, Rng, rng};
use addmul_transformer::{NormPlacement, Pair, PositionKind, Transformer, TransformerConfig, TransformerError};
use proptest::prelude::*;
use rand::RngExt;

fn sequence(len: usize, vocab: usize, r: &mut Rng) -> Vec<u32> {
    (0..len).map(|_| r.random_range(3..vocab as u32)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn whole_model_gradient_check(
        heads in 1..3usize, head_dim in 2..4usize, enc_layers in 1..3usize, dec_layers in 1..3usize,
        pre_norm: bool, learned: bool, tied: bool, dropout: bool, smoothing: bool, seed: u64,
    ) {
        let d = heads * head_dim;
        prop_assume!(d >= 4);
        let config = TransformerConfig {
            src_vocab_size: 6,
            tgt_vocab_size: 5,
            max_len: 5,
            d_ff: 6,
            n_encoder_layers: enc_layers,
            n_decoder_layers: dec_layers,
            norm: if pre_norm { NormPlacement::Pre } else { NormPlacement::Post },
            positions: if learned { PositionKind::Learned } else { PositionKind::Sinusoidal },
            tie_output: tied,
            dropout: if dropout { 0.2 } else { 0.0 },
            layer_norm_eps: 1e-3,
            ..TransformerConfig::new(6, 5, d, heads, 1)
        };
        let mut model = Transformer::<f64>::new(config, &mut rng(seed)).unwrap();
        let mut r = rng(seed ^ 1);
        // Two pairs of different lengths: both sides get padding.
        let pairs = [
            Pair { source: sequence(3, 6, &mut r), target: sequence(1, 5, &mut r) },
            Pair { source: sequence(1, 6, &mut r), target: sequence(3, 5, &mut r) },
        ];
        let batch = model.batch(&pairs).unwrap();
        let label_smoothing = if smoothing { 0.1 } else { 0.0 };
        let report = GradCheck { richardson: true, ..GradCheck::default() }.run(&mut model, &mut [], |m, _| {
            let mut masks = rng(seed ^ 0xd0);
            let loss = m.forward_backward(&batch, label_smoothing, Some(&mut masks), 1.0)?;
            Ok::<_, TransformerError>((loss.loss, vec![]))
        }).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
    }
}
