//! Our DTLS identity (an ECDSA P-256 key and a self-signed certificate, as browsers make
//! them) and the certificate fingerprints SDP carries (RFC 8122 §5):
//!
//! ```text
//! a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:...
//!               ^hash   ^32 bytes of SHA-256 over the DER certificate, uppercase hex
//! ```

use std::fmt;
use std::str::FromStr;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509, X509Builder, X509NameBuilder, X509Ref};

use super::DtlsError;

/// Bytes of a SHA-256 fingerprint.
const FINGERPRINT_LEN: usize = 32;
/// Days the certificate is valid. Peers check only the fingerprint, so this is a formality;
/// a certificate per process start keeps it short.
const VALID_DAYS: u32 = 30;

/// An ECDSA P-256 key and a self-signed X.509 certificate for it (CN "bridge").
pub struct Certificate {
    pub(super) key: PKey<Private>,
    pub(super) x509: X509,
    fingerprint: String,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate").field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

impl Certificate {
    /// A fresh key pair and certificate: random 64-bit serial, valid from now for 30 days.
    pub fn generate() -> Result<Self, DtlsError> {
        Self::build().map_err(|_| DtlsError::CertificateGeneration)
    }

    fn build() -> Result<Self, openssl::error::ErrorStack> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::COMMONNAME, "bridge")?;
        let name = name.build();
        let mut serial = BigNum::new()?;
        serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
        let mut builder = X509Builder::new()?;
        builder.set_version(2)?; // X.509 v3
        builder.set_serial_number(&*serial.to_asn1_integer()?)?;
        builder.set_subject_name(&name)?;
        builder.set_issuer_name(&name)?;
        builder.set_pubkey(&key)?;
        builder.set_not_before(&*Asn1Time::days_from_now(0)?)?;
        builder.set_not_after(&*Asn1Time::days_from_now(VALID_DAYS)?)?;
        builder.sign(&key, MessageDigest::sha256())?;
        let x509 = builder.build();
        let fingerprint = Fingerprint::of(&x509)?.hex();
        Ok(Self { key, x509, fingerprint })
    }

    /// SHA-256 of the DER certificate as SDP writes it: uppercase hex pairs joined by ':'
    /// (the part after `a=fingerprint:sha-256 `).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// A certificate fingerprint as signaled (`sha-256 AB:CD:...`, the value of
/// `a=fingerprint:`). Only SHA-256 is supported: every browser signals it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; FINGERPRINT_LEN]);

impl Fingerprint {
    /// The SHA-256 fingerprint of `cert`.
    pub(super) fn of(cert: &X509Ref) -> Result<Self, openssl::error::ErrorStack> {
        let digest = cert.digest(MessageDigest::sha256())?;
        Ok(Self((*digest).try_into().expect("SHA-256 digests are 32 bytes")))
    }

    pub fn as_bytes(&self) -> &[u8; FINGERPRINT_LEN] {
        &self.0
    }

    /// Uppercase hex pairs joined by ':'.
    fn hex(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|b| format!("{b:02X}")).collect();
        pairs.join(":")
    }
}

impl FromStr for Fingerprint {
    type Err = DtlsError;

    /// Parses `sha-256 AB:CD:...`: the hash name case-insensitive (RFC 8122 §5 tokens), the
    /// hex digits in either case, exactly 32 pairs.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((hash, hex)) = s.trim().split_once(|c: char| c.is_ascii_whitespace()) else {
            return Err(DtlsError::FingerprintSyntax);
        };
        if !hash.eq_ignore_ascii_case("sha-256") {
            return Err(DtlsError::FingerprintHash);
        }
        let mut bytes = [0u8; FINGERPRINT_LEN];
        let mut pairs = hex.trim().split(':');
        for byte in &mut bytes {
            *byte = pairs.next().and_then(parse_pair).ok_or(DtlsError::FingerprintSyntax)?;
        }
        if pairs.next().is_some() {
            return Err(DtlsError::FingerprintSyntax);
        }
        Ok(Self(bytes))
    }
}

/// Two hex digits, nothing else (`u8::from_str_radix` would also take "+A" or "A").
fn parse_pair(pair: &str) -> Option<u8> {
    if pair.len() != 2 || !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(pair, 16).ok()
}

impl fmt::Display for Fingerprint {
    /// As signaled: `sha-256 AB:CD:...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha-256 {}", self.hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}
