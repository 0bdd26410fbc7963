//! Handshakes between a `DtlsServer` and an OpenSSL DTLS client playing the browser, in one
//! thread, datagrams moved by hand.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use openssl::ssl::{
    ErrorCode, ShutdownState, Ssl, SslContextBuilder, SslMethod, SslOptions, SslStream, SslVerifyMode,
};
use proptest::prelude::*;

use super::keys::{self, Role};
use super::timer;
use super::transport::Datagrams;
use super::*;
use crate::media::srtp::{Context, Profile};

/// Certificate generation is the slow part; the tests share two.
fn server_cert() -> &'static Certificate {
    static CERT: OnceLock<Certificate> = OnceLock::new();
    CERT.get_or_init(|| Certificate::generate().unwrap())
}

fn client_cert() -> &'static Certificate {
    static CERT: OnceLock<Certificate> = OnceLock::new();
    CERT.get_or_init(|| Certificate::generate().unwrap())
}

fn signaled(cert: &Certificate) -> Fingerprint {
    format!("sha-256 {}", cert.fingerprint()).parse().unwrap()
}

/// What the client offers, in its order of preference.
const CM_THEN_GCM: &str = "SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_128_GCM";

/// A DTLS 1.2 client as a browser sets it up: its own certificate, the given SRTP profiles
/// (`None`: no use_srtp extension at all), any server certificate accepted.
fn client(cert: Option<&Certificate>, profiles: Option<&str>) -> SslStream<Datagrams> {
    let mut ctx = SslContextBuilder::new(SslMethod::dtls_client()).unwrap();
    if let Some(cert) = cert {
        ctx.set_certificate(&cert.x509).unwrap();
        ctx.set_private_key(&cert.key).unwrap();
    }
    ctx.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
    if let Some(profiles) = profiles {
        ctx.set_tlsext_use_srtp(profiles).unwrap();
    }
    ctx.set_options(SslOptions::NO_QUERY_MTU);
    let mut ssl = Ssl::new(&ctx.build()).unwrap();
    ssl.set_mtu(MTU as u32).unwrap();
    ssl.set_connect_state();
    SslStream::new(ssl, Datagrams::default()).unwrap()
}

/// Lets the client consume what it received: handshake, then records (discarded).
fn drive_client(client: &mut SslStream<Datagrams>) {
    if !client.ssl().is_init_finished() {
        match client.connect() {
            Ok(()) => {}
            Err(e) if e.code() == ErrorCode::WANT_READ => return,
            Err(e) => panic!("client handshake: {e}"),
        }
    }
    let mut buf = [0u8; 2048];
    while client.ssl_read(&mut buf).is_ok() {}
}

/// Moves datagrams both ways until neither side sends anything. Every datagram the server
/// sends must fit the MTU.
fn exchange(server: &mut DtlsServer, client: &mut SslStream<Datagrams>, now: Instant) {
    let mut buf = [0u8; 4096];
    for _ in 0..32 {
        drive_client(client);
        let mut moved = false;
        while let Some(len) = client.get_mut().pop_outgoing(&mut buf) {
            server.handle_datagram(now, &buf[..len]).unwrap();
            moved = true;
        }
        while let Some(len) = server.poll_transmit(&mut buf) {
            assert!(len <= MTU, "a {len}-byte datagram");
            client.get_mut().push_incoming(&buf[..len]).unwrap();
            drive_client(client);
            moved = true;
        }
        if !moved {
            return;
        }
    }
    panic!("the exchange did not settle");
}

/// A connected pair with the client offering `profiles`.
fn connect(profiles: &str) -> (DtlsServer, SslStream<Datagrams>) {
    let now = Instant::now();
    let mut server = DtlsServer::new(server_cert(), signaled(client_cert()), now).unwrap();
    let mut client = client(Some(client_cert()), Some(profiles));
    exchange(&mut server, &mut client, now);
    assert_eq!(server.state(), DtlsState::Connected);
    assert!(client.ssl().is_init_finished());
    // The server sends the handshake's last flight and keeps no timer for it (a lost one is
    // answered when the client retransmits its own).
    assert_eq!(server.poll_timeout(), None);
    (server, client)
}

fn context(profile: Profile, material: &KeyMaterial) -> Context {
    Context::new(profile, material.key(), material.salt()).unwrap()
}

#[test]
fn both_sides_export_the_same_keys_and_they_protect_srtp() {
    let (mut server, client) = connect(SRTP_PROFILES);
    let ours = server.take_srtp_keys().expect("connected");
    assert!(server.take_srtp_keys().is_none(), "taken once");
    let theirs = keys::export(client.ssl(), Role::Client).unwrap();

    assert_eq!(ours.profile, Profile::AeadAes128Gcm);
    assert_eq!(theirs.profile, ours.profile);
    assert_eq!((ours.local.key().len(), ours.local.salt().len()), (16, 12));
    assert_eq!(ours.local.key(), theirs.remote.key(), "the server's key");
    assert_eq!(ours.local.salt(), theirs.remote.salt(), "the server's salt");
    assert_eq!(ours.remote.key(), theirs.local.key(), "the client's key");
    assert_eq!(ours.remote.salt(), theirs.local.salt(), "the client's salt");
    assert_ne!(ours.local.key(), ours.remote.key(), "each direction has its own key");

    // The client authenticates us the same way: by our certificate's fingerprint.
    let our_cert = client.ssl().peer_certificate().unwrap();
    assert_eq!(Fingerprint::of(&our_cert).unwrap(), signaled(server_cert()));

    // What the bridge protects with its local keys, the browser unprotects with its remote.
    let mut rtp = vec![0x80, 96, 0, 1, 0, 0, 0, 0, 0xca, 0xfe, 0xba, 0xbe, 1, 2, 3, 4];
    let plain = rtp.clone();
    rtp.resize(plain.len() + ours.profile.overhead(), 0);
    let len = context(ours.profile, &ours.local).protect_rtp(&mut rtp, plain.len()).unwrap();
    assert_eq!(context(theirs.profile, &theirs.remote).unprotect_rtp(&mut rtp[..len]), Ok(plain.len()));
    assert_eq!(&rtp[..plain.len()], &plain[..]);
}

#[test]
fn key_material_debug_hides_the_bytes() {
    let (mut server, _client) = connect(SRTP_PROFILES);
    let keys = server.take_srtp_keys().unwrap();
    let shown = format!("{keys:?}");
    assert!(shown.contains("16 bytes") && shown.contains("12 bytes"), "{shown}");
    let key_hex: String = keys.local.key().iter().map(|b| format!("{b:02x}")).collect();
    assert!(!shown.contains(&key_hex) && !shown.contains(&format!("{:?}", keys.local.key())));
}

/// OpenSSL's server takes the first profile of *its* list that the client offers.
#[test]
fn server_preference_picks_gcm_when_the_client_lists_cm_first() {
    let (mut server, client) = connect(CM_THEN_GCM);
    assert_eq!(server.take_srtp_keys().unwrap().profile, Profile::AeadAes128Gcm);
    assert_eq!(keys::export(client.ssl(), Role::Client).unwrap().profile, Profile::AeadAes128Gcm);
}

#[test]
fn a_client_offering_only_cm_80_gets_it() {
    let (mut server, client) = connect("SRTP_AES128_CM_SHA1_80");
    let ours = server.take_srtp_keys().unwrap();
    let theirs = keys::export(client.ssl(), Role::Client).unwrap();
    assert_eq!(ours.profile, Profile::Aes128CmHmacSha1_80);
    assert_eq!((ours.local.key().len(), ours.local.salt().len()), (16, 14));
    assert_eq!(ours.local.key(), theirs.remote.key());
    assert_eq!(ours.remote.salt(), theirs.local.salt());
}

#[test]
fn a_client_offering_only_aes_256_gcm_gets_32_byte_keys() {
    let (mut server, client) = connect("SRTP_AEAD_AES_256_GCM:SRTP_AES128_CM_SHA1_32");
    let ours = server.take_srtp_keys().unwrap();
    let theirs = keys::export(client.ssl(), Role::Client).unwrap();
    assert_eq!(ours.profile, Profile::AeadAes256Gcm);
    assert_eq!((ours.local.key().len(), ours.local.salt().len()), (32, 12));
    assert_eq!(ours.remote.key(), theirs.local.key());
    let mut rtp = vec![0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9, 9];
    let plain = rtp.clone();
    rtp.resize(plain.len() + 16, 0);
    let len = context(theirs.profile, &theirs.local).protect_rtp(&mut rtp, plain.len()).unwrap();
    assert_eq!(context(ours.profile, &ours.remote).unprotect_rtp(&mut rtp[..len]), Ok(plain.len()));
}

#[test]
fn a_client_without_use_srtp_fails_with_no_profile() {
    let now = Instant::now();
    let mut server = DtlsServer::new(server_cert(), signaled(client_cert()), now).unwrap();
    let mut client = client(Some(client_cert()), None);
    exchange(&mut server, &mut client, now);
    assert_eq!(server.state(), DtlsState::Failed(DtlsError::NoSrtpProfile));
    assert!(server.take_srtp_keys().is_none());
}

#[test]
fn a_wrong_fingerprint_fails_exports_nothing_and_tells_the_client() {
    let now = Instant::now();
    let mut server = DtlsServer::new(server_cert(), signaled(server_cert()), now).unwrap();
    let mut client = client(Some(client_cert()), Some(SRTP_PROFILES));
    exchange(&mut server, &mut client, now);
    assert_eq!(server.state(), DtlsState::Failed(DtlsError::FingerprintMismatch));
    assert!(server.take_srtp_keys().is_none());
    assert_eq!(server.poll_timeout(), None);
    assert!(client.get_shutdown().contains(ShutdownState::RECEIVED), "close_notify sent");
}

#[test]
fn a_client_without_a_certificate_fails_the_handshake() {
    let now = Instant::now();
    let mut server = DtlsServer::new(server_cert(), signaled(client_cert()), now).unwrap();
    let mut client = client(None, Some(SRTP_PROFILES));
    let mut buf = [0u8; 4096];
    for _ in 0..8 {
        let _ = client.connect();
        while let Some(len) = client.get_mut().pop_outgoing(&mut buf) {
            server.handle_datagram(now, &buf[..len]).unwrap();
        }
        while let Some(len) = server.poll_transmit(&mut buf) {
            client.get_mut().push_incoming(&buf[..len]).unwrap();
        }
    }
    assert_eq!(server.state(), DtlsState::Failed(DtlsError::HandshakeFailed));
    assert!(server.take_srtp_keys().is_none());
}

/// The records of a datagram, by content type and fragment (record sequence numbers change
/// on retransmission; the handshake messages do not).
fn fragments(datagram: &[u8]) -> Vec<(record::ContentType, Vec<u8>)> {
    record::records(datagram)
        .map(|r| r.map(|r| (r.header.content_type, r.fragment.to_vec())).unwrap())
        .collect()
}

/// OpenSSL's timer reads the real clock, so this test runs on it and waits (about a second).
#[test]
fn a_lost_first_flight_is_retransmitted_and_the_handshake_completes() {
    let mut server = DtlsServer::new(server_cert(), signaled(client_cert()), Instant::now()).unwrap();
    let mut client = client(Some(client_cert()), Some(SRTP_PROFILES));
    let mut buf = [0u8; 4096];
    drive_client(&mut client);
    let len = client.get_mut().pop_outgoing(&mut buf).expect("ClientHello");
    let start = Instant::now();
    server.handle_datagram(start, &buf[..len]).unwrap();
    let mut lost = Vec::new();
    while let Some(len) = server.poll_transmit(&mut buf) {
        lost.extend(fragments(&buf[..len]));
    }
    assert_eq!(
        lost.len(),
        5,
        "ServerHello, Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone"
    );

    let deadline = server.poll_timeout().expect("a retransmission is due");
    assert!(deadline > start && deadline <= start + Duration::from_secs(1), "{:?}", deadline - start);
    server.handle_timeout(deadline - Duration::from_millis(100));
    assert_eq!(server.poll_transmit(&mut buf), None, "not due yet");

    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    let now = Instant::now();
    server.handle_timeout(now);
    let mut again = Vec::new();
    while let Some(len) = server.poll_transmit(&mut buf) {
        // OpenSSL packs a first flight into as few datagrams as the MTU allows, but
        // retransmits one message per datagram.
        again.extend(fragments(&buf[..len]));
        client.get_mut().push_incoming(&buf[..len]).unwrap();
        drive_client(&mut client);
    }
    assert_eq!(again, lost, "the same flight again");
    let next = server.poll_timeout().unwrap();
    assert!(next >= now + Duration::from_millis(1500), "the timeout doubled: {:?}", next - now);

    exchange(&mut server, &mut client, now);
    assert_eq!(server.state(), DtlsState::Connected);
    assert!(server.take_srtp_keys().is_some());
}

/// The server's last flight (ChangeCipherSpec, Finished) is lost: the client, still waiting,
/// retransmits its own flight and the connected server answers with its last one again.
#[test]
fn a_lost_last_flight_is_sent_again_when_the_client_retransmits() {
    let now = Instant::now();
    let mut server = DtlsServer::new(server_cert(), signaled(client_cert()), now).unwrap();
    let mut client = client(Some(client_cert()), Some(SRTP_PROFILES));
    let mut buf = [0u8; 4096];
    while server.state() == DtlsState::Handshaking {
        drive_client(&mut client);
        while let Some(len) = client.get_mut().pop_outgoing(&mut buf) {
            server.handle_datagram(now, &buf[..len]).unwrap();
        }
        if server.state() == DtlsState::Connected {
            while server.poll_transmit(&mut buf).is_some() {} // lost
            break;
        }
        while let Some(len) = server.poll_transmit(&mut buf) {
            client.get_mut().push_incoming(&buf[..len]).unwrap();
        }
    }
    assert!(!client.ssl().is_init_finished());

    let left = timer::time_left(client.ssl()).expect("the client waits for our last flight");
    std::thread::sleep(left + Duration::from_millis(20));
    assert_eq!(timer::handle_timeout(client.ssl()), timer::Expiry::Retransmitted);
    exchange(&mut server, &mut client, Instant::now());
    assert!(client.ssl().is_init_finished());
    assert_eq!(server.state(), DtlsState::Connected);
}

#[test]
fn no_client_at_all_times_out_after_ten_seconds() {
    let start = Instant::now();
    let mut server = DtlsServer::new(server_cert(), signaled(client_cert()), start).unwrap();
    assert_eq!(server.poll_timeout(), Some(start + HANDSHAKE_TIMEOUT), "nothing to retransmit yet");
    server.handle_timeout(start + HANDSHAKE_TIMEOUT - Duration::from_millis(1));
    assert_eq!(server.state(), DtlsState::Handshaking);
    server.handle_timeout(start + HANDSHAKE_TIMEOUT);
    assert_eq!(server.state(), DtlsState::Failed(DtlsError::HandshakeTimeout));
    assert_eq!(server.poll_timeout(), None);
    let mut buf = [0u8; MTU];
    assert_eq!(server.poll_transmit(&mut buf), None);
}

#[test]
fn a_late_client_hello_meets_the_deadline_too() {
    let start = Instant::now();
    let mut server = DtlsServer::new(server_cert(), signaled(client_cert()), start).unwrap();
    let mut client = client(Some(client_cert()), Some(SRTP_PROFILES));
    drive_client(&mut client);
    let mut buf = [0u8; 4096];
    let len = client.get_mut().pop_outgoing(&mut buf).unwrap();
    assert_eq!(server.handle_datagram(start + HANDSHAKE_TIMEOUT, &buf[..len]), Ok(()));
    assert_eq!(server.state(), DtlsState::Failed(DtlsError::HandshakeTimeout));
    assert_eq!(server.poll_transmit(&mut buf), None, "no answer after the deadline");
}

#[test]
fn application_data_is_ignored_and_close_notify_closes() {
    let (mut server, mut client) = connect(SRTP_PROFILES);
    let now = Instant::now();
    client.ssl_write(b"a data channel we do not speak").unwrap();
    exchange(&mut server, &mut client, now);
    assert_eq!(server.state(), DtlsState::Connected);

    client.shutdown().unwrap();
    exchange(&mut server, &mut client, now);
    assert_eq!(server.state(), DtlsState::Closed);
    assert!(server.take_srtp_keys().is_none(), "closed: nothing to take");
    assert!(client.get_shutdown().contains(ShutdownState::RECEIVED), "our close_notify answered theirs");
}

#[test]
fn closing_sends_close_notify() {
    let (mut server, mut client) = connect(SRTP_PROFILES);
    server.close();
    assert_eq!(server.state(), DtlsState::Closed);
    exchange(&mut server, &mut client, Instant::now());
    assert!(client.get_shutdown().contains(ShutdownState::RECEIVED));
}

#[test]
fn what_is_not_dtls_is_dropped_before_openssl() {
    let now = Instant::now();
    let mut server = DtlsServer::new(server_cert(), signaled(client_cert()), now).unwrap();
    let stun = [0u8, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for bad in [&[][..], &stun, &[0x80; 40], &[22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 1]] {
        assert_eq!(server.handle_datagram(now, bad), Err(DtlsError::NotDtls), "{bad:?}");
    }
    assert_eq!(server.state(), DtlsState::Handshaking);
    let mut buf = [0u8; MTU];
    assert_eq!(server.poll_transmit(&mut buf), None);
}

#[test]
fn certificate_fingerprint_is_sdp_formatted_and_parses_back() {
    let cert = Certificate::generate().unwrap();
    let fingerprint = cert.fingerprint();
    // ^([0-9A-F]{2}:){31}[0-9A-F]{2}$
    assert_eq!(fingerprint.len(), 32 * 3 - 1, "{fingerprint}");
    for (i, c) in fingerprint.chars().enumerate() {
        if i % 3 == 2 {
            assert_eq!(c, ':', "{fingerprint}");
        } else {
            assert!(c.is_ascii_digit() || ('A'..='F').contains(&c), "{fingerprint}");
        }
    }
    let parsed: Fingerprint = format!("sha-256 {fingerprint}").parse().unwrap();
    assert_eq!(parsed, Fingerprint::of(&cert.x509).unwrap());
    assert_eq!(parsed.to_string(), format!("sha-256 {fingerprint}"));
    assert_ne!(fingerprint, Certificate::generate().unwrap().fingerprint(), "a fresh key each time");
    assert_eq!(cert.x509.subject_name().entries().next().unwrap().data().as_slice(), b"bridge");
}

#[test]
fn fingerprint_parsing_is_case_insensitive_and_strict() {
    let hex = server_cert().fingerprint();
    let expected = signaled(server_cert());
    assert_eq!(format!("SHA-256 {}", hex.to_lowercase()).parse(), Ok(expected));
    assert_eq!(format!("  sha-256   {hex}  ").parse(), Ok(expected));
    assert_eq!(format!("sha-1 {}", &hex[..59]).parse::<Fingerprint>(), Err(DtlsError::FingerprintHash));
    assert_eq!(format!("sha-512 {hex}").parse::<Fingerprint>(), Err(DtlsError::FingerprintHash));
    for bad in [
        String::new(),
        "sha-256".to_owned(),
        hex.to_owned(),
        format!("sha-256 {}", &hex[..hex.len() - 3]),
        format!("sha-256 {hex}:00"),
        format!("sha-256 {}", hex.replace(':', "")),
        format!("sha-256 {}", hex.replacen(':', "-", 1)),
        format!("sha-256 {}G", &hex[..hex.len() - 1]),
        format!("sha-256 +{}", &hex[1..]),
        format!("sha-256 {hex}:"),
    ] {
        assert_eq!(bad.parse::<Fingerprint>(), Err(DtlsError::FingerprintSyntax), "{bad:?}");
    }
}

/// A datagram shaped like DTLS records (valid headers) with arbitrary content, or anything.
fn datagram() -> impl Strategy<Value = Vec<u8>> {
    let record = (
        20u8..=23,
        prop_oneof![Just(0xfeffu16), Just(0xfefd)],
        0u16..3,
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(content_type, version, epoch, body)| {
            let mut out = vec![content_type];
            out.extend_from_slice(&version.to_be_bytes());
            out.extend_from_slice(&epoch.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 0, 1]);
            out.extend_from_slice(&(body.len() as u16).to_be_bytes());
            out.extend_from_slice(&body);
            out
        });
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..400),
        proptest::collection::vec(record, 1..4).prop_map(|records| records.concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_datagrams_never_panic_the_server(datagrams in proptest::collection::vec(datagram(), 1..6)) {
        let now = Instant::now();
        let mut server = DtlsServer::new(server_cert(), signaled(client_cert()), now).unwrap();
        let mut out = [0u8; MTU];
        for datagram in &datagrams {
            let _ = server.handle_datagram(now, datagram);
            while server.poll_transmit(&mut out).is_some() {}
            server.handle_timeout(now);
        }
        prop_assert!(server.take_srtp_keys().is_none());
    }
}
