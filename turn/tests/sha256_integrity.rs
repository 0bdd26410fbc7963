//! RFC 8489's long-term credential extensions on the in-memory harness: MESSAGE-INTEGRITY-SHA256
//! with the SHA-256 key, PASSWORD-ALGORITHM(S) and the bid-down protection of the nonce
//! cookie, USERHASH; and classic clients (MD5 key, MESSAGE-INTEGRITY) unchanged beside them.

mod common;

use common::*;
use stun::{AttrType, Class, Message, PasswordAlgorithm, long_term_key_with};
use turn::client::{AllocateOptions, AuthOptions, Client, Outcome};
use turn::server::DropReason;

const SHA256: PasswordAlgorithm = PasswordAlgorithm::Sha256;
const MD5: PasswordAlgorithm = PasswordAlgorithm::Md5;

/// ada, signing with MESSAGE-INTEGRITY-SHA256 and the key of `algorithm`.
fn modern(password: &str, algorithm: PasswordAlgorithm, more: AuthOptions) -> Client {
    let options = AuthOptions { sha256: true, password_algorithm: Some(algorithm), ..more };
    Client::with_options("ada", password, options)
}

/// Sends one Allocate after the challenge and returns the raw answer too.
fn allocate_raw(h: &mut Harness, tuple: &turn::server::ClientTuple, client: &mut Client) -> Vec<Vec<u8>> {
    let first = h.once(tuple, client, &|c, buf, t| c.allocate(buf, t, &AllocateOptions::default()));
    assert_eq!(first.outcome, Outcome::Retry, "{first:?}");
    let mut buf = [0u8; 1504];
    let (_, len) = client.allocate(&mut buf, h.transaction(), &AllocateOptions::default()).unwrap();
    h.client_sends(tuple, &buf[..len])
}

#[test]
fn the_challenge_offers_sha256_then_md5_in_a_nonce_with_the_cookie() {
    let mut h = Harness::new("");
    let mut buf = [0u8; 256];
    let (_, len) = ada().allocate(&mut buf, h.transaction(), &AllocateOptions::default()).unwrap();
    let answers = h.client_sends(&udp(1), &buf[..len]);
    let challenge = Message::parse(&answers[0]).unwrap();
    assert_eq!(challenge.error_code().unwrap().0, 401);
    assert_eq!(challenge.get(AttrType::PASSWORD_ALGORITHMS), Some(&[0, 2, 0, 0, 0, 1, 0, 0][..]));
    // Password algorithms, and no username anonymity: REST API names cannot be found by hash.
    assert!(challenge.get(AttrType::NONCE).unwrap().starts_with(b"obMatJos2AAAB"));
}

#[test]
fn sha256_integrity_with_the_sha256_key_allocates_and_is_answered_in_kind() {
    let mut h = Harness::new("");
    let mut client = modern("lovelace", SHA256, AuthOptions::default());
    let answers = allocate_raw(&mut h, &udp(1), &mut client);
    let response = client.handle_response(&answers[0]).unwrap();
    assert_eq!(response.outcome, Outcome::Success, "{response:?}");
    assert!(response.signed && response.signed_sha256);
    let message = Message::parse(&answers[0]).unwrap();
    assert_eq!(message.get(AttrType::MESSAGE_INTEGRITY_SHA256).map(<[u8]>::len), Some(32));
    assert!(message.get(AttrType::MESSAGE_INTEGRITY).is_none());
    let key = long_term_key_with(SHA256, "ada", REALM, "lovelace");
    assert_eq!(message.verify_integrity_sha256(key.sha256()), Ok(()));
    // Later requests on the allocation keep to the same key and integrity.
    let refreshed = h.refresh(&udp(1), &mut client, Some(300));
    assert!(code(&refreshed) == 0 && refreshed.signed_sha256, "{refreshed:?}");
    let permitted = h.permit(&udp(1), &mut client, &[addr("93.184.216.34:5000")]);
    assert!(code(&permitted) == 0 && permitted.signed_sha256, "{permitted:?}");
}

#[test]
fn every_combination_of_key_and_integrity_works() {
    let mut h = Harness::new("user-quota=8");
    for (n, (algorithm, sha256)) in
        [(MD5, false), (MD5, true), (SHA256, false), (SHA256, true)].into_iter().enumerate()
    {
        let options = AuthOptions { sha256, password_algorithm: Some(algorithm), ..AuthOptions::default() };
        let mut client = Client::with_options("ada", "lovelace", options);
        let response = h.allocate(&udp(n as u8 + 1), &mut client, AllocateOptions::default());
        assert_eq!(response.outcome, Outcome::Success, "{algorithm:?} {sha256}: {response:?}");
        assert!(response.signed && response.signed_sha256 == sha256);
    }
}

#[test]
fn userhash_finds_a_static_user_and_the_response_names_no_one() {
    let mut h = Harness::new("");
    for (n, options) in [
        AuthOptions {
            userhash: true,
            sha256: true,
            password_algorithm: Some(SHA256),
            ..AuthOptions::default()
        },
        AuthOptions { userhash: true, ..AuthOptions::default() },
    ]
    .into_iter()
    .enumerate()
    {
        let mut client = Client::with_options("ada", "lovelace", options);
        let tuple = udp(n as u8 + 1);
        let answers = allocate_raw(&mut h, &tuple, &mut client);
        let response = client.handle_response(&answers[0]).unwrap();
        assert_eq!(response.outcome, Outcome::Success, "{response:?}");
        let message = Message::parse(&answers[0]).unwrap();
        assert!(message.get(AttrType::USERNAME).is_none() && message.get(AttrType::USERHASH).is_none());
        // The allocation is ada's: her quota, her key for the refresh.
        assert_eq!(code(&h.refresh(&tuple, &mut client, Some(300))), 0);
    }
    assert_eq!(h.metrics().auth_failures(), 0);
}

#[test]
fn rest_api_usernames_cannot_hide_behind_a_userhash() {
    let mut h = Harness::new("");
    let username = format!("{}:meeting", NOW_UNIX + 3600);
    let password = stun::rest_api_password(SECRET, &username);
    let options = AuthOptions { userhash: true, ..AuthOptions::default() };
    let mut client = Client::with_options(&username, &password, options);
    let response = h.allocate(&udp(1), &mut client, AllocateOptions::default());
    assert_eq!(code(&response), 401);
    assert_eq!(h.metrics().auth_failures(), 1);
    // The same credentials with USERNAME, and the SHA-256 key, are fine.
    let options = AuthOptions { sha256: true, password_algorithm: Some(SHA256), ..AuthOptions::default() };
    let mut client = Client::with_options(&username, &password, options);
    assert_eq!(code(&h.allocate(&udp(2), &mut client, AllocateOptions::default())), 0);
}

#[test]
fn a_bid_down_is_a_bad_request() {
    let mut h = Harness::new("");
    // PASSWORD-ALGORITHMS altered on the way: MD5 alone, where the server offered SHA-256 too.
    let altered = AuthOptions { password_algorithms: Some(vec![MD5]), ..AuthOptions::default() };
    let mut client = modern("lovelace", MD5, altered);
    assert_eq!(code(&h.allocate(&udp(1), &mut client, AllocateOptions::default())), 400);
    // Reordered is altered too.
    let reordered = AuthOptions { password_algorithms: Some(vec![MD5, SHA256]), ..AuthOptions::default() };
    let mut client = modern("lovelace", SHA256, reordered);
    assert_eq!(code(&h.allocate(&udp(2), &mut client, AllocateOptions::default())), 400);

    // An algorithm that was not offered (0x0003), with the offer echoed faithfully.
    let mut client = ada();
    let not_offered = |c: &Client, buf: &mut [u8], t| {
        c.request(buf, stun::Method::ALLOCATE, t, |m| {
            m.requested_transport(17)?
                .attribute(AttrType::PASSWORD_ALGORITHM, &[0, 3, 0, 0])?
                .attribute(AttrType::PASSWORD_ALGORITHMS, &[0, 2, 0, 0, 0, 1, 0, 0])
                .map(drop)
        })
    };
    assert_eq!(code(&h.exchange(&udp(3), &mut client, &not_offered)), 400);

    // PASSWORD-ALGORITHMS without PASSWORD-ALGORITHM.
    let mut client = ada();
    let half = |c: &Client, buf: &mut [u8], t| {
        c.request(buf, stun::Method::ALLOCATE, t, |m| {
            m.requested_transport(17)?
                .attribute(AttrType::PASSWORD_ALGORITHMS, &[0, 2, 0, 0, 0, 1, 0, 0])
                .map(drop)
        })
    };
    assert_eq!(code(&h.exchange(&udp(4), &mut client, &half)), 400);
    assert_eq!(h.server.allocations(), 0);
}

#[test]
fn a_wrong_password_with_sha256_is_401_and_counted() {
    let mut h = Harness::new("");
    let mut client = modern("babbage", SHA256, AuthOptions::default());
    assert_eq!(code(&h.allocate(&udp(1), &mut client, AllocateOptions::default())), 401);
    assert_eq!(h.metrics().auth_failures(), 1);
    // A user configured by MD5 key has no SHA-256 key to sign with.
    let mut h = Harness::new("user=carol:0x00112233445566778899aabbccddeeff");
    let mut client = Client::with_options(
        "carol",
        "unknown",
        AuthOptions { password_algorithm: Some(SHA256), ..AuthOptions::default() },
    );
    assert_eq!(code(&h.allocate(&udp(1), &mut client, AllocateOptions::default())), 401);
}

#[test]
fn a_truncated_sha256_integrity_of_16_bytes_is_accepted_and_12_refused() {
    let mut h = Harness::new("");
    let sixteen = AuthOptions { sha256_len: Some(16), ..AuthOptions::default() };
    let mut client = modern("lovelace", SHA256, sixteen);
    let answers = allocate_raw(&mut h, &udp(1), &mut client);
    let response = client.handle_response(&answers[0]).unwrap();
    assert_eq!(response.outcome, Outcome::Success, "{response:?}");
    let message = Message::parse(&answers[0]).unwrap();
    assert_eq!(message.get(AttrType::MESSAGE_INTEGRITY_SHA256).map(<[u8]>::len), Some(32), "sent whole");

    // 12 bytes is not a MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6): dropped as malformed.
    let twelve = AuthOptions { sha256_len: Some(12), ..AuthOptions::default() };
    let mut client = modern("lovelace", SHA256, twelve);
    let build = |c: &Client, buf: &mut [u8], t| c.allocate(buf, t, &AllocateOptions::default());
    assert_eq!(h.once(&udp(2), &mut client, &build).outcome, Outcome::Retry);
    assert!(h.try_once(&udp(2), &mut client, &build).is_none());
    assert_eq!(h.metrics().drops(DropReason::Malformed), 1);
    assert_eq!(h.server.allocations(), 1);
}

#[test]
fn classic_clients_keep_md5_and_message_integrity() {
    let mut h = Harness::new("");
    let mut client = ada();
    let answers = allocate_raw(&mut h, &udp(1), &mut client);
    let response = client.handle_response(&answers[0]).unwrap();
    assert!(response.outcome == Outcome::Success && response.signed && !response.signed_sha256);
    let message = Message::parse(&answers[0]).unwrap();
    assert_eq!(message.class(), Class::Success);
    assert!(message.get(AttrType::MESSAGE_INTEGRITY_SHA256).is_none());
    assert_eq!(message.verify_integrity(&stun::long_term_key("ada", REALM, "lovelace")), Ok(()));
    // A REST API client as the signaling daemon hands them out.
    let mut client = rest(NOW_UNIX + 3600);
    assert_eq!(code(&h.allocate(&udp(2), &mut client, AllocateOptions::default())), 0);
}
