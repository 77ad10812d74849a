//! The web dashboard: three static files compiled into the binary (no CDN, no build step), so
//! the dashboard works on a desk behind a VPN with nothing else installed. The page holds no
//! data; it asks for the API token once, keeps it in `sessionStorage`, and reads everything
//! through the same authenticated API as any other client.

use axum::http::header;
use axum::response::IntoResponse;

const INDEX: &str = include_str!("../../assets/dashboard/index.html");
const APP_JS: &str = include_str!("../../assets/dashboard/app.js");
const STYLE: &str = include_str!("../../assets/dashboard/style.css");

/// The page may only load its own files and talk to its own origin.
const CSP: &str = "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; \
                   frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

pub(super) async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX)
}

pub(super) async fn app_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub(super) async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}
