//! The participant's side of a connection to the bridge, without media codecs: ICE
//! credentials and a certificate ([`identity`]), the controlling agent's checks ([`ice`]), and
//! the DTLS client handshake that yields SRTP contexts ([`connect`]). It is what a browser does
//! before media flows, for the bridge's own tests and for `loadgen`; the bridge itself never
//! uses it.

pub mod connect;
pub mod ice;
pub mod identity;
