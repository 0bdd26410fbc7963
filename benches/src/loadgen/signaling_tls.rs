//! The WebSocket to the signaling daemon: `wss://HOST/ws` over TLS, with any server
//! certificate accepted.
//!
//! loadgen is a test tool pointed at an appliance its operator controls, and the daemon makes
//! itself a self-signed certificate at first start (signaling/src/tls.rs); checking it against
//! a CA would only stop loadgen from working there. Nothing secret crosses this connection:
//! the rooms are loadgen's own, and the DTLS of the media is keyed separately. Never reuse this
//! verifier for anything that trusts what the server says.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;

pub type Socket = WebSocketStream<TlsStream<TcpStream>>;

/// Where the daemon is: what `--signaling` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// The host as written (a name or an address), for SNI and the `Host` header.
    pub host: String,
    pub port: u16,
}

impl Server {
    /// `https://HOST[:PORT][/...]`, `wss://...` or `HOST[:PORT]`; the port defaults to 443,
    /// and any path is ignored (the WebSocket is always `/ws`).
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("wss://")).unwrap_or(url);
        if rest.contains("://") {
            return Err(format!("--signaling {url}: expected https://HOST[:PORT]"));
        }
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            // "[::1]:8443", "host:8443"; a bare IPv6 address needs its brackets.
            Some((host, port)) if !host.is_empty() && !port.contains(']') => {
                let port = port.parse().map_err(|_| format!("--signaling {url}: bad port {port:?}"))?;
                (host, port)
            }
            _ => (authority, 443),
        };
        if host.is_empty() {
            return Err(format!("--signaling {url}: no host"));
        }
        Ok(Self { host: host.to_owned(), port })
    }

    fn host_without_brackets(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "wss://{}:{}/ws", self.host, self.port)
    }
}

/// Opens TCP, TLS and the WebSocket upgrade, all within `timeout`.
pub async fn connect(server: &Server, timeout: Duration) -> Result<Socket, String> {
    let opening = async {
        let addr: SocketAddr = tokio::net::lookup_host((server.host_without_brackets(), server.port))
            .await
            .map_err(|e| format!("{}: {e}", server.host))?
            .next()
            .ok_or_else(|| format!("{}: no address", server.host))?;
        let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let name = ServerName::try_from(server.host_without_brackets().to_owned())
            .map_err(|e| format!("{}: {e}", server.host))?;
        let tls = TlsConnector::from(client_config()?)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS to {addr}: {e}"))?;
        let (socket, _) = tokio_tungstenite::client_async(server.to_string(), tls)
            .await
            .map_err(|e| format!("WebSocket upgrade at {server}: {e}"))?;
        Ok(socket)
    };
    tokio::time::timeout(timeout, opening)
        .await
        .map_err(|_| format!("{server}: no connection in {timeout:?}"))?
}

fn client_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate))
        .with_no_client_auth();
    // The daemon offers HTTP/1.1 only; the WebSocket upgrade needs it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts whatever certificate the daemon presents (see the module docs for why), while
/// still checking that the handshake signatures are made with it.
#[derive(Debug)]
struct AnyCertificate;

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signaling_urls() {
        let at = |host: &str, port| Ok(Server { host: host.into(), port });
        assert_eq!(Server::parse("https://127.0.0.1:8443"), at("127.0.0.1", 8443));
        assert_eq!(Server::parse("https://meet.example/"), at("meet.example", 443));
        assert_eq!(Server::parse("wss://meet.example:9/ws"), at("meet.example", 9));
        assert_eq!(Server::parse("localhost:8443"), at("localhost", 8443));
        assert_eq!(Server::parse("https://[::1]:8443"), at("[::1]", 8443));
        assert_eq!(Server::parse("[::1]"), at("[::1]", 443));
        assert_eq!(Server::parse("https://[::1]:8443").unwrap().host_without_brackets(), "::1");
        assert!(Server::parse("http://x:1").is_err());
        assert!(Server::parse("https://x:port").is_err());
        assert!(Server::parse("https://").is_err());
        assert_eq!(at("h", 1).unwrap().to_string(), "wss://h:1/ws");
    }
}
