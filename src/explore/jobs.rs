//! The Train page's job: one `addmul train` run at a time, on a thread of
//! its own, streamed to every page that watches it from the run's log
//! (`log.jsonl`), so that a reloaded page sees the whole run again.

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;

use super::api::{EvalEvent, StepEvent, TrainRequest, TrainStatus};
use super::compute::LoadedModel;
use super::{ApiError, Explorer, MAX_TRAIN_TEXT_BYTES};
use crate::app::{self, TrainOptions};
use crate::text::TokenizerKind;
use crate::{Error, corpus};

type Answer<T> = std::result::Result<T, ApiError>;

/// A training run started from the page.
#[derive(Debug)]
pub struct Job {
    status: Arc<Mutex<TrainStatus>>,
}

fn lock(job: &Arc<Mutex<TrainStatus>>) -> std::sync::MutexGuard<'_, TrainStatus> {
    job.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The job's status, if one was started.
pub fn status(state: &Explorer) -> Option<TrainStatus> {
    state.job.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(|j| lock(&j.status).clone())
}

/// `POST /api/train`: starts a run into `runs/explore-<preset>` (replacing
/// the explorer's previous run of that preset); when it ends, its model is
/// the one the pages use.
///
/// # Errors
/// A 409 while a job runs; a 400 for an unknown preset or text, or a bad
/// number of steps.
pub fn start(state: &Arc<Explorer>, request: TrainRequest) -> Answer<TrainStatus> {
    let mut slot = state.job.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(job) = slot.as_ref()
        && lock(&job.status).state == "running"
    {
        return Err(ApiError::status(
            StatusCode::CONFLICT,
            "a training job is already running: stop it first (one job at a time)",
        ));
    }
    if !["tiny", "cpu-small"].contains(&request.preset.as_str()) {
        return Err(ApiError::bad(format!("preset `{}`: expected tiny or cpu-small", request.preset)));
    }
    let mut overrides = Vec::new();
    if let Some(steps) = request.max_iters {
        if !(1..=100_000).contains(&steps) {
            return Err(ApiError::bad(format!("max_iters {steps}: must be 1 to 100000")));
        }
        overrides.push(("max_iters".to_string(), steps.to_string()));
        // Measure the losses about twenty times along the way.
        overrides.push(("eval_interval".to_string(), (steps / 20).max(1).to_string()));
    }
    let out = state.runs().join(format!("explore-{}", request.preset));
    let data = match request.text.as_str() {
        "tinyshakespeare" => None,
        "book" => Some(write_text(state, "explore-book.txt", crate::corpus::book_text())?),
        "pasted" => {
            let text = request.pasted.as_deref().unwrap_or("");
            if text.chars().count() < 100 {
                return Err(ApiError::bad("paste at least 100 characters of text to train on"));
            }
            if text.len() > MAX_TRAIN_TEXT_BYTES {
                return Err(ApiError::bad(format!("the pasted text is longer than {MAX_TRAIN_TEXT_BYTES} bytes")));
            }
            Some(write_text(state, "explore-pasted.txt", text)?)
        }
        other => return Err(ApiError::bad(format!("text `{other}`: expected book, tinyshakespeare or pasted"))),
    };
    let config = app::train_config(&request.preset, None, &overrides)?;
    let options = TrainOptions {
        config,
        data,
        remote: corpus::Remote::tinyshakespeare(),
        out: out.clone(),
        resume: false,
        force: true,
        base: None,
        lora: None,
        given: overrides.iter().map(|(k, _)| k.clone()).collect(),
        tokenizer: TokenizerKind::Char,
        vocab_size: 1024,
        sample_chars: 0,
        quiet: true,
    };
    let status = Arc::new(Mutex::new(TrainStatus {
        preset: request.preset.clone(),
        state: "running".into(),
        run: out.display().to_string(),
        max_iters: options.config.max_iters,
        message: "starting".into(),
    }));
    // The old run's log goes first, so that watchers see only this run.
    let _ = std::fs::remove_file(out.join("log.jsonl"));
    let (job_status, said, explorer) = (status.clone(), status.clone(), state.clone());
    std::thread::Builder::new()
        .name("explore-train".into())
        .spawn(move || {
            let say = move |line: &str| lock(&said).message = line.to_string();
            let result = app::train(&options, &mut std::io::sink(), say).and_then(|_| LoadedModel::load(&options.out));
            let mut status = lock(&job_status);
            match result {
                Ok(model) => {
                    explorer.set_model(model);
                    status.state = "done".into();
                }
                Err(Error::Gpt(addmul_gpt::GptError::Stopped { .. })) => {
                    if let Ok(model) = LoadedModel::load(&options.out) {
                        explorer.set_model(model);
                    }
                    status.state = "stopped".into();
                }
                Err(e) => {
                    status.state = "failed".into();
                    status.message = e.to_string();
                }
            }
        })
        .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot start a thread: {e}")))?;
    let answer = lock(&status).clone();
    *slot = Some(Job { status });
    Ok(answer)
}

fn write_text(state: &Explorer, name: &str, text: &str) -> Answer<PathBuf> {
    let path = state.runs().join(name);
    addmul_gpt::checkpoint::write_atomically(&path, text.as_bytes()).map_err(|e| {
        ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot write {}: {e}", path.display()))
    })?;
    Ok(path)
}

/// `POST /api/train/stop`: the run stops after its current step and saves a
/// checkpoint (as Ctrl-C does).
///
/// # Errors
/// A 409 when nothing is running.
pub fn stop(state: &Explorer) -> Answer<TrainStatus> {
    let slot = state.job.lock().unwrap_or_else(PoisonError::into_inner);
    match slot.as_ref() {
        Some(job) if lock(&job.status).state == "running" => {
            app::request_stop();
            let mut status = lock(&job.status);
            status.message = "stopping after this step".into();
            Ok(status.clone())
        }
        _ => Err(ApiError::status(StatusCode::CONFLICT, "no training job is running")),
    }
}

/// Reads the whole lines added to the log since `offset`.
fn new_lines(path: &std::path::Path, offset: &mut u64) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(path) else { return Vec::new() };
    if file.seek(SeekFrom::Start(*offset)).is_err() {
        return Vec::new();
    }
    let mut text = String::new();
    if file.read_to_string(&mut text).is_err() {
        return Vec::new();
    }
    let whole = text.rfind('\n').map_or(0, |i| i + 1);
    *offset += whole as u64;
    text[..whole].lines().map(str::to_string).collect()
}

/// A log line as an event for the page.
fn event(line: &str) -> Option<Event> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    match value.get("type")?.as_str()? {
        "step" => {
            let step = StepEvent { step: value.get("step")?.as_u64()?, loss: value.get("loss")?.as_f64()? };
            Event::default().event("step").json_data(step).ok()
        }
        "eval" => {
            let eval = EvalEvent {
                step: value.get("step")?.as_u64()?,
                train: value.get("train_loss")?.as_f64()?,
                val: value.get("val_loss")?.as_f64()?,
            };
            Event::default().event("eval").json_data(eval).ok()
        }
        _ => None,
    }
}

/// `GET /api/train/events`: the job's steps and evaluations from its start,
/// then new ones as they come, then its final status; a `status` event
/// every half second while it runs.
pub async fn events(State(state): State<Arc<Explorer>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    struct Watch {
        state: Arc<Explorer>,
        offset: u64,
        finished: bool,
        pending: std::collections::VecDeque<Event>,
        ticks: u32,
    }
    let watch = Watch { state, offset: 0, finished: false, pending: Default::default(), ticks: 0 };
    let stream = futures_util::stream::unfold(watch, |mut w| async move {
        loop {
            if let Some(e) = w.pending.pop_front() {
                return Some((Ok(e), w));
            }
            if w.finished {
                return None;
            }
            let Some(status) = status(&w.state) else {
                w.finished = true;
                let idle = TrainStatus {
                    preset: String::new(),
                    state: "idle".into(),
                    run: String::new(),
                    max_iters: 0,
                    message: "no training job yet".into(),
                };
                w.pending.push_back(Event::default().event("status").json_data(idle).expect("serialises"));
                continue;
            };
            let log = PathBuf::from(&status.run).join("log.jsonl");
            let running = status.state == "running";
            w.pending.extend(new_lines(&log, &mut w.offset).iter().filter_map(|l| event(l)));
            if !running {
                // Ended: what the log holds was just read; the final status.
                w.finished = true;
                w.pending.push_back(Event::default().event("status").json_data(&status).expect("serialises"));
                continue;
            }
            if w.pending.is_empty() {
                if w.ticks % 5 == 0 {
                    w.pending.push_back(Event::default().event("status").json_data(&status).expect("serialises"));
                }
                w.ticks += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
