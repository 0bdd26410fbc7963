//! An SFrame context: a fixed-capacity key store keyed by KID, and frame encryption and
//! decryption with it (RFC 9605 §4.4.3, §4.4.4).

use core::fmt;

use crate::aead::{Aead, AeadError};
use crate::header::{Ctr, Header, HeaderError, Kid};
use crate::keys::KeyMaterial;
use crate::suite::CipherSuite;

/// Longest metadata [`Context::encrypt`] and [`Context::decrypt`] accept. The AAD is
/// header || metadata and ring's AES-GCM wants it contiguous, so it is assembled on the stack;
/// this bound keeps that buffer fixed. Frame metadata (codec bits, an RTP header) is far shorter.
pub const MAX_METADATA_LEN: usize = 1024;

const MAX_AAD_LEN: usize = Header::MAX_LEN + MAX_METADATA_LEN;

/// What a key may do. RFC 9605 §4.4.1: a `base_key` is for encryption or for decryption,
/// never both, so that a receiver's copy of a sender's key cannot produce frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Encrypt,
    Decrypt,
}

/// Why a frame could not be encrypted or decrypted. `Copy` and allocation-free so the caller
/// can drop and count bad frames by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The SFrame header is malformed.
    Header(HeaderError),
    /// No key for this KID. RFC 9605 §4.4.4 lets the receiver buffer the frame and retry once
    /// the key arrives; every other error means drop.
    UnknownKid(Kid),
    /// The KID's key exists but for the other [`Usage`].
    WrongUsage(Kid),
    /// The ciphertext is shorter than the tag.
    TooShort,
    /// `metadata` is longer than [`MAX_METADATA_LEN`].
    MetadataTooLong,
    /// The output buffer cannot hold the result.
    BufferTooSmall,
    /// Plaintext too long for the suite's counter space.
    FrameTooLong,
    /// Authentication failed: a forged, corrupted or wrongly keyed frame, or wrong metadata.
    Authentication,
    /// The key store is full.
    Full,
    /// A key with this KID is already stored; remove it first.
    DuplicateKid(Kid),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Header(e) => write!(f, "{e}"),
            Error::UnknownKid(kid) => write!(f, "no key for {kid}"),
            Error::WrongUsage(kid) => write!(f, "key for {kid} not usable for this operation"),
            Error::TooShort => f.write_str("SFrame ciphertext shorter than its tag"),
            Error::MetadataTooLong => f.write_str("SFrame metadata too long"),
            Error::BufferTooSmall => f.write_str("output buffer too small"),
            Error::FrameTooLong => f.write_str("frame too long for the cipher suite"),
            Error::Authentication => f.write_str("SFrame authentication failed"),
            Error::Full => f.write_str("SFrame key store full"),
            Error::DuplicateKid(kid) => write!(f, "{kid} already has a key"),
        }
    }
}

impl core::error::Error for Error {}

impl From<HeaderError> for Error {
    fn from(e: HeaderError) -> Self {
        Error::Header(e)
    }
}

/// What [`Context::decrypt`] found: who sent the frame and where the plaintext ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decrypted {
    pub kid: Kid,
    pub ctr: Ctr,
    /// Plaintext bytes written at the start of the output buffer.
    pub len: usize,
}

struct Slot {
    kid: Kid,
    usage: Usage,
    aead: Aead,
    material: KeyMaterial,
}

/// An SFrame context for one cipher suite holding up to `N` keys.
///
/// Lookup is a linear scan: `N` is the number of senders in a room (times a key generation or
/// two), and a scan of a few dozen KIDs costs less than the AEAD on one frame.
///
/// Not done here, and the application's job (RFC 9605 §7.1, §7.3): choosing CTR values so that
/// no (base_key, KID, CTR) is ever used twice, and anti-replay / ordering on receive. A frame
/// decrypted twice decrypts twice.
pub struct Context<const N: usize> {
    suite: CipherSuite,
    slots: [Option<Slot>; N],
}

impl<const N: usize> fmt::Debug for Context<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids = self.slots.iter().flatten().map(|s| (s.kid, s.usage));
        f.debug_struct("Context").field("suite", &self.suite).field("keys", &DebugList(kids)).finish()
    }
}

struct DebugList<I>(I);

impl<I: Iterator<Item = (Kid, Usage)> + Clone> fmt::Debug for DebugList<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.clone()).finish()
    }
}

impl<const N: usize> Context<N> {
    pub fn new(suite: CipherSuite) -> Self {
        Context { suite, slots: [const { None }; N] }
    }

    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// Derives `sframe_key` and `sframe_salt` from `base_key` for `kid` and stores them.
    pub fn insert(&mut self, kid: Kid, usage: Usage, base_key: &[u8]) -> Result<(), Error> {
        if self.slot(kid).is_some() {
            return Err(Error::DuplicateKid(kid));
        }
        let free = self.slots.iter_mut().find(|s| s.is_none()).ok_or(Error::Full)?;
        let material = KeyMaterial::derive(self.suite, kid, base_key);
        let aead = Aead::new(self.suite, material.key())
            .expect("KeyMaterial::derive makes keys of the suite's Nk bytes");
        *free = Some(Slot { kid, usage, aead, material });
        Ok(())
    }

    /// Forgets `kid`'s key (on rotation or when a sender leaves). Returns whether it was there.
    pub fn remove(&mut self, kid: Kid) -> bool {
        match self.slots.iter_mut().find(|s| s.as_ref().is_some_and(|s| s.kid == kid)) {
            Some(slot) => {
                *slot = None;
                true
            }
            None => false,
        }
    }

    /// Bytes `encrypt` writes for a plaintext of `plaintext_len` bytes.
    pub fn ciphertext_len(&self, kid: Kid, ctr: Ctr, plaintext_len: usize) -> usize {
        Header::new(kid, ctr).encoded_len() + plaintext_len + self.suite.nt()
    }

    /// Encrypts one frame into `out` as header || ciphertext || tag and returns its length.
    ///
    /// The caller MUST NOT use a (KID, CTR) twice with the same key (RFC 9605 §7.1): with
    /// AES-GCM a repeated nonce reveals the XOR of two frames and lets anyone forge frames.
    /// Count CTR up from 0 per KID.
    pub fn encrypt(
        &self,
        kid: Kid,
        ctr: Ctr,
        metadata: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let slot = self.slot(kid).ok_or(Error::UnknownKid(kid))?;
        if slot.usage != Usage::Encrypt {
            return Err(Error::WrongUsage(kid));
        }
        let header = Header::new(kid, ctr);
        let total = self.ciphertext_len(kid, ctr, plaintext.len());
        let out = out.get_mut(..total).ok_or(Error::BufferTooSmall)?;
        let header_len = header.encode(out)?;
        let mut aad = [0u8; MAX_AAD_LEN];
        let aad = assemble_aad(&mut aad, &out[..header_len], metadata)?;
        let (body, tag) = out[header_len..].split_at_mut(plaintext.len());
        body.copy_from_slice(plaintext);
        slot.aead.seal(&slot.material.nonce(ctr), aad, body, tag).map_err(aead_error)?;
        Ok(total)
    }

    /// Decrypts one SFrame ciphertext (header included) into `out`, which needs room for the
    /// plaintext (the ciphertext minus header and tag). On error `out` holds unspecified bytes.
    pub fn decrypt(&self, metadata: &[u8], frame: &[u8], out: &mut [u8]) -> Result<Decrypted, Error> {
        let (header, header_len) = Header::parse(frame)?;
        let slot = self.slot(header.kid).ok_or(Error::UnknownKid(header.kid))?;
        if slot.usage != Usage::Decrypt {
            return Err(Error::WrongUsage(header.kid));
        }
        let sealed = &frame[header_len..];
        let len = sealed.len().checked_sub(self.suite.nt()).ok_or(Error::TooShort)?;
        let (ciphertext, tag) = sealed.split_at(len);
        let out = out.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        let mut aad = [0u8; MAX_AAD_LEN];
        let aad = assemble_aad(&mut aad, &frame[..header_len], metadata)?;
        slot.aead.open(&slot.material.nonce(header.ctr), aad, ciphertext, tag, out).map_err(aead_error)?;
        Ok(Decrypted { kid: header.kid, ctr: header.ctr, len })
    }

    fn slot(&self, kid: Kid) -> Option<&Slot> {
        self.slots.iter().flatten().find(|s| s.kid == kid)
    }
}

/// AAD = header || metadata (RFC 9605 §4.4.3), in `buf`.
fn assemble_aad<'a>(
    buf: &'a mut [u8; MAX_AAD_LEN],
    header: &[u8],
    metadata: &[u8],
) -> Result<&'a [u8], Error> {
    if metadata.len() > MAX_METADATA_LEN {
        return Err(Error::MetadataTooLong);
    }
    let len = header.len() + metadata.len();
    buf[..header.len()].copy_from_slice(header);
    buf[header.len()..len].copy_from_slice(metadata);
    Ok(&buf[..len])
}

fn aead_error(e: AeadError) -> Error {
    match e {
        AeadError::Authentication => Error::Authentication,
        AeadError::TooLong => Error::FrameTooLong,
        // Lengths are computed here from the suite, so these would be our bug; callers still
        // get a drop-the-frame error rather than a panic.
        AeadError::KeyLength | AeadError::Length => Error::BufferTooSmall,
    }
}
