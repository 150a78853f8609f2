//! The translation page: chapter 15's encoder-decoder Transformer, trained
//! on demand (about half a minute) on numbers from English to German words.

use std::sync::{Arc, Mutex, PoisonError};

use addmul_core::ParametersExt;
use addmul_transformer::tasks::numbers;
use addmul_transformer::{BeamConfig, Transformer};
use axum::http::StatusCode;

use super::api::{
    BeamCandidate, CrossAttention, TranslateRequest, TranslateResponse, TranslatorStatus, TranslatorTrainRequest,
};
use super::{ApiError, Explorer};
use crate::Error;
use crate::demos::{NumbersOptions, attention_map, numbers_task};

type Answer<T> = std::result::Result<T, ApiError>;

/// The translator and its status.
#[derive(Debug, Default)]
pub struct Translator {
    status: Option<TranslatorStatus>,
    model: Option<Arc<Transformer<f32>>>,
}

fn lock(t: &Mutex<Translator>) -> std::sync::MutexGuard<'_, Translator> {
    t.lock().unwrap_or_else(PoisonError::into_inner)
}

fn none() -> TranslatorStatus {
    TranslatorStatus {
        state: "none".into(),
        steps: 0,
        parameters: 0,
        seconds: 0.0,
        accuracy: 0.0,
        message: String::new(),
    }
}

/// `GET /api/translate/status`.
pub fn status(state: &Explorer) -> Answer<TranslatorStatus> {
    Ok(lock(&state.translator).status.clone().unwrap_or_else(none))
}

/// `POST /api/translate/train`: trains in the background; a 409 while it
/// trains.
///
/// # Errors
/// Steps out of range; already training.
pub fn train(state: &Arc<Explorer>, request: TranslatorTrainRequest) -> Answer<TranslatorStatus> {
    let steps = request.steps.unwrap_or(2000);
    if !(100..=5000).contains(&steps) {
        return Err(ApiError::bad(format!("steps {steps}: must be 100 to 5000")));
    }
    let mut translator = lock(&state.translator);
    if translator.status.as_ref().is_some_and(|s| s.state == "training") {
        return Err(ApiError::status(StatusCode::CONFLICT, "the translator is already training"));
    }
    let options = NumbersOptions {
        steps,
        warmup: (steps / 5).max(1),
        test_size: 200,
        gpt: false,
        progress_every: 0,
        figures: None,
        ..NumbersOptions::default()
    };
    let status = TranslatorStatus { state: "training".into(), steps, ..none() };
    translator.status = Some(status.clone());
    let explorer = state.clone();
    std::thread::Builder::new()
        .name("explore-translator".into())
        .spawn(move || {
            let run = numbers_task(&options, &mut std::io::sink());
            let mut translator = lock(&explorer.translator);
            let status = translator.status.get_or_insert_with(none);
            match run {
                Ok(run) => {
                    status.state = "ready".into();
                    status.parameters = run.model.num_params();
                    status.seconds = run.report.train_seconds;
                    status.accuracy = run.report.greedy_correct as f64 / run.report.test_size as f64;
                    translator.model = Some(Arc::new(run.model));
                }
                Err(e) => {
                    status.state = "failed".into();
                    status.message = e.to_string();
                }
            }
        })
        .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot start a thread: {e}")))?;
    Ok(status)
}

/// Reads a number written in digits or in English words, as the chapter's
/// task writes them ("three hundred forty-two"; "and" is allowed and
/// skipped).
///
/// # Errors
/// A 400 that says what is expected.
pub fn parse_number(text: &str) -> Answer<u32> {
    let refuse = || {
        ApiError::bad(format!(
            "`{}` is not a number from 0 to 999,999 in digits or English words (e.g. 342 or \"three hundred forty-two\")",
            text.trim()
        ))
    };
    let trimmed = text.trim().replace(',', "");
    if !trimmed.is_empty() && trimmed.chars().all(|c| c.is_ascii_digit()) {
        let n: u32 = trimmed.parse().map_err(|_| refuse())?;
        return if n < 1_000_000 { Ok(n) } else { Err(refuse()) };
    }
    let lower = trimmed.to_lowercase().replace('-', " - ");
    let words: Vec<&str> = lower.split_whitespace().filter(|w| *w != "and").collect();
    if words.is_empty() || words.len() > 20 {
        return Err(refuse());
    }
    numbers::parse_english_tokens(&words).ok_or_else(refuse)
}

/// `POST /api/translate`.
///
/// # Errors
/// No translator yet (409); a text that is not a number (400).
pub fn translate(state: &Explorer, request: TranslateRequest) -> Answer<TranslateResponse> {
    let model = lock(&state.translator).model.clone().ok_or_else(|| {
        ApiError::status(StatusCode::CONFLICT, "the translator is not trained yet: press Train on the Translation page")
    })?;
    let width = request.beam.unwrap_or(BeamConfig::PAPER.width);
    if !(1..=8).contains(&width) {
        return Err(ApiError::bad(format!("beam {width}: must be 1 to 8")));
    }
    let n = parse_number(&request.text)?;
    let (en, de) =
        (numbers::english_vocabulary().map_err(Error::from)?, numbers::german_vocabulary().map_err(Error::from)?);
    let english = numbers::english_tokens(n).map_err(Error::from)?;
    let source = en.encode(&english).map_err(Error::from)?;
    let german = |ids: &[u32]| numbers::german_text(&de.tokens(ids));
    let greedy = model.greedy(&source).map_err(Error::from)?;
    let config = BeamConfig { width, ..BeamConfig::PAPER };
    let mut candidates = model.beam_candidates(&source, &config).map_err(Error::from)?;
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let beams = candidates
        .iter()
        .map(|h| BeamCandidate { german: german(&h.tokens), log_prob: h.log_prob, score: h.score })
        .collect();
    let map = attention_map(&model, n, model.config().n_decoder_layers.saturating_sub(1))?;
    Ok(TranslateResponse {
        number: n,
        english: english.iter().map(|s| s.to_string()).collect(),
        reference: numbers::german(n).map_err(Error::from)?,
        greedy: german(&greedy.tokens),
        beams,
        attention: CrossAttention { source: map.source, target: map.target, weights: map.weights },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_words_or_digits_are_read_and_anything_else_is_refused() {
        assert_eq!(parse_number("342").unwrap(), 342);
        assert_eq!(parse_number("three hundred forty-two").unwrap(), 342);
        assert_eq!(parse_number("Seven hundred seventy-seven thousand seven hundred seventy-seven").unwrap(), 777_777);
        assert_eq!(parse_number("zero").unwrap(), 0);
        for n in [1, 12, 20, 21, 100, 101, 999, 1000, 1001, 20_021, 999_999] {
            let words = numbers::english(n).unwrap();
            assert_eq!(parse_number(&words).unwrap(), n, "{words}");
        }
        for bad in ["", "1000000", "two zero", "hundred", "fourty", "one one", "-", "twenty one", "4294967296"] {
            assert!(parse_number(bad).is_err(), "`{bad}` was read");
        }
    }
}
