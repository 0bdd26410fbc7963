//! The web client, embedded in the binary, and the small HTTP API the page uses.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

pub const INDEX_HTML: &str = include_str!("../web/index.html");
pub const APP_JS: &str = include_str!("../web/app.js");
pub const STYLE_CSS: &str = include_str!("../web/style.css");
/// SFrame (RFC 9605) in the browser: loaded by the E2EE worker with `importScripts`.
pub const SFRAME_JS: &str = include_str!("../web/sframe.js");
/// The worker behind `RTCRtpScriptTransform` that encrypts and decrypts frames (invariant 9).
pub const E2EE_WORKER_JS: &str = include_str!("../web/e2ee-worker.js");

/// No third-party requests, no inline script, no referrer leaving the page (the room name is
/// in the URL). The E2EE worker needs nothing more: `worker-src` falls back to `script-src`
/// ('self'), the worker script and its `importScripts("sframe.js")` are same-origin, and
/// WebCrypto is not governed by CSP.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

/// The same page for `/` and for every `/<room>`, existing or not: the response says nothing
/// about rooms.
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn sframe_js() -> Response {
    asset("text/javascript; charset=utf-8", SFRAME_JS)
}

pub async fn e2ee_worker_js() -> Response {
    asset("text/javascript; charset=utf-8", E2EE_WORKER_JS)
}

pub async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

pub async fn room_name() -> Response {
    let body = serde_json::json!({ "name": crate::names::generate() });
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
