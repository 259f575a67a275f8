//! The web page, embedded in the binary so `dsobel serve` needs no files beside it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../../web/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../../web/app.js"),
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../../web/style.css"),
    },
    Asset {
        path: "/favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../../../web/favicon.svg"),
    },
];

/// Paths served from the embedded page (`/` is the index).
pub fn paths() -> impl Iterator<Item = &'static str> {
    std::iter::once("/").chain(ASSETS.iter().map(|a| a.path))
}

/// The embedded file at `path`, with a short cache lifetime (the page changes with the binary).
pub fn asset(path: &str) -> Response {
    let path = if path == "/" { "/index.html" } else { path };
    match ASSETS.iter().find(|a| a.path == path) {
        Some(a) => {
            let mut response = (StatusCode::OK, a.body).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300, must-revalidate"),
            );
            headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
            response
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
