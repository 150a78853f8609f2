//! The pages, their style sheet and script, embedded in the binary: the
//! explorer works offline and serves nothing it was not built with.

use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// `(path, content type, body)` of everything the explorer serves besides
/// its API.
pub const ASSETS: &[(&str, &str, &str)] = &[
    ("/", HTML, include_str!("assets/index.html")),
    ("/neuron", HTML, include_str!("assets/neuron.html")),
    ("/tokens", HTML, include_str!("assets/tokens.html")),
    ("/embeddings", HTML, include_str!("assets/embeddings.html")),
    ("/attention", HTML, include_str!("assets/attention.html")),
    ("/next", HTML, include_str!("assets/next.html")),
    ("/train", HTML, include_str!("assets/train.html")),
    ("/translate", HTML, include_str!("assets/translate.html")),
    ("/assets/explore.css", "text/css; charset=utf-8", include_str!("assets/explore.css")),
    ("/assets/explore.js", "text/javascript; charset=utf-8", include_str!("assets/explore.js")),
];

const HTML: &str = "text/html; charset=utf-8";

/// Serves the asset at the request's path.
pub async fn serve(uri: Uri) -> Response {
    match ASSETS.iter().find(|(path, _, _)| *path == uri.path()) {
        Some((_, kind, body)) => {
            ([(header::CONTENT_TYPE, *kind), (header::CACHE_CONTROL, "no-cache")], *body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// The content type of a file of the built book, by its extension.
pub fn content_type(path: &std::path::Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => HTML,
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_page_is_served() {
        for page in super::super::PAGES {
            assert!(
                super::ASSETS.iter().any(|(path, kind, _)| path == page && kind.starts_with("text/html")),
                "{page}"
            );
        }
    }
}
