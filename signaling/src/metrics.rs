//! `GET /metrics` (Prometheus text format) and `GET /health` on the daemon's private metrics
//! listener (`[metrics] listen`), plain HTTP like the bridge's and turn's.
//!
//! Figures only: counts of connections, rooms, participants and outcomes, never a room name,
//! a participant or an address (DESIGN.md's privacy rules). Rendered by hand from the hub's
//! state and counters: the appliance runs the bridge in the same process, and the bridge owns
//! the process's global metrics recorder.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::hub::Hub;

/// Events the hub counts for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    connections: AtomicU64,
    joins: [AtomicU64; JoinResult::ALL.len()],
    protocol_errors: AtomicU64,
    bridge_errors: AtomicU64,
}

/// How a join ended, for `signaling_joins_total{result}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinResult {
    Joined,
    Lobby,
    WrongPassword,
    Full,
    RateLimited,
}

impl JoinResult {
    const ALL: [JoinResult; 5] =
        [Self::Joined, Self::Lobby, Self::WrongPassword, Self::Full, Self::RateLimited];

    fn label(self) -> &'static str {
        match self {
            Self::Joined => "joined",
            Self::Lobby => "lobby",
            Self::WrongPassword => "wrong_password",
            Self::Full => "full",
            Self::RateLimited => "rate_limited",
        }
    }
}

impl Counters {
    pub fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn join(&self, result: JoinResult) {
        self.joins[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn protocol_error(&self) {
        self.protocol_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn bridge_error(&self) {
        self.bridge_errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// The hub's figures at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    pub connections: usize,
    pub rooms: usize,
    pub participants: usize,
    pub rooms_on_bridge: usize,
    pub bridges: usize,
}

pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such route\n") })
        .with_state(hub)
}

async fn metrics(State(hub): State<Arc<Hub>>) -> Response {
    let text = render(&hub.gauges(), hub.counters());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// 200 while the hub answers; 503 with the reason when it does not (a lock held for ever
/// would leave every meeting stuck, and a restart cures it).
async fn health(State(hub): State<Arc<Hub>>) -> Response {
    let probe = tokio::task::spawn_blocking(move || hub.gauges());
    match tokio::time::timeout(std::time::Duration::from_secs(2), probe).await {
        Ok(Ok(g)) => {
            let body = serde_json::json!({
                "status": "ok", "connections": g.connections, "rooms": g.rooms, "bridges": g.bridges,
            });
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        _ => {
            let body =
                serde_json::json!({ "status": "unavailable", "reason": "the room hub does not answer" });
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

fn render(g: &Gauges, c: &Counters) -> String {
    let mut out = String::with_capacity(1024);
    let mut gauge = |name: &str, help: &str, value: usize| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    };
    gauge("signaling_connections", "Open WebSocket connections.", g.connections);
    gauge("signaling_rooms", "Rooms with at least one member or lobby member.", g.rooms);
    gauge("signaling_participants", "Members of all rooms.", g.participants);
    gauge("signaling_rooms_on_bridge", "Rooms whose media goes through a bridge.", g.rooms_on_bridge);
    gauge("signaling_bridges", "Bridges configured.", g.bridges);
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP signaling_connections_total WebSocket connections accepted.\n\
         # TYPE signaling_connections_total counter\nsignaling_connections_total {}",
        load(&c.connections)
    );
    let _ = writeln!(
        out,
        "# HELP signaling_joins_total Join attempts by result.\n# TYPE signaling_joins_total counter"
    );
    for result in JoinResult::ALL {
        let _ = writeln!(
            out,
            "signaling_joins_total{{result=\"{}\"}} {}",
            result.label(),
            load(&c.joins[result as usize])
        );
    }
    let _ = writeln!(
        out,
        "# HELP signaling_protocol_errors_total Messages answered with an error.\n\
         # TYPE signaling_protocol_errors_total counter\nsignaling_protocol_errors_total {}",
        load(&c.protocol_errors)
    );
    let _ = writeln!(
        out,
        "# HELP signaling_bridge_errors_total Offers a bridge could not answer.\n\
         # TYPE signaling_bridge_errors_total counter\nsignaling_bridge_errors_total {}",
        load(&c.bridge_errors)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_rendered_with_its_type() {
        let counters = Counters::default();
        counters.connection();
        counters.join(JoinResult::Joined);
        counters.join(JoinResult::Joined);
        counters.join(JoinResult::RateLimited);
        counters.protocol_error();
        let gauges = Gauges { connections: 3, rooms: 1, participants: 2, rooms_on_bridge: 0, bridges: 1 };
        let text = render(&gauges, &counters);
        for line in [
            "signaling_connections 3",
            "signaling_rooms 1",
            "signaling_participants 2",
            "signaling_rooms_on_bridge 0",
            "signaling_bridges 1",
            "signaling_connections_total 1",
            "signaling_joins_total{result=\"joined\"} 2",
            "signaling_joins_total{result=\"rate_limited\"} 1",
            "signaling_joins_total{result=\"full\"} 0",
            "signaling_protocol_errors_total 1",
            "signaling_bridge_errors_total 0",
            "# TYPE signaling_joins_total counter",
            "# TYPE signaling_rooms gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing from:\n{text}");
        }
    }
}
