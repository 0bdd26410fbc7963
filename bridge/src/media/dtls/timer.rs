//! OpenSSL's DTLS retransmission timer, which the `openssl` crate does not wrap. Both calls
//! are `SSL_ctrl` codes (macros in `openssl/ssl.h`, absent from `openssl-sys`):
//!
//! - `DTLSv1_get_timeout` (73) fills a `struct timeval` with the time *left* until the
//!   timer fires and returns 1 while a timer runs; 0 when none does. Less than 15 ms left
//!   counts as expired and reads as zero (`dtls1_get_timeout` in `ssl/d1_lib.c`).
//! - `DTLSv1_handle_timeout` (74) retransmits the last flight if the timer has expired by
//!   OpenSSL's own clock (`gettimeofday`), doubling the timeout; returns 1 when it
//!   retransmitted, 0 when the timer had not expired, -1 on a fatal error (after 12
//!   retransmissions OpenSSL gives up).

use std::ffi::{c_int, c_long, c_void};
use std::time::Duration;

use openssl::ssl::SslRef;
use openssl_sys as ffi;

/// `DTLS_CTRL_GET_TIMEOUT` in `openssl/ssl.h`.
const DTLS_CTRL_GET_TIMEOUT: c_int = 73;
/// `DTLS_CTRL_HANDLE_TIMEOUT` in `openssl/ssl.h`.
const DTLS_CTRL_HANDLE_TIMEOUT: c_int = 74;

/// The `SSL *` behind `ssl`. The `openssl` crate's reference types are foreign-types'
/// opaque references: the address of an `SslRef` *is* the `SSL *` (that is how
/// `ForeignTypeRef::as_ptr` and `from_ptr` convert, by a plain cast). We cast the same way
/// rather than depend on `foreign-types` for its trait.
fn raw(ssl: &SslRef) -> *mut ffi::SSL {
    std::ptr::from_ref(ssl).cast_mut().cast()
}

/// Time left on the retransmission timer, or `None` when no timer runs.
pub fn time_left(ssl: &SslRef) -> Option<Duration> {
    let mut left = libc::timeval { tv_sec: 0, tv_usec: 0 };
    // SAFETY: `raw(ssl)` is the live `SSL *` that `ssl` borrows, so it stays valid for the
    // call. For this control code OpenSSL writes one `struct timeval` through `parg` and
    // keeps no pointer to it; `left` is a local `timeval` (the platform's type, as the C
    // code expects) that outlives the call.
    let running =
        unsafe { ffi::SSL_ctrl(raw(ssl), DTLS_CTRL_GET_TIMEOUT, 0, (&raw mut left).cast::<c_void>()) };
    if running != 1 {
        return None;
    }
    let secs = u64::try_from(left.tv_sec).unwrap_or(0);
    let micros = u64::try_from(left.tv_usec).unwrap_or(0);
    Some(Duration::from_secs(secs) + Duration::from_micros(micros))
}

/// What `DTLSv1_handle_timeout` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// The flight went out again (into the transport's queue).
    Retransmitted,
    /// OpenSSL's clock says the timer has not run out yet (or no timer runs).
    NotYet,
    /// Too many retransmissions or a write failure: the handshake is dead.
    Fatal,
}

/// Lets OpenSSL retransmit if its timer has expired. After a failure it clears this thread's
/// OpenSSL error queue, so the failure does not surface in an unrelated later call.
pub fn handle_timeout(ssl: &SslRef) -> Expiry {
    // SAFETY: `raw(ssl)` is the live `SSL *` that `ssl` borrows. This control code takes no
    // pointer argument (`parg` is null). Retransmitting writes through the connection's BIO,
    // the `openssl` crate's stream BIO over our `Datagrams`, which the `SslStream` owning
    // `ssl` keeps alive; we hold no other borrow of that transport during the call.
    let result: c_long =
        unsafe { ffi::SSL_ctrl(raw(ssl), DTLS_CTRL_HANDLE_TIMEOUT, 0, std::ptr::null_mut()) };
    match result {
        1.. => Expiry::Retransmitted,
        0 => Expiry::NotYet,
        _ => {
            drop(openssl::error::ErrorStack::get());
            Expiry::Fatal
        }
    }
}
