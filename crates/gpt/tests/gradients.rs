//! The whole model's gradient against central finite differences, in f64,
//! on tiny random configurations: tied head, with dropout off and on (with
//! the mask held fixed by reseeding it for every evaluation).
//!
//! Widths start at 4: with 2 features a layer norm's output is ±1 and its
//! curvature near equal features is too large for finite differences to
//! resolve to 1e-6. With few features the curvature is still large, so the
//! check uses Richardson extrapolation (`GradCheck::richardson`: central
//! differences at h and h/2 combined so that the h² truncation cancels) at
//! the default step, which keeps rounding (eps/h, about 1e-10) far below the
//! tolerance. The layer norms use ε = 1e-3 for the same reason: a token whose
//! few features are nearly equal would otherwise get a gain of several
//! hundred, and gradients of that size need a smaller step than rounding
//! allows.

use addmul_core::gradcheck::{TIGHT, within};
use addmul_core::{GradCheck, rng};
use addmul_gpt::{Batch, Gpt, GptConfig, GptError};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn whole_model_gradient_check(
        vocab in 2..7usize, layers in 1..3usize, heads in 1..3usize, head_dim in 2..4usize,
        t in 1..5usize, b in 1..3usize, bias: bool, gelu_tanh: bool, dropout: bool, seed: u64,
    ) {
        prop_assume!(heads * head_dim >= 4);
        let config = GptConfig {
            dropout: if dropout { 0.3 } else { 0.0 },
            bias,
            gelu_tanh,
            layer_norm_eps: 1e-3,
            ..GptConfig::new(vocab, t + 1, layers, heads, heads * head_dim)
        };
        let mut model = Gpt::<f64>::new(config, &mut rng(seed)).unwrap();
        // Larger weights than GPT-2's 0.02 so that every path matters.
        model.visit_mut_scale(10.0);
        let ids: Vec<u32> = (0..b * t).map(|i| ((seed as usize).wrapping_add(i * 7) % vocab) as u32).collect();
        let targets: Vec<u32> = (0..b * t).map(|i| ((seed as usize).wrapping_add(i * 3 + 1) % vocab) as u32).collect();
        let batch = Batch { inputs: &ids, targets: &targets, seq_len: t };
        let report = GradCheck { richardson: true, ..GradCheck::default() }.run(&mut model, &mut [], |m, _| {
            let mut masks = rng(seed ^ 0xd0);
            let loss = m.forward_backward(&batch, Some(&mut masks), 1.0)?;
            Ok::<_, GptError>((loss, vec![]))
        }).unwrap();
        prop_assert!(within(&report, TIGHT).is_ok(), "{}", report);
    }
}

trait Scale {
    fn visit_mut_scale(&mut self, factor: f64);
}

impl Scale for Gpt<f64> {
    fn visit_mut_scale(&mut self, factor: f64) {
        use addmul_core::Parameters;
        self.visit_mut(&mut |name, p| {
            if !name.contains("ln_") {
                *p.value_mut() *= factor;
            }
        });
    }
}
