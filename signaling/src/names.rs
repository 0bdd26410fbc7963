//! placeholder (temporary until the generator lands): room-name syntax and a tiny generator.

/// Whether `name` is a room name the protocol allows.
pub fn is_valid_room_name(name: &str) -> bool {
    (3..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// A random room name.
pub fn generate() -> String {
    let mut bytes = [0u8; 8];
    crate::secret::random_bytes(&mut bytes);
    format!("room-{:016x}", u64::from_be_bytes(bytes))
}
