//! The live dashboard: one page with its script (uPlot charts) and style, embedded in the binary.
//! The page asks for an admin token and reads everything through the admin API; it holds no data
//! itself.

use axum::{
    Router,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};

use crate::AppState;

// Built from `web/` (src/dashboard, pages/dashboard.html) by this crate's `build.rs`.
const HTML: &str = built!("dashboard.html");
const JS: &str = built!("dashboard.js");
const CSS: &str = built!("dashboard.css");

/// Scripts and styles from this origin only; nothing inline, no frames.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// `/dashboard`, `/dashboard/app.js`, `/dashboard/app.css`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/dashboard",
            get(|| async { asset("text/html; charset=utf-8", HTML) }),
        )
        .route(
            "/dashboard/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
        .route(
            "/dashboard/app.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
}
