//! The control API's routes (documented for clients in `bridge/API.md`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde_json::json;

use super::auth::authorized;
use crate::sfu::Registry;
use crate::sfu::ids::{ConferenceId, EndpointId};
use crate::sfu::registry::{ApiError, EndpointUpdate};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// What the routes need.
#[derive(Debug)]
pub struct ApiState {
    pub registry: Arc<Registry>,
    pub secret: Vec<u8>,
    /// Host candidates announced to participants.
    pub announce: Vec<IpAddr>,
    pub media_port: u16,
    pub workers: usize,
    pub backend: &'static str,
    /// Wakes the housekeeping task when the first conference appears.
    pub wake_housekeeping: tokio::sync::Notify,
}

type Shared = State<Arc<ApiState>>;

pub fn router(state: Arc<ApiState>) -> Router {
    let router = Router::new()
        .route("/v1/health", get(health))
        .route("/v1/stats", get(stats))
        .route("/v1/drain", post(drain))
        .route("/v1/conferences", post(create_conference))
        .route("/v1/conferences/{conference}", get(conference_status).delete(delete_conference))
        .route("/v1/conferences/{conference}/endpoints", post(create_endpoint))
        .route(
            "/v1/conferences/{conference}/endpoints/{endpoint}",
            patch(update_endpoint).delete(delete_endpoint),
        );
    #[cfg(feature = "test-tap")]
    let router = router.route("/v1/test/tap", get(test_tap));
    let authenticated = router
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(DefaultBodyLimit::max(MAX_BODY));
    // For load balancers and service checks, which hold no secret: the status and nothing else.
    Router::new().route("/health", get(public_health)).merge(authenticated).with_state(state)
}

/// `GET /health` without the secret: 200 `ok`, or 503 with the reason.
async fn public_health(State(state): Shared) -> Response {
    if state.registry.is_draining() {
        let body = json!({ "status": "draining", "reason": "the bridge takes no new conferences" });
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    } else {
        (StatusCode::OK, axum::Json(json!({ "status": "ok" }))).into_response()
    }
}

async fn authenticate(State(state): Shared, request: Request, next: Next) -> Response {
    let header = request.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if !authorized(header, &state.secret) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong Authorization: Bearer secret");
    }
    next.run(request).await
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest(m) => error(StatusCode::BAD_REQUEST, &m),
            ApiError::NotFound(what) => error(StatusCode::NOT_FOUND, &format!("no such {what}")),
            ApiError::Conflict(m) => error(StatusCode::CONFLICT, &m),
            ApiError::Unavailable(m) => error(StatusCode::SERVICE_UNAVAILABLE, &m),
        }
    }
}

fn conference_id(text: &str) -> Result<ConferenceId, ApiError> {
    text.parse().map_err(|()| ApiError::NotFound("conference"))
}

fn endpoint_id(text: &str) -> Result<EndpointId, ApiError> {
    text.parse().map_err(|()| ApiError::NotFound("endpoint"))
}

/// Parses a JSON body, naming what is wrong. An empty body reads as `{}`.
fn parse_body<T: serde::de::DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::BadRequest("Content-Type must be application/json".into()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("body: {e}")))
}

async fn health(State(state): Shared) -> Response {
    let (conferences, endpoints) = state.registry.sizes();
    let draining = state.registry.is_draining();
    let body = json!({
        "status": if draining { "draining" } else { "ok" },
        "conferences": conferences,
        "endpoints": endpoints,
        "workers": state.workers,
        "backend": state.backend,
    });
    let status = if draining { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, axum::Json(body)).into_response()
}

/// Conferences, endpoints, packet rate, drops, CPU and stress: what a signaling daemon needs to
/// choose a bridge for a new conference.
async fn stats(State(state): Shared) -> Response {
    let load = state.registry.load(Instant::now());
    let drops: serde_json::Map<String, serde_json::Value> =
        load.drops.iter().map(|(reason, n)| (reason.as_str().to_owned(), json!(n))).collect();
    let body = json!({
        "conferences": load.conferences,
        "endpoints": load.endpoints,
        "draining": load.draining,
        "rtp_forwarded_total": load.forwarded,
        "rtp_forwarded_per_second": load.forwarded_per_second,
        "drops_total": load.drops.iter().map(|(_, n)| n).sum::<u64>(),
        "drops": drops,
        "cpu_busy": load.cpu_busy,
        "stress": load.stress,
        "workers": state.workers,
    });
    axum::Json(body).into_response()
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DrainRequest {
    draining: bool,
}

impl Default for DrainRequest {
    /// An empty body drains.
    fn default() -> Self {
        Self { draining: true }
    }
}

/// Starts (or cancels) a drain: new conferences are refused, current ones go on.
async fn drain(State(state): Shared, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let request = parse_body::<DrainRequest>(&headers, &body)?;
    state.registry.set_draining(request.draining);
    let (conferences, endpoints) = state.registry.sizes();
    tracing::info!(draining = request.draining, conferences, endpoints, "drain set through the control API");
    let body = json!({ "draining": request.draining, "conferences": conferences, "endpoints": endpoints });
    Ok(axum::Json(body).into_response())
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

async fn create_conference(
    State(state): Shared,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    parse_body::<NoFields>(&headers, &body)?;
    let id = state.registry.create_conference(Instant::now())?;
    state.wake_housekeeping.notify_one();
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": id.to_string() }))).into_response())
}

async fn conference_status(
    State(state): Shared,
    Path(conference): Path<String>,
) -> Result<Response, ApiError> {
    let status = state.registry.conference_status(conference_id(&conference)?)?;
    Ok(axum::Json(status).into_response())
}

async fn delete_conference(
    State(state): Shared,
    Path(conference): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.registry.delete_conference(conference_id(&conference)?)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_endpoint(
    State(state): Shared,
    Path(conference): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    parse_body::<NoFields>(&headers, &body)?;
    let created = state.registry.create_endpoint(conference_id(&conference)?, Instant::now())?;
    let candidates: Vec<_> = state
        .announce
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            json!({
                "foundation": (i + 1).to_string(),
                "component": 1,
                "transport": "udp",
                // Host candidate priority (RFC 8445 §5.1.2.1) with type preference 126, the
                // first announced address preferred.
                "priority": (126u32 << 24) | ((65535 - i as u32) << 8) | 255,
                "ip": ip.to_string(),
                "port": state.media_port,
                "type": "host",
            })
        })
        .collect();
    let body = json!({
        "id": created.id.to_string(),
        "ice": {
            "ufrag": created.ufrag,
            "pwd": created.password,
            "lite": true,
            "candidates": candidates,
        },
        "dtls": {
            "setup": "passive",
            "fingerprint": { "hash": "sha-256", "value": created.fingerprint },
        },
    });
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

async fn update_endpoint(
    State(state): Shared,
    Path((conference, endpoint)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let update: EndpointUpdate = parse_body(&headers, &body)?;
    let status =
        state.registry.update_endpoint(conference_id(&conference)?, endpoint_id(&endpoint)?, update)?;
    Ok(axum::Json(status).into_response())
}

async fn delete_endpoint(
    State(state): Shared,
    Path((conference, endpoint)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.registry.delete_endpoint(conference_id(&conference)?, endpoint_id(&endpoint)?)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Test builds only: what the tap recorded (`bridge/API.md`).
#[cfg(feature = "test-tap")]
async fn test_tap(State(state): Shared) -> Response {
    match state.registry.tap() {
        Some(tap) => axum::Json(tap.to_json()).into_response(),
        None => error(StatusCode::NOT_FOUND, "test tap off: set [test_tap] records"),
    }
}
