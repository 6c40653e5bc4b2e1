//! The console's own stylesheet and script, compiled in (nothing is fetched from elsewhere).

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::ConsoleState;

const CSS: &str = include_str!("static/console.css");
const JS: &str = include_str!("static/console.js");

pub(super) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/console/static/console.css", get(css))
        .route("/console/static/console.js", get(js))
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        JS,
    )
}
