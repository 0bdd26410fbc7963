//! The daemon's TLS identity: a configured certificate, or a self-signed one made at first
//! start and kept in the state directory (readable by the daemon only).

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;

/// Loads or makes the certificate and builds the server side of TLS (HTTP/1.1 only: the
/// WebSocket upgrade needs it).
pub fn server_config(config: &Config) -> Result<Arc<ServerConfig>, String> {
    let (cert_path, key_path) = if config.tls.cert.is_empty() {
        let dir = &config.server.state_dir;
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        if !cert.exists() || !key.exists() {
            generate(dir, &cert, &key)
                .map_err(|e| format!("self-signed certificate in {}: {e}", dir.display()))?;
            tracing::info!("made a self-signed certificate in {}", dir.display());
        }
        (cert, key)
    } else {
        (config.tls.cert.clone().into(), config.tls.key.clone().into())
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("tls.cert {}: {e}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("tls.key {}: {e}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("tls: {e}"))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

fn generate(dir: &Path, cert_path: &Path, key_path: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
    let write = |path: &Path, text: &str| -> io::Result<()> {
        use std::io::Write;
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
        file.write_all(text.as_bytes())
    };
    write(key_path, &certified.key_pair.serialize_pem())?;
    write(cert_path, &certified.cert.pem())
}
