//! The bridge's control API (bridge/API.md), as the daemon drives it: one short HTTP/1.1
//! exchange per call over a fresh loopback connection (calls are rare: joins, leaves,
//! renegotiations, and one state poll a second per bridged meeting).

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::Value;

/// A call that takes longer than this has failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct BridgeClient {
    addr: SocketAddr,
    host: String,
    authorization: String,
}

/// What a new endpoint needs from the bridge (API.md, `POST .../endpoints`).
#[derive(Clone, Debug, Deserialize)]
pub struct NewEndpoint {
    pub id: String,
    pub ice: IceInfo,
    pub dtls: DtlsInfo,
}

#[derive(Clone, Debug, Deserialize)]
pub struct IceInfo {
    pub ufrag: String,
    pub pwd: String,
    pub candidates: Vec<Candidate>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Candidate {
    pub foundation: String,
    pub component: u32,
    pub priority: u32,
    pub ip: String,
    pub port: u16,
}

#[derive(Clone, Debug, Deserialize)]
pub struct DtlsInfo {
    pub fingerprint: FingerprintInfo,
}

#[derive(Clone, Debug, Deserialize)]
pub struct FingerprintInfo {
    pub value: String,
}

/// The part of `GET /v1/stats` placement needs.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct BridgeLoad {
    pub draining: bool,
    pub stress: f64,
    pub endpoints: u64,
}

#[derive(Debug)]
pub struct BridgeError(pub String);

impl std::fmt::Display for BridgeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl BridgeClient {
    /// `url` is `http://host:port` (the control API is on a private address: no TLS).
    pub fn new(url: &str, secret: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("http://").ok_or("bridge.url: must start with http://")?;
        let host = rest.trim_end_matches('/');
        let addr = host.parse().map_err(|e| format!("bridge.url: {e}: {host:?} (an ip:port)"))?;
        Ok(Self { addr, host: host.to_owned(), authorization: format!("Bearer {secret}") })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), BridgeError> {
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?;
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            let bytes = body.map(|b| b.to_string()).unwrap_or_default();
            let request = Request::builder()
                .method(method)
                .uri(path)
                .header("host", &self.host)
                .header("authorization", &self.authorization)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(bytes)))
                .map_err(|e| e.to_string())?;
            let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            let value = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body).unwrap_or(Value::Null)
            };
            Ok::<_, String>((status, value))
        };
        match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(e)) => Err(BridgeError(format!("bridge {path}: {e}"))),
            Err(_) => Err(BridgeError(format!("bridge {path}: no answer in {CALL_TIMEOUT:?}"))),
        }
    }

    async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        ok: StatusCode,
    ) -> Result<Value, BridgeError> {
        let (status, value) = self.call(method, path, body).await?;
        if status == ok {
            Ok(value)
        } else {
            Err(BridgeError(format!("bridge {path}: {status}: {}", value["error"].as_str().unwrap_or(""))))
        }
    }

    pub async fn create_conference(&self) -> Result<String, BridgeError> {
        let value = self.expect(Method::POST, "/v1/conferences", None, StatusCode::CREATED).await?;
        value["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| BridgeError("bridge: conference without id".into()))
    }

    pub async fn create_endpoint(&self, conference: &str) -> Result<NewEndpoint, BridgeError> {
        let path = format!("/v1/conferences/{conference}/endpoints");
        let value = self.expect(Method::POST, &path, None, StatusCode::CREATED).await?;
        serde_json::from_value(value).map_err(|e| BridgeError(format!("bridge {path}: {e}")))
    }

    pub async fn update_endpoint(
        &self,
        conference: &str,
        endpoint: &str,
        body: Value,
    ) -> Result<(), BridgeError> {
        let path = format!("/v1/conferences/{conference}/endpoints/{endpoint}");
        self.expect(Method::PATCH, &path, Some(body), StatusCode::OK).await.map(drop)
    }

    pub async fn delete_endpoint(&self, conference: &str, endpoint: &str) -> Result<(), BridgeError> {
        let path = format!("/v1/conferences/{conference}/endpoints/{endpoint}");
        let (status, _) = self.call(Method::DELETE, &path, None).await?;
        // Gone already is as good as deleted.
        if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(BridgeError(format!("bridge {path}: {status}")))
        }
    }

    /// The bridge's load (`GET /v1/stats`): what conferences are placed by.
    pub async fn load(&self) -> Result<BridgeLoad, BridgeError> {
        let value = self.expect(Method::GET, "/v1/stats", None, StatusCode::OK).await?;
        serde_json::from_value(value).map_err(|e| BridgeError(format!("bridge /v1/stats: {e}")))
    }

    /// The conference's dominant speaker (a bridge endpoint id), or `None` when the
    /// conference is gone.
    pub async fn dominant_speaker(&self, conference: &str) -> Result<Option<Option<String>>, BridgeError> {
        let path = format!("/v1/conferences/{conference}");
        let (status, value) = self.call(Method::GET, &path, None).await?;
        match status {
            StatusCode::OK => Ok(Some(value["dominant_speaker"].as_str().map(str::to_owned))),
            StatusCode::NOT_FOUND => Ok(None),
            other => Err(BridgeError(format!("bridge {path}: {other}"))),
        }
    }
}
