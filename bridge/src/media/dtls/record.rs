//! DTLS record headers (RFC 6347 §4.1), parsed before OpenSSL sees a datagram so that what
//! is not DTLS is dropped and counted here, cheaply and without touching the connection.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | content type  |  version (254, 255 or 253)    |     epoch     :
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! :   (epoch)     |           sequence number (48 bits)           :
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! :                               |            length             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  fragment (length bytes) ... then the next record, if any
//! ```
//!
//! A datagram may carry several records (RFC 6347 §4.1.1); each must lie wholly inside it.

/// Bytes of a record header.
pub const HEADER_LEN: usize = 13;

/// Largest fragment a record may carry: 2^14 bytes of plaintext plus 2048 of expansion
/// (RFC 6347 §4.1 via RFC 5246 §6.2.3).
pub const MAX_FRAGMENT_LEN: usize = (1 << 14) + 2048;

/// Record content types of DTLS 1.2 (RFC 5246 §6.2.1). Others (heartbeat, the DTLS 1.3
/// unified header) are refused: we speak DTLS 1.2 without extensions that add them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ContentType {
    ChangeCipherSpec = 20,
    Alert = 21,
    Handshake = 22,
    ApplicationData = 23,
}

impl ContentType {
    fn from_wire(byte: u8) -> Option<Self> {
        match byte {
            20 => Some(Self::ChangeCipherSpec),
            21 => Some(Self::Alert),
            22 => Some(Self::Handshake),
            23 => Some(Self::ApplicationData),
            _ => None,
        }
    }
}

/// Record layer versions. A DTLS 1.2 client's first ClientHello may carry DTLS 1.0 in its
/// record header (RFC 6347 §4.1 allows any value there; OpenSSL and BoringSSL send 1.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// 254.255.
    Dtls1_0,
    /// 254.253.
    Dtls1_2,
}

impl Version {
    fn from_wire(major: u8, minor: u8) -> Option<Self> {
        match (major, minor) {
            (254, 255) => Some(Self::Dtls1_0),
            (254, 253) => Some(Self::Dtls1_2),
            _ => None,
        }
    }
}

/// Why bytes are not a DTLS record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordError {
    /// Fewer than [`HEADER_LEN`] bytes (an empty datagram included).
    TooShort,
    /// Content type outside 20..=23.
    ContentType,
    /// Not DTLS 1.0 or 1.2.
    Version,
    /// The length field exceeds [`MAX_FRAGMENT_LEN`].
    TooLong,
    /// The fragment runs past the end of the datagram.
    Truncated,
}

/// One record's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordHeader {
    pub content_type: ContentType,
    pub version: Version,
    pub epoch: u16,
    /// 48 bits (RFC 6347 §4.1): below 2^48.
    pub sequence: u64,
    /// Bytes of the fragment that follows the header.
    pub length: u16,
}

impl RecordHeader {
    /// Parses the header at the start of `input` and checks that its whole fragment follows.
    /// Returns the header and the bytes after the header: the fragment first, then whatever
    /// follows it.
    pub fn parse(input: &[u8]) -> Result<(Self, &[u8]), RecordError> {
        let Some((header, rest)) = input.split_first_chunk::<HEADER_LEN>() else {
            return Err(RecordError::TooShort);
        };
        let content_type = ContentType::from_wire(header[0]).ok_or(RecordError::ContentType)?;
        let version = Version::from_wire(header[1], header[2]).ok_or(RecordError::Version)?;
        let epoch = u16::from_be_bytes([header[3], header[4]]);
        let mut sequence = [0u8; 8];
        sequence[2..].copy_from_slice(&header[5..11]);
        let length = u16::from_be_bytes([header[11], header[12]]);
        if usize::from(length) > MAX_FRAGMENT_LEN {
            return Err(RecordError::TooLong);
        }
        if rest.len() < usize::from(length) {
            return Err(RecordError::Truncated);
        }
        let sequence = u64::from_be_bytes(sequence);
        Ok((Self { content_type, version, epoch, sequence, length }, rest))
    }
}

/// A record of a datagram: its header and fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub header: RecordHeader,
    pub fragment: &'a [u8],
}

/// The records of a datagram, in order. After the first error it yields nothing more.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    rest: &'a [u8],
    failed: bool,
}

/// Iterates over the records of `datagram`.
pub fn records(datagram: &[u8]) -> Records<'_> {
    Records { rest: datagram, failed: false }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        match RecordHeader::parse(self.rest) {
            Ok((header, after)) => {
                let (fragment, rest) = after.split_at(usize::from(header.length));
                self.rest = rest;
                Some(Ok(Record { header, fragment }))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Checks that `datagram` is one or more well-formed records and nothing else.
pub fn check_datagram(datagram: &[u8]) -> Result<(), RecordError> {
    if datagram.is_empty() {
        return Err(RecordError::TooShort);
    }
    records(datagram).try_for_each(|record| record.map(drop))
}

/// The demultiplexing test of RFC 7983 §7: a first byte in 20..=63 means DTLS (as opposed to
/// STUN, 0..=3, and RTP/RTCP, 128..=191). Cheap; [`check_datagram`] is the real check.
pub fn looks_like_dtls(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| (20..=63).contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(content_type: u8, version: [u8; 2], epoch: u16, sequence: u64, fragment: &[u8]) -> Vec<u8> {
        let mut out = vec![content_type, version[0], version[1]];
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(&sequence.to_be_bytes()[2..]);
        out.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
        out.extend_from_slice(fragment);
        out
    }

    #[test]
    fn parses_every_field() {
        let bytes = record(22, [254, 253], 1, 0x0000_1234_5678_9abc, &[1, 2, 3]);
        let (header, rest) = RecordHeader::parse(&bytes).unwrap();
        assert_eq!(
            header,
            RecordHeader {
                content_type: ContentType::Handshake,
                version: Version::Dtls1_2,
                epoch: 1,
                sequence: 0x1234_5678_9abc,
                length: 3,
            }
        );
        assert_eq!(rest, &[1, 2, 3]);
    }

    #[test]
    fn iterates_over_the_records_of_a_datagram() {
        let mut datagram = record(22, [254, 255], 0, 0, &[0xaa; 40]);
        datagram.extend(record(20, [254, 253], 0, 1, &[1]));
        datagram.extend(record(22, [254, 253], 1, 0, &[]));
        let records: Vec<_> = records(&datagram).collect::<Result<_, _>>().unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].header.version, Version::Dtls1_0);
        assert_eq!(records[0].fragment, &[0xaa; 40]);
        assert_eq!(records[1].header.content_type, ContentType::ChangeCipherSpec);
        assert_eq!(records[2].header.epoch, 1);
        assert_eq!(check_datagram(&datagram), Ok(()));
    }

    #[test]
    fn refuses_what_is_not_a_record() {
        let good = record(23, [254, 253], 1, 5, &[0; 8]);
        assert_eq!(check_datagram(&[]), Err(RecordError::TooShort));
        assert_eq!(check_datagram(&good[..12]), Err(RecordError::TooShort));
        assert_eq!(check_datagram(&good[..good.len() - 1]), Err(RecordError::Truncated));
        assert_eq!(check_datagram(&record(24, [254, 253], 0, 0, &[])), Err(RecordError::ContentType));
        assert_eq!(check_datagram(&record(22, [3, 3], 0, 0, &[])), Err(RecordError::Version));
        assert_eq!(
            check_datagram(&record(22, [1, 0], 0, 0, &[])),
            Err(RecordError::Version),
            "DTLS1_BAD_VER"
        );
        let mut too_long = record(23, [254, 253], 1, 0, &[]);
        too_long[11..13].copy_from_slice(&(MAX_FRAGMENT_LEN as u16 + 1).to_be_bytes());
        assert_eq!(RecordHeader::parse(&too_long), Err(RecordError::TooLong));
        let mut trailing = good.clone();
        trailing.push(22);
        assert_eq!(check_datagram(&trailing), Err(RecordError::TooShort), "junk after the last record");
    }

    #[test]
    fn demultiplexes_by_first_byte() {
        assert!(looks_like_dtls(&[22]));
        assert!(looks_like_dtls(&[63]));
        assert!(!looks_like_dtls(&[0, 1])); // STUN
        assert!(!looks_like_dtls(&[0x80])); // RTP
        assert!(!looks_like_dtls(&[]));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = check_datagram(&bytes);
            for record in records(&bytes) {
                let Ok(record) = record else { break };
                prop_assert!(record.header.sequence < 1 << 48);
                prop_assert_eq!(record.fragment.len(), usize::from(record.header.length));
            }
        }

        #[test]
        fn well_formed_records_round_trip(
            content_type in 20u8..=23,
            epoch in any::<u16>(),
            sequence in 0u64..1 << 48,
            fragment in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let bytes = record(content_type, [254, 253], epoch, sequence, &fragment);
            let (header, rest) = RecordHeader::parse(&bytes).unwrap();
            prop_assert_eq!(header.content_type as u8, content_type);
            prop_assert_eq!((header.epoch, header.sequence), (epoch, sequence));
            prop_assert_eq!(rest, &fragment[..]);
        }
    }
}
