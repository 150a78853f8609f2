//! The sampler's shortcuts (greedy without sorting, only the top k sorted)
//! choose exactly what sorting every token first chooses.

use addmul_core::{Rng, rng};
use addmul_gpt::{SamplingConfig, choose, distribution};
use proptest::prelude::*;
use rand::RngExt;

/// The plain recipe: sort every id, most likely first (ties by smaller id),
/// keep the top k, renormalise, keep the top p, draw.
fn reference(logits: &[f32], config: &SamplingConfig, rng: &mut Rng) -> u32 {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].partial_cmp(&logits[a]).unwrap().then(a.cmp(&b)));
    if config.temperature == 0.0 {
        return order[0] as u32;
    }
    order.truncate(config.top_k.unwrap_or(order.len()).min(order.len()));
    let max = f64::from(logits[order[0]]);
    let mut probs: Vec<f64> =
        order.iter().map(|&i| ((f64::from(logits[i]) - max) / config.temperature).exp()).collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if let Some(top_p) = config.top_p {
        let mut cumulative = 0.0;
        let n = probs
            .iter()
            .take_while(|&&p| {
                let before = cumulative;
                cumulative += p;
                before < top_p
            })
            .count()
            .max(1);
        probs.truncate(n);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    let mut u: f64 = rng.random();
    for (k, p) in probs.iter().enumerate() {
        u -= p;
        if u < 0.0 {
            return order[k] as u32;
        }
    }
    order[probs.len() - 1] as u32
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn choices_equal_sorting_every_token_first(
        // Few distinct values, so that ties are common.
        logits in prop::collection::vec((-4i32..4).prop_map(|v| v as f32 / 2.0), 1..60),
        greedy: bool, temperature in 0.1..3.0f64, top_k in prop::option::of(1..70usize),
        top_p in prop::option::of(0.05..1.0f64), seed: u64,
    ) {
        let config = SamplingConfig { temperature: if greedy { 0.0 } else { temperature }, top_k, top_p, seed };
        for draw in 0..4 {
            let (mut a, mut b) = (rng(seed ^ draw), rng(seed ^ draw));
            prop_assert_eq!(choose(&logits, &config, &mut a).unwrap(), reference(&logits, &config, &mut b));
        }
    }

    #[test]
    fn the_distribution_sums_to_one_is_sorted_and_holds_every_choice(
        logits in prop::collection::vec((-4i32..4).prop_map(|v| v as f32 / 2.0), 1..60),
        greedy: bool, temperature in 0.1..3.0f64, top_k in prop::option::of(1..70usize),
        top_p in prop::option::of(0.05..1.0f64), seed: u64,
    ) {
        let config = SamplingConfig { temperature: if greedy { 0.0 } else { temperature }, top_k, top_p, seed };
        let probs = distribution(&logits, &config).unwrap();
        let total: f64 = probs.iter().map(|p| p.1).sum();
        prop_assert!((total - 1.0).abs() < 1e-12, "sums to {}", total);
        prop_assert!(probs.len() <= top_k.unwrap_or(logits.len()).min(logits.len()));
        prop_assert!(probs.windows(2).all(|w| w[0].1 >= w[1].1 && logits[w[0].0 as usize] >= logits[w[1].0 as usize]));
        for draw in 0..4 {
            let chosen = choose(&logits, &config, &mut rng(seed ^ draw)).unwrap();
            prop_assert!(probs.iter().any(|p| p.0 == chosen), "{} was chosen but is not in {:?}", chosen, probs);
        }
    }
}
