//! Bearer-token authentication, and the refusal to serve an open API beyond loopback.
//!
//! Secure by default: with `API_TOKEN` set, every route except the liveness probe and the
//! dashboard's static files (which hold no data; the page asks for the token) needs
//! `Authorization: Bearer <token>`. Without a token the API is open, which `check_bind` allows
//! only on a loopback address. Tokens are compared in constant time (`subtle`) so response timing
//! does not leak how much of a guess was right, and never logged.

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pjsip_safe::Secret;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::Api;

/// Paths anyone may fetch.
pub(super) const PUBLIC_PATHS: &[&str] = &["/healthz", "/", "/app.js", "/style.css"];

/// Refuses an unauthenticated API on an address other machines can reach.
pub fn check_bind(addr: SocketAddr, token: Option<&Secret>) -> anyhow::Result<()> {
    if token.is_none() && !addr.ip().is_loopback() {
        anyhow::bail!(
            "API_ADDR={addr} is reachable from other machines but API_TOKEN is not set: anyone \
             who reaches it could read orders and hang up calls. Set API_TOKEN (e.g. \
             `openssl rand -hex 24`) or bind API_ADDR to 127.0.0.1"
        );
    }
    Ok(())
}

/// `true` when `presented` equals the token, in time independent of where they differ.
pub(super) fn token_matches(token: &Secret, presented: &str) -> bool {
    let expected = token.expose().as_bytes();
    let presented = presented.as_bytes();
    // ct_eq on slices of different lengths returns false at once; the length of the token is not
    // the secret.
    expected.ct_eq(presented).into()
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut response = (status, Json(json!({"error": message}))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"voiceagent\""),
        );
    }
    response
}

/// 401 without credentials, 403 with a wrong token.
pub(super) async fn require_token(
    State(api): State<Api>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &api.settings.token else {
        return next.run(request).await;
    };
    if PUBLIC_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    match presented {
        None => refuse(
            StatusCode::UNAUTHORIZED,
            "this API needs `Authorization: Bearer <API_TOKEN>`",
        ),
        Some(p) if token_matches(token, p.trim()) => next.run(request).await,
        Some(_) => refuse(StatusCode::FORBIDDEN, "the bearer token is not valid"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_match_exactly() {
        let t = Secret::new("0123456789abcdef");
        assert!(token_matches(&t, "0123456789abcdef"));
        assert!(!token_matches(&t, "0123456789abcdeF"));
        assert!(!token_matches(&t, "0123456789abcde"));
        assert!(!token_matches(&t, ""));
    }

    #[test]
    fn an_open_api_is_only_allowed_on_loopback() {
        assert!(check_bind("127.0.0.1:8085".parse().unwrap(), None).is_ok());
        assert!(check_bind("[::1]:8085".parse().unwrap(), None).is_ok());
        let e = check_bind("0.0.0.0:8085".parse().unwrap(), None).unwrap_err();
        assert!(e.to_string().contains("API_TOKEN is not set"), "{e}");
        let t = Secret::new("0123456789abcdef");
        assert!(check_bind("0.0.0.0:8085".parse().unwrap(), Some(&t)).is_ok());
    }
}
