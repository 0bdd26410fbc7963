//! Hostile datagrams at the SFU, from a stranger and from a participant's own authenticated
//! address: random bytes in every protocol's first-byte range (STUN, DTLS, RTP, RTCP, none),
//! truncated and corrupted SRTP. Nothing panics, every one is dropped (and counted), and the
//! participants' real media keeps flowing untouched.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use bridge::sfu::counters::MediaDrop;
use bridge::sfu::endpoint::MediaKind::Audio;
use common::sfu::Sfu;

const GARBAGE: usize = 20_000;
const REAL: u16 = 200;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn datagram(&mut self, buf: &mut [u8]) -> usize {
        let len = (self.next() % 1400) as usize + 1;
        for byte in &mut buf[..len] {
            *byte = self.next() as u8;
        }
        // First bytes spread over every class of RFC 7983, with plausible second bytes.
        buf[0] = match self.next() % 5 {
            0 => (self.next() % 4) as u8,
            1 => 20 + (self.next() % 44) as u8,
            2 => 0x80 | (self.next() % 64) as u8,
            3 => {
                if len > 1 {
                    buf[1] = 192 + (self.next() % 32) as u8;
                }
                0x80 | (self.next() % 32) as u8
            }
            _ => buf[0],
        };
        len
    }
}

#[test]
fn garbage_is_dropped_and_real_media_keeps_flowing() {
    let sfu = Sfu::start(2);
    let conference = sfu.conference();
    let (_, mut a) = sfu.join(conference, "a", &[(0xA0, Audio)]);
    let (_, mut b) = sfu.join(conference, "b", &[(0xB0, Audio)]);
    let bridge = sfu.engine.local_addr();
    let from_a = a.socket.try_clone().unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();

    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut buf = [0u8; 1500];
    let mut real = 0u16;
    for i in 0..GARBAGE {
        let len = rng.datagram(&mut buf);
        let socket = if i % 2 == 0 { &from_a } else { &stranger };
        let _ = socket.send_to(&buf[..len], bridge);
        if i % (GARBAGE / usize::from(REAL)) == 0 && real < REAL {
            a.send_rtp(0xA0, 111, real, u32::from(real) * 960, &[real as u8; 120]);
            real += 1;
        }
        if i % 64 == 0 {
            std::thread::sleep(Duration::from_micros(500)); // stay under the socket buffers
        }
    }
    let (got, _) = b.receive(Instant::now() + Duration::from_millis(800));
    let seqs: Vec<u16> = got
        .iter()
        .filter(|p| p[8..12] == 0xA0u32.to_be_bytes())
        .map(|p| u16::from_be_bytes([p[2], p[3]]))
        .collect();
    assert_eq!(seqs, (0..REAL).collect::<Vec<_>>(), "every real packet, once, in order");
    assert!(got.iter().all(|p| p[8..12] == 0xA0u32.to_be_bytes()), "nothing but A's real stream reached B");

    let registry = &sfu.registry;
    let dropped: u64 = MediaDrop::ALL.iter().map(|&r| registry.drops(r)).sum();
    assert!(dropped >= GARBAGE as u64 * 9 / 10, "garbage counted as dropped: {dropped} of {GARBAGE}");
    assert!(registry.drops(MediaDrop::SrtpRejected) > 0, "A's address, forged SRTP: authentication fails");
    assert!(registry.drops(MediaDrop::UnknownAddress) > 0, "the stranger's media");
}
