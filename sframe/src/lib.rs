//! SFrame (RFC 9605): end-to-end encryption of media frames, so the bridge forwards frames it
//! cannot read (DESIGN.md invariant 9).
//!
//! Sans-IO and allocation-free per frame: frames are encrypted and decrypted into buffers the
//! caller owns; keys are derived once when inserted.
//!
//! ```
//! use sframe::{CipherSuite, Context, Ctr, Kid, Usage};
//!
//! let base_key = [0x42u8; 16];
//! let mut alice = Context::<4>::new(CipherSuite::Aes128GcmSha256_128);
//! alice.insert(Kid(1), Usage::Encrypt, &base_key).unwrap();
//! let mut bob = Context::<4>::new(CipherSuite::Aes128GcmSha256_128);
//! bob.insert(Kid(1), Usage::Decrypt, &base_key).unwrap();
//!
//! let mut wire = [0u8; 64];
//! // CTR counts up per KID; never reuse one (see `Context::encrypt`).
//! let n = alice.encrypt(Kid(1), Ctr(0), b"metadata", b"frame", &mut wire).unwrap();
//! let mut plain = [0u8; 64];
//! let got = bob.decrypt(b"metadata", &wire[..n], &mut plain).unwrap();
//! assert_eq!((got.kid, &plain[..got.len]), (Kid(1), &b"frame"[..]));
//! ```
//!
//! Contract:
//! - Each (base_key, KID, CTR) is used for one frame only; choosing CTRs is the caller's job.
//! - Replay and ordering checks on receive are the application's (RFC 9605 §7.3): `decrypt`
//!   accepts any authentic frame, as often as it is given.
//! - Every malformed input is a typed, `Copy` error; nothing here panics on network bytes.
//! - A `base_key` is stored for [`Usage::Encrypt`] or [`Usage::Decrypt`], never both (§4.4.1).
//!
//! Modules: [`header`] (the wire header), [`suite`] (cipher suites), [`keys`] (key and salt
//! derivation, nonces), [`aead`] (the suites' AEADs), [`context`] (the key store and frame
//! operations), [`sender_keys`] (how our product derives a key per sender from a room
//! passphrase).

#![forbid(unsafe_code)]

pub mod aead;
pub mod context;
pub mod header;
pub mod keys;
pub mod sender_keys;
pub mod suite;

pub use context::{Context, Decrypted, Error, MAX_METADATA_LEN, Usage};
pub use header::{Ctr, Header, HeaderError, Kid};
pub use keys::KeyMaterial;
pub use suite::CipherSuite;
