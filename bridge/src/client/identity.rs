//! A participant's credentials: ICE ufrag and password, and a self-signed certificate whose
//! SHA-256 fingerprint is signaled to the bridge, as a browser makes them for each call.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509, X509NameBuilder};

pub struct Identity {
    pub ufrag: String,
    pub pwd: String,
    pub key: PKey<Private>,
    pub cert: X509,
    /// `AB:CD:...`, upper-case hex, as `a=fingerprint:sha-256` carries it.
    pub fingerprint: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password and key stay out of logs.
        f.debug_struct("Identity")
            .field("ufrag", &self.ufrag)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

fn random_hex(bytes: usize) -> Result<String, ErrorStack> {
    let mut raw = vec![0u8; bytes];
    openssl::rand::rand_bytes(&mut raw)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

impl Identity {
    /// Fresh credentials and an ECDSA P-256 certificate (what Chromium uses), valid for a day.
    pub fn generate() -> Result<Self, ErrorStack> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let mut subject = X509NameBuilder::new()?;
        subject.append_entry_by_text("CN", "loadgen")?;
        let subject = subject.build();
        let mut builder = X509::builder()?;
        builder.set_version(2)?;
        let mut serial = BigNum::new()?;
        serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
        let serial = serial.to_asn1_integer()?;
        builder.set_serial_number(&serial)?;
        builder.set_subject_name(&subject)?;
        builder.set_issuer_name(&subject)?;
        builder.set_pubkey(&key)?;
        let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(1)?);
        builder.set_not_before(&not_before)?;
        builder.set_not_after(&not_after)?;
        builder.sign(&key, MessageDigest::sha256())?;
        let cert = builder.build();
        let digest = cert.digest(MessageDigest::sha256())?;
        let fingerprint = digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
        // RFC 8839: ufrag at least 4 characters, password at least 22.
        Ok(Self { ufrag: random_hex(4)?, pwd: random_hex(12)?, key, cert, fingerprint })
    }
}
