//! The stylesheet and the optional script, compiled into the binary so a deployment is one file.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const APP_CSS: &str = include_str!("../static/app.css");
const APP_JS: &str = include_str!("../static/app.js");

/// Pages link assets with `?v=<version>`, so a day of caching never serves a stale file after an upgrade.
const CACHE: &str = "public, max-age=86400";

/// `GET /static/app.css`.
pub async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        APP_CSS,
    )
        .into_response()
}

/// `GET /static/app.js`: progressive enhancement only; every flow works without it.
pub async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        APP_JS,
    )
        .into_response()
}
