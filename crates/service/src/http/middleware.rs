//! What runs around every request: counting it by route and status, the client's request
//! rate (before the API key, so guessing keys is limited too), and the API key.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{AppState, Shared};
use crate::config::ExposeSecret;
use crate::error::ApiError;
use crate::telemetry::RequestLabels;

/// Counts each request by route pattern, method and status.
pub(super) async fn count_requests(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = method_label(request.method()).to_owned();
    let response = next.run(request).await;
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels { route, method, status: response.status().as_u16() })
        .inc();
    response
}

/// The method as a metric label: the standard ones by name, anything else `other`, so that
/// made-up methods from unauthenticated clients cannot create new series without end.
fn method_label(method: &axum::http::Method) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT"];
    KNOWN.into_iter().find(|known| method.as_str() == *known).unwrap_or("other")
}

/// Constant-time comparison (`subtle`), so the key cannot be guessed byte by byte from timings.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// The address a request comes from, as [`crate::client_limits::ClientLimits::client`] decides.
pub(super) fn client_of(
    state: &AppState,
    request_extensions: &axum::http::Extensions,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    let peer = request_extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    state.client_limits.client(peer, headers)
}

/// Refuses a request past its client's rate (checked before the API key, so guessing keys is
/// limited too).
pub(super) async fn limit_rate(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let client = client_of(&state, request.extensions(), request.headers());
    match state.client_limits.check_rate(client) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// Refuses a request without the API key, when one is configured. Browsers cannot set headers
/// on `EventSource` or `<img>`: reads (`GET`, `HEAD`) only may pass it as `?access_token=`.
pub(super) async fn require_api_key(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let Some(key) = &state.api_key else { return next.run(request).await };
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let reads = matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    let from_query =
        request.uri().query().filter(|_| reads).and_then(|q| {
            q.split('&').find_map(|pair| pair.strip_prefix("access_token=")).map(str::to_owned)
        });
    match bearer.or(from_query) {
        Some(given) if same_secret(given.as_bytes(), key.expose_secret().as_bytes()) => {
            next.run(request).await
        }
        _ => ApiError::Unauthorized.into_response(),
    }
}
