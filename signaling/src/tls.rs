//! The daemon's TLS identity: a configured certificate, or a self-signed one made at first
//! start and kept in the state directory (readable by the daemon only).

use std::io;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::Config;

/// Loads or makes the certificate and builds the server side of TLS (HTTP/1.1 only: the
/// WebSocket upgrade needs it).
pub fn server_config(config: &Config) -> Result<Arc<ServerConfig>, String> {
    reloadable_server_config(config).map(|(server, _)| server)
}

/// As [`server_config`], and the slot that [`Certificate::reload`] replaces the certificate in
/// while the server runs (SIGHUP): new handshakes get the new one.
pub fn reloadable_server_config(config: &Config) -> Result<(Arc<ServerConfig>, Arc<Certificate>), String> {
    let certificate = Arc::new(Certificate(RwLock::new(load(config)?)));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(certificate.clone());
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(server), certificate))
}

/// The certificate the server presents, replaceable while it runs.
#[derive(Debug)]
pub struct Certificate(RwLock<Arc<CertifiedKey>>);

impl Certificate {
    /// Reads the configured files again (or the self-signed pair). A broken certificate is an
    /// error and the old one stays.
    pub fn reload(&self, config: &Config) -> Result<(), String> {
        let key = load(config)?;
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = key;
        Ok(())
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }
}

/// The configured chain and key, or the self-signed pair in the state directory (made on first
/// use), checked to belong together.
fn load(config: &Config) -> Result<Arc<CertifiedKey>, String> {
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
    if chain.is_empty() {
        return Err(format!("tls.cert {}: no certificate in it", cert_path.display()));
    }
    CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider())
        .map(Arc::new)
        .map_err(|e| format!("tls: {e}"))
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
