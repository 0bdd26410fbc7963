//! Opening a participant's media path to the bridge, once, at setup: ICE (a nominating check
//! until the bridge answers), then a DTLS 1.2 handshake as the client (the bridge is
//! `setup:passive`), then SRTP keys exported from it (RFC 5764 §4.2). Blocking, with a
//! deadline: setup runs participant by participant, before the media loop starts.

use std::io::{self, Read, Write};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::media::srtp::{Context, Profile};
use openssl::ssl::{HandshakeError, Ssl, SslContext, SslMethod, SslStream, SslVerifyMode};

use super::ice::{self, Checks};
use super::identity::Identity;

/// How long to wait for an answer before the next ICE check.
const CHECK_RETRY: Duration = Duration::from_millis(100);
/// Read timeout while DTLS runs: how often the handshake loop looks at its deadline.
const DTLS_POLL: Duration = Duration::from_millis(20);

/// Which SRTP profiles to offer in the DTLS use_srtp extension.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProfileChoice {
    /// AEAD_AES_128_GCM and AES_CM_128_HMAC_SHA1_80, as Chromium does; the bridge picks GCM.
    #[default]
    Both,
    Only(Profile),
}

impl ProfileChoice {
    fn offer(self) -> &'static str {
        match self {
            Self::Both => "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80",
            Self::Only(Profile::AeadAes128Gcm) => "SRTP_AEAD_AES_128_GCM",
            Self::Only(Profile::AeadAes256Gcm) => "SRTP_AEAD_AES_256_GCM",
            Self::Only(Profile::Aes128CmHmacSha1_80) => "SRTP_AES128_CM_SHA1_80",
            Self::Only(Profile::Aes128CmHmacSha1_32) => "SRTP_AES128_CM_SHA1_32",
        }
    }
}

/// The SRTP state of a connected participant.
pub struct Secured {
    pub profile: Profile,
    /// Protects what we send.
    pub outbound: Context,
    /// Unprotects what the bridge forwards to us.
    pub inbound: Context,
}

impl std::fmt::Debug for Secured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secured").field("profile", &self.profile).finish_non_exhaustive()
    }
}

/// ICE, DTLS and SRTP over `socket`, which is connected to the bridge's media address.
/// `streams` is how many SSRCs the inbound context must follow (every sender of the
/// conference, two each, plus room for the bridge's own RTCP).
pub fn connect(
    socket: &UdpSocket,
    checks: &mut Checks,
    us: &Identity,
    profiles: ProfileChoice,
    streams: usize,
    timeout: Duration,
) -> Result<Secured, String> {
    let deadline = Instant::now() + timeout;
    nominate(socket, checks, deadline)?;
    handshake(socket, us, profiles, streams, deadline)
}

fn nominate(socket: &UdpSocket, checks: &mut Checks, deadline: Instant) -> Result<(), String> {
    socket.set_read_timeout(Some(CHECK_RETRY)).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        let len = checks.write(&mut buf).map_err(|_| "STUN check does not fit")?;
        socket.send(&buf[..len]).map_err(|e| format!("ICE check: {e}"))?;
        let answered_until = Instant::now() + CHECK_RETRY;
        while Instant::now() < answered_until {
            match socket.recv(&mut buf) {
                Ok(n) if ice::is_success(&buf[..n]) => return Ok(()),
                Ok(_) => continue,
                Err(e) if is_timeout(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP port unreachable from an earlier check: the bridge is not up (yet).
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                Err(e) => return Err(format!("ICE: {e}")),
            }
        }
    }
    Err("ICE: no binding response from the bridge".into())
}

fn handshake(
    socket: &UdpSocket,
    us: &Identity,
    profiles: ProfileChoice,
    streams: usize,
    deadline: Instant,
) -> Result<Secured, String> {
    let tls = |e: openssl::error::ErrorStack| format!("DTLS setup: {e}");
    let mut context = SslContext::builder(SslMethod::dtls()).map_err(tls)?;
    context.set_private_key(&us.key).map_err(tls)?;
    context.set_certificate(&us.cert).map_err(tls)?;
    context.set_tlsext_use_srtp(profiles.offer()).map_err(tls)?;
    // WebRTC checks the peer's certificate against the signaled fingerprint, not a CA; we
    // measure the bridge, so we accept its certificate as it is.
    context.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
    let mut ssl = Ssl::new(&context.build()).map_err(tls)?;
    ssl.set_mtu(1200).map_err(tls)?;
    socket.set_read_timeout(Some(DTLS_POLL)).map_err(|e| e.to_string())?;
    let transport = Datagrams { socket: socket.try_clone().map_err(|e| e.to_string())? };
    let mut attempt = ssl.connect(transport);
    let stream: SslStream<Datagrams> = loop {
        match attempt {
            Ok(stream) => break stream,
            Err(HandshakeError::WouldBlock(_)) if Instant::now() >= deadline => {
                return Err("DTLS: handshake did not finish in time".into());
            }
            Err(HandshakeError::WouldBlock(mid)) => attempt = mid.handshake(),
            Err(e) => return Err(format!("DTLS handshake: {e}")),
        }
    };
    let ssl = stream.ssl();
    let name = ssl.selected_srtp_profile().ok_or("DTLS: the bridge selected no SRTP profile")?.name();
    let profile = match name {
        "SRTP_AEAD_AES_128_GCM" => Profile::AeadAes128Gcm,
        "SRTP_AEAD_AES_256_GCM" => Profile::AeadAes256Gcm,
        "SRTP_AES128_CM_SHA1_80" => Profile::Aes128CmHmacSha1_80,
        "SRTP_AES128_CM_SHA1_32" => Profile::Aes128CmHmacSha1_32,
        other => return Err(format!("DTLS: unknown SRTP profile {other}")),
    };
    // RFC 5764 §4.2: client key | server key | client salt | server salt.
    let (key_len, salt_len) = (profile.master_key_len(), profile.master_salt_len());
    let mut material = Wiped(vec![0u8; 2 * (key_len + salt_len)]);
    ssl.export_keying_material(&mut material.0, "EXTRACTOR-dtls_srtp", None).map_err(tls)?;
    let (client_key, rest) = material.0.split_at(key_len);
    let (server_key, rest) = rest.split_at(key_len);
    let (client_salt, server_salt) = rest.split_at(salt_len);
    let key = |e| format!("SRTP keys: {e}");
    let outbound = Context::new(profile, client_key, client_salt).map_err(key)?;
    let inbound = Context::with_streams(profile, server_key, server_salt, streams).map_err(key)?;
    Ok(Secured { profile, outbound, inbound })
}

/// Key material that is overwritten when dropped.
struct Wiped(Vec<u8>);

impl Drop for Wiped {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.0);
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// The UDP socket as OpenSSL's datagram transport: one `read` is one datagram.
#[derive(Debug)]
struct Datagrams {
    socket: UdpSocket,
}

impl Read for Datagrams {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.socket.recv(buf) {
                // RFC 7983: DTLS records start with 20..=63; skip the STUN answers to our
                // retried checks that may still arrive.
                Ok(n) if n > 0 && (20..=63).contains(&buf[0]) => return Ok(n),
                Ok(_) => continue,
                Err(e) if is_timeout(&e) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for Datagrams {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.socket.send(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
