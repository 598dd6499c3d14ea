//! Server-rendered dashboard pages.

use axum::Router;
use mtdesk_http::AppState;

/// Every dashboard route, merged by the binary next to the API.
pub fn router() -> Router<AppState> {
    Router::new()
}
