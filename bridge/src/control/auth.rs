//! The shared secret every control request carries (`Authorization: Bearer <secret>`).

/// Minimum secret length: a shared secret shorter than this is guessable over a LAN.
pub const MIN_SECRET_LEN: usize = 16;

/// Whether an `Authorization` header value carries `secret`. The comparison takes the same
/// time wherever the first difference is, so timing reveals nothing about the secret.
pub fn authorized(header: Option<&[u8]>, secret: &[u8]) -> bool {
    let Some(value) = header else { return false };
    let Some(token) = value.strip_prefix(b"Bearer ") else { return false };
    constant_time_eq(token, secret)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // The length is not secret (the configuration documents the minimum); the bytes are.
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_secret_passes() {
        let secret = b"0123456789abcdef";
        assert!(authorized(Some(b"Bearer 0123456789abcdef"), secret));
        for wrong in [
            &b"Bearer 0123456789abcdeF"[..],
            b"Bearer 0123456789abcde",
            b"Bearer 0123456789abcdef0",
            b"bearer 0123456789abcdef",
            b"0123456789abcdef",
            b"Basic MDEyMzQ1Njc4OWFiY2RlZg==",
            b"",
        ] {
            assert!(!authorized(Some(wrong), secret), "{}", String::from_utf8_lossy(wrong));
        }
        assert!(!authorized(None, secret));
    }
}
