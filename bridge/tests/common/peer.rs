//! A minimal WebRTC participant for in-process SFU tests: real ICE checks (our STUN codec),
//! a real DTLS 1.2 client handshake (OpenSSL), SRTP with the negotiated keys. It speaks to the
//! bridge over loopback UDP like a browser would, without media codecs.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bridge::media::srtp::{Context, Profile};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{HandshakeError, Ssl, SslContext, SslMethod, SslStream, SslVerifyMode};
use openssl::x509::{X509, X509NameBuilder};
use stun::{AttrType, Class, MessageBuilder, Method, TransactionId, short_term_key};

/// The bridge's side of an endpoint, as the control API returns it.
#[derive(Clone, Debug)]
pub struct BridgeEndpoint {
    pub ufrag: String,
    pub pwd: String,
}

/// Our ICE credentials and certificate, to signal to the bridge.
pub struct Identity {
    pub ufrag: String,
    pub pwd: String,
    pub key: PKey<Private>,
    pub cert: X509,
    pub fingerprint: String,
}

impl Identity {
    pub fn generate(name: &str) -> Self {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut subject = X509NameBuilder::new().unwrap();
        subject.append_entry_by_text("CN", "test-peer").unwrap();
        let subject = subject.build();
        let mut builder = X509::builder().unwrap();
        builder.set_version(2).unwrap();
        let mut serial = BigNum::new().unwrap();
        serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
        builder.set_serial_number(&serial.to_asn1_integer().unwrap()).unwrap();
        builder.set_subject_name(&subject).unwrap();
        builder.set_issuer_name(&subject).unwrap();
        builder.set_pubkey(&key).unwrap();
        builder.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        builder.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
        builder.sign(&key, MessageDigest::sha256()).unwrap();
        let cert = builder.build();
        let digest = cert.digest(MessageDigest::sha256()).unwrap();
        let fingerprint = digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
        Self {
            ufrag: format!("peer{name}"),
            pwd: format!("peerpassword{name}0123456789abcdef"),
            key,
            cert,
            fingerprint,
        }
    }
}

/// A UDP socket as the datagram transport under OpenSSL.
#[derive(Debug)]
struct Datagrams {
    socket: UdpSocket,
}

impl Read for Datagrams {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.socket.recv(buf) {
                // Skip STUN and SRTP that arrive while DTLS runs.
                Ok(n) if n > 0 && (20..=63).contains(&buf[0]) => return Ok(n),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
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

/// A connected participant.
pub struct Peer {
    pub socket: UdpSocket,
    /// Protects what we send.
    pub outbound: Context,
    /// Unprotects what the bridge sends us.
    pub inbound: Context,
    pub profile: Profile,
}

/// One ICE check with USE-CANDIDATE, as a controlling agent sends it.
pub fn binding_request(
    bridge: &BridgeEndpoint,
    us: &Identity,
    txid: u8,
    password: &str,
    buf: &mut [u8],
) -> usize {
    let mut b = MessageBuilder::new(buf, Method::BINDING, Class::Request, TransactionId([txid; 12])).unwrap();
    b.attribute(AttrType::USERNAME, format!("{}:{}", bridge.ufrag, us.ufrag).as_bytes()).unwrap();
    b.u64(AttrType::ICE_CONTROLLING, 0x1234_5678).unwrap();
    b.u32(AttrType::PRIORITY, 0x6e00_01ff).unwrap();
    b.attribute(AttrType::USE_CANDIDATE, &[]).unwrap();
    b.message_integrity(&short_term_key(password)).unwrap().fingerprint().unwrap();
    b.finish()
}

impl Peer {
    /// ICE check (nominating), then the DTLS handshake as client, then SRTP contexts.
    pub fn connect(bridge_addr: SocketAddr, bridge: &BridgeEndpoint, us: &Identity, local: &str) -> Self {
        let socket = UdpSocket::bind(local).unwrap();
        socket.connect(bridge_addr).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            assert!(Instant::now() < deadline, "no STUN answer from the bridge");
            let len = binding_request(bridge, us, 7, &bridge.pwd, &mut buf);
            socket.send(&buf[..len]).unwrap();
            match socket.recv(&mut buf) {
                Ok(n) if n >= 20 && buf[0] < 4 => {
                    let response = stun::Message::parse(&buf[..n]).expect("a STUN response");
                    assert_eq!(response.class(), Class::Success, "binding answered with an error");
                    break;
                }
                _ => continue,
            }
        }

        let mut context = SslContext::builder(SslMethod::dtls()).unwrap();
        context.set_private_key(&us.key).unwrap();
        context.set_certificate(&us.cert).unwrap();
        context.set_tlsext_use_srtp("SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80").unwrap();
        context.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
        let mut ssl = Ssl::new(&context.build()).unwrap();
        ssl.set_mtu(1200).unwrap();
        let transport = Datagrams { socket: socket.try_clone().unwrap() };
        let mut attempt = ssl.connect(transport);
        let stream: SslStream<Datagrams> = loop {
            assert!(Instant::now() < deadline, "DTLS handshake with the bridge did not finish");
            match attempt {
                Ok(stream) => break stream,
                Err(HandshakeError::WouldBlock(mid)) => attempt = mid.handshake(),
                Err(e) => panic!("DTLS handshake failed: {e}"),
            }
        };
        let profile = match stream.ssl().selected_srtp_profile().expect("an SRTP profile").name() {
            "SRTP_AEAD_AES_128_GCM" => Profile::AeadAes128Gcm,
            "SRTP_AES128_CM_SHA1_80" => Profile::Aes128CmHmacSha1_80,
            other => panic!("unexpected profile {other}"),
        };
        let (key_len, salt_len) = (16, profile.master_salt_len());
        let mut material = vec![0u8; 2 * (key_len + salt_len)];
        stream.ssl().export_keying_material(&mut material, "EXTRACTOR-dtls_srtp", None).unwrap();
        let (client_key, rest) = material.split_at(key_len);
        let (server_key, rest) = rest.split_at(key_len);
        let (client_salt, server_salt) = rest.split_at(salt_len);
        let outbound = Context::new(profile, client_key, client_salt).unwrap();
        let inbound = Context::new(profile, server_key, server_salt).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        Self { socket, outbound, inbound, profile }
    }

    /// Sends one RTP packet with `payload`.
    pub fn send_rtp(&mut self, ssrc: u32, pt: u8, seq: u16, timestamp: u32, payload: &[u8]) {
        let mut buf = [0u8; 1500];
        let len = rtp_packet(ssrc, pt, seq, timestamp, payload, &mut buf);
        let protected = self.outbound.protect_rtp(&mut buf, len).unwrap();
        self.socket.send(&buf[..protected]).unwrap();
    }

    /// Sends one audio packet carrying an RFC 6464 audio level (one-byte extension `id`).
    pub fn send_audio_with_level(&mut self, ssrc: u32, id: u8, level: u8, seq: u16) {
        let mut buf = [0u8; 1500];
        buf[0] = 0x90; // version 2, extension
        buf[1] = 111;
        buf[2..4].copy_from_slice(&seq.to_be_bytes());
        buf[4..8].copy_from_slice(&(u32::from(seq) * 960).to_be_bytes());
        buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
        buf[12..16].copy_from_slice(&[0xBE, 0xDE, 0, 1]);
        buf[16..20].copy_from_slice(&[id << 4, 0x80 | level, 0, 0]);
        buf[20..80].fill(0x33);
        let protected = self.outbound.protect_rtp(&mut buf, 80).unwrap();
        self.socket.send(&buf[..protected]).unwrap();
    }

    /// Sends one compound RTCP packet.
    pub fn send_rtcp(&mut self, rtcp: &[u8]) {
        let mut buf = [0u8; 1500];
        buf[..rtcp.len()].copy_from_slice(rtcp);
        let protected = self.outbound.protect_rtcp(&mut buf, rtcp.len()).unwrap();
        self.socket.send(&buf[..protected]).unwrap();
    }

    /// Receives and unprotects until `until`; returns decrypted RTP and RTCP packets.
    pub fn receive(&mut self, until: Instant) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let mut rtp = Vec::new();
        let mut rtcp = Vec::new();
        let mut buf = [0u8; 2048];
        while Instant::now() < until {
            match self.socket.recv(&mut buf) {
                Ok(n) if n >= 2 && (128..=191).contains(&buf[0]) => {
                    if (192..=223).contains(&buf[1]) {
                        if let Ok(len) = self.inbound.unprotect_rtcp(&mut buf[..n]) {
                            rtcp.push(buf[..len].to_vec());
                        }
                    } else if let Ok(len) = self.inbound.unprotect_rtp(&mut buf[..n]) {
                        rtp.push(buf[..len].to_vec());
                    }
                }
                _ => {}
            }
        }
        (rtp, rtcp)
    }
}

/// A plain RTP packet (version 2, no extension).
pub fn rtp_packet(ssrc: u32, pt: u8, seq: u16, timestamp: u32, payload: &[u8], buf: &mut [u8]) -> usize {
    buf[0] = 0x80;
    buf[1] = pt & 0x7f;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&timestamp.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    buf[12..12 + payload.len()].copy_from_slice(payload);
    12 + payload.len()
}
