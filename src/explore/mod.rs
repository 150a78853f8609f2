//! `addmul explore`: a local web explorer of every chapter's real model.
//!
//! A small HTTP server (axum on tokio) serves pages embedded in the binary
//! (`src/explore/assets`: plain HTML, CSS and JavaScript, nothing from the
//! network) and a JSON API ([`api`]) that runs the crates' own code: the
//! leaf/flower network, the tokenizers, a GPT's embeddings, attention and
//! next-token probabilities, and training.
//!
//! Safe on a shared machine: it listens on 127.0.0.1 unless told otherwise;
//! bodies and texts are limited; every bad request gets a 4xx JSON error;
//! the model work runs on blocking threads whose panics become a 500 (the
//! server keeps serving); and models are read only from the runs folder and
//! the folder given with `--model` ([`Explorer::allowed`]).

pub mod api;
mod assets;
pub mod compute;
mod jobs;
mod translate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};
use api::ErrorResponse;

pub use compute::{CorpusTokenizers, LoadedModel};

/// The explorer's pages (the book's "Explore it" sections link to them).
pub const PAGES: &[&str] = &["/", "/neuron", "/tokens", "/embeddings", "/attention", "/next", "/train", "/translate"];

/// The largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 4 << 20;
/// The most attention weights one answer sends without being asked for one
/// block (GPT-2 small on its whole context would be 151 million).
pub const MAX_ATTENTION_NUMBERS: usize = 1 << 20;
/// The longest text for the tokens page and prompts, in bytes.
pub const MAX_TEXT_BYTES: usize = 64 << 10;
/// The longest pasted training text, in bytes.
pub const MAX_TRAIN_TEXT_BYTES: usize = 4 << 20;

/// How to start the explorer.
#[derive(Debug, Clone)]
pub struct ExploreOptions {
    /// The address to listen on (127.0.0.1 unless `--host` says otherwise).
    pub host: std::net::IpAddr,
    /// The port (0: any free one).
    pub port: u16,
    /// A model to use (a run, a checkpoint or a Hugging Face GPT-2 folder).
    pub model: Option<PathBuf>,
    /// Where runs are: the explorer trains into it and reads models from it.
    pub runs: PathBuf,
    /// The built book (`book/build`), served under `/book/` for the pages'
    /// chapter links.
    pub book: Option<PathBuf>,
}

/// A request that cannot be served: its status and a sentence for the page.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// A 400: the request is wrong.
    pub fn bad(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    /// A 404, 403, 409, ...: the request is well formed but cannot be met.
    pub fn status(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    /// The status.
    pub fn code(&self) -> StatusCode {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<Error> for ApiError {
    /// The crates' errors are about what was asked (an unknown token, a bad
    /// setting, a missing file): a 400 that says so.
    fn from(e: Error) -> Self {
        ApiError::bad(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(ErrorResponse { error: self.message })).into_response()
    }
}

/// What every handler shares.
#[derive(Debug)]
pub struct Explorer {
    model: RwLock<Option<Arc<LoadedModel>>>,
    tokenizers: OnceLock<Arc<CorpusTokenizers>>,
    runs: PathBuf,
    given: Option<PathBuf>,
    book: Option<PathBuf>,
    job: Mutex<Option<jobs::Job>>,
    translator: Mutex<translate::Translator>,
}

impl Explorer {
    /// The explorer's state: the runs folder (created if missing) and the
    /// model to start with: `model` if given, else `runs/cpu-small` if it
    /// holds a run, else none (the pages offer to train one).
    ///
    /// # Errors
    /// A `model` that cannot be loaded; a runs folder that cannot be made.
    pub fn new(runs: &Path, model: Option<&Path>) -> Result<Self> {
        std::fs::create_dir_all(runs).map_err(|e| Error::Invalid {
            what: format!("the runs folder {}", runs.display()),
            problem: format!("cannot be created: {e}"),
        })?;
        let runs = runs.canonicalize().map_err(|e| Error::Invalid {
            what: format!("the runs folder {}", runs.display()),
            problem: e.to_string(),
        })?;
        let given =
            match model {
                Some(path) => Some(path.canonicalize().map_err(|e| Error::Invalid {
                    what: format!("--model {}", path.display()),
                    problem: e.to_string(),
                })?),
                None => None,
            };
        let start = given.clone().or_else(|| {
            let small = runs.join("cpu-small");
            small.join("latest").is_file().then_some(small)
        });
        let loaded = match start {
            Some(path) => Some(Arc::new(LoadedModel::load(&path)?)),
            None => None,
        };
        Ok(Explorer {
            model: RwLock::new(loaded),
            tokenizers: OnceLock::new(),
            runs,
            given,
            book: None,
            job: Mutex::new(None),
            translator: Mutex::new(translate::Translator::default()),
        })
    }

    /// The model in use, or a 409 that says how to get one.
    ///
    /// # Errors
    /// When there is none.
    pub fn model(&self) -> std::result::Result<Arc<LoadedModel>, ApiError> {
        self.model.read().unwrap_or_else(PoisonError::into_inner).clone().ok_or_else(|| {
            ApiError::status(
                StatusCode::CONFLICT,
                "no model yet: train one on the Train page (the tiny preset takes seconds), \
                 or start the explorer with --model DIR",
            )
        })
    }

    /// Uses `model` from now on.
    pub fn set_model(&self, model: LoadedModel) {
        *self.model.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(model));
    }

    /// The tokenizers trained on the book's text (trained on first use).
    pub fn tokenizers(&self) -> Result<Arc<CorpusTokenizers>> {
        if let Some(t) = self.tokenizers.get() {
            return Ok(t.clone());
        }
        let trained = Arc::new(CorpusTokenizers::train()?);
        Ok(self.tokenizers.get_or_init(|| trained).clone())
    }

    /// Serves the built book in `dir` under `/book/`.
    pub fn with_book(mut self, dir: Option<&Path>) -> Self {
        self.book = dir.and_then(|d| d.canonicalize().ok());
        self
    }

    /// The runs folder.
    pub fn runs(&self) -> &Path {
        &self.runs
    }

    /// The folders models may be read from: the runs folder and the folder
    /// given with `--model`.
    pub fn allowed(&self) -> Vec<&Path> {
        std::iter::once(self.runs.as_path()).chain(self.given.as_deref()).collect()
    }

    /// `path` made absolute, if it is inside one of [`Explorer::allowed`]
    /// (after following links and `..`).
    ///
    /// # Errors
    /// A 404 for a path that does not exist, a 403 for one outside.
    pub fn allowed_path(&self, path: &str) -> std::result::Result<PathBuf, ApiError> {
        let asked = Path::new(path);
        let asked = if asked.is_absolute() { asked.to_path_buf() } else { self.runs.join(asked) };
        let real =
            asked.canonicalize().map_err(|_| ApiError::status(StatusCode::NOT_FOUND, format!("no folder {path}")))?;
        if self.allowed().iter().any(|root| real.starts_with(root)) {
            Ok(real)
        } else {
            Err(ApiError::status(
                StatusCode::FORBIDDEN,
                format!("{path} is outside the folders the explorer may read (the runs folder and --model)"),
            ))
        }
    }

    /// The models that may be chosen: `--model`, and every folder of the runs
    /// folder that holds a run, checkpoint or Hugging Face folder.
    pub fn models(&self) -> Vec<String> {
        let mut out: Vec<String> = self.given.iter().map(|p| p.display().to_string()).collect();
        if let Ok(entries) = std::fs::read_dir(&self.runs) {
            let mut runs: Vec<String> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("latest").is_file() || p.join("config.json").is_file())
                .map(|p| p.display().to_string())
                .collect();
            runs.sort();
            out.extend(runs);
        }
        out
    }
}

/// Reads a JSON request: a 413 for a body over [`MAX_BODY_BYTES`], a 400
/// naming the problem for malformed JSON or unknown fields.
fn parse<T: DeserializeOwned>(body: std::result::Result<Bytes, BytesRejection>) -> std::result::Result<T, ApiError> {
    let body = body.map_err(|e| {
        let status = e.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("the request is larger than {} bytes", MAX_BODY_BYTES)
        } else {
            format!("the request's body could not be read: {e}")
        };
        ApiError::status(status, message)
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("the request is not what this endpoint reads: {e}")))
}

/// Refuses a request whose declared length is over [`MAX_BODY_BYTES`] at
/// once, before any of its body is read (a client that asked to send it
/// only after `100 Continue` never has to).
async fn refuse_large(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return ApiError::status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request is larger than {MAX_BODY_BYTES} bytes"),
        )
        .into_response();
    }
    next.run(request).await
}

/// Runs `work` on a blocking thread (the model work is arithmetic, not
/// waiting): a panic in it becomes a 500 and the server keeps serving.
async fn blocking<T, F>(work: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce() -> std::result::Result<T, ApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => axum::Json(value).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::status(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the explorer failed on this request ({}); it is still serving", panic_text(e)),
        )
        .into_response(),
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into()),
        Err(e) => e.to_string(),
    }
}

/// `POST` handlers: parse the body, then compute on a blocking thread.
macro_rules! endpoint {
    ($name:ident, $request:ty, $work:path) => {
        async fn $name(
            State(state): State<Arc<Explorer>>,
            body: std::result::Result<Bytes, BytesRejection>,
        ) -> Response {
            let request: $request = match parse(body) {
                Ok(r) => r,
                Err(e) => return e.into_response(),
            };
            blocking(move || $work(&state, request)).await
        }
    };
}

endpoint!(neuron, api::NeuronRequest, compute::neuron_endpoint);
endpoint!(neuron_train, api::NeuronTrainRequest, compute::neuron_train_endpoint);
endpoint!(tokens, api::TokensRequest, compute::tokens);
endpoint!(embeddings, api::EmbeddingsRequest, compute::embeddings);
endpoint!(attention, api::AttentionRequest, compute::attention);
endpoint!(next, api::NextRequest, compute::next);
endpoint!(kv_cache, api::KvCacheRequest, compute::kv_cache);
endpoint!(sample, api::SampleRequest, compute::sample);
endpoint!(model, api::ModelRequest, compute::choose_model);
endpoint!(train, api::TrainRequest, jobs::start);
endpoint!(translate, api::TranslateRequest, translate::translate);
endpoint!(translator_train, api::TranslatorTrainRequest, translate::train);

async fn translator_status(State(state): State<Arc<Explorer>>) -> Response {
    blocking(move || translate::status(&state)).await
}

async fn status(State(state): State<Arc<Explorer>>) -> Response {
    blocking(move || {
        Ok(api::Status {
            model: state.model.read().unwrap_or_else(PoisonError::into_inner).as_ref().map(|m| m.info()),
            models: state.models(),
            training: jobs::status(&state),
        })
    })
    .await
}

async fn stop(State(state): State<Arc<Explorer>>) -> Response {
    blocking(move || jobs::stop(&state)).await
}

/// `GET /book/...`: a file of the built book, if the explorer was given one
/// (nothing outside its folder: the path is resolved and checked).
async fn book(State(state): State<Arc<Explorer>>, uri: Uri) -> Response {
    let Some(root) = state.book.as_deref() else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "the book is not built here: run `cargo xtask book` in the addmul folder, then start the explorer there \
             (or give --book DIR)",
        )
            .into_response();
    };
    let rest = uri.path().trim_start_matches("/book/");
    let rest = if rest.is_empty() || rest == "/book" { "index.html" } else { rest };
    let file = root.join(rest);
    match file.canonicalize() {
        Ok(real) if real.starts_with(root) && real.is_file() => match tokio::fs::read(&real).await {
            Ok(bytes) => ([(header::CONTENT_TYPE, assets::content_type(&real))], bytes).into_response(),
            Err(_) => not_found(uri).await,
        },
        _ => not_found(uri).await,
    }
}

async fn not_found(uri: Uri) -> Response {
    let message = format!("nothing at {}", uri.path());
    if uri.path().starts_with("/api/") {
        ApiError::status(StatusCode::NOT_FOUND, message).into_response()
    } else {
        (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message).into_response()
    }
}

/// The explorer's routes.
pub fn router(state: Arc<Explorer>) -> Router {
    let mut app = Router::new()
        .route("/api/status", get(status))
        .route("/api/model", post(model))
        .route("/api/neuron", post(neuron))
        .route("/api/neuron/train", post(neuron_train))
        .route("/api/tokens", post(tokens))
        .route("/api/embeddings", post(embeddings))
        .route("/api/attention", post(attention))
        .route("/api/next", post(next))
        .route("/api/kv-cache", post(kv_cache))
        .route("/api/sample", post(sample))
        .route("/api/train", post(train))
        .route("/api/train/stop", post(stop))
        .route("/api/train/events", get(jobs::events))
        .route("/api/translate", post(translate))
        .route("/api/translate/train", post(translator_train))
        .route("/api/translate/status", get(translator_status))
        .route("/book", get(book))
        .route("/book/", get(book))
        .route("/book/{*rest}", get(book));
    for (path, _, _) in assets::ASSETS {
        app = app.route(path, get(assets::serve));
    }
    app.fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(refuse_large))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, "the explorer failed on this request").into_response()
        }))
        .with_state(state)
}

/// Starts the explorer and serves until the process is stopped. `say`
/// receives the address (first) and warnings.
///
/// # Errors
/// A model that cannot be loaded; an address that cannot be listened on.
pub fn run(options: &ExploreOptions, open: bool, mut say: impl FnMut(&str)) -> Result<()> {
    let state = Arc::new(Explorer::new(&options.runs, options.model.as_deref())?.with_book(options.book.as_deref()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid { what: "the explorer's threads".into(), problem: e.to_string() })?;
    runtime.block_on(async move {
        let address = SocketAddr::new(options.host, options.port);
        let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| Error::Invalid {
            what: format!("the address {address}"),
            problem: format!("cannot be listened on: {e}"),
        })?;
        let bound =
            listener.local_addr().map_err(|e| Error::Invalid { what: "the address".into(), problem: e.to_string() })?;
        let url = format!("http://{bound}/");
        say(&format!("explorer: {url}"));
        if !options.host.is_loopback() {
            say(&format!(
                "warning: listening on {}: anyone who can reach this machine can use the explorer (and start training)",
                options.host
            ));
        }
        if let Some(m) = state.model.read().unwrap_or_else(PoisonError::into_inner).as_ref() {
            say(&format!("model: {}", m.info().path));
        } else {
            say("model: none yet (train one on the Train page, or start with --model DIR)");
        }
        if open {
            open_browser(&url, &mut say);
        }
        axum::serve(listener, router(state))
            .await
            .map_err(|e| Error::Invalid { what: "the explorer".into(), problem: e.to_string() })
    })
}

/// Opens `url` in the desktop's browser, where there is one.
fn open_browser(url: &str, say: &mut dyn FnMut(&str)) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => {}
        Err(e) => say(&format!("could not open a browser ({opener}: {e}); open {url} yourself")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_the_work_is_a_500_with_a_message_and_the_next_request_is_served() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let failed = blocking(|| -> std::result::Result<u8, ApiError> { panic!("index out of bounds") }).await;
            assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let body = axum::body::to_bytes(failed.into_body(), 1 << 16).await.unwrap();
            let error: ErrorResponse = serde_json::from_slice(&body).unwrap();
            assert!(
                error.error.contains("index out of bounds") && error.error.contains("still serving"),
                "{}",
                error.error
            );
            let served = blocking(|| -> std::result::Result<u8, ApiError> { Ok(7) }).await;
            assert_eq!(served.status(), StatusCode::OK);
        });
    }

    #[test]
    fn paths_outside_the_runs_and_the_given_model_are_refused() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp/explore-allowed");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("runs/a")).unwrap();
        std::fs::create_dir_all(root.join("elsewhere")).unwrap();
        let state = Explorer::new(&root.join("runs"), None).unwrap();
        assert!(state.allowed_path("a").is_ok());
        assert_eq!(state.allowed_path("../elsewhere").unwrap_err().code(), StatusCode::FORBIDDEN);
        assert_eq!(
            state.allowed_path(root.join("elsewhere").to_str().unwrap()).unwrap_err().code(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(state.allowed_path("a/../../elsewhere").unwrap_err().code(), StatusCode::FORBIDDEN);
        assert_eq!(state.allowed_path("missing").unwrap_err().code(), StatusCode::NOT_FOUND);
        #[cfg(unix)]
        {
            // A link inside the runs folder that leads outside it.
            std::os::unix::fs::symlink(root.join("elsewhere"), root.join("runs/link")).unwrap();
            assert_eq!(state.allowed_path("link").unwrap_err().code(), StatusCode::FORBIDDEN);
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
