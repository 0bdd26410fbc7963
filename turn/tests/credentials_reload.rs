//! SIGHUP's credential reload as the workers see it: once `Shared::credentials` is replaced,
//! the next authentication checks against the new secrets and users, the old ones fail, and an
//! allocation made before keeps working with the key it was made with until it goes.

mod common;

use turn::auth::Credentials;
use turn::client::{AllocateOptions, Client};
use turn::config::TurnConfig;

use common::{Harness, NOW_UNIX, REALM, ada, code, rest, udp};

const NEW_SECRET: &str = "fedcba9876543210fedcba";

fn rest_with(secret: &str, expiry: u64) -> Client {
    let username = format!("{expiry}:meeting");
    Client::new(&username, &stun::rest_api_password(secret, &username))
}

#[test]
fn new_authentications_use_the_reloaded_credentials() {
    let mut h = Harness::new("");
    let mut before = rest(NOW_UNIX + 3600);
    h.allocated(&udp(1), &mut before);

    // The file now has another secret and no users.
    let reloaded =
        TurnConfig::parse(&format!("use-auth-secret\nstatic-auth-secret={NEW_SECRET}\nrealm={REALM}\n"))
            .unwrap()
            .config;
    h.server.shared().credentials.replace(Credentials::new(&reloaded));

    let mut old = rest(NOW_UNIX + 3600);
    assert_eq!(code(&h.allocate(&udp(2), &mut old, AllocateOptions::default())), 401, "the old secret");
    assert_eq!(code(&h.allocate(&udp(3), &mut ada(), AllocateOptions::default())), 401, "a removed user");
    let mut new = rest_with(NEW_SECRET, NOW_UNIX + 3600);
    assert_eq!(code(&h.allocate(&udp(4), &mut new, AllocateOptions::default())), 0, "the new secret");
    assert_eq!(code(&h.refresh(&udp(1), &mut before, Some(600))), 0, "made before: its own key");
}
