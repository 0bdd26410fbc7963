//! The TLS certificate, reloadable while the server runs.
//!
//! Handshakes ask [`CertStore`] for the certificate (rustls's `ResolvesServerCert`), so a
//! reload swaps one `Arc` under a lock that is held for that swap and for each handshake's
//! clone of the pointer: new handshakes get the new certificate, sessions already
//! established keep the keys they negotiated. A reload that fails (a missing file, a key that
//! does not match, a cert written but its key not yet) leaves the old certificate in place.

use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// What identifies a version of a file without reading it: a rename-into-place changes the
/// inode, an edit in place the modification time or the length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        let meta = fs::metadata(path).ok()?;
        Some(Self { modified: meta.modified().ok(), len: meta.len(), inode: meta.ino() })
    }
}

pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files as they were at the last load attempt, taken or not: a broken pair is
    /// reported once, not at every check.
    seen: Mutex<[Option<FileStamp>; 2]>,
}

/// Paths only: the key stays out of logs.
impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("cert", &self.cert_path)
            .field("pkey", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// Loads `cert` (a PEM chain, leaf first) and `pkey` (a PEM private key: PKCS#8, PKCS#1 or
    /// SEC1). The error names the file and what is wrong with it.
    pub fn load(cert: &Path, pkey: &Path) -> Result<Arc<Self>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let seen = [FileStamp::of(cert), FileStamp::of(pkey)];
        let key = load_pair(cert, pkey, &provider)?;
        Ok(Arc::new(Self {
            cert_path: cert.to_path_buf(),
            key_path: pkey.to_path_buf(),
            provider,
            current: RwLock::new(key),
            seen: Mutex::new(seen),
        }))
    }

    /// The rustls configuration every TLS listener shares. ALPN is not configured: RFC 7443's
    /// "stun.turn" is optional, and a server that names protocols must refuse clients whose
    /// list does not include one of them.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, String> {
        let config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        Ok(Arc::new(config))
    }

    /// Reads both files again and, if they make a valid pair, serves them from the next
    /// handshake on.
    pub fn reload(&self) -> Result<(), String> {
        *self.seen.lock().expect("no panic while holding the lock") =
            [FileStamp::of(&self.cert_path), FileStamp::of(&self.key_path)];
        let key = load_pair(&self.cert_path, &self.key_path, &self.provider)?;
        *self.current.write().expect("no panic while holding the lock") = key;
        Ok(())
    }

    /// Reloads if either file changed since the last attempt; `None`: nothing changed.
    pub fn reload_if_changed(&self) -> Option<Result<(), String>> {
        let now = [FileStamp::of(&self.cert_path), FileStamp::of(&self.key_path)];
        if *self.seen.lock().expect("no panic while holding the lock") == now {
            return None;
        }
        Some(self.reload())
    }

    /// The certificate chain served now (leaf first).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.current.read().expect("no panic while holding the lock").cert.clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().expect("no panic while holding the lock")))
    }
}

fn load_pair(cert: &Path, pkey: &Path, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("cert {}: no CERTIFICATE in the file", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(pkey).map_err(|e| format!("pkey {}: {e}", pkey.display()))?;
    let certified = CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| format!("cert {} with pkey {}: {e}", cert.display(), pkey.display()))?;
    Ok(Arc::new(certified))
}
