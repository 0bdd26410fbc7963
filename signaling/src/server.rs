//! HTTPS and WebSocket: a TLS accept loop feeding hyper, the routes, and one task pair per
//! WebSocket (reader and writer) around the hub.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::hub::{Hub, Outgoing};
use crate::protocol::{self, ProtocolError};
use crate::web;

/// Protocol errors one connection may make before it is closed.
pub const MAX_PROTOCOL_ERRORS: u32 = 20;
/// A TLS handshake that takes longer than this is dropped (slowloris).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The peer's address, attached to each request of its connection.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/", get(web::index))
        .route("/app.js", get(web::app_js))
        .route("/sframe.js", get(web::sframe_js))
        .route("/e2ee-worker.js", get(web::e2ee_worker_js))
        .route("/style.css", get(web::style_css))
        .route("/api/room-name", get(web::room_name))
        .route("/ws", get(websocket))
        .route("/{room}", get(web::index))
        .with_state(hub)
}

/// Accepts TLS connections forever, each served on its own task.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, hub: Arc<Hub>) {
    let acceptor = TlsAcceptor::from(tls);
    let app = router(hub);
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return; // not TLS, or too slow: nothing to say to it
            };
            let service = app
                .layer(Extension(Peer(addr)))
                .map_request(|r: hyper::Request<hyper::body::Incoming>| r.map(axum::body::Body::new));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
                .await;
        });
    }
}

async fn websocket(
    State(hub): State<Arc<Hub>>,
    Extension(Peer(addr)): Extension<Peer>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // The library's own limit is generous; our 64 KiB limit is checked per message so an
    // oversized one gets a clear error instead of a dropped connection.
    upgrade
        .max_message_size(1 << 20)
        .max_frame_size(1 << 20)
        .on_upgrade(move |socket| session(hub, addr.ip(), socket))
}

/// One participant's connection: reads and validates frames, hands them to the hub, and
/// writes what the hub queues for it.
async fn session(hub: Arc<Hub>, source: IpAddr, socket: WebSocket) {
    let (conn, mut outbox) = hub.connect(source);
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(outgoing) = outbox.recv().await {
            match outgoing {
                Outgoing::Message(message) => {
                    let text = serde_json::to_string(&message).expect("server messages serialize");
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Outgoing::Close => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame { code: 1000, reason: "bye".into() })))
                        .await;
                    break;
                }
            }
        }
    });
    let mut errors = 0;
    while let Some(Ok(frame)) = stream.next().await {
        let result = match frame {
            Message::Text(text) => protocol::parse(text.as_str()),
            Message::Binary(_) => Err(ProtocolError::bad("binary frames are not part of the protocol")),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        match result {
            Ok(message) => hub.handle(conn, message),
            Err(error) => {
                errors += 1;
                hub.counters().protocol_error();
                hub.reject(conn, error);
                if errors >= MAX_PROTOCOL_ERRORS {
                    tracing::debug!(conn, "closing after {errors} protocol errors");
                    break;
                }
            }
        }
        if writer.is_finished() {
            break;
        }
    }
    hub.disconnect(conn);
    // Let the writer flush what was queued (the errors, `left`), then stop it.
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
}
