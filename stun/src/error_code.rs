//! The STUN and TURN error codes (RFC 8489 §14.8, RFC 8656 §19), with their reason phrases in
//! one table so that every response names a code the same way.

/// An ERROR-CODE value (300..=699).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    pub const TRY_ALTERNATE: ErrorCode = ErrorCode(300);
    pub const BAD_REQUEST: ErrorCode = ErrorCode(400);
    pub const UNAUTHENTICATED: ErrorCode = ErrorCode(401);
    pub const FORBIDDEN: ErrorCode = ErrorCode(403);
    pub const UNKNOWN_ATTRIBUTE: ErrorCode = ErrorCode(420);
    pub const ALLOCATION_MISMATCH: ErrorCode = ErrorCode(437);
    pub const STALE_NONCE: ErrorCode = ErrorCode(438);
    pub const ADDRESS_FAMILY_NOT_SUPPORTED: ErrorCode = ErrorCode(440);
    pub const WRONG_CREDENTIALS: ErrorCode = ErrorCode(441);
    pub const UNSUPPORTED_TRANSPORT_PROTOCOL: ErrorCode = ErrorCode(442);
    pub const PEER_ADDRESS_FAMILY_MISMATCH: ErrorCode = ErrorCode(443);
    /// RFC 6062 §6.3.
    pub const CONNECTION_ALREADY_EXISTS: ErrorCode = ErrorCode(446);
    pub const CONNECTION_TIMEOUT_OR_FAILURE: ErrorCode = ErrorCode(447);
    pub const ALLOCATION_QUOTA_REACHED: ErrorCode = ErrorCode(486);
    pub const ROLE_CONFLICT: ErrorCode = ErrorCode(487);
    pub const SERVER_ERROR: ErrorCode = ErrorCode(500);
    pub const INSUFFICIENT_CAPACITY: ErrorCode = ErrorCode(508);

    /// The reason phrase the RFCs suggest; an empty one for codes outside the table.
    pub fn reason(self) -> &'static str {
        match self.0 {
            300 => "Try Alternate",
            400 => "Bad Request",
            401 => "Unauthenticated",
            403 => "Forbidden",
            420 => "Unknown Attribute",
            437 => "Allocation Mismatch",
            438 => "Stale Nonce",
            440 => "Address Family not Supported",
            441 => "Wrong Credentials",
            442 => "Unsupported Transport Protocol",
            443 => "Peer Address Family Mismatch",
            446 => "Connection Already Exists",
            447 => "Connection Timeout or Failure",
            486 => "Allocation Quota Reached",
            487 => "Role Conflict",
            500 => "Server Error",
            508 => "Insufficient Capacity",
            _ => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_in_the_table_has_its_phrase() {
        assert_eq!(ErrorCode::STALE_NONCE.reason(), "Stale Nonce");
        assert_eq!(ErrorCode::INSUFFICIENT_CAPACITY.reason(), "Insufficient Capacity");
        assert_eq!(ErrorCode::CONNECTION_ALREADY_EXISTS.reason(), "Connection Already Exists");
        assert_eq!(ErrorCode::CONNECTION_TIMEOUT_OR_FAILURE.reason(), "Connection Timeout or Failure");
        assert_eq!(ErrorCode(599).reason(), "");
    }
}
