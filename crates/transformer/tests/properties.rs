//! What the masks promise, what caching and beam search promise, and bad
//! input.

use addmul_core::{Matrix, Rng, rng};
use addmul_transformer::{
    BeamConfig, Hypothesis, NormPlacement, Pair, PositionKind, Side, Specials, Transformer, TransformerConfig,
    TransformerError, Vocab,
};
use proptest::prelude::*;
use rand::RngExt;

fn sequence(len: usize, vocab: usize, r: &mut Rng) -> Vec<u32> {
    (0..len).map(|_| r.random_range(3..vocab as u32)).collect()
}

fn model(pre_norm: bool, learned: bool, seed: u64) -> Transformer<f64> {
    let config = TransformerConfig {
        max_len: 7,
        norm: if pre_norm { NormPlacement::Pre } else { NormPlacement::Post },
        positions: if learned { PositionKind::Learned } else { PositionKind::Sinusoidal },
        dropout: 0.3, // evaluation never drops: the passes below are deterministic
        ..TransformerConfig::new(9, 8, 8, 2, 2)
    };
    Transformer::new(config, &mut rng(seed)).unwrap()
}

/// Columns `b·len + from .. b·len + to` of `m`.
fn cols(m: &Matrix<f64>, b: usize, len: usize, range: std::ops::Range<usize>) -> Matrix<f64> {
    m.columns(b * len + range.start, range.len()).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The encoder reads the source only: other targets, of other lengths,
    /// leave its output exactly as it was.
    #[test]
    fn the_encoder_output_does_not_depend_on_the_target(pre_norm: bool, learned: bool, seed: u64) {
        let m = model(pre_norm, learned, seed);
        let mut r = rng(seed ^ 1);
        let source = sequence(4, 9, &mut r);
        let a = m.batch(&[Pair { source: source.clone(), target: sequence(2, 8, &mut r) }]).unwrap();
        let b = m.batch(&[Pair { source, target: sequence(5, 8, &mut r) }]).unwrap();
        prop_assert_eq!(m.encoder_output(&a).unwrap(), m.encoder_output(&b).unwrap());
    }

    /// The causal mask: the logits at decoder position t (which predict
    /// target token t) do not change when target tokens t, t+1, ... change.
    #[test]
    fn the_decoder_at_step_t_does_not_see_later_targets(pre_norm: bool, learned: bool, t in 0..5usize, seed: u64) {
        let m = model(pre_norm, learned, seed);
        let mut r = rng(seed ^ 1);
        let source = sequence(3, 9, &mut r);
        let target = sequence(5, 8, &mut r);
        let mut changed = target.clone();
        for token in &mut changed[t..] {
            *token = 3 + (*token - 3 + 1 + r.random_range(0..4)) % 5;
        }
        let a = m.logits(&m.batch(&[Pair { source: source.clone(), target }]).unwrap()).unwrap();
        let b = m.logits(&m.batch(&[Pair { source, target: changed }]).unwrap()).unwrap();
        // Decoder inputs 0..=t are <s>, y_0 .. y_(t-1): unchanged.
        prop_assert_eq!(cols(&a, 0, 6, 0..t + 1), cols(&b, 0, 6, 0..t + 1));
        prop_assert_ne!(cols(&a, 0, 6, t + 1..6), cols(&b, 0, 6, t + 1..6));
    }

    /// Batching a pair with longer ones pads it on both sides; none of its
    /// own outputs change (the padded positions' outputs are never read).
    #[test]
    fn padding_does_not_change_any_real_output(pre_norm: bool, learned: bool, src in 1..4usize, tgt in 0..3usize, seed: u64) {
        let m = model(pre_norm, learned, seed);
        let mut r = rng(seed ^ 1);
        let short = Pair { source: sequence(src, 9, &mut r), target: sequence(tgt, 8, &mut r) };
        let long = Pair { source: sequence(6, 9, &mut r), target: sequence(5, 8, &mut r) };
        let alone = m.batch(std::slice::from_ref(&short)).unwrap();
        let padded = m.batch(&[long, short.clone()]).unwrap();
        prop_assert_eq!(padded.src_len(), 6);
        prop_assert_eq!(padded.tgt_len(), 6);
        let (enc_alone, enc_padded) = (m.encoder_output(&alone).unwrap(), m.encoder_output(&padded).unwrap());
        let diff = (cols(&enc_alone, 0, src, 0..src) - cols(&enc_padded, 1, 6, 0..src)).abs().max();
        prop_assert!(diff < 1e-12, "encoder output changed by {:e}", diff);
        let (a, b) = (m.logits(&alone).unwrap(), m.logits(&padded).unwrap());
        let diff = (cols(&a, 0, tgt + 1, 0..tgt + 1) - cols(&b, 1, 6, 0..tgt + 1)).abs().max();
        prop_assert!(diff < 1e-12, "logits changed by {:e}", diff);
        // And padded pairs count only their real tokens in the loss.
        prop_assert_eq!(padded.target_tokens(), short.target.len() + 1 + 6);
    }

    /// Decoding one token at a time, with cached keys and values and the
    /// source projected once, computes what the full teacher-forced pass does.
    #[test]
    fn incremental_decoding_equals_the_full_pass(pre_norm: bool, learned: bool, seed: u64) {
        let m = model(pre_norm, learned, seed);
        let mut r = rng(seed ^ 1);
        let pair = Pair { source: sequence(4, 9, &mut r), target: sequence(5, 8, &mut r) };
        let full = m.logits(&m.batch(std::slice::from_ref(&pair)).unwrap()).unwrap();
        let encoded = m.encode(&pair.source).unwrap();
        let mut state = m.decoder_state();
        let inputs = std::iter::once(m.config().specials.start).chain(pair.target.iter().copied());
        for (t, token) in inputs.enumerate() {
            let logits = m.decode_step(&encoded, &mut state, token).unwrap();
            let diff = logits.iter().zip(full.column(t).iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            prop_assert!(diff < 1e-10, "position {}: {:e}", t, diff);
        }
    }

    /// Beam search with one beam is greedy decoding, token for token.
    #[test]
    fn beam_search_of_width_one_is_greedy(pre_norm: bool, alpha in 0.0..1.5f64, len in 1..6usize, seed: u64) {
        let m = model(pre_norm, false, seed);
        let source = sequence(len, 9, &mut rng(seed ^ 1));
        let greedy = m.greedy(&source).unwrap();
        let beam = m.beam_search(&source, &BeamConfig { width: 1, length_penalty: alpha }).unwrap();
        prop_assert_eq!(&beam.tokens, &greedy.tokens);
        prop_assert_eq!(beam.log_prob, greedy.log_prob);
        prop_assert_eq!(beam.finished, greedy.finished);
    }

    /// Whatever the width, the hypothesis beam search returns carries the
    /// log-probability the model gives its tokens (the end token's included
    /// when finished), recomputed here from one teacher-forced pass rather
    /// than from the decoder's cache, and a score that is that divided by
    /// GNMT's length penalty ((5 + length) / 6)^α, written out here; and it
    /// respects the length limit and holds no special token.
    #[test]
    fn beam_search_returns_its_tokens_log_probability_and_score(width in 1..5usize, alpha in 0.0..1.5f64, seed: u64) {
        let m = model(false, false, seed);
        let source = sequence(3, 9, &mut rng(seed ^ 1));
        let h: Hypothesis = m.beam_search(&source, &BeamConfig { width, length_penalty: alpha }).unwrap();
        prop_assert!(h.tokens.len() <= m.config().max_len);
        prop_assert!(h.tokens.iter().all(|&t| Specials::DEFAULT.name(t).is_none()));
        // The tokens scored: the hypothesis, then </s> if it finished. The
        // decoder inputs that predict them: <s> and all but the last.
        let mut scored = h.tokens.clone();
        if h.finished {
            scored.push(m.config().specials.end);
        }
        prop_assert!(!scored.is_empty());
        let target = scored[..scored.len() - 1].to_vec();
        let logits = m.logits(&m.batch(&[Pair { source, target }]).unwrap()).unwrap();
        let log_prob: f64 = scored.iter().enumerate().map(|(t, &token)| {
            let column = logits.column(t);
            let max = column.max();
            let lse = max + column.map(|l| (l - max).exp()).sum().ln();
            column[token as usize] - lse
        }).sum();
        prop_assert!((h.log_prob - log_prob).abs() <= 1e-9 * log_prob.abs().max(1.0), "{} vs {}", h.log_prob, log_prob);
        let length = scored.len() as f64;
        let want = h.log_prob / ((5.0 + length) / 6.0).powf(alpha);
        prop_assert!((h.score - want).abs() <= 1e-12 * want.abs().max(1.0), "score {} vs {}", h.score, want);
    }
}

#[test]
fn the_parameter_count_formula_matches_the_model() {
    use addmul_core::ParametersExt;
    for (pre, learned, tied) in [(false, false, true), (true, true, false), (true, false, true)] {
        let config = TransformerConfig {
            norm: if pre { NormPlacement::Pre } else { NormPlacement::Post },
            positions: if learned { PositionKind::Learned } else { PositionKind::Sinusoidal },
            tie_output: tied,
            n_decoder_layers: 3,
            d_ff: 20,
            ..TransformerConfig::new(9, 8, 8, 2, 2)
        };
        assert_eq!(Transformer::<f32>::new(config, &mut rng(0)).unwrap().num_params(), config.num_params());
    }
    // The paper's base model with separate 37,000-token tables.
    assert_eq!(TransformerConfig::base(37_000, 37_000).num_params(), 82_026_496);
}

#[test]
fn a_batch_adds_start_and_end_and_pads() {
    let m = model(false, false, 0);
    let batch =
        m.batch(&[Pair { source: vec![3, 4], target: vec![5] }, Pair { source: vec![6], target: vec![7, 3] }]).unwrap();
    assert_eq!((batch.len(), batch.src_len(), batch.tgt_len()), (2, 2, 3));
    let (pad, s, e) = (0, 1, 2);
    assert_eq!(batch.decoder_input(), [s, 5, pad, s, 7, 3]);
    assert_eq!(batch.decoder_target(), [5, e, pad, 7, 3, e]);
    assert_eq!(batch.source_padding(), [false, false, false, true]);
    assert_eq!(batch.target_tokens(), 5);
}

/// The special ids come from the configuration alone: a model built with
/// unusual ones batches and decodes with them.
#[test]
fn unusual_special_ids_flow_from_the_config_to_batching_and_decoding() {
    let specials = Specials { pad: 7, start: 5, end: 0 };
    let config = TransformerConfig { specials, max_len: 6, ..TransformerConfig::new(9, 8, 8, 2, 1) };
    let m = Transformer::<f64>::new(config, &mut rng(3)).unwrap();
    let batch =
        m.batch(&[Pair { source: vec![1, 2], target: vec![3] }, Pair { source: vec![4], target: vec![] }]).unwrap();
    assert_eq!(batch.decoder_input(), [5, 3, 5, 7]);
    assert_eq!(batch.decoder_target(), [3, 0, 0, 7]);
    let bad = m.batch(&[Pair { source: vec![1], target: vec![5] }]).unwrap_err();
    assert!(matches!(bad, TransformerError::SpecialToken { name: "<s>", .. }), "{bad}");
    let h = m.greedy(&[1, 2, 3]).unwrap();
    assert!(h.tokens.iter().all(|&t| ![7, 5, 0].contains(&t)), "{h:?}");
}

#[test]
fn bad_input_is_a_typed_error() {
    let m = model(false, false, 0);
    let pair = |source: Vec<u32>, target: Vec<u32>| Pair { source, target };
    let err = m.batch(&[pair(vec![3], vec![3]), pair(vec![], vec![4])]).unwrap_err();
    assert_eq!(err, TransformerError::EmptySource { index: 1 });
    assert_eq!(err.to_string(), "source sequence 1 is empty; the encoder needs at least one token");
    let err = m.batch(&[pair(vec![3; 8], vec![3])]).unwrap_err();
    assert_eq!(err, TransformerError::TooLong { side: Side::Source, index: 0, len: 8, max: 7 });
    // A target of 6 tokens needs 7 decoder inputs (with <s>): the most.
    m.batch(&[pair(vec![3], vec![3; 6])]).unwrap();
    let err = m.batch(&[pair(vec![3], vec![3; 7])]).unwrap_err();
    assert_eq!(err, TransformerError::TooLong { side: Side::Target, index: 0, len: 8, max: 7 });
    let err = m.batch(&[pair(vec![3, 9], vec![3])]).unwrap_err();
    assert!(matches!(err, TransformerError::TokenOutOfRange { side: Side::Source, id: 9, position: 1, .. }));
    let err = m.batch(&[pair(vec![3], vec![2])]).unwrap_err();
    assert!(matches!(err, TransformerError::SpecialToken { side: Side::Target, name: "</s>", .. }), "{err}");
    assert!(matches!(m.batch(&[]), Err(TransformerError::Numeric(_))));
    assert_eq!(m.greedy(&[]).unwrap_err(), TransformerError::EmptySource { index: 0 });
    assert!(matches!(m.greedy(&[3; 9]), Err(TransformerError::TooLong { .. })));
    let err = m.beam_search(&[3], &BeamConfig { width: 0, length_penalty: 0.6 }).unwrap_err();
    assert!(err.to_string().contains("beam width"), "{err}");
    // Feeding the decoder past max_len.
    let encoded = m.encode(&[3]).unwrap();
    let mut state = m.decoder_state();
    for _ in 0..7 {
        m.decode_step(&encoded, &mut state, 3).unwrap();
    }
    assert!(matches!(m.decode_step(&encoded, &mut state, 3), Err(TransformerError::TooLong { .. })));
}

#[test]
fn mismatched_vocabularies_are_typed_errors() {
    let m = model(false, false, 0);
    let src = Vocab::new(Side::Source, ["a", "b", "c", "d", "e", "f"]).unwrap();
    let tgt = Vocab::new(Side::Target, ["u", "v", "w", "x", "y"]).unwrap();
    m.check_vocabularies(&src, &tgt).unwrap();
    let err = m.check_vocabularies(&tgt, &src).unwrap_err();
    assert!(matches!(err, TransformerError::VocabularyMismatch { side: Side::Source, .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "source vocabulary mismatch: the model expects 9 tokens with specials Specials { pad: 0, start: 1, end: 2 }, \
         got 8 tokens with specials Specials { pad: 0, start: 1, end: 2 }"
    );
    assert!(matches!(Vocab::new(Side::Source, ["a", "a"]), Err(TransformerError::DuplicateToken { .. })));
    assert!(matches!(Vocab::new(Side::Source, ["<s>"]), Err(TransformerError::DuplicateToken { .. })));
    assert!(matches!(src.encode(&["a", "z"]), Err(TransformerError::UnknownWord { side: Side::Source, .. })));
}

#[test]
fn bad_configurations_are_typed_errors() {
    let base = TransformerConfig::new(9, 8, 8, 2, 1);
    let bad = |c: TransformerConfig| Transformer::<f32>::new(c, &mut rng(0)).unwrap_err().to_string();
    assert!(bad(TransformerConfig { n_head: 3, ..base }).contains("divisible by n_head"));
    assert!(bad(TransformerConfig { n_encoder_layers: 0, ..base }).contains("n_encoder_layers"));
    assert!(bad(TransformerConfig { dropout: 1.0, ..base }).contains("dropout"));
    let same = Specials { pad: 1, start: 1, end: 2 };
    assert!(bad(TransformerConfig { specials: same, ..base }).contains("three different ids"));
    let outside = Specials { pad: 0, start: 1, end: 8 };
    assert!(bad(TransformerConfig { specials: outside, ..base }).contains("below 8"));
}
