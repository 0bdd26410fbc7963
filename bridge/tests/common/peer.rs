//! A minimal WebRTC participant for in-process SFU tests: `bridge::client` (real ICE checks,
//! a real DTLS 1.2 client handshake, SRTP with the negotiated keys) plus what tests send and
//! receive. It speaks to the bridge over loopback UDP like a browser would, without codecs.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bridge::client::connect::{ProfileChoice, connect};
use bridge::client::ice::Checks;
pub use bridge::client::identity::Identity;
use bridge::media::srtp::{Context, Profile};
use stun::{AttrType, Class, MessageBuilder, Method, TransactionId, short_term_key};

/// The bridge's side of an endpoint, as the control API returns it.
#[derive(Clone, Debug)]
pub struct BridgeEndpoint {
    pub ufrag: String,
    pub pwd: String,
}

/// Fresh credentials whose ufrag names the participant, so a failing test's log says who.
pub fn identity(name: &str) -> Identity {
    let mut identity = Identity::generate().unwrap();
    identity.ufrag = format!("peer{name}");
    identity
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

/// One ICE check with USE-CANDIDATE, as a controlling agent sends it, with a chosen
/// transaction id and password (tests forge checks with it).
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
        let mut checks = Checks::new(&bridge.ufrag, &bridge.pwd, &us.ufrag, 1);
        let secured = connect(&socket, &mut checks, us, ProfileChoice::Both, 64, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connecting {} to the bridge: {e}", us.ufrag));
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        Self { socket, outbound: secured.outbound, inbound: secured.inbound, profile: secured.profile }
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
